"""What a parsed file is: an ordered list of blocks, each under its headings.

Every parser (``graft.knowledge.parsers``) produces these types and the chunker
(``graft.knowledge.chunk``) consumes them, so they live apart from both. A document's *plain
text* is its sections' texts joined by a blank line; chunk offsets point into it, which is
what lets a citation open the source at the place it quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = ["SECTION_SEPARATOR", "ParsedDocument", "Section"]

SECTION_SEPARATOR: Final = "\n\n"
"""What stands between two sections in a document's plain text."""


@dataclass(frozen=True, slots=True)
class Section:
    """One block of a document: a paragraph, a list, a table, a slide's text, rows of a sheet.

    A heading is a section too (``kind="heading"``); its ``heading_path`` ends with itself, so
    it shares its path with the blocks under it. For every other section the path is the
    headings above it, outermost first.
    """

    text: str
    """Plain text of the block, stripped; tables are rows of ``a | b | c`` lines."""
    heading_path: tuple[str, ...]
    """The headings above the block, outermost first: ``("Handbook", "Leave", "Sick leave")``."""
    page: int | None = None
    """1-based page (PDF) or slide number (PPTX); ``None`` where pages mean nothing."""
    kind: str = "text"
    """``"text"``, ``"heading"``, ``"table"``, ``"list"``, ``"code"`` or ``"notes"``."""


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A file turned into text: its title, its sections in reading order, what is known of it."""

    title: str
    """From the document's metadata, its first top-level heading, or else the file name."""
    sections: list[Section]
    media_type: str
    """What the file was read as, e.g. ``"application/pdf"``."""
    modified: datetime | None
    """When the document was last changed (its own metadata, else the file's mtime), in UTC."""
    metadata: dict[str, Any]
    """Author, page or sheet counts, the encoding of a text file, limits that cut it short."""

    @property
    def text(self) -> str:
        """The document's plain text: the sections' texts, a blank line between two."""
        return SECTION_SEPARATOR.join(section.text for section in self.sections)
