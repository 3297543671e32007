from __future__ import annotations

from collections.abc import Sequence

import pytest

from graft.default_plugins.sentiment.analyzer import Analyzer, combine, split_sentences
from graft.default_plugins.sentiment.base import Label, Sentiment
from graft.default_plugins.sentiment.e5 import E5Backend


class WordBackend:
    """Positive if a text has "good"/"好", negative if "bad"/"坏", else neutral; logs calls."""

    name = "words"

    def __init__(self, max_chars: int = 1000) -> None:
        self.max_chars = max_chars
        self.calls: list[list[str]] = []

    def analyze_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            assert text and len(text) <= self.max_chars
            label: Label = "neutral"
            if "good" in text or "好" in text:
                label = "positive"
            elif "bad" in text or "坏" in text:
                label = "negative"
            out.append(Sentiment(label, 0.9, self.name))
        return out


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \u3000"])
def test_empty_text_is_certainly_neutral(text: str) -> None:
    backend = WordBackend()
    result = Analyzer(backend).analyze(text)
    assert result == Sentiment("neutral", 1.0, "words", note="empty text")
    assert backend.calls == []


@pytest.mark.parametrize("text", ["...", "?!", "——", "。。。"])
def test_punctuation_only_is_neutral_with_a_note(text: str) -> None:
    backend = WordBackend()
    result = Analyzer(backend).analyze(text)
    assert (result.label, result.score, result.note) == ("neutral", 1.0, "no words to judge")
    assert backend.calls == []


def test_nul_and_lone_surrogates_do_not_reach_the_backend() -> None:
    backend = WordBackend()
    result = Analyzer(backend).analyze("good\x00 day \ud800")
    assert result.label == "positive"
    [[sent]] = backend.calls
    assert "\x00" not in sent
    sent.encode("utf-8")


def test_batch_goes_to_the_backend_in_one_call_and_keeps_order() -> None:
    backend = WordBackend()
    results = Analyzer(backend).analyze_many(["good", "", "bad", "so-so"])
    assert [r.label for r in results] == ["positive", "neutral", "negative", "neutral"]
    assert backend.calls == [["good", "bad", "so-so"]]


def test_split_sentences_zh_and_en() -> None:
    assert split_sentences("今天很好。你呢？“真的吗！”他说。\n第二行") == [
        "今天很好。",
        "你呢？",
        "“真的吗！”",
        "他说。",
        "第二行",
    ]
    assert split_sentences("It costs 3.5 dollars. Really?Yes! e.g. this") == [
        "It costs 3.5 dollars.",
        "Really?",
        "Yes!",
        "e.g.",
        "this",
    ]


def test_long_text_is_read_in_pieces_and_weighted_by_length() -> None:
    backend = WordBackend(max_chars=40)
    text = "This part is good. " * 6 + "这部分很坏。" * 2
    result = Analyzer(backend).analyze(text)
    [pieces] = backend.calls
    assert len(pieces) > 1 and all(len(p) <= 40 for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert result.label == "positive" and not result.truncated
    assert 0.33 < result.score < 0.9


def test_over_long_text_is_truncated_after_max_pieces() -> None:
    backend = WordBackend(max_chars=30)
    text = "bad thing here. " * 10 + "good ending!"
    result = Analyzer(backend, max_pieces=3).analyze(text)
    [pieces] = backend.calls
    assert len(pieces) == 3
    assert result.truncated and result.label == "negative"


def test_a_sentence_without_breaks_is_cut_hard() -> None:
    backend = WordBackend(max_chars=10)
    result = Analyzer(backend).analyze("好" * 25)
    assert backend.calls == [["好" * 10, "好" * 10, "好" * 5]]
    assert result.label == "positive" and result.score == pytest.approx(0.9)


def test_combine_picks_the_heavier_side() -> None:
    parts = [Sentiment("positive", 0.9, "x", "happy"), Sentiment("negative", 0.6, "x", "sad")]
    assert combine(parts, [10, 30]).label == "negative"
    assert combine(parts, [10, 30]).emotion == "sad"
    assert combine(parts, [30, 10]) == Sentiment("positive", 0.725, "x", "happy")


def test_max_pieces_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Analyzer(WordBackend(), max_pieces=0)


async def test_async_runs_in_a_worker_thread() -> None:
    analyzer = Analyzer(WordBackend())
    assert (await analyzer.aanalyze("good")).label == "positive"
    assert [r.label for r in await analyzer.aanalyze_many(["bad", " "])] == ["negative", "neutral"]


@pytest.mark.parametrize(
    ("text", "label", "emotion"),
    [
        ("👍", "positive", "happy"),
        ("😭 😭", "negative", "sad"),
        ("🤬🤬💢", "negative", "angry"),
        ("🙏🏽", "positive", "grateful"),
        ("🤦‍♀️", "negative", "frustrated"),
        (":)", "positive", "happy"),
        ("🤔", "neutral", "confused"),
        ("😀😡", "neutral", None),
    ],
)
def test_emoji_only_is_read_from_the_table(text: str, label: str, emotion: str | None) -> None:
    backend = WordBackend()
    result = Analyzer(backend).analyze(text)
    assert (result.label, result.emotion, result.note) == (label, emotion, "read from emoji")
    assert 0.4 < result.score <= 0.9
    assert backend.calls == []


@pytest.mark.parametrize("text", ["🚗", "good 😭", "XD is bad"])
def test_other_emoji_go_to_the_backend(text: str) -> None:
    backend = WordBackend()
    Analyzer(backend).analyze(text)
    assert backend.calls == [[text]]


# The real model: the awkward inputs of the sentiment issue, end to end.


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("😀😍👍", "positive"),
        ("😡👎", "negative"),
        ("这个feature太好用了，I love it!", "positive"),
        ("delivery又晚了三天, worst service ever.", "negative"),
        ("谢谢🙏", "positive"),
    ],
)
def test_emoji_and_mixed_language(e5: E5Backend, text: str, label: str) -> None:
    assert Analyzer(e5).analyze(text).label == label


def test_long_real_text_is_truncated_not_crashed(e5: E5Backend) -> None:
    text = "The staff were wonderful and the food was delicious. " * 80
    result = Analyzer(e5, max_pieces=2).analyze(text)
    assert result.label == "positive" and result.truncated
