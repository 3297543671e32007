"""One module per file format, each turning bytes into sections; the helpers they share.

Every format module has one entry point, ``extract(data, source) -> Extracted``. It imports
its third-party library inside that function, so graft without the ``knowledge`` extra still
imports, and a missing library is a ``ConfigError`` that says what to install (``missing``).
``graft.knowledge.parse`` has already checked size, type and zip limits when it calls one,
and turns whatever a library raises on a broken file into ``InvalidRequest``.

The shared pieces: ``Outline`` (the stack of open headings that gives each block its path),
``table_blocks`` (rows as ``a | b | c`` lines, long tables cut into blocks that each repeat
the header row) and ``inline_text`` (whitespace of markup collapsed, CJK-aware).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from graft.errors import ConfigError
from graft.knowledge.document import Section

__all__ = [
    "BLOCK_CHARS",
    "Extracted",
    "Outline",
    "Source",
    "as_utc",
    "inline_text",
    "missing",
    "table_blocks",
]

BLOCK_CHARS: Final = 1000
"""Target size of one block of table rows or sheet records: about one chunk's worth, so a
chunk holds whole rows with their header, and small blocks still merge in the chunker."""


@dataclass(frozen=True, slots=True)
class Source:
    """What a parser knows of its input besides the bytes."""

    name: str
    """The file name, for messages."""
    charset: str | None = None
    """A declared text encoding (``Content-Type: text/html; charset=gbk``), tried first."""
    max_rows: int = 100_000
    """Spreadsheet and CSV rows read at most, over all sheets."""
    max_pages: int = 2_000
    """PDF pages read at most."""


@dataclass(slots=True)
class Extracted:
    """What a parser found; ``graft.knowledge.parse`` fills in what is missing."""

    sections: list[Section]
    title: str | None = None
    """The title the document gives itself (metadata, ``<title>``, the Title style or H1)."""
    modified: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Outline:
    """The headings open at the current point of a document, outermost first.

    ``enter(level, text)`` closes every open heading at ``level`` or deeper and opens this
    one; ``level`` is 1 for H1 (0 for a Word "Title" above all H1s). Skipped levels are fine:
    an H3 straight under an H1 is one step deeper, not two.
    """

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        """The texts of the open headings."""
        return tuple(text for _, text in self._open)

    def enter(self, level: int, text: str) -> tuple[str, ...]:
        """Open a heading; returns the new path, which ends with ``text``."""
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, text))
        return self.path


def missing(package: str, what: str) -> ConfigError:
    """The error for a parser library that is not installed."""
    return ConfigError(
        f"Reading {what} files needs the {package!r} package: pip install 'graft[knowledge]'"
    )


def as_utc(value: object) -> datetime | None:
    """A datetime from document metadata, in UTC; naive ones are UTC by the formats' specs."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_CJK: Final = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
# A line break between two CJK characters is a wrap, not a space (CSS Text 3 drops it too).
_CJK_WRAP: Final = re.compile(f"(?<=[{_CJK}])[ \\t]*\\n\\s*(?=[{_CJK}])")
_SPACES: Final = re.compile(r"[ \t\r\n\f\v]+")


def inline_text(text: str) -> str:
    """Text from markup with its whitespace collapsed to single spaces, stripped.

    Source line breaks between two Chinese characters vanish instead of becoming a space.
    """
    return _SPACES.sub(" ", _CJK_WRAP.sub("", text)).strip()


def _row_line(cells: Sequence[str]) -> str:
    values = [" ".join(cell.split()) for cell in cells]
    while values and not values[-1]:
        values.pop()
    return " | ".join(values)


def table_blocks(rows: Sequence[Sequence[str]], *, limit: int = BLOCK_CHARS) -> list[str]:
    """Rows rendered as ``a | b | c`` lines, grouped into blocks of about ``limit`` chars.

    The first row is taken as the header and starts every block, so a block read alone (a
    search hit) still says what its columns are. Empty rows are dropped.
    """
    lines = [_row_line(row) for row in rows if any(cell.strip() for cell in row)]
    if not lines:
        return []
    header, body = lines[0], lines[1:]
    if not body:
        return [header]
    blocks: list[str] = []
    current: list[str] = [header]
    size = len(header)
    for line in body:
        if len(current) > 1 and size + 1 + len(line) > limit:
            blocks.append("\n".join(current))
            current, size = [header], len(header)
        current.append(line)
        size += 1 + len(line)
    blocks.append("\n".join(current))
    return blocks
