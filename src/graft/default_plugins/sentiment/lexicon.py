"""``LexiconBackend``: a small word-list classifier for English and Chinese, the fallback.

It is never the default backend. It exists so that sentiment analysis still answers, and says
plainly that it is a guess (its name is ``"lexicon (fallback)"``), where no model can be
loaded. It reads cue words, not meaning: sarcasm, domain words and anything it has no entry for
are lost on it.

The word lists below were written for graft (about 500 entries, no third-party lexicon). How a
text is read:

- English is split into words; a phrase of up to three words (``thank you``) wins over its
  words. Chinese has no spaces, so each run of Chinese characters is matched against the list
  longest entry first (``不错`` before ``不``); characters that match nothing count as words.
  Emoji and a few emoticons (``:)``) are entries too.
- A negator (not, no, never, ``n't``, 不, 没, 别 ...) turns the sentiment words in the next three
  words around (emoji excepted) and weakens them (``not good`` is -0.75 where ``good`` is +1),
  and drops their emotion. An intensifier (very, 很, 太 ...) or a softener (a bit, 有点)
  scales the next two.
- Punctuation ends a clause and the reach of both. A contrast word (but, 但是, 不过 ...) halves
  what came before it: the clause after it is what the writer means.
- The sum of the positive and negative weights decides: within 0.5 of zero it is neutral.
  ``score`` is 0.5 for neutral (a word list cannot be sure of it) and ``0.5 + 0.5 * m / (m + 1)``
  otherwise, ``m`` being the size of the sum: one plain word gives 0.75, a strong one 0.83.
- Emotion words (angry, frustrated, sad, confused, happy, grateful) name the emotion with the
  most weight among those that fit the label: happy and grateful for positive; angry,
  frustrated, sad and confused for negative; confused for neutral.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from graft.default_plugins.sentiment.base import Emotion, Label, Sentiment

__all__ = ["LexiconBackend"]

# --- the word lists ------------------------------------------------------------------------
# Whitespace separates entries; "_" joins the words of an English phrase.

_TERMS: dict[float, str] = {
    2.0: """
        excellent amazing awesome fantastic perfect wonderful brilliant outstanding superb
        incredible love loved loves best well_done good_job
        完美 优秀 超赞 太棒 棒极了 一流 出色 惊艳 爱死
        💯 👏
    """,
    1.0: """
        good great nice helpful useful works worked fast easy clear better cool enjoy enjoyed
        pleased satisfied recommend smooth solved fixed resolved beautiful friendly kind
        impressive reliable lovely correct accurate convenient i_like i_liked like_it liked_it
        好 好用 不错 棒 赞 满意 喜欢 爱 可爱 厉害 牛 靠谱 方便 快 清楚 有用 顺利 漂亮 推荐 解决了
        给力 支持 成功 稳定
        👍 👌 ✨ 😎 ;)
    """,
    0.5: "fine okay 好的 还行 还可以 没问题 可以 没错 行",
    -1.0: """
        bad poor wrong error errors bug bugs buggy broken fail fails failed failure crash
        crashes crashed slow problem problems worse ugly mess messy laggy complaint complain
        issue issues refund expensive missing
        差 坏 坏了 不行 错误 问题 故障 慢 卡顿 卡 贵 难用 差劲 糟 糟糕 毛病 投诉 退款 闪退 失败
        呵呵 垃圾 恶心 离谱
        👎 😱 💩
    """,
    -2.0: """
        terrible awful horrible worst garbage trash disaster pathetic disgusting unusable scam
        waste_of_time
        太差 极差 烂 最差 骗子 坑
    """,
}

_EMOTION_VALUE: dict[Emotion, float] = {
    "angry": -2.0,
    "frustrated": -1.5,
    "sad": -1.5,
    "confused": -0.2,
    "happy": 1.5,
    "grateful": 1.5,
}
"""The weight of an emotion word: confusion is barely negative; one or two cues stay neutral."""

_EMOTIONS: dict[Emotion, str] = {
    "angry": """
        angry furious outraged pissed mad hate hated infuriating livid unacceptable ridiculous
        生气 愤怒 气死 气死了 火大 恼火 可恶 过分 滚 太过分
        😠 😡 🤬 👿 💢
    """,
    "frustrated": """
        frustrated frustrating frustration annoying annoyed irritating fed_up useless stuck
        give_up gave_up sick_of tired_of doesn't_work does_not_work didn't_work not_working
        stopped_working still_not
        烦 烦人 烦死 烦死了 郁闷 无语 受够 受够了 崩溃 头疼 头痛 折腾 没用 没有用 没办法 怎么回事
        用不了 不能用 打不开 没反应 登不上 不管用 没效果 又来了
        😤 😩 😫 🙄 😒
    """,
    "sad": """
        sad unhappy depressed disappointed disappointing heartbroken upset miserable lonely
        unfortunately cry crying
        难过 伤心 失望 遗憾 悲伤 哭 哭了 痛苦 心痛 可惜 委屈 心累
        😢 😭 😞 😔 ☹ 💔 😟 :( :-( :'(
    """,
    "confused": """
        confused confusing unclear puzzled baffled huh not_sure no_idea don't_understand
        do_not_understand doesn't_make_sense makes_no_sense
        困惑 不懂 不明白 没明白 看不懂 搞不懂 不理解 迷茫 糊涂 疑惑 什么意思 啥意思 搞不清
        🤔 😕 😵 ❓
    """,
    "happy": """
        happy glad delighted excited exciting joy yay hooray haha hahaha lol
        开心 高兴 快乐 兴奋 哈哈 哈哈哈 耶 太好了 幸福 爽
        😀 😃 😄 😁 😊 🙂 😆 😍 🥰 🎉 😂 🤣 ❤ :) :-) :d :-d
    """,
    "grateful": """
        thanks thank thank_you thankyou thx grateful appreciate appreciated thankful
        谢谢 感谢 多谢 感激 辛苦了 谢啦 谢了 谢谢你
        🙏
    """,
}

_NEGATORS = """
    not no never nothing nobody none neither nor without hardly barely cannot
    don't doesn't didn't isn't aren't wasn't weren't can't couldn't won't wouldn't shouldn't
    haven't hasn't hadn't ain't dont doesnt didnt isnt arent wasnt cant couldnt wont
    不 没 没有 别 不要 未 无法 从不 从没 毫无 不太 并不
"""
_INTENSIFIERS: dict[float, str] = {
    1.5: """
        very really so extremely super totally absolutely too incredibly highly truly
        completely utterly
        很 非常 特别 太 超 超级 真 真的 十分 极其 相当 实在 最 太太 巨 贼
    """,
    1.2: "quite pretty 挺 蛮 比较",
    0.5: "slightly somewhat a_bit a_little kind_of sort_of 有点 有些 稍微 略 一点",
}
_CONTRASTS = "but however 但是 但 可是 不过 然而"
_FILLERS = """
    好像 好多 好几 好久 只好 正好 刚好 好吧 还好 不好意思 不得不 不用 不用谢 不客气 不少 不然
    不仅 不一定 差不多 差点 没事 没关系 最好 好不好 行不行
"""
"""Entries that only stop a shorter entry from matching inside them (``差`` in ``差不多``)."""

_GOOD_AS_INTENSIFIER = 1.5
"""``好`` before a sentiment word intensifies it: ``好开心`` is "so happy", not "good, happy"."""

_NEGATED = 0.75
"""A negated word counts this much, the other way round: ``not good`` is milder than ``bad``."""
_SCOPE = 3
"""How many words after a negator it reaches: ``not really that good``, ``不是很好``."""
_BOOST_SCOPE = 2
_MAX_BOOST = 3.0
"""Intensifiers multiply (``really very good``) up to this."""
_NEUTRAL_BAND = 0.5

Role = Literal["term", "negator", "intensifier", "contrast", "stop", "other"]


@dataclass(frozen=True, slots=True)
class _Entry:
    role: Role
    value: float = 0.0
    """The sentiment weight of a term, or an intensifier's factor."""
    emotion: Emotion | None = None
    symbol: bool = False
    """An emoji or emoticon: no negator reaches it (``no problem :)``)."""


def _build() -> dict[str, _Entry]:
    lexicon: dict[str, _Entry] = {}

    def put(words: str, role: Role, value: float = 0.0, emotion: Emotion | None = None) -> None:
        for word in words.split():
            symbol = not word[0].isalnum()
            lexicon[word.replace("_", " ")] = _Entry(role, value, emotion, symbol)

    put(_FILLERS, "other")
    for value, words in _TERMS.items():
        put(words, "term", value)
    for emotion, words in _EMOTIONS.items():
        put(words, "term", _EMOTION_VALUE[emotion], emotion)
    put(_NEGATORS, "negator")
    for factor, words in _INTENSIFIERS.items():
        put(words, "intensifier", factor)
    put(_CONTRASTS, "contrast")
    return lexicon


_LEXICON = _build()
_LONGEST = max(len(word) for word in _LEXICON if "\u3400" <= word[0] <= "\u9fff")
_EN_LONGEST = max(word.count(" ") + 1 for word in _LEXICON)
_OTHER = _Entry("other")
_STOP = _Entry("stop")

_TOKEN = re.compile(
    r"(?P<emoticon>:-?\)|:-?\(|:'\(|:-?d(?![a-z])|;\))"
    r"|(?P<word>[a-z0-9]+(?:'[a-z]+)?)"
    r"|(?P<cjk>[\u3400-\u4dbf\u4e00-\u9fff]+)"
    r"|(?P<stop>[.!?;,，。！？；…\n])"
    r"|(?P<other>\S)"
)
_DROP = {0xFE0F: None, 0x200D: None} | {code: None for code in range(0x1F3FB, 0x1F400)}
"""Emoji variation selectors, joiners and skin tones: ``👍🏽`` reads as ``👍``."""


def _match_cjk(run: str) -> Iterator[_Entry]:
    """Split a run of Chinese characters into entries, the longest match first."""
    start = 0
    while start < len(run):
        for end in range(min(len(run), start + _LONGEST), start, -1):
            entry = _LEXICON.get(run[start:end])
            if entry is not None:
                break
        else:
            entry, end = _OTHER, start + 1
        yield entry
        start = end


def _lookup_words(words: list[str]) -> Iterator[_Entry]:
    """Entries for a run of English words: phrases first, then words, then a plural's stem."""
    start = 0
    while start < len(words):
        for size in range(min(_EN_LONGEST, len(words) - start), 0, -1):
            entry = _LEXICON.get(" ".join(words[start : start + size]))
            if entry is not None:
                break
        else:
            word, size = words[start], 1
            entry = _LEXICON.get(word[:-1], _OTHER) if word.endswith("s") else _OTHER
        yield entry
        start += size


def _entries(text: str) -> Iterator[_Entry]:
    """The text as a sequence of lexicon entries, with ``_STOP`` at clause ends."""
    text = text.lower().replace("\u2019", "'").translate(_DROP)
    words: list[str] = []
    for match in _TOKEN.finditer(text):
        kind, token = match.lastgroup, match.group()
        if kind == "word":
            words.append(token)
            continue
        if words:
            yield from _lookup_words(words)
            words = []
        if kind == "cjk":
            yield from _match_cjk(token)
        elif kind == "stop":
            yield _STOP
        else:
            yield _LEXICON.get(token, _OTHER)
    yield from _lookup_words(words)


def _with_intensifying_terms(entries: Iterator[_Entry]) -> Iterator[_Entry]:
    """Turn ``好`` into an intensifier where a sentiment word follows it (``好开心``)."""
    good = _LEXICON["好"]
    held: _Entry | None = None
    for entry in entries:
        if held is not None:
            yield _Entry("intensifier", _GOOD_AS_INTENSIFIER) if entry.role == "term" else held
            held = None
        if entry is good:
            held = entry
        else:
            yield entry
    if held is not None:
        yield held


_FITTING: dict[Label, tuple[Emotion, ...]] = {
    "positive": ("happy", "grateful"),
    "negative": ("angry", "frustrated", "sad", "confused"),
    "neutral": ("confused",),
}


def _judge(text: str, backend: str) -> Sentiment:
    positive = negative = 0.0
    emotions: dict[Emotion, float] = defaultdict(float)
    negated = boosted = 0  # how many more words a negator and an intensifier reach
    boost = 1.0
    for entry in _with_intensifying_terms(_entries(text)):
        if entry.role in ("stop", "contrast"):
            negated = boosted = 0
            if entry.role == "contrast":
                positive, negative = positive / 2, negative / 2
                emotions = defaultdict(float, {k: v / 2 for k, v in emotions.items()})
            continue
        if entry.role == "negator":
            negated = _SCOPE
            continue
        if entry.role == "intensifier":
            boost = min(boost * entry.value if boosted else entry.value, _MAX_BOOST)
            boosted = _BOOST_SCOPE
            continue
        if entry.role == "term":
            factor = boost if boosted else 1.0
            if negated and not entry.symbol:
                value = -entry.value * _NEGATED / max(factor, 1.0)
            else:
                value = entry.value * factor
                if entry.emotion is not None:
                    emotions[entry.emotion] += abs(value)
            positive += max(value, 0.0)
            negative += max(-value, 0.0)
        negated, boosted = max(negated - 1, 0), max(boosted - 1, 0)
    net = positive - negative
    label: Label = "neutral" if abs(net) < _NEUTRAL_BAND else "positive" if net > 0 else "negative"
    size = 0.0 if label == "neutral" else abs(net)
    score = round(0.5 + 0.5 * size / (size + 1.0), 3)
    fitting = [(weight, name) for name, weight in emotions.items() if name in _FITTING[label]]
    emotion = max(fitting)[1] if fitting else None
    return Sentiment(label=label, score=score, backend=backend, emotion=emotion)


class LexiconBackend:
    """Word lists for English and Chinese: the fallback, never the default.

    Fast and dependency-free, but it only counts cue words (see the module docstring for the
    rules). Use it where no model can be loaded; its results say ``"lexicon (fallback)"``.
    """

    name = "lexicon (fallback)"
    max_chars = 20_000
    """Reading is linear in the text; this only bounds the time one text can take."""

    def analyze_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """One result per text, in order."""
        return [_judge(text, self.name) for text in texts]
