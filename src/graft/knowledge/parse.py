"""Turning a file into a ``ParsedDocument``: the checks every file passes, then its parser.

This module owns the trust boundary. Files come from uploads and URL fetches, so before any
parser sees one it checks, in this order: not empty; not over ``max_bytes`` (50 MB by
default; a local file is checked before it is read); its type, from the declared media type,
else the extension, else the content, and that the content agrees (a ``.pdf`` that is really
a ``.docx`` is refused, naming both); and for ZIP-based formats (.docx, .pptx, .xlsx), the
central directory, before anything is inflated: at most ``MAX_ZIP_MEMBERS`` members,
``MAX_UNZIPPED_BYTES`` in all and a ``MAX_ZIP_RATIO`` compression ratio. Those declared
sizes can be trusted because Python's ``zipfile`` never inflates a member past its declared
size. Every problem is ``graft.errors.InvalidRequest`` (``PayloadTooLarge`` for size) with
a message naming the file; whatever a parser library raises on a broken file becomes one
too. Rows and pages have caps of their own (``max_rows``, ``max_pages``), recorded in the
metadata when they cut a document short.

Then the format's parser (``graft.knowledge.parsers``) runs, and this module finishes the
document the same way for every format: section texts in Unicode NFC with clean line ends
and no control characters, empty sections dropped, a title (the document's own, else its
Title or first H1, else the file name) and a modification time (the document's own,
else the file's).
"""

from __future__ import annotations

import re
import stat
import struct
import unicodedata
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path, PurePath
from typing import Final

from graft.errors import GraftError, InvalidRequest, PayloadTooLarge
from graft.knowledge.document import ParsedDocument, Section
from graft.knowledge.parsers import (
    Extracted,
    Source,
    markdown,
    pdf,
    sheets,
    slides,
    text,
    web,
    word,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_ROWS",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIP_MEMBERS",
    "MAX_ZIP_RATIO",
    "SUPPORTED",
    "ParsedDocument",
    "Section",
    "parse_bytes",
    "parse_file",
]

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024
DEFAULT_MAX_ROWS: Final = 100_000
DEFAULT_MAX_PAGES: Final = 2_000
MAX_UNZIPPED_BYTES: Final = 200 * 1024 * 1024
MAX_ZIP_RATIO: Final = 100
"""Office files compress 5-20 times; a zip bomb thousands of times."""
MAX_ZIP_MEMBERS: Final = 10_000
_RATIO_FLOOR: Final = 10 * 1024 * 1024  # below this much inflated data, no ratio can hurt

PDF: Final = "application/pdf"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX: Final = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

SUPPORTED: Final[dict[str, str]] = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".xlsx": XLSX,
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".text": "text/plain",
}
"""File extension -> the media type it is read as."""

_EXTRACTORS: Final[dict[str, Callable[[bytes, Source], Extracted]]] = {
    PDF: pdf.extract,
    DOCX: word.extract,
    PPTX: slides.extract,
    XLSX: sheets.extract_xlsx,
    "text/csv": sheets.extract_csv,
    "text/html": web.extract,
    "text/markdown": markdown.extract,
    "text/plain": text.extract,
}
_ALIASES: Final = {
    "application/xhtml+xml": "text/html",
    "text/x-markdown": "text/markdown",
    "application/csv": "text/csv",
    "text/tab-separated-values": "text/csv",
}
_UNDECLARED: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_TEXT_TYPES: Final = frozenset({"text/csv", "text/html", "text/markdown", "text/plain"})
_LABELS: Final = {
    PDF: "a PDF",
    DOCX: "a Word document (.docx)",
    PPTX: "a PowerPoint deck (.pptx)",
    XLSX: "an Excel workbook (.xlsx)",
    "text/csv": "CSV text",
    "text/html": "an HTML page",
    "text/markdown": "Markdown text",
    "text/plain": "plain text",
}
_SIGNATURES: Final = {
    PDF: "does not start with the %PDF- signature",
    DOCX: "is not a ZIP package holding word/document.xml",
    PPTX: "is not a ZIP package holding ppt/presentation.xml",
    XLSX: "is not a ZIP package holding xl/workbook.xml",
}
_ZIP_MAIN_PARTS: Final = (
    ("word/document.xml", DOCX),
    ("ppt/presentation.xml", PPTX),
    ("xl/workbook.xml", XLSX),
)
_MAGIC: Final = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-format (.doc, .xls, .ppt) or password-"
     "protected Office file; save it as .docx, .xlsx or .pptx without a password"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)  # fmt: skip
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_TRAILING_SPACE: Final = re.compile(r"[ \t\u00a0]+$", re.M)
_BLANK_LINES: Final = re.compile(r"\n{3,}")
_OFFICE_PREFIX: Final = re.compile(r"^Microsoft (?:Word|PowerPoint|Excel) - ", re.I)
_PLACEHOLDER_TITLES: Final = frozenset({"untitled", "无标题", "presentation", "slide 1"})


def parse_file(
    path: Path,
    *,
    media_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> ParsedDocument:
    """Read a local file into a ``ParsedDocument``.

    Args:
        path: The file.
        media_type: Overrides the type its extension says (``"text/html; charset=gbk"``).
        max_bytes: Larger files are refused before they are read.
        max_rows: Spreadsheet and CSV rows read at most, over all sheets.
        max_pages: PDF pages read at most.

    Raises:
        InvalidRequest: The file is missing, empty, too large, of an unsupported type, not
            what its name says, a zip bomb, encrypted, corrupt, or holds no text.
        ConfigError: The parser library for its type is not installed.
    """
    path = Path(path)
    try:
        status = path.stat()
    except OSError as exc:
        raise InvalidRequest(f"{str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(status.st_mode):
        raise InvalidRequest(f"{str(path)!r} is not a regular file")
    _check_size(path.name, status.st_size, max_bytes)
    data = path.read_bytes()
    modified = datetime.fromtimestamp(status.st_mtime, UTC)
    source = Source(path.name, max_rows=max_rows, max_pages=max_pages)
    return _parse(data, source, media_type, max_bytes, modified)


def parse_bytes(
    data: bytes,
    *,
    name: str,
    media_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> ParsedDocument:
    """Read an upload or a fetched URL's body into a ``ParsedDocument``.

    Args:
        data: The file's bytes.
        name: Its file name, for messages and, by its extension, its type.
        media_type: A declared ``Content-Type``, charset included. It wins when it is a
            supported type, except that ``text/plain`` defers to a ``.md``, ``.csv`` or
            ``.html`` name; an unknown or generic one (``application/octet-stream``) defers
            to the extension, then the content.
        max_bytes: Larger data is refused.
        max_rows: Spreadsheet and CSV rows read at most, over all sheets.
        max_pages: PDF pages read at most.

    Raises:
        InvalidRequest: As for ``parse_file``.
        ConfigError: As for ``parse_file``.
    """
    source = Source(name, max_rows=max_rows, max_pages=max_pages)
    return _parse(data, source, media_type, max_bytes, None)


def _parse(
    data: bytes,
    source: Source,
    declared: str | None,
    max_bytes: int,
    modified: datetime | None,
) -> ParsedDocument:
    name = source.name
    if not data:
        raise InvalidRequest(f"{name!r} is empty")
    _check_size(name, len(data), max_bytes)
    media_type, charset = _media_type(data, name, declared)
    extract = _EXTRACTORS[media_type]
    try:
        extracted = extract(data, Source(name, charset, source.max_rows, source.max_pages))
    except GraftError:
        raise
    except Exception as exc:
        # Parser libraries raise a zoo of types on broken input (KeyError from a missing
        # part, lxml's XMLSyntaxError, pypdf's PdfReadError, RecursionError...): for the
        # caller they all mean the file is damaged. The chain keeps the original.
        detail = f"{type(exc).__name__}: {exc}"[:300]
        raise InvalidRequest(
            f"{name!r} could not be read as {_LABELS[media_type]}: it looks damaged ({detail})"
        ) from exc
    sections = _clean(extracted.sections)
    if not sections:
        raise InvalidRequest(f"{name!r} has no text in it")
    title = _title(extracted.title) or PurePath(name).stem or name
    metadata = {"name": name, "bytes": len(data), **extracted.metadata}
    return ParsedDocument(title, sections, media_type, extracted.modified or modified, metadata)


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB"
    if count >= 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count} bytes"


def _check_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"{name!r} is {_size(size)}, over the {_size(limit)} limit")


def _media_type(data: bytes, name: str, declared: str | None) -> tuple[str, str | None]:
    """The type to read ``data`` as, and a declared charset; refuses contradictions."""
    kind, _, parameters = (declared or "").partition(";")
    kind = _ALIASES.get(kind.strip().lower(), kind.strip().lower())
    charset_match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", parameters, re.I)
    charset = charset_match.group(1) if charset_match else None
    extension = PurePath(name).suffix.lower()
    sniffed, found = _sniff(data, name)
    by_extension = SUPPORTED.get(extension)
    if kind in _EXTRACTORS and not (kind == "text/plain" and by_extension in _TEXT_TYPES):
        claimed = kind
    elif by_extension is not None:
        # Servers label many text files text/plain (Markdown, CSV), and some label a PDF
        # application/x-download: the name, then the content, say more.
        claimed = by_extension
    elif sniffed is not None:
        claimed = sniffed
    elif kind not in _UNDECLARED:
        raise InvalidRequest(
            f"{name!r} has media type {kind!r}, which is not supported; {_supported()}"
        )
    elif extension:
        raise InvalidRequest(f"{name!r}: {extension!r} files are not supported; {_supported()}")
    elif found is not None:
        raise InvalidRequest(f"{name!r} is {found}, which is not supported; {_supported()}")
    else:
        claimed = "text/plain"
    if claimed in _SIGNATURES and sniffed != claimed:
        actual = f"its content is {found}" if found else f"it {_SIGNATURES[claimed]}"
        raise InvalidRequest(f"{name!r} should be {_LABELS[claimed]}, but {actual}")
    if claimed not in _SIGNATURES and found is not None:
        raise InvalidRequest(f"{name!r} should be {_LABELS[claimed]}, but its content is {found}")
    return claimed, charset


def _supported() -> str:
    return "supported: " + ", ".join(SUPPORTED)


def _sniff(data: bytes, name: str) -> tuple[str | None, str | None]:
    """The supported binary type the content is, and a description of what it is.

    ``(None, None)`` is content with no known signature: text, as far as can be told.
    """
    if b"%PDF-" in data[:1024]:  # the header may follow up to 1 KB of junk
        return PDF, _LABELS[PDF]
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        parts = _zip_parts(data, name)
        for part, media_type in _ZIP_MAIN_PARTS:
            if part in parts:
                return media_type, _LABELS[media_type]
        return None, "a ZIP archive"
    for magic, description in _MAGIC:
        if data.startswith(magic):
            return None, description
    return None, None


def _zip_parts(data: bytes, name: str) -> frozenset[str]:
    """The member names of a ZIP package, after checking its declared sizes (zip bombs)."""
    # Count the entries from the end-of-central-directory record before zipfile builds an
    # object for each: a 50 MB archive can declare a million empty members.
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end >= 0 and len(data) >= end + 12:
        (entries,) = struct.unpack_from("<H", data, end + 10)
        if entries > MAX_ZIP_MEMBERS:
            raise InvalidRequest(
                f"{name!r} is a ZIP package of {entries} members, over {MAX_ZIP_MEMBERS}"
            )
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidRequest(f"{name!r} is a damaged ZIP package ({exc})") from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidRequest(
            f"{name!r} is a ZIP package of {len(members)} members, over {MAX_ZIP_MEMBERS}"
        )
    inflated = sum(member.file_size for member in members)
    packed = sum(member.compress_size for member in members)
    if inflated > MAX_UNZIPPED_BYTES:
        raise InvalidRequest(
            f"{name!r} would expand to {_size(inflated)} when unzipped, over the "
            f"{_size(MAX_UNZIPPED_BYTES)} limit (a zip bomb?)"
        )
    if inflated > _RATIO_FLOOR and inflated > MAX_ZIP_RATIO * max(packed, 1):
        raise InvalidRequest(
            f"{name!r} would expand {inflated // max(packed, 1)} times when unzipped "
            f"({_size(packed)} to {_size(inflated)}), over the {MAX_ZIP_RATIO}x limit "
            "(a zip bomb?)"
        )
    return frozenset(member.filename for member in members)


def _clean_text(value: str) -> str:
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    value = _CONTROL.sub("", value).replace("\u00a0", " ")
    return _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("", value)).strip("\n")


def _clean(sections: list[Section]) -> list[Section]:
    cleaned: list[Section] = []
    for section in sections:
        body = _clean_text(section.text)
        if section.kind != "code":
            body = body.strip()
        if not body.strip():
            continue
        if section.kind == "heading":
            body = " ".join(body.split())
        path = tuple(" ".join(_clean_text(h).split()) for h in section.heading_path)
        cleaned.append(Section(body, path, section.page, section.kind))
    return cleaned


def _title(title: str | None) -> str | None:
    """A document's own title, without the placeholders office programs fill in."""
    if not title:
        return None
    title = _OFFICE_PREFIX.sub("", " ".join(_clean_text(title).split()))[:300]
    return None if title.lower() in _PLACEHOLDER_TITLES else title or None
