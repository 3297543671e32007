"""Fine-tuning the e5 sentiment head on a user's labelled examples, and finding heads by name.

``graft finetune sentiment --data labelled.csv`` calls ``finetune``: it reads a CSV with
``text`` and ``label`` columns (``negative``, ``neutral`` or ``positive``; zh, en or mixed
text), holds out a stratified, hash-chosen part of it, trains a new head that starts from the
current one and is pulled towards it (``SoftmaxHead.fit(start=...)``, so a few dozen examples
adjust the head for the user's domain without erasing what it knew), measures accuracy on
the held-out rows before and after, and saves ``<name>-v<N>.npz`` next to the earlier
versions. Nothing is ever overwritten: an assistant selects a head as ``e5:<name>`` (the
latest version) or ``e5:<name>-v<N>``, and going back is choosing an older version.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from graft.finetune import split as splitting
from graft.finetune.versions import (
    Version,
    check_name,
    list_versions,
    resolve_version,
    save_version,
)

from .base import LABELS, Label
from .e5 import DEFAULT_HEAD, embed
from .head import HeadSet, SoftmaxHead, Vectors

__all__ = [
    "DataError",
    "Example",
    "FinetuneResult",
    "HeadInfo",
    "finetune",
    "is_held_out",
    "list_heads",
    "read_examples",
    "resolve_head",
    "split_examples",
]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages are ``"embedding"`` and ``"training"``."""

MIN_PER_LABEL: Final = 5


class DataError(ValueError):
    """The labelled data cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    """One labelled row; ``line`` is its line number in the file (the header is line 1)."""

    text: str
    label: Label
    line: int


HeadInfo = Version
"""A head file: ``default`` (shipped) or ``name`` at ``version``; ``spec`` follows ``e5:``."""


@dataclass(frozen=True)
class FinetuneResult:
    """What ``finetune`` did; ``lines()`` is a ready-made report for the CLI."""

    head: HeadInfo
    base: str
    train_counts: dict[str, int]
    held_out_counts: dict[str, int]
    accuracy_before: float
    accuracy_after: float
    per_label_before: dict[str, float] = field(default_factory=dict)
    per_label_after: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A short human-readable report."""
        out = [
            f"trained on {sum(self.train_counts.values())} examples "
            f"({_counts(self.train_counts)}), starting from {self.base!r}",
            f"held out {sum(self.held_out_counts.values())} ({_counts(self.held_out_counts)})",
            f"{'accuracy':<10}{'before':>8}{'after':>8}",
        ]
        for label in self.per_label_after:
            before, after = self.per_label_before[label], self.per_label_after[label]
            out.append(f"{label:<10}{before:>8.1%}{after:>8.1%}")
        out.append(f"{'all':<10}{self.accuracy_before:>8.1%}{self.accuracy_after:>8.1%}")
        out.append(f"saved {self.head.path} (select it as e5:{self.head.spec})")
        return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def is_held_out(text: str, fraction: float) -> bool:
    """Whether ``text`` falls in the held-out split: a hash of the text, so stable everywhere."""
    return splitting.is_held_out(text, fraction)


def read_examples(path: Path, *, min_per_label: int = MIN_PER_LABEL) -> list[Example]:
    """Read and check a ``text,label`` CSV (UTF-8, header row; other columns are ignored).

    Raises ``DataError`` naming the line for an unknown label, empty text or a text given
    two labels, and for a file with fewer than two labels or fewer than ``min_per_label``
    examples of a label it has. A row repeated with the same label counts once.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            if "text" not in columns or "label" not in columns:
                raise DataError(f"{path}: needs a header with columns text,label (found {columns})")
            reader.fieldnames = columns
            examples = _unique([_example(path, reader.line_num, row) for row in reader], path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        raise DataError(f"{path}: needs examples of at least two labels (found {dict(counts)})")
    for label, n in sorted(counts.items()):
        if n < min_per_label:
            raise DataError(
                f"{path}: too few examples labelled {label!r}: {n} (need {min_per_label}; "
                f"the last is on line {max(e.line for e in examples if e.label == label)})"
            )
    return examples


def _example(path: Path, line: int, row: dict[str | None, str | list[str] | None]) -> Example:
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not isinstance(label, str):
        raise DataError(f"{path}, line {line}: expected text,label")
    label = label.strip().lower()
    if label not in LABELS:
        raise DataError(
            f"{path}, line {line}: unknown label {label!r} (use one of {', '.join(LABELS)})"
        )
    if not text.strip():
        raise DataError(f"{path}, line {line}: empty text")
    return Example(text.strip(), label, line)


def _unique(examples: list[Example], path: Path) -> list[Example]:
    """Drop repeated rows (one copy could land on each side of the split); refuse conflicts."""
    seen: dict[str, Example] = {}
    for e in examples:
        first = seen.setdefault(e.text, e)
        if first.label != e.label:
            raise DataError(
                f"{path}, line {e.line}: same text as line {first.line} with another label "
                f"({e.label!r}, not {first.label!r})"
            )
    return list(seen.values())


def split_examples(
    examples: Sequence[Example], fraction: float = 0.2
) -> tuple[list[Example], list[Example]]:
    """(train, held out): per label, the ``fraction`` (at least one) with the lowest hashes.

    The split depends only on the texts, so a file splits the same way whatever the order
    of its rows, on every machine (``graft.finetune.split``).
    """
    return splitting.split(
        examples, fraction, key=lambda e: e.text, group=lambda e: e.label, order=lambda e: e.line
    )


def list_heads(heads_dir: Path | None) -> list[HeadInfo]:
    """The shipped ``default`` head, then every ``name-vN.npz`` in ``heads_dir``, sorted."""
    return [HeadInfo("default", None, DEFAULT_HEAD), *list_versions(heads_dir, ".npz")]


def resolve_head(spec: str, heads_dir: Path | None) -> Path:
    """The head file for ``default``, ``name`` (latest version), ``name-vN`` or a ``.npz`` path."""
    spec = spec.strip()
    if spec.endswith(".npz") or "/" in spec or "\\" in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ValueError(f"sentiment head file not found: {path}")
        return path
    heads = list_heads(heads_dir)
    found = resolve_version(spec, heads)
    if found is not None:
        return found.path
    available = ", ".join(h.spec for h in heads)
    raise ValueError(f"no sentiment head {spec!r} (available: {available})")


def _accuracy(heads: HeadSet, x: Vectors, rows: Sequence[Example]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for guess, e in zip(heads.sentiment.predict(x), rows, strict=True):
        hits[e.label].append(guess == e.label)
        hits["all"].append(guess == e.label)
    return {k: sum(v) / len(v) for k, v in sorted(hits.items())}


def finetune(
    data: Path,
    heads_dir: Path,
    *,
    name: str = "custom",
    base: str = "default",
    held_out: float = 0.2,
    min_per_label: int = MIN_PER_LABEL,
    progress: Progress | None = None,
    embedder: Callable[[Sequence[str]], Vectors] = embed,
) -> FinetuneResult:
    """Train ``<name>-v<N>.npz`` in ``heads_dir`` from ``data``, starting from head ``base``.

    Raises ``DataError`` for unusable data and ``ValueError`` for a bad name or base.
    """
    check_name(name, reserved=("default",), what="head name")
    report = progress or (lambda stage, done, total: None)
    start = HeadSet.load(resolve_head(base, heads_dir))
    examples = read_examples(data, min_per_label=min_per_label)
    train, held = split_examples(examples, held_out)

    texts = [e.text for e in train + held]
    chunks = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    vectors: list[Vectors] = []
    for i, chunk in enumerate(chunks):
        vectors.append(embedder(chunk))
        report("embedding", min((i + 1) * 64, len(texts)), len(texts))
    x = np.concatenate(vectors)
    x_train, x_held = x[: len(train)], x[len(train) :]

    report("training", 0, 1)
    counts = Counter(e.label for e in train)
    weights = np.array([len(train) / (len(counts) * counts[e.label]) for e in train])
    labels = start.sentiment.labels
    head = SoftmaxHead.fit(
        x_train,
        [labels.index(e.label) for e in train],
        labels,
        sample_weight=weights,
        start=start.sentiment,
        scale=start.scale,
        l2=1e-2,
    )
    report("training", 1, 1)

    before = _accuracy(start, x_held, held)
    after = _accuracy(start.with_sentiment(head), x_held, held)
    meta = {
        "name": name,
        "base": base,
        "data": {"file": data.name, "sha256": hashlib.sha256(data.read_bytes()).hexdigest()},
        "counts": dict(sorted(counts.items())),
        "held_out_counts": dict(sorted(Counter(e.label for e in held).items())),
        "accuracy_before": before,
        "accuracy": after,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    def write(path: Path, version: int) -> None:
        start.with_sentiment(head, **meta, version=version).save(path, exclusive=True)

    saved = save_version(heads_dir, name, write, ".npz")
    return FinetuneResult(
        head=saved,
        base=base,
        train_counts=dict(sorted(counts.items())),
        held_out_counts=dict(sorted(Counter(e.label for e in held).items())),
        accuracy_before=before["all"],
        accuracy_after=after["all"],
        per_label_before={k: v for k, v in before.items() if k != "all"},
        per_label_after={k: v for k, v in after.items() if k != "all"},
    )
