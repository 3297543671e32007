"""Softmax classification heads over sentence embeddings, and the file format that ships them.

A ``SoftmaxHead`` is a multinomial logistic regression in plain numpy: ``softmax(x @ W + b)``.
It is small (384 x 3 floats for sentiment), trains in seconds on a few thousand embeddings,
and needs no ML framework at run time. ``HeadSet`` bundles the sentiment head, an optional
emotion head and their metadata (version, training sources and counts, held-out accuracy)
into one ``.npz`` file that loads with ``allow_pickle=False``: arrays and one JSON string,
never pickled objects, so a head file from anywhere is safe to open.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FORMAT", "HeadSet", "Scale", "SoftmaxHead", "Vectors", "scale_of"]

Vectors = npt.NDArray[np.float32]
Scale = tuple[Vectors, Vectors]
"""Per-dimension (mean, standard deviation) of the embeddings a head was trained on."""

FORMAT = "graft-sentiment-head/1"
"""Written into every head file; ``HeadSet.load`` refuses any other."""


def scale_of(x: Vectors) -> Scale:
    """The ``Scale`` of a set of embeddings."""
    xs = np.asarray(x, dtype=np.float64)
    return xs.mean(axis=0).astype(np.float32), (xs.std(axis=0) + 1e-6).astype(np.float32)


def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True, eq=False)
class SoftmaxHead:
    """``softmax(x @ weights + bias)`` over ``labels``.

    ``weights`` has shape ``(dim, len(labels))`` and ``bias`` ``(len(labels),)``.
    """

    labels: tuple[str, ...]
    weights: Vectors
    bias: Vectors

    def __post_init__(self) -> None:
        k = len(self.labels)
        if self.weights.ndim != 2 or self.weights.shape[1] != k or self.bias.shape != (k,):
            raise ValueError(
                f"head shapes do not match {k} labels: weights {self.weights.shape}, "
                f"bias {self.bias.shape}"
            )

    @property
    def dim(self) -> int:
        """The embedding size this head reads."""
        return int(self.weights.shape[0])

    def probabilities(self, x: Vectors) -> npt.NDArray[np.float64]:
        """Class probabilities, shape ``(len(x), len(labels))``."""
        logits = np.asarray(x, dtype=np.float64) @ self.weights + self.bias
        return _softmax(logits)

    def predict(self, x: Vectors) -> list[str]:
        """The most probable label for each row of ``x``."""
        return [self.labels[i] for i in self.probabilities(x).argmax(axis=1)]

    @classmethod
    def fit(
        cls,
        x: Vectors,
        y: Sequence[int],
        labels: Sequence[str],
        *,
        sample_weight: npt.NDArray[np.float64] | None = None,
        start: SoftmaxHead | None = None,
        scale: Scale | None = None,
        l2: float = 1e-3,
        steps: int = 400,
        learning_rate: float = 0.05,
    ) -> SoftmaxHead:
        """Fit by full-batch Adam on the L2-regularised cross-entropy.

        Inputs are standardised with ``scale`` (default: that of ``x``) while fitting, and
        the scaling is folded back into the weights, so the head reads raw embeddings. Every
        step visits every row and there is no random initialisation: the result depends only
        on the data. ``sample_weight`` (one per row) balances groups of unequal size.

        With ``start`` (a head over the same labels) fitting begins at that head and the L2
        term pulls towards it instead of towards zero: a few new examples then adjust the
        head without erasing what it knew, and a label with no new examples keeps its place.
        Pass the ``scale`` that ``start`` was trained with: the pull is measured in that
        geometry, and a few dozen examples give a poor estimate of their own.
        """
        xs = np.asarray(x, dtype=np.float64)
        n, dim = xs.shape
        k = len(labels)
        targets = np.zeros((n, k))
        targets[np.arange(n), np.asarray(y, dtype=np.int64)] = 1.0
        w_rows = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
        w_rows = w_rows / w_rows.sum()

        mean, std = (np.asarray(a, np.float64) for a in (scale or scale_of(x)))
        z = (xs - mean) / std

        prior = np.zeros((dim + 1, k))
        if start is not None:
            if tuple(start.labels) != tuple(labels) or start.dim != dim:
                raise ValueError("start head must have the same labels and dimension")
            prior[:dim] = start.weights * std[:, None]
            prior[dim] = start.bias + mean @ start.weights
        params = prior.copy()
        m = np.zeros_like(params)
        v = np.zeros_like(params)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for step in range(1, steps + 1):
            probs = _softmax(z @ params[:dim] + params[dim])
            err = (probs - targets) * w_rows[:, None]
            grad = np.empty_like(params)
            grad[:dim] = z.T @ err + l2 * (params[:dim] - prior[:dim])
            grad[dim] = err.sum(axis=0) + l2 * (params[dim] - prior[dim])
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            m_hat = m / (1 - beta1**step)
            v_hat = v / (1 - beta2**step)
            params -= learning_rate * m_hat / (np.sqrt(v_hat) + eps)

        weights = params[:dim] / std[:, None]
        bias = params[dim] - mean @ weights
        return cls(tuple(labels), weights.astype(np.float32), bias.astype(np.float32))


@dataclass(frozen=True, eq=False)
class HeadSet:
    """What one head file holds: the sentiment head, an optional emotion head, metadata.

    ``emotion`` (labels: ``"none"`` and emotion names) names an emotion only when its
    probability reaches ``emotion_threshold``. ``meta`` is free-form JSON: ``name``,
    ``version``, ``embedding``, ``sources``, ``counts``, ``accuracy`` ...
    """

    sentiment: SoftmaxHead
    emotion: SoftmaxHead | None = None
    emotion_threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)
    scale: Scale | None = None
    """The scale of the training embeddings, which fine-tuning reuses (``SoftmaxHead.fit``)."""

    def with_sentiment(self, head: SoftmaxHead, **meta: Any) -> HeadSet:
        """A copy with a new sentiment head and ``meta`` merged in (the rest stays)."""
        merged = {**self.meta, **meta}
        return HeadSet(head, self.emotion, self.emotion_threshold, merged, self.scale)

    def save(self, path: Path, *, exclusive: bool = False) -> None:
        """Write the ``.npz`` file (arrays plus one JSON string; no pickle).

        ``exclusive`` raises ``FileExistsError`` rather than replace an existing file.
        """
        header = {
            "format": FORMAT,
            "sentiment_labels": list(self.sentiment.labels),
            "emotion_labels": list(self.emotion.labels) if self.emotion else None,
            "emotion_threshold": self.emotion_threshold,
            "meta": self.meta,
        }
        arrays: dict[str, Any] = {
            "header": np.array(json.dumps(header, ensure_ascii=False, sort_keys=True)),
            "sentiment_weights": self.sentiment.weights,
            "sentiment_bias": self.sentiment.bias,
        }
        if self.emotion is not None:
            arrays["emotion_weights"] = self.emotion.weights
            arrays["emotion_bias"] = self.emotion.bias
        if self.scale is not None:
            arrays["scale_mean"], arrays["scale_std"] = self.scale
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb" if exclusive else "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> HeadSet:
        """Read a file written by ``save``; ``ValueError`` if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {k: data[k].astype(np.float32) for k in data.files if k != "header"}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: cannot read sentiment head: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a graft sentiment head ({FORMAT!r} expected)")
        try:
            sentiment = SoftmaxHead(
                tuple(header["sentiment_labels"]),
                arrays["sentiment_weights"],
                arrays["sentiment_bias"],
            )
            emotion = None
            if header.get("emotion_labels"):
                emotion = SoftmaxHead(
                    tuple(header["emotion_labels"]),
                    arrays["emotion_weights"],
                    arrays["emotion_bias"],
                )
            scale = None
            if "scale_mean" in arrays:
                scale = (arrays["scale_mean"], arrays["scale_std"])
            threshold = float(header["emotion_threshold"])
            return cls(sentiment, emotion, threshold, header["meta"], scale)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: incomplete sentiment head: missing {exc}") from exc
