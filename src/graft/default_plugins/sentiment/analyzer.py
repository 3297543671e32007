"""``Analyzer``: the one place that turns any text into a ``Sentiment``, in front of any backend.

Backends classify clean, non-empty text of bounded length. Everything else is decided here,
once, the same way for every backend:

- Empty or whitespace-only text is ``neutral`` with ``score`` 1.0 and ``note="empty text"``:
  there is nothing that could carry a sentiment, so neutral is certain, not a guess.
  Text without a single letter, digit or emoji ("...", "?!") is neutral with
  ``note="no words to judge"``, also score 1.0. The backend is not called for either.
- Text longer than ``backend.max_chars`` is cut into pieces at sentence ends that work for
  Chinese and English (。！？ and !?. before a space, and line breaks); pieces are packed up to
  ``max_chars`` and at most ``max_pieces`` are read. Their results are combined weighted by
  length (each piece counts ``score`` for its label and shares the rest equally); when
  pieces were dropped the result says ``truncated=True``.
- Mixed-language text goes to the backend as it is (e5 is multilingual).
- Text made only of emoji and emoticons ("👍", "😭😭", ":)") is read from a table
  (``emoji_table``) with ``note="read from emoji"``: e5 has no token for many emoji and
  read 😡, 😭 and 😊 as neutral. Emoji the table lacks (🚗) go to the backend; emoji
  inside text with words go to the backend with the words.
- NUL characters (which would end the text early in a C engine) and unpaired surrogates
  (which cannot be encoded) are replaced, so no input string makes a backend crash.

``analyze``/``analyze_many`` run in the caller's thread; ``aanalyze``/``aanalyze_many`` run
them in a worker thread (anyio), since backends are CPU-bound and must not block the loop.
All the pieces of a batch go to the backend in one ``analyze_batch`` call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import anyio.to_thread

from .base import LABELS, Sentiment, SentimentBackend
from .emoji_table import read_emoji

__all__ = ["Analyzer", "combine", "split_sentences"]

_SENTENCE: Final = re.compile(r".+?(?:[。！？!?…]+[”」』\"'）)]*|\.+[”\"')]*(?=\s|$)|$)", re.DOTALL)
_BREAK_AFTER: Final = " ，,；;、：:"
_EMOJI: Final = "read from emoji"


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, ending punctuation kept, for Chinese and English alike.

    A sentence ends after 。！？!?… (and any closing quotes), after a full stop followed by
    a space (so "3.5" and "e.g" stay whole), or at a line break.
    """
    return [
        s.strip()
        for line in text.splitlines()
        for s in _SENTENCE.findall(line.strip())
        if s.strip()
    ]


def _pack(sentences: list[str], max_chars: int) -> list[str]:
    """Join sentences into pieces of at most ``max_chars``.

    A longer sentence is cut at a space or comma in the second half of the window, or at
    ``max_chars`` where there is none.
    """
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            cut = max(sentence.rfind(c, 0, max_chars) for c in _BREAK_AFTER) + 1
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        glue = " " if current and current[-1].isascii() else ""
        joined = f"{current}{glue}{sentence}"
        if len(joined) <= max_chars:
            current = joined
        else:
            pieces.append(current)
            current = sentence
    if current:
        pieces.append(current)
    return pieces


def _clean(text: str) -> str:
    text = text.replace("\x00", " ")
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _has_words(text: str) -> bool:
    """A letter, a digit or a symbol such as an emoji: something a model could read."""
    return any(unicodedata.category(c)[0] in "LNS" for c in text)


def combine(parts: Sequence[Sentiment], weights: Sequence[float]) -> Sentiment:
    """One result from several pieces' results, weighted (by length)."""
    if len(parts) == 1:
        return parts[0]
    total = float(sum(weights))
    probs = dict.fromkeys(LABELS, 0.0)
    for part, weight in zip(parts, weights, strict=True):
        rest = (1.0 - part.score) / (len(LABELS) - 1)
        for label in LABELS:
            probs[label] += weight / total * (part.score if label == part.label else rest)
    label = max(LABELS, key=lambda k: probs[k])
    agreeing = [(p.score * w, p) for p, w in zip(parts, weights, strict=True) if p.label == label]
    emotion = max(agreeing, key=lambda sp: sp[0])[1].emotion if agreeing else None
    return Sentiment(label, round(probs[label], 4), parts[0].backend, emotion)


class Analyzer:
    """Classifies any text with ``backend``; see the module docstring for the rules."""

    def __init__(self, backend: SentimentBackend, *, max_pieces: int = 8) -> None:
        if max_pieces < 1:
            raise ValueError("max_pieces must be at least 1")
        self.backend = backend
        self.max_pieces = max_pieces

    def analyze(self, text: str) -> Sentiment:
        """The sentiment of one text."""
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: Sequence[str]) -> list[Sentiment]:
        """One result per text, in order; the backend is called once for all of them."""
        results: list[Sentiment | None] = [None] * len(texts)
        plans: list[tuple[int, list[str], bool]] = []
        for i, raw in enumerate(texts):
            text = _clean(raw).strip()
            emoji = read_emoji(text) if text else None
            if not text:
                results[i] = self._fixed("empty text")
            elif emoji is not None:
                label, score, emotion = emoji
                results[i] = Sentiment(label, score, self.backend.name, emotion, note=_EMOJI)
            elif not _has_words(text):
                results[i] = self._fixed("no words to judge")
            elif len(text) <= self.backend.max_chars:
                plans.append((i, [text], False))
            else:
                pieces = _pack(split_sentences(text), self.backend.max_chars)
                kept = pieces[: self.max_pieces]
                plans.append((i, kept, len(kept) < len(pieces)))
        flat = [piece for _, pieces, _ in plans for piece in pieces]
        answers = iter(self.backend.analyze_batch(flat) if flat else [])
        for i, pieces, truncated in plans:
            parts = [next(answers) for _ in pieces]
            result = combine(parts, [len(p) for p in pieces])
            results[i] = replace(result, truncated=True) if truncated else result
        return [r for r in results if r is not None]

    async def aanalyze(self, text: str) -> Sentiment:
        """``analyze`` in a worker thread."""
        return (await self.aanalyze_many([text]))[0]

    async def aanalyze_many(self, texts: Sequence[str]) -> list[Sentiment]:
        """``analyze_many`` in a worker thread."""
        return await anyio.to_thread.run_sync(self.analyze_many, list(texts))

    def _fixed(self, note: str) -> Sentiment:
        return Sentiment("neutral", 1.0, self.backend.name, note=note)
