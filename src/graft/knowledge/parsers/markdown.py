"""Markdown: headings, paragraphs, lists, tables and code blocks from markdown-it-py's tokens.

markdown-it-py is a CommonMark parser (the spec every Markdown editor now follows), pure
Python, with the GFM table rule built in. Its token stream is flat, with open/close pairs, so
one loop reads it: headings move the outline, a list becomes one ``list`` section of
``- item`` lines (nested ones indented), a table becomes ``table`` blocks, a fenced or
indented code block one ``code`` section kept verbatim. Inline markup is dropped (``**x**``
is ``x``, a link is its text, an image its alt text). A YAML front matter block gives the
title, author and date when present.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from graft.knowledge.document import Section
from graft.knowledge.parsers import (
    Extracted,
    Outline,
    Source,
    as_utc,
    inline_text,
    missing,
    table_blocks,
)
from graft.knowledge.parsers.text import decode, normalize_newlines

if TYPE_CHECKING:
    from markdown_it.token import Token

__all__ = ["extract"]

_FRONT_MATTER: Final = re.compile(
    r"\A---[ \t]*\n(.{0,10000}?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S
)
_FIELD: Final = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.+?)\s*$", re.M)
_TAG: Final = re.compile(r"<[^>]*>")


def extract(data: bytes, source: Source) -> Extracted:
    """A Markdown file, headings from ``#`` and underlined titles."""
    try:
        from markdown_it import MarkdownIt
    except ImportError as exc:
        raise missing("markdown-it-py", "Markdown") from exc
    text, encoding = decode(data, source)
    text, front = _front_matter(normalize_newlines(text))
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    result = _Reader().read(tokens)
    metadata: dict[str, Any] = {"encoding": encoding}
    metadata.update({k: v for k, v in front.items() if k in ("author", "description", "date")})
    return Extracted(
        result.sections,
        title=front.get("title") or result.title,
        modified=_date(front.get("updated") or front.get("date")),
        metadata=metadata,
    )


def _front_matter(text: str) -> tuple[str, dict[str, str]]:
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, {}
    fields = {k.lower(): v.strip("\"'") for k, v in _FIELD.findall(match.group(1))}
    return text[match.end() :], fields


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _inline(token: Token) -> str:
    """An inline token's text without markup; hard breaks stay line breaks."""
    lines: list[list[str]] = [[]]
    for child in token.children or []:
        if child.type in ("text", "code_inline", "image"):
            lines[-1].append(child.content)
        elif child.type == "softbreak":
            lines[-1].append("\n")
        elif child.type == "hardbreak":
            lines.append([])
    return "\n".join(filter(None, (inline_text("".join(line)) for line in lines)))


class _Reader:
    """One pass over the tokens; state for the heading, list or table being read."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.title: str | None = None
        self.outline = Outline()
        self.heading_level: int | None = None
        self.lists: list[int] = []  # one entry per open list: 0 for bullets, 1 for numbers
        self.items: list[str] = []
        self.marker: str | None = None  # the marker of a list item whose text is still to come
        self.rows: list[list[str]] | None = None

    def read(self, tokens: list[Token]) -> _Reader:
        for token in tokens:
            self._token(token)
        return self

    def _add(self, text: str, kind: str = "text") -> None:
        if text.strip():
            self.sections.append(Section(text, self.outline.path, kind=kind))

    def _token(self, token: Token) -> None:  # noqa: C901 - one branch per token type
        kind = token.type
        if kind == "heading_open":
            self.heading_level = int(token.tag[1:])
        elif kind == "inline":
            self._text(_inline(token))
        elif kind in ("bullet_list_open", "ordered_list_open"):
            self.lists.append(int(kind == "ordered_list_open"))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            if not self.lists:
                self._add("\n".join(self.items), "list")
                self.items = []
        elif kind == "list_item_open":
            number = f"{token.info}." if self.lists[-1] and token.info else "-"
            self.marker = "  " * (len(self.lists) - 1) + number + " "
        elif kind == "table_open":
            self.rows = []
        elif kind == "tr_open" and self.rows is not None:
            self.rows.append([])
        elif kind == "table_close" and self.rows is not None:
            for block in table_blocks(self.rows):
                self._add(block, "table")
            self.rows = None
        elif kind in ("fence", "code_block"):
            code = token.content.rstrip("\n")
            if self.lists:
                self.items.append(code)
            else:
                self._add(code, "code")
        elif kind == "html_block":
            self._text(inline_text(_TAG.sub(" ", token.content)))

    def _text(self, text: str) -> None:
        if self.heading_level is not None:
            level, self.heading_level = self.heading_level, None
            if text:
                path = self.outline.enter(level, text)
                self.sections.append(Section(text, path, kind="heading"))
                if level == 1 and self.title is None:
                    self.title = text
        elif self.rows is not None:
            if self.rows:
                self.rows[-1].append(text)
        elif self.lists:
            if text:
                indent = "  " * len(self.lists)
                self.items.append((self.marker or indent) + text)
                self.marker = None
        else:
            self._add(text)
