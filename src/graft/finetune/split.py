"""The held-out split every trainer uses: chosen by a hash of each row, never at random.

A row's rank is the SHA-256 of its key (its text, or a canonical JSON of a chat row) read as
a number in [0, 1). The rows with the lowest ranks are held out, per group when the rows are
grouped (per label for the sentiment head), so a data file splits the same way on every
machine, whatever the order of its rows, and a row added later does not move the others.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

__all__ = ["is_held_out", "rank", "split"]

T = TypeVar("T")


def rank(key: str) -> float:
    """Where ``key`` falls in [0, 1): the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(key: str, fraction: float) -> bool:
    """Whether ``key`` falls in the held-out ``fraction``: stable everywhere, no row list needed."""
    return rank(key) < fraction


def split(
    rows: Sequence[T],
    fraction: float,
    *,
    key: Callable[[T], str],
    group: Callable[[T], Hashable] | None = None,
    order: Callable[[T], int] | None = None,
) -> tuple[list[T], list[T]]:
    """(train, held out): per group, the ``fraction`` of rows with the lowest ranks.

    A group holds out ``round(len * fraction)`` rows, at least one when ``fraction`` is above
    zero; ``order`` (a line number) breaks ties between equal keys. Groups are visited in
    sorted order, so the result depends only on the rows' keys.
    """
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for row in rows:
        groups[group(row) if group else None].append(row)
    train: list[T] = []
    held: list[T] = []
    for name in sorted(groups, key=str):
        members = sorted(groups[name], key=lambda r: (rank(key(r)), order(r) if order else 0))
        n_held = max(1, round(len(members) * fraction)) if fraction > 0 else 0
        held.extend(members[:n_held])
        train.extend(members[n_held:])
    return train, held
