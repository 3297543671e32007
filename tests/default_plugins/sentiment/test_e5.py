from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from graft.default_plugins.sentiment import e5 as e5_module
from graft.default_plugins.sentiment.backends import load_backend
from graft.default_plugins.sentiment.base import Sentiment, SentimentBackend
from graft.default_plugins.sentiment.e5 import DEFAULT_HEAD, E5Backend, embed
from graft.default_plugins.sentiment.head import HeadSet

# Written for these tests; neither training data nor in bench/data/sentiment_{dev,test}.jsonl.
CLEAR = [
    ("The waiter was charming and the pasta was perfect.", "positive"),
    ("I really love the new camera, the photos look stunning.", "positive"),
    ("这家民宿环境优美，老板也特别热情。", "positive"),
    ("新买的吸尘器很好用，吸力强还很安静。", "positive"),
    ("The charger melted after two days, dangerous junk.", "negative"),
    ("Worst customer support ever, nobody read my complaint.", "negative"),
    ("外卖送到的时候全洒了，商家还不肯退款。", "negative"),
    ("这个软件广告太多，还经常卡死，太差劲了。", "negative"),
    ("How do I add a second email address to my account?", "neutral"),
    ("请问明天上午的航班几点登机？", "neutral"),
]


def test_embeddings_are_normalised_query_vectors() -> None:
    x = embed(["hello", "你好", "🙂"])
    assert x.shape == (3, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3)
    assert embed([]).shape == (0, 384)


def test_clear_sentences(e5: E5Backend) -> None:
    results = e5.analyze_batch([text for text, _ in CLEAR])
    assert [r.label for r in results] == [label for _, label in CLEAR]
    assert all(r.backend == "e5" and 0.34 < r.score <= 1 for r in results)
    assert isinstance(e5, SentimentBackend)


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("Thank you so much, you really saved my evening!", "grateful"),
        ("太感谢您了，帮了我一个大忙！", "grateful"),
        ("I am absolutely furious, this is a scam and I want my money back!", "angry"),
        ("我的狗昨天走丢了，我难过得睡不着。", "sad"),
        ("Please list the files in my downloads folder.", None),
        ("把这段代码翻译成Go语言。", None),
    ],
)
def test_emotions(e5: E5Backend, text: str, emotion: str | None) -> None:
    assert e5.analyze_batch([text])[0].emotion == emotion


def test_batch_matches_single_and_uses_the_cache(
    e5: E5Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["Lovely weather for a walk.", "My train was cancelled again.", "Open the file."]
    batch = E5Backend(e5.heads).analyze_batch(texts)
    singles = [E5Backend(e5.heads).analyze_batch([t])[0] for t in texts]
    assert [(r.label, r.emotion) for r in batch] == [(r.label, r.emotion) for r in singles]
    assert [r.score for r in batch] == pytest.approx([r.score for r in singles], abs=0.02)

    backend = E5Backend(e5.heads, cache_size=2)
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return embed(texts)

    monkeypatch.setattr(e5_module, "embed", counting)
    first = backend.analyze_batch(["a good day", "a good day", "a bad day"])
    assert calls == [["a good day", "a bad day"]]
    assert backend.analyze_batch(["a bad day"]) == [first[2]]
    assert len(calls) == 1
    backend.analyze_batch(["new one"])  # evicts "a good day"
    backend.analyze_batch(["a good day"])
    assert calls[-1] == ["a good day"]


def test_threads_share_one_model(e5: E5Backend) -> None:
    texts = [f"Order {i} arrived on time, thanks!" for i in range(8)]
    expected = E5Backend(e5.heads).analyze_batch(texts)
    results: dict[int, list[Sentiment]] = {}

    def work(i: int) -> None:
        results[i] = E5Backend(e5.heads).analyze_batch(texts)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())


def test_head_labels_are_checked() -> None:
    heads = HeadSet.load(DEFAULT_HEAD)
    bad = type(heads.sentiment)(("a", "b", "c"), heads.sentiment.weights, heads.sentiment.bias)
    with pytest.raises(ValueError, match="labels"):
        E5Backend(HeadSet(bad))


def test_load_backend_specs(tmp_path: Path) -> None:
    assert load_backend("e5").name == "e5"
    assert load_backend(" E5 : default ").name == "e5:default"
    HeadSet.load(DEFAULT_HEAD).save(tmp_path / "shop-v1.npz")
    assert load_backend("e5:shop", heads_dir=tmp_path).name == "e5:shop"
    assert load_backend(f"e5:{tmp_path / 'shop-v1.npz'}").name.startswith("e5:")
    assert "lexicon" in load_backend("lexicon").name
    for spec in ["", "e5:", "bert", "transformers", "transformers:", "lexicon:x"]:
        with pytest.raises(ValueError, match="e5"):
            load_backend(spec, heads_dir=tmp_path)
    with pytest.raises(ValueError, match="available: default, shop-v1"):
        load_backend("e5:other", heads_dir=tmp_path)
