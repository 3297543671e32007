"""Cutting a parsed document into chunks for search: heading-aware, CJK-aware, traceable.

A chunk is what gets embedded and what the model is shown, so it should hold one topic and
say where it comes from. The cut follows the document's structure, coarse to fine:

1. **Top-level headings are walls.** The top level is the first heading level at which the
   document branches (under a lone Title, that is H1; in a deck, each slide). No chunk
   crosses one, so no chunk mixes "Leave" and "Pay".
2. **Small sections merge.** Consecutive sections inside one top-level part are packed into
   one chunk while it fits; a heading with nothing under it yet waits for its first block,
   so a chunk never ends on a dangling heading.
3. **Large sections split** at the last paragraph break in the window (past its first
   third), else the last sentence end past its half (``。！？；`` and ``.!?;`` with their
   full-width forms; a ``.`` only before a space or a CJK character, so ``3.14`` stays
   whole), else a line break (tables, lists and code try line breaks first: a row is their
   unit), else a clause mark or a space, else a hard cut that never separates a combining
   mark, a surrogate pair, an emoji sequence or a flag from its base. Nothing assumes that
   words are separated by spaces. The pieces of one section overlap by up to
   ``overlap_chars``, starting at a sentence start (else a clause's, else not at all)
   inside that span; pieces of different sections never overlap.

Every chunk's text starts with a breadcrumb line, ``Title > Heading > Subheading``, because
a passage that says "Ten days a year." only answers "how much annual leave?" together with
its headings. ``char_start``/``char_end`` delimit the rest, the body, in the document's
plain text (``ParsedDocument.text``): ``doc.text[c.char_start:c.char_end]`` is the body.

**Why characters, and the numbers.** Sizes are counted in characters, not tokens: no
tokenizer at ingestion, the same cut whichever embedder is configured, deterministic and
fast. But a plain count cannot serve both scripts. The embedder reads at most 512 tokens
(multilingual-e5-small, graft's default, and most sentence embedders); measured with e5's
tokenizer on handbook prose, English runs ~4.3 characters a token and Chinese ~1.5 (~1.1 in
tables of short cells), and Chinese-BERT-style tokenizers spend one token per Han
character. 1200 English characters are ~280 tokens; 1200 Chinese ones would be 800-1200,
and the embedder would silently drop the second half. So a wide (CJK) character counts as
``CJK_WEIGHT`` = 3: the default 1200 is 1200 Latin characters (~280 tokens) or 400 Chinese
ones (~270 e5 tokens, ~360 in tables, 400 at one token each), both under 512 with room for
e5's ``passage:`` prefix. ``text_size`` is that count.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from graft.knowledge.document import SECTION_SEPARATOR, ParsedDocument, Section

__all__ = ["CJK_WEIGHT", "Chunk", "chunk_document", "text_size"]

CJK_WEIGHT: Final = 3
"""What one wide (CJK) character counts for in a size; every other character counts 1."""

_WIDE_CHARS: Final = (
    "\u1100-\u115f\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
    "\U00020000-\U0003ffff"
)
_NARROW_RUNS: Final = re.compile(f"[^{_WIDE_CHARS}]+")
_CLOSERS: Final = "\"'”’」』）)\\]》〉】"
_PARAGRAPH: Final = re.compile(r"\n[ \t\u3000]*\n\s*")
_SENTENCE: Final = re.compile(
    f"[。．｡！？；!?;…]+[{_CLOSERS}]*|\\.+[{_CLOSERS}]*(?=\\s|[{_WIDE_CHARS}])"
)
_LINE: Final = re.compile(r"\n\s*")
_CLAUSE: Final = re.compile(r"[，、,：:]\s*|\s+")
_PROSE_LEVELS: Final = (_PARAGRAPH, _SENTENCE, _LINE, _CLAUSE)
_ROW_LEVELS: Final = (_PARAGRAPH, _LINE, _SENTENCE, _CLAUSE)
_OVERLAP_STARTS: Final = (re.compile(f"{_SENTENCE.pattern}|\\n\\s*"), _CLAUSE)
_MIN_CHARS: Final = 100


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, ready to embed and to cite."""

    text: str
    """A breadcrumb line (``Title > Leave > Sick leave``), then the body."""
    heading_path: tuple[str, ...]
    """The headings every part of the chunk is under, outermost first."""
    page: int | None
    """The first page (or slide) the chunk covers; None for formats without pages."""
    section: str
    """The innermost heading of ``heading_path``, ``""`` when there is none."""
    index: int
    """Position in the document, from 0."""
    char_start: int
    """Where the body starts in ``ParsedDocument.text``."""
    char_end: int
    """Where the body ends in ``ParsedDocument.text`` (exclusive)."""


def text_size(text: str) -> int:
    """The size ``max_chars`` limits: characters, a wide (CJK) one counting ``CJK_WEIGHT``."""
    # Deleting runs of narrow characters leaves the wide ones: one match per change of script.
    return len(text) + (CJK_WEIGHT - 1) * len(_NARROW_RUNS.sub("", text))


def chunk_document(
    doc: ParsedDocument, *, max_chars: int = 1200, overlap_chars: int = 150
) -> list[Chunk]:
    """Cut ``doc`` into chunks whose ``text`` (breadcrumb included) is at most ``max_chars``.

    Args:
        doc: A parsed document.
        max_chars: The most a chunk's text may measure, by ``text_size``.
        overlap_chars: How much of the end of a piece of a long section the next piece
            repeats (same measure); capped at a quarter of ``max_chars``.

    Raises:
        ValueError: ``max_chars`` under 100, or ``overlap_chars`` negative.
    """
    if max_chars < _MIN_CHARS:
        raise ValueError(f"max_chars must be at least {_MIN_CHARS}, not {max_chars}")
    if overlap_chars < 0:
        raise ValueError(f"overlap_chars must not be negative, not {overlap_chars}")
    return _Chunker(doc, max_chars, min(overlap_chars, max_chars // 4)).run()


@dataclass(frozen=True, slots=True)
class _Unit:
    """A span of the plain text that goes into a chunk whole: a section or a piece of one."""

    start: int
    end: int
    path: tuple[str, ...]
    page: int | None
    heading: bool
    whole: bool  # False for a piece of a split section: it stands alone


def _common_prefix(paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    if not paths:
        return ()
    prefix = paths[0]
    for path in paths[1:]:
        length = 0
        while length < min(len(prefix), len(path)) and prefix[length] == path[length]:
            length += 1
        prefix = prefix[:length]
    return prefix


def _groups(sections: Sequence[Section]) -> list[list[int]]:
    """Indexes of the sections of each top-level part of the document."""
    root = _common_prefix([s.heading_path for s in sections])
    # A root heading that comes back ("Notes", then "Notes" again) is no single root.
    while root and sum(s.kind == "heading" and s.heading_path == root for s in sections) > 1:
        root = root[:-1]
    depth = len(root) + 1
    groups: list[list[int]] = []
    key: tuple[str, ...] | None = None
    for index, section in enumerate(sections):
        here = section.heading_path[:depth]
        opens = section.kind == "heading" and len(section.heading_path) == depth
        if not groups or here != key or opens:
            groups.append([])
            key = here
        groups[-1].append(index)
    return groups


def _is_boundary(text: str, index: int) -> bool:
    """Whether a cut before ``text[index]`` keeps every grapheme whole (the usual cases)."""
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if (before, after) == ("\r", "\n") or "\u200d" in (before, after):
        return False
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return False
    if unicodedata.category(after) in ("Mn", "Mc", "Me"):  # accents, vowel signs, VS
        return False
    if "\U0001f3fb" <= after <= "\U0001f3ff" or "\U000e0020" <= after <= "\U000e007f":
        return False  # skin tones, emoji tag sequences

    def regional(char: str) -> bool:
        return "\U0001f1e6" <= char <= "\U0001f1ff"

    if regional(before) and regional(after):  # flags are pairs: cut only between pairs
        run = index
        while run > 0 and regional(text[run - 1]):
            run -= 1
        return (index - run) % 2 == 0
    return True


class _Chunker:
    def __init__(self, doc: ParsedDocument, max_chars: int, overlap: int) -> None:
        self.doc = doc
        self.text = doc.text
        self.max = max_chars
        self.overlap = overlap
        self._crumbs: dict[tuple[str, ...], str] = {}

    def run(self) -> list[Chunk]:
        sections = self.doc.sections
        starts: list[int] = []
        offset = 0
        for section in sections:
            starts.append(offset)
            offset += len(section.text) + len(SECTION_SEPARATOR)
        chunks: list[Chunk] = []
        waiting: list[int] = []  # a part of headings only (a Title): they open the next part
        for group in _groups(sections):
            if all(sections[i].kind == "heading" for i in group):
                waiting.extend(group)
                continue
            path = sections[group[0]].heading_path
            opening = [i for i in waiting if path[: len(p := sections[i].heading_path)] == p]
            waiting = []
            units = [u for i in opening + group for u in self._units(sections[i], starts[i])]
            for members in self._pack(units):
                chunks.append(self._chunk(members, len(chunks)))
        if waiting and not chunks:
            units = [u for i in waiting for u in self._units(sections[i], starts[i])]
            chunks = [self._chunk(members, n) for n, members in enumerate(self._pack(units))]
        return chunks

    def _size(self, start: int, end: int) -> int:
        return text_size(self.text[start:end])

    def _fit(self, start: int, end: int, budget: int) -> int:
        """The furthest position up to ``end`` whose span from ``start`` fits ``budget``."""
        high = min(end, start + budget)
        size = self._size(start, high)
        while size > budget:  # a character counts 1 to CJK_WEIGHT: ends at most 2 short
            high -= -(-(size - budget) // CJK_WEIGHT)
            size = self._size(start, high)
        return high

    def breadcrumb(self, path: tuple[str, ...]) -> str:
        """``Title > heading > ...``, at most a quarter of ``max_chars``."""
        crumb = self._crumbs.get(path)
        if crumb is None:
            title = self.doc.title
            parts = path if not title or path[:1] == (title,) else (title, *path)
            crumb = " > ".join(parts)
            if text_size(crumb) > self.max // 4:
                length = _fit_text(crumb, self.max // 4 - 1)
                while length > 0 and not _is_boundary(crumb, length):
                    length -= 1
                crumb = crumb[:length] + "…"
            self._crumbs[path] = crumb
        return crumb

    def _units(self, section: Section, start: int) -> list[_Unit]:
        end = start + len(section.text)
        path, page = section.heading_path, section.page
        budget = self.max - text_size(self.breadcrumb(path)) - 1
        size = text_size(section.text)
        heading = section.kind == "heading" and size <= budget // 2
        if heading or size <= budget:
            return [_Unit(start, end, path, page, heading, whole=True)]
        levels = _ROW_LEVELS if section.kind in ("table", "list", "code") else _PROSE_LEVELS
        return [
            _Unit(s, e, path, page, heading=False, whole=False)
            for s, e in self._split(start, end, budget, levels)
        ]

    def _split(
        self, start: int, end: int, budget: int, levels: tuple[re.Pattern[str], ...]
    ) -> list[tuple[int, int]]:
        text = self.text
        overlap = min(self.overlap, budget // 4)
        pieces: list[tuple[int, int]] = []
        position = start
        while True:
            while position < end and text[position].isspace():
                position += 1
            if position >= end:
                return pieces
            limit = self._fit(position, end, budget)
            if limit >= end:
                pieces.append((position, end))
                return pieces
            cut = self._cut(position, limit, end, levels)
            piece_end = cut
            while piece_end > position + 1 and text[piece_end - 1].isspace():
                piece_end -= 1
            pieces.append((position, piece_end))
            following = self._overlap_start(position, cut, overlap)
            position = following if following > position else cut

    def _cut(self, start: int, limit: int, end: int, levels: tuple[re.Pattern[str], ...]) -> int:
        """Where to end a piece that may reach ``limit``: the best boundary late enough.

        A paragraph break counts from a third of the window on, any other boundary from
        half of it, so pieces stay large while following the structure.
        """
        for pattern in levels:
            share = 3 if pattern is _PARAGRAPH else 2
            earliest = start + (limit - start) // share
            cut = None
            for match in pattern.finditer(self.text, earliest, min(limit + 1, end)):
                if match.end() <= limit:
                    cut = match.end()
            if cut is not None and cut > start:
                return cut
        cut = limit
        while cut > start + 1 and not _is_boundary(self.text, cut):
            cut -= 1
        return cut if cut > start + 1 else limit

    def _overlap_start(self, start: int, cut: int, overlap: int) -> int:
        """Where the next piece starts: ``overlap`` before ``cut``, at a clean boundary."""
        if overlap <= 0:
            return cut
        low = max(start + 1, cut - overlap)  # the earliest start whose span to ``cut`` fits
        size = self._size(low, cut)
        while size > overlap:
            low += -(-(size - overlap) // CJK_WEIGHT)
            size = self._size(low, cut)
        for pattern in _OVERLAP_STARTS:  # a sentence start if there is one, else a clause's
            match = pattern.search(self.text, low, cut)
            if match is not None and match.end() < cut:
                return match.end()
        return cut  # a fragment cut out of a sentence would add noise, not context

    def _render(self, units: Sequence[_Unit]) -> tuple[tuple[str, ...], int, int, int | None]:
        """A chunk's heading path, body span and first page.

        Leading headings already in the breadcrumb are left out of the body.
        """
        content = [u for u in units if not u.heading] or list(units)
        path = _common_prefix([u.path for u in content])
        first = 0
        while (
            first < len(units) - 1
            and units[first].heading
            and path[: len(units[first].path)] == units[first].path
        ):
            first += 1
        body = units[first:]
        page = next((u.page for u in body if u.page is not None), None)
        return path, body[0].start, body[-1].end, page

    def _fits(self, units: Sequence[_Unit]) -> bool:
        path, start, end, _ = self._render(units)
        return text_size(self.breadcrumb(path)) + 1 + self._size(start, end) <= self.max

    def _pack(self, units: list[_Unit]) -> list[list[_Unit]]:
        """Group one top-level part's units into chunks; headings wait for their content."""
        packed: list[list[_Unit]] = []
        current: list[_Unit] = []
        headings: list[_Unit] = []
        for unit in units:
            if unit.heading:
                headings.append(unit)
                continue
            candidate = [*current, *headings, unit]
            if current and unit.whole and self._fits(candidate):
                current = candidate
            else:
                if current:
                    packed.append(current)
                current = [*headings, unit]
                if headings and not self._fits(current):
                    packed.append(headings)
                    current = [unit]
            headings = []
            if not unit.whole:
                packed.append(current)
                current = []
        if current:
            packed.append(current)
        if headings and not packed:  # a part that is only headings still says something
            packed.append(headings)
        return packed

    def _chunk(self, units: Sequence[_Unit], index: int) -> Chunk:
        path, start, end, page = self._render(units)
        crumb = self.breadcrumb(path)
        body = self.text[start:end]
        return Chunk(
            text=f"{crumb}\n{body}" if crumb else body,
            heading_path=path,
            page=page,
            section=path[-1] if path else "",
            index=index,
            char_start=start,
            char_end=end,
        )


def _fit_text(text: str, budget: int) -> int:
    """The longest prefix of ``text`` (a length) whose size fits ``budget``."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if text_size(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return low
