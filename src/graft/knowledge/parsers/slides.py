"""PowerPoint decks (.pptx): each slide under its title, with its tables and speaker notes.

python-pptx is the maintained reader of the OOXML presentation format, typed since 1.0.
Each slide gives a ``heading`` section (its title, or "Slide N" when it has none), one
``text`` section with the text of its other shapes in reading order (top to bottom, then
left to right, so a two-column slide does not interleave), ``table`` blocks for its tables,
and a ``notes`` section for the speaker notes, which often say what the slide only hints at.
Every section carries the slide number as its page. Charts and pictures have no text to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from io import BytesIO
from typing import TYPE_CHECKING, Any, Final

from graft.knowledge.document import Section
from graft.knowledge.parsers import Extracted, Source, as_utc, missing, table_blocks

if TYPE_CHECKING:
    from pptx.shapes.base import BaseShape
    from pptx.slide import Slide

__all__ = ["extract"]

_MAX_GROUP_DEPTH: Final = 16


def extract(data: bytes, source: Source) -> Extracted:
    """A .pptx deck; the title from its properties, else the first slide's title."""
    try:
        from pptx import Presentation
    except ImportError as exc:
        raise missing("python-pptx", "PowerPoint (.pptx)") from exc
    deck = Presentation(BytesIO(data))
    sections: list[Section] = []
    first_title: str | None = None
    count = 0
    for number, slide in enumerate(deck.slides, start=1):
        count = number
        title = _title(slide)
        heading = title or f"Slide {number}"
        if title and first_title is None:
            first_title = title
        path = (heading,)
        sections.append(Section(heading, path, page=number, kind="heading"))
        lines: list[str] = []
        title_shape = slide.shapes.title
        for shape in _reading_order(_shapes(slide.shapes, 0)):
            if title_shape is not None and shape == title_shape:
                continue
            if shape.has_table:
                rows = [[c.text for c in row.cells] for row in shape.table.rows]  # type: ignore[attr-defined]
                blocks = table_blocks([[" ".join(c.split()) for c in row] for row in rows])
                sections.extend(Section(b, path, page=number, kind="table") for b in blocks)
            elif shape.has_text_frame:
                lines.extend(_paragraphs(shape))
        if lines:
            sections.append(Section("\n".join(lines), path, page=number))
        notes = _notes(slide)
        if notes:
            sections.append(Section(notes, path, page=number, kind="notes"))
    core = deck.core_properties
    metadata: dict[str, Any] = {"slides": count}
    if core.author:
        metadata["author"] = core.author
    return Extracted(
        sections,
        title=(core.title or "").strip() or first_title,
        modified=as_utc(core.modified),
        metadata=metadata,
    )


def _title(slide: Slide) -> str:
    shape = slide.shapes.title
    return " ".join(shape.text_frame.text.split()) if shape is not None else ""


def _shapes(shapes: Iterable[BaseShape], depth: int) -> Iterator[BaseShape]:
    """Every shape, the ones inside groups included."""
    for shape in shapes:
        inner = getattr(shape, "shapes", None)
        if inner is not None and depth < _MAX_GROUP_DEPTH:
            yield from _shapes(inner, depth + 1)
        else:
            yield shape


def _reading_order(shapes: Iterable[BaseShape]) -> list[BaseShape]:
    # Positions in EMU (914,400 to the inch); rows closer than ~0.1 inch count as one row.
    def key(shape: BaseShape) -> tuple[int, int]:
        return ((shape.top or 0) // 100_000, shape.left or 0)

    return sorted(shapes, key=key)


def _paragraphs(shape: BaseShape) -> list[str]:
    lines: list[str] = []
    for paragraph in shape.text_frame.paragraphs:  # type: ignore[attr-defined]
        text = " ".join(paragraph.text.split())
        if text:
            lines.append("  " * paragraph.level + text)
    return lines


def _notes(slide: Slide) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return frame.text.strip() if frame is not None else ""
