"""HTML pages: the readable text, under its h1-h6 headings, with lists and tables.

selectolax over beautifulsoup4: selectolax wraps Lexbor, a C implementation of the HTML
Standard's parsing algorithm, so a broken or hostile page is repaired exactly as a browser
repairs it, and a large page parses in milliseconds (beautifulsoup4 needs html5lib, pure
Python and slow, for the same fidelity; its default html.parser does not follow the
standard). It has no dependencies and ships typed wheels.

What is read: ``<main>`` when the page has one, else ``<body>``. Dropped: script, style,
nav, forms' controls, embedded objects, SVG and anything ``hidden``. Headings move the
outline; ``ul``/``ol`` become one ``list`` section; a data table becomes ``table`` blocks,
while a layout table (one that holds headings or tables) is read like the divs it stands
for; ``pre`` is kept verbatim as ``code``. The walk is iterative, and a page nested more
than ``MAX_DEPTH`` deep is refused before parsing (tree building slows with depth). The
encoding comes from a byte-order mark, the declared charset, a ``<meta charset>`` in the
first 4 KB, then detection (``graft.knowledge.parsers.text``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from graft.errors import InvalidRequest
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
from graft.knowledge.parsers.text import decode

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["extract"]

_SKIP: Final = frozenset(
    {"script", "style", "noscript", "template", "nav", "svg", "math", "iframe", "object"}
    | {"embed", "canvas", "head", "select", "button", "input", "textarea", "video", "audio"}
    | {"img"}
)
_HEADINGS: Final = {f"h{n}": n for n in range(1, 7)}
_LISTS: Final = frozenset({"ul", "ol", "menu"})
_BLOCKS: Final = frozenset(
    {"address", "article", "aside", "blockquote", "body", "caption", "center", "dd"}
    | {"details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer"}
    | {"form", "header", "hgroup", "hr", "li", "main", "p", "section", "summary", "table"}
    | {"tbody", "thead", "tfoot", "tr", "td", "th"}
)
_LINE_BREAK: Final = "\u2028"  # stands for <br> until whitespace has been collapsed
_META_CHARSET: Final = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
_MODIFIED_META: Final = ("article:modified_time", "last-modified", "dcterms.modified", "date")
MAX_DEPTH: Final = 512
"""Deepest element nesting read. Building the tree costs time in proportion to the depth for
every tag, so 200,000 nested divs take Lexbor minutes; Chrome stops nesting at 512 too."""
_TAG_OPEN_CLOSE: Final = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)\b[^<>]*>")
_RAW_TEXT: Final = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
# Void elements, and elements the parser closes by itself: they do not deepen the tree.
_FLAT: Final = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option"}
    | {"optgroup", "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rp"}
    | {"html", "head", "body"}
)


def extract(data: bytes, source: Source) -> Extracted:
    """An HTML page; the title from ``<title>``, else its first ``<h1>``."""
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError as exc:
        raise missing("selectolax", "HTML") from exc
    if source.charset is None:
        declared = _META_CHARSET.search(data[:4096])
        if declared is not None:
            source = dataclasses.replace(source, charset=declared.group(1).decode("ascii"))
    text, encoding = decode(data, source)
    if _depth(text) > MAX_DEPTH:
        raise InvalidRequest(
            f"{source.name!r} nests its HTML elements more than {MAX_DEPTH} deep; "
            "no real page does, so it is refused"
        )
    tree = LexborHTMLParser(text)
    root = tree.css_first("main") or tree.body or tree.root
    walker = _Walker()
    if root is not None:
        walker.walk(root)
    title_node = tree.css_first("title")
    title = inline_text(title_node.text()) if title_node is not None else ""
    metadata, modified = _metadata(tree)
    metadata["encoding"] = encoding
    return Extracted(
        walker.sections, title=title or walker.first_h1, modified=modified, metadata=metadata
    )


def _depth(text: str) -> int:
    """How deep the page's elements nest, by counting tags (scripts and comments aside)."""
    depth = deepest = 0
    for match in _TAG_OPEN_CLOSE.finditer(_RAW_TEXT.sub("", text)):
        if match.group(2).lower() in _FLAT:
            continue
        if match.group(1):
            depth = max(0, depth - 1)
        elif not match.group(0).endswith("/>"):
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _metadata(tree: LexborHTMLParser) -> tuple[dict[str, Any], datetime | None]:
    metadata: dict[str, Any] = {}
    modified: datetime | None = None
    html = tree.css_first("html")
    if html is not None and html.attributes.get("lang"):
        metadata["language"] = html.attributes["lang"]
    for meta in tree.css("meta"):
        attributes = meta.attributes
        key = (attributes.get("name") or attributes.get("property") or "").lower()
        content = (attributes.get("content") or "").strip()
        if not content:
            continue
        if key in ("author", "description", "keywords"):
            metadata.setdefault(key, content)
        elif key in _MODIFIED_META and modified is None:
            with contextlib.suppress(ValueError):
                modified = as_utc(datetime.fromisoformat(content))
    return metadata, modified


def _hidden(node: LexborNode) -> bool:
    attributes = node.attributes
    if "hidden" in attributes or attributes.get("aria-hidden") == "true":
        return True
    style = (attributes.get("style") or "").replace(" ", "").lower()
    return "display:none" in style


def _is_layout_table(table: LexborNode) -> bool:
    if table.css_first("h1, h2, h3, h4, h5, h6") is not None:
        return True
    return any(inner.mem_id != table.mem_id for inner in table.css("table"))  # self included


class _Walker:
    """A depth-first walk that cuts the text into blocks at block-level elements."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.first_h1: str | None = None
        self.outline = Outline()
        self.inline: list[str] = []
        self.lists = 0
        self.items: list[str] = []

    def walk(self, root: LexborNode) -> None:
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            tag = node.tag or ""
            if leaving:
                self._leave(tag)
            elif tag == "-text":
                self.inline.append(node.text_content or "")
            elif (
                not tag.startswith("-")
                and tag not in _SKIP
                and not _hidden(node)
                and self._enter(node, tag)
            ):
                stack.append((node, True))
                children = list(node.iter(include_text=True))
                stack.extend((child, False) for child in reversed(children))
        self._flush()

    def _add(self, text: str, kind: str = "text") -> None:
        if text:
            self.sections.append(Section(text, self.outline.path, kind=kind))

    def _flush(self) -> None:
        lines = "".join(self.inline).split(_LINE_BREAK)
        self.inline.clear()
        text = "\n".join(filter(None, map(inline_text, lines)))
        if not text:
            return
        if self.lists:
            marker = "  " * (self.lists - 1) + "- "
            self.items.append(marker + text.replace("\n", "\n" + " " * len(marker)))
        else:
            self._add(text)

    def _enter(self, node: LexborNode, tag: str) -> bool:
        """Handle an opening element; whether to walk into its children."""
        if tag in _HEADINGS:
            self._flush()
            text = inline_text(node.text())
            if text:
                path = self.outline.enter(_HEADINGS[tag], text)
                self.sections.append(Section(text, path, kind="heading"))
                if tag == "h1" and self.first_h1 is None:
                    self.first_h1 = text
            return False
        if tag == "br":
            self.inline.append(_LINE_BREAK)
            return False
        if tag == "pre":
            self._flush()
            code = node.text().strip("\n")
            if self.lists:
                self.items.append(code)
            else:
                self._add(code, "code")
            return False
        if tag == "table" and not _is_layout_table(node):
            self._flush()
            rows = [[inline_text(c.text()) for c in tr.css("th, td")] for tr in node.css("tr")]
            for block in table_blocks(rows):
                self._add(block, "table")
            return False
        if tag in _LISTS:
            self._flush()
            self.lists += 1
        elif tag in _BLOCKS:
            self._flush()
        return True

    def _leave(self, tag: str) -> None:
        if tag in _LISTS:
            self._flush()
            self.lists -= 1
            if not self.lists:
                self._add("\n".join(self.items), "list")
                self.items = []
        elif tag in _BLOCKS:
            self._flush()
