"""Embeddings: the real e5 model, and an OpenAI-compatible endpoint served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graft.audit import tail
from graft.config import Settings, load_settings
from graft.default_plugins.sentiment import e5 as sentiment_e5
from graft.embeddings import (
    E5_ID,
    E5Embedder,
    Embedder,
    OpenAIEmbedder,
    e5_embed,
    embedder_for,
)
from graft.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable, NetworkBlocked
from graft.netguard import Resolver
from graft.secrets import mask
from graft.testing import MemoryStore

KEY = "sk-test-Zq8Yw2embeddings9000"

# --- e5 ----------------------------------------------------------------------------------------


def test_e5_is_the_sentiment_backends_embedding() -> None:
    assert sentiment_e5.embed is e5_embed  # the shipped head was trained on these vectors


async def test_e5_vectors_are_normalised_and_sides_differ() -> None:
    e5 = E5Embedder()
    assert isinstance(e5, Embedder) and (e5.id, e5.dimensions) == (E5_ID, 384)
    docs = await e5.embed_documents(["hello", "你好", "🙂"])
    query = await e5.embed_query("hello")
    assert docs.shape == (3, 384) and docs.dtype == np.float32 and query.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-3)
    assert 0.5 < float(docs[0] @ query) < 0.999  # "passage: hello" is not "query: hello"
    np.testing.assert_array_equal(query, e5_embed(["hello"])[0])
    assert (await e5.embed_documents([])).shape == (0, 384)


async def test_e5_puts_chinese_and_english_of_one_meaning_together() -> None:
    e5 = E5Embedder()
    query = await e5.embed_query("How do I reset my password?")
    docs = await e5.embed_documents(
        ["忘记密码后，可以在登录页点击“重置密码”。", "公司食堂周五供应饺子。"]
    )
    same, unrelated = docs @ query
    assert same > unrelated + 0.05


async def test_e5_cache_by_side_and_text() -> None:
    e5 = E5Embedder(cache_size=3)
    first = await e5.embed_documents(["a", "b", "a"])
    assert e5.embedded == 2
    np.testing.assert_array_equal(first[0], first[2])
    again = await e5.embed_documents(["b", "a"])
    assert e5.embedded == 2
    np.testing.assert_array_equal(again, first[[1, 0]])
    await e5.embed_query("a")  # the query side is another text
    assert e5.embedded == 3
    await e5.embed_documents(["c"])  # evicts the oldest, ("passage", "b")
    await e5.embed_documents(["b"])
    assert e5.embedded == 5


def test_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(home=tmp_path).embeddings.model == "e5"
    monkeypatch.setenv("GRAFT_EMBEDDINGS__MODEL", "openai:text-embedding-3-small")
    monkeypatch.setenv("GRAFT_EMBEDDINGS__ALLOW_HOSTS", '["*.corp"]')
    settings = load_settings(home=tmp_path)
    assert settings.embeddings.model == "openai:text-embedding-3-small"
    assert settings.embeddings.allow_hosts == ["*.corp"]
    monkeypatch.delenv("GRAFT_EMBEDDINGS__MODEL")
    monkeypatch.delenv("GRAFT_EMBEDDINGS__ALLOW_HOSTS")
    for bad in [{"model": "bge"}, {"batch_size": 0}, {"allow_hosts": ["a b"]}, {"x": 1}]:
        with pytest.raises(ConfigError, match="embeddings"):
            load_settings(home=tmp_path, embeddings=bad)


def test_embedder_for_makes_one_per_settings(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert embedder_for(settings) is embedder_for(load_settings(home=tmp_path))
    assert isinstance(embedder_for(settings), E5Embedder)
    hosted = load_settings(home=tmp_path, embeddings={"model": "ollama:bge-m3"})
    made = embedder_for(hosted)
    assert isinstance(made, OpenAIEmbedder) and made.id == "ollama:bge-m3"
    assert embedder_for(hosted) is made and embedder_for(hosted, store=MemoryStore()) is not made


# --- an OpenAI-compatible endpoint ---------------------------------------------------------------


def vector(text: str) -> list[float]:
    """A deterministic 4-number vector for ``text``."""
    return [float(len(text)), float(sum(map(ord, text)) % 97), 1.0, -2.0]


class Upstream:
    """``POST /v1/embeddings`` on 127.0.0.1: scripted answers first, then computed vectors."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, dict[str, Any]]] = []
        self.script: list[tuple[int, Any, dict[str, str]]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                upstream.requests.append((self.path, self.headers["Authorization"], body))
                if upstream.script:
                    status, answer, headers = upstream.script.pop(0)
                    if status == 0:  # answer too late
                        time.sleep(0.5)
                        return
                else:
                    data = [
                        {"object": "embedding", "index": i, "embedding": vector(text)}
                        for i, text in enumerate(body["input"])
                    ]
                    status, answer, headers = 200, {"data": data[::-1]}, {}
                raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def settings_for(tmp_path: Path, base_url: str, **embeddings: Any) -> Settings:
    return load_settings(
        home=tmp_path,
        providers={"corp": {"base_url": base_url, "api_key": {"$env": "CORP_EMBED_TOKEN"}}},
        embeddings={"model": "corp:bge-m3", **embeddings},
    )


@pytest.fixture
def settings(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("CORP_EMBED_TOKEN", KEY)
    yield settings_for(tmp_path, f"http://127.0.0.1:{upstream.port}/v1", batch_size=2)


def normalised(rows: Sequence[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float64)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


async def test_batches_in_order_with_the_key(settings: Settings, upstream: Upstream) -> None:
    embedder = OpenAIEmbedder.from_settings(settings)
    texts = ["alpha", "beta", "gamma", "delta", "其他"]
    vectors = await embedder.embed_documents(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 4) and embedder.dimensions == 4
    np.testing.assert_allclose(vectors, normalised([vector(t) for t in texts]), rtol=1e-6)
    np.testing.assert_allclose(await embedder.embed_query("beta"), vectors[1], rtol=1e-6)
    assert [(path, auth) for path, auth, _ in upstream.requests] == [
        ("/v1/embeddings", f"Bearer {KEY}")
    ] * 4
    assert [body for _, _, body in upstream.requests] == [
        {"model": "bge-m3", "input": ["alpha", "beta"]},
        {"model": "bge-m3", "input": ["gamma", "delta"]},
        {"model": "bge-m3", "input": ["其他"]},
        {"model": "bge-m3", "input": ["beta"]},
    ]
    assert (await embedder.embed_documents([])).shape == (0, 4)
    await embedder.aclose()


async def test_dimensions_are_asked_for_and_checked(settings: Settings, upstream: Upstream) -> None:
    settings.embeddings.dimensions = 8
    embedder = OpenAIEmbedder.from_settings(settings)
    with pytest.raises(ModelError, match=r"vectors of length 4, not length 8"):
        await embedder.embed_query("x")
    assert upstream.requests[0][2] == {"model": "bge-m3", "input": ["x"], "dimensions": 8}


async def test_a_503_is_retried(settings: Settings, upstream: Upstream) -> None:
    upstream.script = [(503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"})] * 2
    vectors = await OpenAIEmbedder.from_settings(settings).embed_documents(["a"])
    assert len(upstream.requests) == 3 and vectors.shape == (1, 4)
    upstream.script = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})] * 3
    with pytest.raises(ModelError, match=r"'corp' answered 429: slow down"):
        await OpenAIEmbedder.from_settings(settings).embed_documents(["a"])
    assert len(upstream.requests) == 6  # the first try and max_retries (2) retries


async def test_a_silent_upstream_times_out(settings: Settings, upstream: Upstream) -> None:
    settings.embeddings.timeout, settings.embeddings.max_retries = 0.1, 1
    upstream.script = [(0, b"", {})] * 2
    with pytest.raises(ModelTimeout, match=r"'corp' sent nothing for 0.1 s"):
        await OpenAIEmbedder.from_settings(settings).embed_query("x")
    assert len(upstream.requests) == 2


async def test_a_400_says_why_with_the_key_masked(settings: Settings, upstream: Upstream) -> None:
    message = f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"
    upstream.script = [(400, {"error": {"message": message, "type": "invalid"}}, {})]
    with pytest.raises(ModelError) as caught:
        await OpenAIEmbedder.from_settings(settings).embed_documents(["a"])
    text = caught.value.message
    assert text.startswith("embeddings upstream 'corp' answered 400: Incorrect API key")
    assert KEY not in text and mask(KEY) in text
    assert type(caught.value) is ModelError and len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"<html>gateway</html>", "not JSON"),
        ({"data": [{"index": 0, "embedding": [1.0, 0.0]}]}, "1 vectors for 2 inputs"),
        ({"vectors": []}, "no list of vectors"),
        (
            {"data": [{"index": 0, "embedding": [1, 0]}, {"index": 0, "embedding": [0, 1]}]},
            "item 1 has no valid index",
        ),
        (
            {"data": [{"embedding": [1.0, 2.0]}, {"embedding": ["1.0", 2.0]}]},
            "item 1 is not a list of numbers",
        ),
        (
            {"data": [{"embedding": [1.0, True]}, {"embedding": [1.0, 2.0]}]},
            "item 0 is not a list of numbers",
        ),
        (
            {"data": [{"embedding": [1.0, 2.0]}, {"embedding": [1.0, 2.0, 3.0]}]},
            "length 2, 3, not one length",
        ),
        ({"data": [{"embedding": []}, {"embedding": []}]}, "length 0"),
        (b'{"data": [{"embedding": [NaN, 1]}, {"embedding": [1, 1]}]}', "NaN"),
        ({"data": [{"embedding": [0, 0]}, {"embedding": [1, 1]}]}, "all-zero"),
    ],
)
async def test_a_malformed_answer_is_refused(
    settings: Settings, upstream: Upstream, answer: Any, says: str
) -> None:
    upstream.script = [(200, answer, {})]
    with pytest.raises(ModelError, match=f"embeddings upstream 'corp' answered .*{says}"):
        await OpenAIEmbedder.from_settings(settings).embed_documents(["a", "b"])


async def test_configuration_problems_are_raised_by_each_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = load_settings(home=tmp_path, embeddings={"model": "nowhere:m"})
    with pytest.raises(ModelUnavailable, match="provider .nowhere. has no base_url"):
        await embedder_for(unknown).embed_query("x")
    keyless = load_settings(home=tmp_path, embeddings={"model": "openai:text-embedding-3-small"})
    with pytest.raises(ModelUnavailable, match="set the environment variable OPENAI_API_KEY"):
        await embedder_for(keyless).embed_documents(["x"])
    monkeypatch.setenv("CORP_EMBED_TOKEN", KEY)
    zero = settings_for(tmp_path, "http://0.0.0.0:9/v1")
    with pytest.raises(ModelUnavailable, match="0.0.0.0 is unspecified"):
        await embedder_for(zero).embed_query("x")


# --- the network guard -------------------------------------------------------------------------


def resolving_to(address: str) -> tuple[Resolver, list[str]]:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return [address]

    return resolver, asked


async def test_a_name_that_resolves_privately_is_refused_and_audited(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORP_EMBED_TOKEN", KEY)
    settings = settings_for(tmp_path, f"http://embed.corp.test:{upstream.port}/v1")
    resolver, asked = resolving_to("127.0.0.1")
    store = MemoryStore()
    embedder = OpenAIEmbedder.from_settings(settings, store=store, resolver=resolver)
    with pytest.raises(NetworkBlocked, match=r"'embed.corp.test' resolves to 127.0.0.1"):
        await embedder.embed_documents(["company secret"])
    assert asked == ["embed.corp.test"] and upstream.requests == []  # the canary heard nothing
    [record] = await tail(store)
    assert (record.action, record.actor, record.target) == (
        "network.blocked",
        "graft",
        "embed.corp.test",
    )
    assert '"service":"embeddings"' in record.details and KEY not in record.details

    allowed = settings_for(
        tmp_path, f"http://embed.corp.test:{upstream.port}/v1", allow_hosts=["*.corp.test"]
    )
    embedder = OpenAIEmbedder.from_settings(allowed, resolver=resolver)
    assert (await embedder.embed_documents(["fine"])).shape == (1, 4)
    assert len(upstream.requests) == 1
    await embedder.aclose()
