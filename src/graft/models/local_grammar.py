"""The local model's tool calls: which tools to offer, the grammar, and parsing the result.

``graft.models.local`` decodes tool calls under a GBNF grammar built here from the tools'
JSON schemas (llama.cpp's own converter), after the prefill ``{"tool": "``. The grammar
allows one to ``MAX_CALLS`` calls, one JSON object per line, or the answer name (``chat``)
to answer in words. Every string, array and free value gets a bound (patterns keep their
character sets, ``+`` becomes ``{1,maxLength}``): unbounded, the model lets strings run.

Which tools are offered is decided by words, since a 135M model decides poorly on its own
(measured on BFCL, ``bench/README.md``): tools are ranked by how many of the words of their
name the user's message contains (``relevance``), the best six are listed, and when the
message names a tool, or contains at least half (and at least two) of the distinctive words
of some tools' names, the best-matching tools are offered alone and one must be called.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Final

from graft.errors import ModelError
from graft.messages import ToolCall, new_id
from graft.tools.base import ToolDef

__all__ = [
    "ARGUMENTS",
    "MAX_CALLS",
    "MAX_TOOLS",
    "PREFILL",
    "bounded",
    "bounded_pattern",
    "call_grammar",
    "named_tools",
    "parse_calls",
    "rank_tools",
    "relevance",
]

logger = logging.getLogger(__name__)

PREFILL: Final = '{"tool": "'
ARGUMENTS: Final = '", "arguments": '
MAX_TOOLS: Final = 6
MAX_CALLS: Final = 4
"""Calls in one decision: a request for several things ("in Paris and in Tokyo")."""
_END: Final = '"}'
_MAX_STRING: Final = 200
_MAX_ITEMS: Final = 8
_SURE: Final = 0.5
"""The share of a tool name's distinctive words the message must contain to force a call."""
_SURE_WORDS: Final = 2
"""And how many of them at least: one shared word is too common a coincidence ("what is the
time complexity of quicksort" shares "time" with ``current_time``), so it only ranks."""
# Words that say what a tool does in general, not which tool it is.
_GENERIC: Final = frozenset(
    {
        "get",
        "set",
        "find",
        "calc",
        "calculate",
        "compute",
        "fetch",
        "retrieve",
        "search",
        "list",
        "create",
        "update",
        "delete",
        "check",
        "determine",
        "make",
        "run",
        "info",
        "information",
        "data",
        "detail",
        "details",
        "api",
        "tool",
        "function",
        "by",
        "for",
        "from",
        "of",
        "to",
        "the",
        "and",
        "or",
        "in",
        "on",
        "with",
        "value",
        "values",
        "number",
        "total",
        "new",
        "all",
    }
)


# --- which tools ------------------------------------------------------------------------


def named_tools(tools: Sequence[ToolDef], text: str) -> list[ToolDef]:
    """The tools the text names, as ``current_time`` or ``current time``."""
    lowered = text.lower()

    def named(tool: ToolDef) -> bool:
        name = tool.name.lower()
        return any(
            re.search(rf"(?<![\w-]){re.escape(variant)}(?![\w-])", lowered)
            for variant in {name, name.replace("_", " ")}
        )

    return [t for t in tools if named(t)]


def _stems(text: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # camelCase
    return {word[:5] for word in re.findall(r"[a-z]+", spaced.lower()) if word not in _GENERIC}


def relevance(tool: ToolDef, text: str) -> float:
    """The share of the distinctive words of the tool's name that ``text`` contains (0-1).

    Words compare by their first five letters, so "triangle" matches "triangles" and
    "forecast" "forecasting"; generic ones ("get", "calculate", "data") do not count.
    """
    name = _stems(tool.name)
    return len(name & _stems(text)) / len(name) if name else 0.0


def rank_tools(tools: Sequence[ToolDef], text: str) -> tuple[list[ToolDef], bool]:
    """The tools to offer for ``text`` (at most ``MAX_TOOLS``), and whether one is sure.

    Named tools come alone and sure; else, when the text contains at least half of some
    tool's distinctive name words, the tools that match best; else every tool, the most
    relevant first (stable, so equal scores keep their order).
    """
    named = named_tools(tools, text)
    if named:
        return named[:MAX_TOOLS], True
    scored = sorted(((relevance(t, text), i, t) for i, t in enumerate(tools)), key=_best_first)
    best = scored[0][0] if scored else 0.0
    if best >= _SURE and _shared_words(scored[0][2], text) >= _SURE_WORDS:
        # The best-matching tools (ties: a request may need each of them).
        return [t for score, _, t in scored if score == best][:MAX_TOOLS], True
    return [t for _, _, t in scored[:MAX_TOOLS]], False


def _shared_words(tool: ToolDef, text: str) -> int:
    return len(_stems(tool.name) & _stems(text))


def _best_first(item: tuple[float, int, ToolDef]) -> tuple[float, int]:
    return -item[0], item[1]


# --- the grammar ------------------------------------------------------------------------


def call_grammar(vocab: Any, tools: Sequence[ToolDef], answer: str | None) -> str:
    """GBNF for what follows the prefill: up to ``MAX_CALLS`` calls, or the answer name."""
    for keep_patterns in (True, False):
        grammar = _build_grammar(tools, answer, keep_patterns)
        if grammar is not None and _grammar_parses(vocab, grammar):
            return grammar
    raise ModelError("the local model cannot build a grammar for these tools' schemas")


def _build_grammar(tools: Sequence[ToolDef], answer: str | None, keep_patterns: bool) -> str | None:
    # The converter is llama.cpp's own (untyped) JSON-schema-to-GBNF translator.
    schemas: Any = importlib.import_module("llama_cpp.llama_grammar")
    converter = schemas.SchemaConverter(
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    branches = []
    try:
        for index, tool in enumerate(tools):
            schema = converter.resolve_refs(bounded(tool.parameters, keep_patterns), f"t{index}")
            rule = converter.visit(schema, f"t{index}-arguments")
            branches.append(f'{_literal(tool.name + ARGUMENTS)} {rule} "}}"')
    except (AssertionError, ValueError, KeyError, TypeError) as exc:
        logger.warning("cannot turn a tool schema into a grammar (%s)", exc)
        return None
    rules: str = converter.format_grammar()
    # One call, then up to MAX_CALLS - 1 more, each on its own line: (... (... )?)?
    more = ""
    for _ in range(MAX_CALLS - 1):
        more = f"( {_literal(chr(10) + PREFILL)} call-one {more} )?"
    root = f"call-one {more}"
    if answer is not None:
        root = f"( {root} ) | {_literal(answer + _END)}"
    return f"{rules}\ncall-one ::= {' | '.join(branches)}\nroot ::= {root}\n"


def _literal(text: str) -> str:
    return json.dumps(text)


def _grammar_parses(vocab: Any, grammar: str) -> bool:
    # llama-cpp-python does not check the parse and crashes on a bad grammar; check first.
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def bounded(schema: Any, keep_patterns: bool) -> Any:
    """A copy of a JSON schema in which every string, array and free value has a bound."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {k: bounded(v, keep_patterns) for k, v in out[key].items()}
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [bounded(v, keep_patterns) for v in out[key]]
    if isinstance(out.get("items"), dict):
        out["items"] = bounded(out["items"], keep_patterns)
    kind = out.get("type")
    if isinstance(kind, list):
        rest = {k: v for k, v in out.items() if k != "type"}
        return {"anyOf": [bounded({**rest, "type": t}, keep_patterns) for t in kind]}
    if any(k in out for k in ("$ref", "enum", "const", "anyOf", "oneOf", "allOf")):
        return out
    if kind == "string":
        return _bounded_string(out, keep_patterns)
    if kind == "array":
        out["maxItems"] = min(int(out.get("maxItems", _MAX_ITEMS)), _MAX_ITEMS)
        return out
    if kind == "object" or "properties" in out:
        out.setdefault("properties", {})
        out["additionalProperties"] = False
        return out
    if kind is None:
        return {"type": "string", "maxLength": _MAX_STRING}
    return out


def _bounded_string(schema: dict[str, Any], keep_patterns: bool) -> dict[str, Any]:
    if schema.get("format") in ("date", "time", "date-time", "uuid"):
        return schema
    limit = min(int(schema.get("maxLength", _MAX_STRING)), _MAX_STRING)
    schema["maxLength"] = limit
    pattern = schema.pop("pattern", None)
    if keep_patterns and isinstance(pattern, str):
        schema["pattern"] = bounded_pattern(pattern, limit)
    return schema


def bounded_pattern(pattern: str, limit: int) -> str:
    """Anchor a regex and replace its unbounded repeats (``+ * {m,}``) with ``{m,limit}``."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "+*":
            char = f"{{{int(char == '+')},{limit}}}"
        elif char == "{" and "," in pattern[i:].split("}", 1)[0]:
            low, high = pattern[i + 1 :].split("}", 1)[0].split(",", 1)
            if not high.strip():
                char = f"{{{low},{limit}}}"
                i += len(low) + 2
        out.append(char)
        i += 1
    body = "".join(out)
    return ("" if body.startswith("^") else "^") + body + ("" if body.endswith("$") else "$")


# --- the result -------------------------------------------------------------------------


def parse_calls(decision: str, tools: Sequence[ToolDef]) -> list[ToolCall]:
    """The calls in a decision (repeats dropped), or none when the model chose to answer."""
    names = {t.name for t in tools}
    calls: list[ToolCall] = []
    seen: set[str] = set()
    for line in (PREFILL + decision).split("\n" + PREFILL):
        text = line if line.startswith(PREFILL) else PREFILL + line
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            logger.warning("the local model's tool decision was cut short: %r", decision[:200])
            break
        name = data.get("tool") if isinstance(data, dict) else None
        if name not in names:
            break
        arguments = json.dumps(data.get("arguments", {}), ensure_ascii=False)
        if (key := f"{name}\x00{arguments}") not in seen:
            seen.add(key)
            calls.append(ToolCall(new_id("call"), name, arguments))
    return calls
