"""LexiconBackend: the word-list fallback for English and Chinese."""

from __future__ import annotations

import pytest

from graft.default_plugins.sentiment.base import Sentiment, SentimentBackend
from graft.default_plugins.sentiment.lexicon import LexiconBackend

lexicon = LexiconBackend()


def judge(text: str) -> Sentiment:
    [result] = lexicon.analyze_batch([text])
    return result


def test_is_a_named_fallback_backend() -> None:
    assert isinstance(lexicon, SentimentBackend)
    assert lexicon.name == "lexicon (fallback)"
    assert "never the default" in (LexiconBackend.__doc__ or "")
    texts = ["great", "terrible", "a table"]
    assert [r.label for r in lexicon.analyze_batch(texts)] == ["positive", "negative", "neutral"]
    assert all(r.backend == "lexicon (fallback)" for r in lexicon.analyze_batch(texts))
    assert lexicon.analyze_batch([]) == []


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("This works great, really helpful", "positive"),
        ("The app is slow and buggy", "negative"),
        ("The meeting is on Tuesday at 3pm", "neutral"),
        ("这个产品很好用", "positive"),
        ("服务太差了", "negative"),
        ("我明天去北京", "neutral"),
        # Longest match first: 不错 is one word, not 不 + 错; 差不多 is not 差.
        ("还不错", "positive"),
        ("差不多吧", "neutral"),
        ("这个app is great 👍", "positive"),
    ],
)
def test_labels(text: str, label: str) -> None:
    assert judge(text).label == label


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("not good", "negative"),
        ("not bad", "positive"),
        ("I don't like it", "negative"),
        ("I don’t like it", "negative"),  # a typographic apostrophe
        ("never helpful", "negative"),
        ("不好", "negative"),
        ("不是很好", "negative"),
        ("我不开心", "negative"),
        ("没有用", "negative"),
        ("别担心", "neutral"),
    ],
)
def test_negation(text: str, label: str) -> None:
    assert judge(text).label == label


def test_negation_is_milder_and_ends_with_the_clause() -> None:
    assert judge("not good").score < judge("bad").score
    assert judge("not very good").score < judge("not good").score
    # The comma ends "not"'s reach: "good" is meant.
    assert judge("not now, it is good").label == "positive"
    assert judge("no problem :)").label == "positive"  # negators do not reach emoji


def test_intensifiers_and_softeners() -> None:
    assert judge("very good").score > judge("good").score > judge("a bit good").score
    assert judge("非常好").score > judge("好").score
    assert judge("有点慢").score < judge("慢").score
    assert (judge("好开心").label, judge("好开心").emotion) == ("positive", "happy")


def test_the_clause_after_but_weighs_more() -> None:
    assert judge("good but terrible").label == "negative"
    assert judge("terrible but good overall, I like it").label == "positive"
    assert judge("价格贵，但是质量很好").label == "positive"


@pytest.mark.parametrize(
    ("text", "label", "emotion"),
    [
        ("I am so angry, this is unacceptable", "negative", "angry"),
        ("气死了，太过分了", "negative", "angry"),
        ("It still doesn't work, I'm fed up", "negative", "frustrated"),
        ("用不了，烦死了", "negative", "frustrated"),
        ("I'm really disappointed", "negative", "sad"),
        ("好失望，难过", "negative", "sad"),
        ("I don't understand what this means", "neutral", "confused"),
        ("我不明白这是什么意思", "neutral", "confused"),
        ("Yay, I'm so happy!", "positive", "happy"),
        ("太好了，哈哈", "positive", "happy"),
        ("Thank you so much for the help", "positive", "grateful"),
        ("谢谢你的帮助", "positive", "grateful"),
        ("😡", "negative", "angry"),
        ("😭😭", "negative", "sad"),
        ("🙏", "positive", "grateful"),
        ("🤔", "neutral", "confused"),
        ("good :)", "positive", "happy"),
        # An emotion must fit the label: thanks does not make a complaint grateful.
        ("Thanks, but this is terrible and useless", "negative", "frustrated"),
        ("not happy", "negative", None),
        ("The report is ready", "neutral", None),
    ],
)
def test_emotions(text: str, label: str, emotion: str | None) -> None:
    result = judge(text)
    assert (result.label, result.emotion) == (label, emotion)


def test_emoji_with_modifiers() -> None:
    assert judge("👍🏽").label == "positive"  # a skin tone
    assert judge("❤️").label == "positive"  # a variation selector


def test_scores_are_between_zero_and_one() -> None:
    texts = ["", "a", "good " * 500, "terrible " * 500, "好" * 2000, "不" * 100, "🙂" * 50]
    for result in lexicon.analyze_batch(texts):
        assert 0.0 <= result.score <= 1.0
    assert judge("nothing to see").score == 0.5  # neutral: a word list is never sure of it
    assert 0.5 < judge("good").score < judge("excellent").score < 1.0


def test_reads_a_long_text_quickly() -> None:
    text = "这个产品很好用，但是客服太慢了。The app is great, but support never answers! " * 250
    assert len(text) <= lexicon.max_chars
    [result] = lexicon.analyze_batch([text])
    assert result.label in ("positive", "negative", "neutral")
