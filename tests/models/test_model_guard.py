"""Calls to model providers obey the network guard (graft.models.guard).

Each test points a provider at a canary: a real HTTP server on 127.0.0.1 that answers any
request with a chat completion and counts the connections it accepts. DNS is scripted, so a
public-looking name can be made to resolve to loopback; a refused call must leave the canary
with zero connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest

from graft.audit import tail
from graft.config import ProviderSettings
from graft.errors import NetworkBlocked
from graft.messages import Message
from graft.models.base import ModelRequest, TextChunk
from graft.models.openai import OpenAIModel
from graft.netguard import NetworkPolicy, Resolver
from graft.runtime import Graft
from graft.server import create_app
from graft.translation.backends import ModelBackend, TranslationError


class Canary:
    """Answers every request with a chat completion; counts connections and request lines."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                self.requests.append(line.decode().strip())
                length = 0
                while (raw := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = raw.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                body = json.dumps(
                    {
                        "id": "c1",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "pong"},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                ).encode()
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    server = Canary()
    await server.start()
    yield server
    await server.stop()


def scripted(*answers: str) -> tuple[Resolver, list[tuple[str, int]]]:
    """A resolver that answers ``answers`` for every name and records what it was asked."""
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        asked.append((host, port))
        return list(answers)

    return resolver, asked


def model(base_url: str, resolver: Resolver | None = None, **provider: Any) -> OpenAIModel:
    settings = ProviderSettings(base_url=base_url, max_retries=0, **provider)
    return OpenAIModel("mine:m", settings, network=NetworkPolicy(), resolver=resolver)


async def ask(target: OpenAIModel) -> str:
    request = ModelRequest([Message("user", "ping")], stream=False)
    try:
        chunks = [chunk async for chunk in target.stream(request)]
    finally:
        await target.aclose()
    return "".join(chunk.text for chunk in chunks if isinstance(chunk, TextChunk))


async def test_a_name_resolving_to_loopback_is_refused_before_connecting(canary: Canary) -> None:
    resolver, asked = scripted("127.0.0.1")
    target = model(f"http://api.example.com:{canary.port}/v1", resolver)
    assert target.unavailable is None  # only the answer of DNS can tell
    with pytest.raises(NetworkBlocked) as caught:
        await ask(target)
    message = caught.value.message
    assert "'api.example.com' resolves to 127.0.0.1, which is loopback" in message
    assert "providers.mine.allow_hosts" in message
    assert (caught.value.rule, caught.value.address) == ("address", "127.0.0.1")
    assert asked == [("api.example.com", canary.port)]
    assert canary.connections == 0


async def test_one_private_answer_among_public_ones_refuses_the_call(canary: Canary) -> None:
    resolver, _ = scripted("93.184.215.14", "::ffff:10.0.0.1")
    with pytest.raises(NetworkBlocked, match="IPv4-mapped form of 10.0.0.1"):
        await ask(model(f"http://api.example.com:{canary.port}/v1", resolver))
    assert canary.connections == 0


@pytest.mark.parametrize("allowed", ["api.example.com", "*.example.com", "127.0.0.0/8"])
async def test_an_intranet_name_the_admin_allows_is_reached(canary: Canary, allowed: str) -> None:
    resolver, asked = scripted("127.0.0.1")
    target = model(f"http://api.example.com:{canary.port}/v1", resolver, allow_hosts=[allowed])
    assert await ask(target) == "pong"
    assert canary.connections == 1 and asked == [("api.example.com", canary.port)]
    assert canary.requests == ["POST /v1/chat/completions HTTP/1.1"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_base_url_written_as_an_address_is_allowed_as_written(
    canary: Canary, host: str
) -> None:
    resolver, asked = scripted("127.0.0.1")
    # Port canary.port is in no allowlist: the base_url's own port always is.
    assert await ask(model(f"http://{host}:{canary.port}/v1", resolver)) == "pong"
    assert canary.connections == 1
    assert asked == ([] if host == "127.0.0.1" else [("localhost", canary.port)])


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("http://0.0.0.0:{port}/v1", "0.0.0.0 is unspecified"),
        ("http://user:secret@127.0.0.1:{port}/v1", "carries user info"),
        ("http://2130706433:{port}/v1", "non-standard form (127.0.0.1)"),
    ],
)
async def test_a_refused_base_url_is_reported_at_start_and_refused_at_call(
    canary: Canary, base_url: str, says: str
) -> None:
    target = model(base_url.format(port=canary.port))
    assert target.unavailable is not None and says in target.unavailable
    with pytest.raises(NetworkBlocked, match="blocked by the network policy"):
        await ask(target)
    assert canary.connections == 0


async def test_a_proxy_from_the_environment_is_allowed_like_the_base_url(
    canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://proxy.corp:{canary.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    resolver, asked = scripted("127.0.0.1")
    assert await ask(model("http://api.example.com/v1", resolver)) == "pong"
    # Only the proxy was looked up: the proxy resolves the provider's name itself.
    assert asked == [("proxy.corp", canary.port)]
    assert canary.requests == ["POST http://api.example.com/v1/chat/completions HTTP/1.1"]


async def test_a_refused_model_call_in_a_turn_is_audited_and_answered_403(
    canary: Canary, graft_factory: Callable[..., Graft]
) -> None:
    resolver, _ = scripted("169.254.169.254")
    blocked = model(f"http://api.example.com:{canary.port}/v1", resolver)
    async with graft_factory(blocked) as graft:
        transport = httpx.ASGITransport(app=create_app(graft))
        async with httpx.AsyncClient(transport=transport, base_url="http://graft") as client:
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
            )
        records = await tail(graft.store)
    await blocked.aclose()
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "network_blocked"
    assert "169.254.169.254, which is link-local" in error["message"]
    [audit] = [r for r in records if r.action == "network.blocked"]
    assert (audit.target, audit.outcome) == ("api.example.com", "denied")
    assert '"service":"model mine:m"' in audit.details
    assert canary.connections == 0


async def test_translation_through_a_refused_model_fails_visibly_and_is_audited(
    canary: Canary,
) -> None:
    resolver, _ = scripted("10.1.2.3")
    refused: list[NetworkBlocked] = []

    async def on_blocked(exc: NetworkBlocked) -> None:
        refused.append(exc)

    refused_model = model(f"http://api.example.com:{canary.port}/v1", resolver)
    backend = ModelBackend(refused_model, on_blocked=on_blocked)
    with pytest.raises(TranslationError, match="10.1.2.3, which is private"):
        await backend.translate(["bonjour"], "en")
    await refused_model.aclose()
    assert [exc.address for exc in refused] == ["10.1.2.3"]
    assert canary.connections == 0
