"""Word documents (.docx): paragraphs under their headings, lists, tables, in body order.

python-docx is the maintained reader of the OOXML word-processing format, typed since 1.0.
Headings come from paragraph styles: "Title" (level 0, above every H1) and "Heading 1" to
"Heading 9", including custom styles based on one of them and the Chinese names ("标题 1")
that some editors write instead of the built-in ones. Consecutive list paragraphs (a "List…"
style, or Word's own numbering) become one ``list`` section of ``- item`` lines, indented by
level. Tables become ``table`` blocks of ``a | b | c`` rows; a cell merged across columns
counts once, one merged across rows repeats, so each row reads alone. Headers, footers,
footnotes, comments and text boxes are not read.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import TYPE_CHECKING, Any, Final

from graft.knowledge.document import Section
from graft.knowledge.parsers import Extracted, Outline, Source, as_utc, missing, table_blocks

if TYPE_CHECKING:
    from docx.document import Document
    from docx.styles.style import ParagraphStyle
    from docx.table import Table
    from docx.text.paragraph import Paragraph

__all__ = ["extract"]

_HEADING_STYLE: Final = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_LIST_STYLE: Final = re.compile(r"^list\b.*?(?:\s([2-9]))?$", re.IGNORECASE)
_TITLE_STYLES: Final = frozenset({"title", "标题"})
_PROPERTIES: Final = ("author", "subject", "keywords", "category", "language", "last_modified_by")


def extract(data: bytes, source: Source) -> Extracted:
    """A .docx file; the title from its properties, else its Title paragraph or first H1."""
    try:
        import docx
        from docx.text.paragraph import Paragraph
    except ImportError as exc:
        raise missing("python-docx", "Word (.docx)") from exc
    document = docx.Document(BytesIO(data))
    outline = Outline()
    sections: list[Section] = []
    items: list[str] = []
    first_title: str | None = None

    def end_list() -> None:
        if items:
            sections.append(Section("\n".join(items), outline.path, kind="list"))
            items.clear()

    for block in document.iter_inner_content():
        if not isinstance(block, Paragraph):
            end_list()
            sections.extend(Section(t, outline.path, kind="table") for t in _table(block))
            continue
        text = block.text.strip()
        if not text:
            continue
        level = _heading_level(block.style)
        depth = None if level is not None else _list_depth(block)
        if depth is not None:
            items.append("  " * depth + "- " + text.replace("\n", " "))
            continue
        end_list()
        if level is None:
            sections.append(Section(text, outline.path))
        else:
            text = " ".join(text.split())
            sections.append(Section(text, outline.enter(level, text), kind="heading"))
            if level <= 1 and first_title is None:
                first_title = text
    end_list()
    title, metadata, modified = _properties(document)
    return Extracted(sections, title=title or first_title, modified=modified, metadata=metadata)


def _heading_level(style: ParagraphStyle | None) -> int | None:
    """0 for Title, 1-9 for Heading N, following ``based on`` a few steps; else None."""
    for _ in range(5):
        if style is None:
            return None
        name = (style.name or "").strip()
        if name.lower() in _TITLE_STYLES:
            return 0
        match = _HEADING_STYLE.match(name)
        if match is not None:
            return int(match.group(1))
        style = style.base_style
    return None


def _list_depth(paragraph: Paragraph) -> int | None:
    """The nesting level of a list paragraph (0 for the outermost); None if not a list item."""
    # Word's own lists are "List Paragraph" style plus numbering; other editors use numbering
    # on plain paragraphs. python-docx has no public API for numbering, hence the XML.
    properties = paragraph._p.pPr
    numbering: Any = properties.numPr if properties is not None else None
    if numbering is not None:
        ilvl = numbering.ilvl
        return int(ilvl.val) if ilvl is not None and ilvl.val is not None else 0
    name = (paragraph.style.name or "") if paragraph.style is not None else ""
    match = _LIST_STYLE.match(name)
    if match is None:
        return None
    return int(match.group(1)) - 1 if match.group(1) else 0


def _table(table: Table) -> list[str]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous: object = None
        for cell in row.cells:
            if cell is not previous:  # python-docx repeats one cell object per spanned column
                cells.append(" ".join(cell.text.split()))
            previous = cell
        rows.append(cells)
    return table_blocks(rows)


def _properties(document: Document) -> tuple[str | None, dict[str, Any], Any]:
    core = document.core_properties
    metadata: dict[str, Any] = {}
    for key in _PROPERTIES:
        value = getattr(core, key, None)
        if isinstance(value, str) and value.strip():
            metadata[key] = value.strip()
    created = as_utc(core.created)
    if created is not None:
        metadata["created"] = created.isoformat()
    return (core.title or "").strip() or None, metadata, as_utc(core.modified)
