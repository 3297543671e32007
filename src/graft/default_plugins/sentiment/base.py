"""The vocabulary every sentiment backend speaks: ``Sentiment`` results and the backend protocol.

A backend classifies a batch of already-cleaned texts (``analyze_batch``) and says which
emotions, if any, it can name. Everything about awkward input (empty, whitespace-only,
over-long, emoji-only, mixed-language text) is handled once, in ``analyzer.Analyzer``, in
front of every backend, so each backend sees only text it can classify.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["EMOTIONS", "LABELS", "Emotion", "Label", "Sentiment", "SentimentBackend"]

Label = Literal["negative", "neutral", "positive"]
LABELS: tuple[Label, ...] = ("negative", "neutral", "positive")

Emotion = Literal["angry", "frustrated", "sad", "confused", "happy", "grateful"]
EMOTIONS: tuple[Emotion, ...] = ("angry", "frustrated", "sad", "confused", "happy", "grateful")


@dataclass(frozen=True, slots=True)
class Sentiment:
    """One text's sentiment.

    ``score`` is the backend's confidence in ``label``, from 0 to 1. ``emotion`` is set only
    when the backend can name one and the text shows it. ``truncated`` says that only part
    of the text was read; ``note`` explains a result that was not the backend's own
    judgement (``"empty text"``, ``"no words to judge"``).
    """

    label: Label
    score: float
    backend: str
    emotion: Emotion | None = None
    truncated: bool = False
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``None`` fields and a false ``truncated`` are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}


@runtime_checkable
class SentimentBackend(Protocol):
    """Classifies texts. Sync and CPU-bound: callers run it in a worker thread."""

    name: str
    """Shown in every result: ``"e5"``, ``"transformers:/models/x"``, ``"lexicon (fallback)"``."""

    max_chars: int
    """The longest text it reads whole; ``Analyzer`` chunks or truncates longer ones."""

    def analyze_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """One result per text, in order. Texts are non-empty and at most ``max_chars``."""
        ...
