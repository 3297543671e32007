"""The sentiment of a message made only of emoji and emoticons ("👍", "😭😭", ":)").

Sentence-embedding models read emoji poorly: e5's tokenizer has no token for many of them
(🤬, 💩 and 🥳 all embed as the same unknown token), and even for known ones the shipped head
read 😡, 😭 and 😊 as neutral (bench/bench_sentiment.py). A message that is only emoji is
common in chat and its meaning is conventional, so ``Analyzer`` reads it from this table
instead of asking the backend, and says so (``note="read from emoji"``). Emoji inside text
with words go to the backend with the words. The table was written for graft.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from .base import Emotion, Label

__all__ = ["read_emoji"]

_ENTRIES: Final[dict[tuple[Label, Emotion | None], str]] = {
    ("positive", "happy"): "😀 😃 😄 😁 😆 😊 🙂 ☺ 😍 🥰 😘 😻 🤩 🥳 🎉 🎊 😂 🤣 😎 😋 😇 🤗 "
    "👍 👌 👏 🙌 💪 ✨ 💯 ❤ 💕 💖 💗 💓 💞 💘 😺 😸 :) :-) :D :-D =) ^_^ ^^ XD <3",
    ("positive", "grateful"): "🙏 🤝 💐",
    ("negative", "angry"): "😡 😠 🤬 👿 💢 🖕 >:(",
    ("negative", "sad"): "😭 😢 😞 😔 😟 ☹ 🙁 😿 💔 🥺 :( :-( :'(",
    ("negative", "frustrated"): "😤 😩 😫 🙄 😒 😑 🤦 😣 😖 -_-",
    ("negative", None): "👎 💩 🤮 🤢 😱 😨 😰",
    ("neutral", "confused"): "🤔 😕 🤷 🧐 ❓ ❔ ?_?",
    ("neutral", None): "😐 😶 👀 👋",
}
_TABLE: Final = {token: meaning for meaning, tokens in _ENTRIES.items() for token in tokens.split()}
_LONGEST: Final = max(map(len, _TABLE))
# Variation selectors, zero-width joiner, skin tones and the gender signs of ZWJ sequences
# (🤦‍♀️ is 🤦 + ZWJ + ♀ + VS16) change how an emoji looks, not what it says.
_MODIFIERS: Final = {
    0xFE0E: None,
    0xFE0F: None,
    0x200D: None,
    0x2640: None,
    0x2642: None,
    **{c: None for c in range(0x1F3FB, 0x1F400)},
}


def read_emoji(text: str) -> tuple[Label, float, Emotion | None] | None:
    """(label, score, emotion) if ``text`` is only emoji / emoticons and some are known.

    ``None`` for text with letters or digits, or with no emoji from the table. The label is
    the most common polarity (a tie is neutral); the score is the share of the emoji that
    agree with it, at most 0.9 (an emoji can be ironic); the emotion is the most common
    among those.
    """
    rest = "".join(text.translate(_MODIFIERS).split())
    meanings: list[tuple[Label, Emotion | None]] = []
    i = 0
    while i < len(rest):
        for size in range(min(_LONGEST, len(rest) - i), 0, -1):
            meaning = _TABLE.get(rest[i : i + size])
            if meaning is not None:
                meanings.append(meaning)
                i += size
                break
        else:
            if rest[i].isalnum():
                return None
            i += 1
    if not meanings:
        return None
    votes = Counter(label for label, _ in meanings)
    positive, negative = votes["positive"], votes["negative"]
    label: Label = (
        "positive" if positive > negative else "negative" if negative > positive else "neutral"
    )
    agreeing = [emotion for lab, emotion in meanings if lab == label]
    score = round(0.9 * len(agreeing) / len(meanings), 4) if agreeing else 0.5
    emotions = Counter(e for e in agreeing if e is not None).most_common(1)
    return label, score, emotions[0][0] if emotions else None
