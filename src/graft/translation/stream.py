"""Cutting streamed text into sentences, for translating an answer while it streams.

A translation is only as good as its input: a half sentence translates badly and its second
half differently, so streamed text is held back until a sentence is complete and translated
whole. ``SentenceSplitter.feed`` takes the deltas as they come and returns the segments they
complete; ``flush`` returns what is left at the end. Joined, the segments are exactly the text
fed in: whitespace and line breaks stay where they were.

A sentence ends:

- after Chinese and Japanese ``。！？；…`` and full-width ``！？``, with any closing quotes
  or brackets, at once: these are never part of a number or an abbreviation;
- after ``.``, ``!`` and ``?`` (and closing quotes or brackets) once whitespace follows:
  ``3.14`` and ``example.com`` stay whole, and so do ``e.g.``, ``Dr.``, initials such as
  ``J. Smith`` and list numbers (``1. First``);
- at a line break (list items, headings and paragraphs are units of their own).

Fenced code blocks (lines between a pair of three-backtick fences) come out as segments
marked ``code``, line by line: code is never translated. A tail that grows past
``max_chars`` without ending a sentence is cut at its last space, so a run-on answer still
streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Segment", "SentenceSplitter"]

_CLOSERS: Final = re.escape("\"'”’」』）)】》]")
_CJK_END: Final = re.compile(f"[。！？；…!?]+[{_CLOSERS}]*|[！？][{_CLOSERS}]*")
_LATIN_END: Final = re.compile(f"[.!?]+[{_CLOSERS}]*(?=\\s)")
_ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "cf", "no"}
    | {"fig", "approx", "dept", "inc", "ltd", "co", "corp"}
)
_FENCE: Final = "```"


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of the text: a whole sentence (with the whitespace after it), or code."""

    text: str
    code: bool = False


class SentenceSplitter:
    """Turns text deltas into complete sentences, holding back the incomplete tail."""

    def __init__(self, *, max_chars: int = 400) -> None:
        self.max_chars = max_chars
        self._pending = ""
        self._in_code = False
        self._line_start = True

    def feed(self, text: str) -> list[Segment]:
        """Add a delta; return the segments it completed (often none)."""
        self._pending += text
        out: list[Segment] = []
        while True:
            segment = self._next()
            if segment is None:
                return out
            out.append(segment)

    def flush(self) -> list[Segment]:
        """The rest of the text, at the end of the stream (or before a non-text event)."""
        segments = self.feed("")
        if self._pending:
            segments.append(Segment(self._pending, self._in_code or self._opens_fence()))
            self._pending = ""
        self._line_start = True
        return segments

    def _opens_fence(self) -> bool:
        return self._line_start and self._pending.lstrip(" ").startswith(_FENCE)

    def _next(self) -> Segment | None:
        text = self._pending
        if not text:
            return None
        if self._in_code or self._opens_fence():
            return self._code_line()
        if self._line_start and _FENCE.startswith(text.lstrip(" ")):
            return None  # may still become a fence
        end = _sentence_end(text)
        if end is None and len(text) > self.max_chars:
            cut = text.rfind(" ", 0, self.max_chars)
            end = cut + 1 if cut > 0 else self.max_chars
        if end is None:
            return None
        end = _after_whitespace(text, end)
        if end == len(text) and not text[-1].isspace():
            return None  # a closing quote may still follow, or more of the sentence
        self._pending = text[end:]
        self._line_start = text[end - 1] == "\n"
        return Segment(text[:end])

    def _code_line(self) -> Segment | None:
        text = self._pending
        newline = text.find("\n")
        if newline < 0:
            return None
        line = text[: newline + 1]
        if line.lstrip(" ").startswith(_FENCE):
            self._in_code = not self._in_code
        self._pending = text[newline + 1 :]
        self._line_start = True
        return Segment(line, code=True)


def _sentence_end(text: str) -> int | None:
    """Where the first complete sentence of ``text`` ends (before any whitespace after it)."""
    candidates: list[int] = []
    newline = text.find("\n")
    if newline >= 0:
        candidates.append(newline)
    for cjk in _CJK_END.finditer(text):
        if cjk.group()[0] not in "!?" or _full_width_context(text, cjk.start()):
            candidates.append(cjk.end())
            break
    for found in _LATIN_END.finditer(text):
        if found.group()[0] != "." or not _abbreviation(text, found.start()):
            candidates.append(found.end())
            break
    return min(candidates) if candidates else None


def _full_width_context(text: str, index: int) -> bool:
    """Whether an ASCII ``!``/``?`` ends a CJK sentence (it follows a CJK character)."""
    return index > 0 and ord(text[index - 1]) >= 0x2E80


def _abbreviation(text: str, dot: int) -> bool:
    """Whether the ``.`` at ``dot`` ends an abbreviation, an initial or a number (``1.``)."""
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot].lower()
    initial = len(word) == 1 and text[start].isupper()
    return word in _ABBREVIATIONS or initial or word.isdigit()


def _after_whitespace(text: str, end: int) -> int:
    """``end`` moved past the spaces after a sentence, and past one line break at most."""
    while end < len(text) and text[end] in " \t\u3000":
        end += 1
    if end < len(text) and text[end] == "\n":
        end += 1
    elif end < len(text) and text[end] == "\r" and text[end + 1 : end + 2] == "\n":
        end += 2
    return end
