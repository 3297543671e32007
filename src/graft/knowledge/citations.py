"""Citations: the answer's ``[n]`` markers, kept only when they name a retrieved passage.

A model asked to cite numbered passages may cite ``[7]`` when it read six, or keep citing
from memory. ``CitationGuard`` sits on the answer's stream (``graft.turn``, for assistants
with ``collections``): it learns the passages of the turn from ``search_knowledge`` results
and from automatic retrieval (``Citations`` events of stage ``retrieved``), and in the text
keeps a marker only if every number in it was retrieved in this turn; a marker naming
anything else is dropped, never shown as a source that does not exist. At the end it sends
a ``Citations`` event (stage ``cited``) listing the passages the answer actually cites, for
the client's footnotes.

Markers are ``[n]`` or ``[n, m]`` not glued to a word (``items[1]`` in code stays). A marker
may arrive split across text deltas: the tail that could still become one (``[1``) is held
back until it is decided, at most a few characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from graft.events import Citations, Event, TextDelta, ToolResult, TurnDone

__all__ = ["CitationGuard"]

_MARKERS = re.compile(r"(\s?)(?<![\w\]])((?:\[\d{1,3}(?:\s*,\s*\d{1,3})*\])+)")
"""A run of markers (``[1]``, ``[1, 2]``, ``[1][2]``) not glued to a word, and a space before."""
_BRACKET = re.compile(r"\[([\d,\s]+)\]")
_OPEN_TAIL = re.compile(r"\s*(?:\[[\d,\s]{0,15})?$")
"""What may still become (the space before) a marker: held back until the next delta."""
_MAX_HOLD: Final = 20


class CitationGuard:
    """Filters one turn's ``[n]`` markers against the passages it retrieved."""

    def __init__(self) -> None:
        self.retrieved: dict[int, dict[str, Any]] = {}
        self.cited: dict[int, dict[str, Any]] = {}
        self._held = ""

    def guard(self, event: Event) -> Iterable[Event]:
        """The events to send on in place of ``event``."""
        if isinstance(event, TextDelta):
            text = self._filter(event.text)
            if text:
                yield TextDelta(text)
            return
        if isinstance(event, ToolResult) and event.data and "citations" in event.data:
            self._learn(event.data["citations"])
        elif isinstance(event, Citations) and event.stage == "retrieved":
            self._learn(event.citations)
        if self._held and not isinstance(event, ToolResult | Citations):
            held, self._held = self._held, ""
            yield TextDelta(self._replace(held))
        if isinstance(event, TurnDone) and self.cited:
            yield Citations([self.cited[n] for n in sorted(self.cited)], "cited")
        yield event

    def _learn(self, citations: list[dict[str, Any]]) -> None:
        for citation in citations:
            number = citation.get("n")
            if isinstance(number, int):
                self.retrieved[number] = citation

    def _filter(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        tail = _OPEN_TAIL.search(text)
        if tail is not None and 0 < len(text) - tail.start() <= _MAX_HOLD:
            text, self._held = text[: tail.start()], text[tail.start() :]
        return self._replace(text)

    def _replace(self, text: str) -> str:
        return _MARKERS.sub(self._markers, text)

    def _markers(self, found: re.Match[str]) -> str:
        kept = [self._bracket(m) for m in _BRACKET.finditer(found.group(2))]
        shown = "".join(k for k in kept if k)
        return f"{found.group(1)}{shown}" if shown else ""

    def _bracket(self, found: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", found.group(1))]
        kept = [n for n in numbers if n in self.retrieved]
        for number in kept:
            self.cited[number] = self.retrieved[number]
        return f"[{', '.join(str(n) for n in kept)}]" if kept else ""
