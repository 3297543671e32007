"""Versioned artifacts in one folder: ``<name>-v<N>`` plus a suffix, never overwritten.

Every fine-tuning run saves a new version beside the earlier ones: a sentiment head is a file
``finance-v2.npz``, an LLM adapter a folder ``support-v3``. ``name`` selects the latest
version and ``name-vN`` exactly one, so going back is choosing an older version. The number
is taken atomically (``save_version`` retries when another process took it first), so two
runs at the same moment get two versions, not one overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "Version",
    "check_name",
    "list_versions",
    "next_version",
    "publish_folder",
    "resolve_version",
    "save_version",
]

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
VERSIONED: Final = re.compile(r"(?P<name>.+)-v(?P<version>[0-9]+)")


@dataclass(frozen=True)
class Version:
    """One artifact: ``name`` at ``version`` (``None`` for a built-in one such as ``default``)."""

    name: str
    version: int | None
    path: Path

    @property
    def spec(self) -> str:
        """What selects exactly this artifact: ``name-vN``, or ``name`` when unversioned."""
        return self.name if self.version is None else f"{self.name}-v{self.version}"


def check_name(name: str, *, reserved: Iterable[str] = (), what: str = "name") -> None:
    """Raise ``ValueError`` unless ``name`` can be the name of a new artifact."""
    taken = set(reserved)
    if not NAME.fullmatch(name) or VERSIONED.fullmatch(name) or name in taken:
        not_these = "".join(f", not {n!r}" for n in sorted(taken))
        raise ValueError(
            f"{what} {name!r}: use letters, digits, '_', '.', '-' (up to 64){not_these} "
            "and not ending in -v<number>"
        )


def list_versions(folder: Path | None, suffix: str = "") -> list[Version]:
    """Every ``name-vN<suffix>`` in ``folder`` (files or folders), sorted by name then version.

    Hidden entries (a version being written) are left out.
    """
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.name.endswith(suffix):
            continue
        match = VERSIONED.fullmatch(path.name[: len(path.name) - len(suffix)])
        if match:
            found.append(Version(match["name"], int(match["version"]), path))
    return sorted(found, key=lambda v: (v.name, v.version or 0))


def resolve_version(spec: str, candidates: Iterable[Version]) -> Version | None:
    """The candidate ``spec`` selects: exactly ``name-vN``, else the latest of ``name``."""
    listed = list(candidates)
    exact = [v for v in listed if v.spec == spec]
    latest = [v for v in listed if v.name == spec]
    chosen = exact or sorted(latest, key=lambda v: v.version or 0)
    return chosen[-1] if chosen else None


def next_version(folder: Path, name: str, suffix: str = "") -> int:
    """One more than the highest version of ``name`` in ``folder`` (1 for the first)."""
    versions = [v.version or 0 for v in list_versions(folder, suffix) if v.name == name]
    return max(versions, default=0) + 1


def save_version(
    folder: Path, name: str, write: Callable[[Path, int], None], suffix: str = ""
) -> Version:
    """Save a new version of ``name``: ``write(path, version)`` must create ``path`` exclusively.

    ``write`` raises ``FileExistsError`` when ``path`` already exists (another process took
    the number); then the next number is tried. Nothing that exists is ever replaced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        version = next_version(folder, name, suffix)
        path = folder / f"{name}-v{version}{suffix}"
        try:
            write(path, version)
        except FileExistsError:
            if path.exists():  # the number was taken; anything else is not ours to retry
                continue
            raise
        return Version(name, version, path)


def publish_folder(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` folder to ``target``; ``FileExistsError`` if taken.

    ``rename`` is atomic, so a listing sees a version complete or not at all. (A rename onto
    an empty folder would replace it; graft never leaves empty version folders.)
    """
    if target.exists():
        raise FileExistsError(target)
    try:
        staging.rename(target)
    except OSError as exc:
        if target.exists():
            raise FileExistsError(target) from exc
        raise
