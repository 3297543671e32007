"""PDF: the text of each page, with the bookmarks (when the file has them) as headings.

pypdf is pure Python, maintained, and caps what a hostile file can make it allocate (its
``Configuration`` limits stream lengths and decompressed sizes to 75 MB each). A PDF has no
headings in its text, only positioned glyphs, so the page is the anchor: one section per
page. Many long PDFs (manuals, handbooks) do carry an outline of bookmarks; when they do,
each page gets the path of the bookmark that starts on it, or else of the last one before it.

An encrypted file that opens with the empty password (owner-only protection, common for
"no copying" PDFs) is read; one that needs a password is refused. A PDF with no text at all
is a scan: it needs OCR first, which is said so. At most ``Source.max_pages`` pages are read.
"""

from __future__ import annotations

from io import BytesIO
from typing import TYPE_CHECKING, Any, Final

from graft.errors import InvalidRequest
from graft.knowledge.document import Section
from graft.knowledge.parsers import Extracted, Source, as_utc, missing

if TYPE_CHECKING:
    from pypdf import PdfReader

__all__ = ["extract"]

_MAX_OUTLINE_ITEMS: Final = 10_000
_MAX_OUTLINE_DEPTH: Final = 9


def extract(data: bytes, source: Source) -> Extracted:
    """A PDF, one section per page."""
    try:
        from pypdf import PasswordType, PdfReader
    except ImportError as exc:
        raise missing("pypdf", "PDF") from exc
    reader = PdfReader(BytesIO(data), strict=False)
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise InvalidRequest(f"{source.name!r} is a password-protected PDF; remove the password")
    count = len(reader.pages)
    starts = _outline_starts(reader)
    sections: list[Section] = []
    path: tuple[str, ...] = ()
    position = 0
    for index in range(min(count, source.max_pages)):
        path, position = _path_at(starts, position, index, path)
        text = reader.pages[index].extract_text()
        if text.strip():
            sections.append(Section(text, path, page=index + 1))
    if not sections:
        raise InvalidRequest(
            f"{source.name!r} has no text to read: a scanned PDF needs OCR before it can be added"
        )
    metadata, title, modified = _metadata(reader)
    metadata["pages"] = count
    if count > source.max_pages:
        metadata["truncated"] = True
        metadata["page_limit"] = source.max_pages
    return Extracted(sections, title=title, modified=modified, metadata=metadata)


def _metadata(reader: PdfReader) -> tuple[dict[str, Any], str | None, Any]:
    info = reader.metadata
    if info is None:
        return {}, None, None
    metadata: dict[str, Any] = {}
    for key in ("author", "subject", "creator", "producer"):
        value = getattr(info, key, None)
        if isinstance(value, str) and value.strip():
            metadata[key] = value.strip()
    try:  # dates in a broken format raise on access
        modified = as_utc(info.modification_date) or as_utc(info.creation_date)
    except ValueError:
        modified = None
    title = info.title if isinstance(info.title, str) else None
    return metadata, title, modified


def _path_at(
    starts: list[tuple[int, tuple[str, ...]]],
    position: int,
    page: int,
    path: tuple[str, ...],
) -> tuple[tuple[str, ...], int]:
    """The heading path of a page, and where the walk through ``starts`` got to.

    That is the first bookmark on the page (deepened by the ones nested in it on the same
    page), else the path of the page before.
    """
    while position < len(starts) and starts[position][0] < page:
        path = starts[position][1]
        position += 1
    if position < len(starts) and starts[position][0] == page:
        path = starts[position][1]
        while position < len(starts) and starts[position][0] == page:
            deeper = starts[position][1]
            if deeper[: len(path)] == path:
                path = deeper
            position += 1
    return path, position


def _outline_starts(reader: PdfReader) -> list[tuple[int, tuple[str, ...]]]:
    """``(page index, heading path)`` of each bookmark in document order, sorted by page."""
    starts: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[Any], parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] | None = None
        for item in items:
            if len(starts) >= _MAX_OUTLINE_ITEMS:
                return
            if isinstance(item, list):  # the children of the bookmark before it
                if last is not None and len(last) < _MAX_OUTLINE_DEPTH:
                    walk(item, last)
                continue
            title = str(getattr(item, "title", "") or "").strip()
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                last = (*parents, title)
                starts.append((page, last))

    try:
        walk(list(reader.outline), ())
    except Exception:  # a broken outline is no reason to refuse the text
        return []
    return sorted(starts, key=lambda start: start[0])
