"""Plain text files, and the encoding detection every text format shares.

Chinese text files from Windows are often GBK or GB18030, not UTF-8, and nothing in them
says so. ``decode`` tries, in order: a byte-order mark; the declared charset; UTF-16 without
a mark (every other byte zero); strict UTF-8; GB18030 when nearly all of its non-ASCII
characters are in GB2312 (the 7,445 characters everyday simplified Chinese uses, so Big5 or
cp1252 bytes that happen to decode as GB18030 do not pass); charset-normalizer's best guess;
cp1252. GB18030 is tried before the statistical guess because short Chinese texts are where
such guesses fail (charset-normalizer calls "你好" Big5), and this project's users write
Chinese. Text that still holds a NUL, or more than 5% control characters, is binary and refused.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

from graft.errors import InvalidRequest
from graft.knowledge.document import Section
from graft.knowledge.parsers import Extracted, Source

__all__ = ["decode", "extract", "normalize_newlines"]

_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Declared Chinese charsets are read as their superset: GB18030 decodes all GB2312 and GBK.
_SUPERSETS: Final = {"gb2312": "gb18030", "gbk": "gb18030", "ascii": "utf-8", "iso8859-1": "cp1252"}
# Which single-byte Latin code page a short text is in, statistics cannot tell ("naïve" in
# cp1252 reads as "naďve" in cp1250 and scores as well); English users' files are cp1252.
_LATIN_PAGES: Final = frozenset(
    {"cp1250", "cp1254", "cp1257", "cp850", "iso8859-1", "iso8859-2", "iso8859-3", "iso8859-4"}
    | {"iso8859-9", "iso8859-10", "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16"}
    | {"mac-latin2", "mac-roman"}
)
_SAMPLE: Final = 20_000
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_PARAGRAPH_BREAK: Final = re.compile(r"\n[ \t\u3000]*\n")


def extract(data: bytes, source: Source) -> Extracted:
    """A plain text file: one section per paragraph (blank-line separated)."""
    text, encoding = decode(data, source)
    paragraphs = _PARAGRAPH_BREAK.split(normalize_newlines(text))
    sections = [Section(p.strip("\n"), ()) for p in paragraphs if p.strip()]
    return Extracted(sections, metadata={"encoding": encoding})


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR line ends as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode(data: bytes, source: Source) -> tuple[str, str]:
    """The text of ``data`` and the name of the encoding it was read with."""
    text, encoding = _decode(data, source.charset)
    sample = text[:_SAMPLE]
    if "\0" in sample or len(_CONTROL.findall(sample)) > len(sample) // 20:
        raise InvalidRequest(
            f"{source.name!r} is not a text file: its content is binary "
            "(NUL or control characters where text should be)"
        )
    return text, encoding


def _decode(data: bytes, charset: str | None) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding
    for candidate in (_declared(charset), _utf16_without_bom(data), "utf-8"):
        if candidate is not None:
            try:
                return data.decode(candidate), candidate
            except UnicodeDecodeError:
                pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        if _mostly_gb2312(text[:_SAMPLE]):
            return text, "gb18030"
    guessed = _guess(data)
    if guessed is not None:
        return guessed
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _declared(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        name = codecs.lookup(charset.strip().strip("\"'")).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:4096]
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return None
    odd_zeros = sample[1::2].count(0)
    even_zeros = sample[0::2].count(0)
    return "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _mostly_gb2312(text: str) -> bool:
    wide = [char for char in text if ord(char) > 0x7F]
    return sum(map(_in_gb2312, wide)) >= 0.9 * len(wide)


def _guess(data: bytes) -> tuple[str, str] | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    best = from_bytes(data[: 1 << 20]).best()
    if best is None:
        return None
    try:
        encoding = codecs.lookup(best.encoding).name
        if encoding in _LATIN_PAGES:
            encoding = "cp1252"
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        return None
