"""Reading a service's answer within a size cap, and the text of it the model is shown.

The cap counts bytes *after* decompression, and decompression itself is bounded: a few
kilobytes of gzip can inflate to gigabytes. httpx's own decoders (``aiter_bytes``) inflate
each network chunk whole, and stack as many layers as ``Content-Encoding`` names, so a
64 KiB chunk of a twice-gzipped body could become gigabytes in one step. Here the raw bytes
are inflated with ``zlib``'s ``max_length``, never more than one byte past the cap, and only
one layer of ``gzip`` or ``deflate`` is accepted (graft asks for no other). Reading stops at
the cap; the connection is then dropped.

The model is shown at most ``max_result_chars`` characters, with a note saying how much of
how much it sees (``[truncated: 16 kB of 2.1 MB shown]``). JSON is re-serialised compactly
(fewer tokens); a binary answer is described, not shown.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from typing import Final

import httpx

from graft.errors import ToolError

__all__ = ["ACCEPT_ENCODING", "human_size", "read_decoded", "render"]

ACCEPT_ENCODING: Final = "gzip, deflate"
"""The encodings graft asks for: the ones it can inflate within a bound."""
_TEXT_TYPES: Final = ("json", "xml", "javascript", "yaml", "csv", "x-www-form-urlencoded")


class _Inflater:
    """One layer of gzip or deflate, inflated at most ``room`` bytes at a time."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if self.gzip else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        if not self._started and not self.gzip:
            self._started = True
            try:
                return self._z.decompress(data, room)
            except zlib.error:  # "deflate" sent raw, without the zlib header
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        out = self._z.decompress(data, room)
        if self._z.eof and self._z.unused_data and self.gzip:  # a further gzip member
            rest = self._z.unused_data
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
            out += self._z.decompress(rest, max(room - len(out), 1))
        return out


async def read_decoded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``response``'s decoded body, and whether that is all of it.

    Raises:
        ToolError: The body is in an encoding graft did not ask for, or is corrupt.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    inflater: _Inflater | None = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
    elif encoding not in ("identity", ""):
        raise ToolError(f"the answer is encoded as {encoding!r}, which graft did not ask for")
    body = bytearray()
    try:
        async for raw in response.aiter_raw():
            room = limit - len(body) + 1  # one byte past the cap tells that there is more
            body += inflater.feed(raw, room) if inflater is not None else raw[:room]
            if len(body) > limit:
                return bytes(body[:limit]), False
    except zlib.error:
        raise ToolError(f"the answer's {encoding} encoding is corrupt") from None
    return bytes(body), True


def human_size(size: int) -> str:
    """``size`` bytes in decimal units: ``512 B``, ``120 kB``, ``2.1 MB``."""
    if size < 1000:
        return f"{size} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if size < scale * 1000 or unit == "GB":
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return not kind or kind.startswith("text/") or any(t in kind for t in _TEXT_TYPES)


def render(
    data: bytes,
    *,
    complete: bool,
    content_type: str,
    charset: str | None,
    limit: int,
    max_chars: int,
) -> str:
    """The text the model reads for a body (``data``, cut at ``limit`` unless ``complete``)."""
    if not _is_text(content_type):
        more = "" if complete else " or more"
        return f"[binary answer: {content_type}, {human_size(len(data))}{more}; not shown]"
    try:
        text = data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", errors="replace")
    if complete and "json" in content_type.lower():
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    if complete and len(text) <= max_chars:
        return text
    shown = text[:max_chars]
    shown_size = human_size(len(shown.encode("utf-8")))
    if complete:
        total = human_size(len(text.encode("utf-8")))
        return f"{shown}\n[truncated: {shown_size} of {total} shown]"
    return (
        f"{shown}\n[truncated: {shown_size} shown; the answer is larger than the "
        f"{human_size(limit)} graft reads from this service]"
    )
