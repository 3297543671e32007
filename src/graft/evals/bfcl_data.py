"""BFCL's single-turn test cases, read from the ``bfcl-eval`` package, as graft tools.

The Berkeley Function-Calling Leaderboard ships its questions, function docs and possible
answers inside the ``bfcl-eval`` package (``pip install --no-deps bfcl-eval``: its own
dependencies are the SDKs of a dozen model vendors, which graft does not need). The package
is never imported: its folder is found with ``importlib.util.find_spec`` and its
``data/BFCL_v4_<category>.json`` (JSON lines) and ``data/possible_answer/`` files are read.

Only the single-turn Python categories are loaded: the ones BFCL scores by AST matching
(``simple_python``, ``multiple``, ``parallel``, ``parallel_multiple`` and their ``live_``
counterparts) and the relevance ones (``irrelevance``, ``live_irrelevance``,
``live_relevance``). ``simple`` is accepted for ``simple_python``.

Function docs become ``ToolDef``s the way BFCL's OpenAI function-calling handler sends them
(``bfcl_eval/model_handler/utils.py`` ``convert_to_tool`` with ``GORILLA_TO_OPENAPI``,
bfcl-eval 2026.3.23): a ``.`` in a name becomes ``_``, ``dict`` becomes ``object``,
``float`` becomes ``number`` with ``format: float``, ``tuple`` becomes ``array``, unknown
types become ``string``; and, as BFCL does for every Python category, the description ends
with " Note that the provided function is in Python 3 syntax."
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from graft.errors import InvalidRequest, NotFound
from graft.messages import Message
from graft.tools.base import ToolDef

__all__ = [
    "AST_CATEGORIES",
    "CATEGORIES",
    "RELEVANCE_CATEGORIES",
    "BfclCase",
    "category_name",
    "data_folder",
    "load_cases",
    "openai_name",
    "sample",
    "tool_defs",
]

AST_CATEGORIES: Final = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
"""Categories scored by matching the calls against possible answers."""
RELEVANCE_CATEGORIES: Final = ("irrelevance", "live_irrelevance", "live_relevance")
"""Categories scored by whether any call was made (irrelevance: none may be)."""
CATEGORIES: Final = (*AST_CATEGORIES, *RELEVANCE_CATEGORIES)
_ALIASES: Final = {"simple": "simple_python"}
_VERSION: Final = "BFCL_v4"
_INSTALL: Final = 'pip install --no-deps "bfcl-eval==2026.3.23"'
_PYTHON_HINT: Final = " Note that the provided function is in Python 3 syntax."

# bfcl_eval/constants/type_mappings.py GORILLA_TO_OPENAPI
_TO_OPENAPI: Final = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "double": "number",
    "char": "string",
    "ArrayList": "array",
    "Array": "array",
    "HashMap": "object",
    "Hashtable": "object",
    "Queue": "array",
    "Stack": "array",
    "Any": "string",
    "String": "string",
    "Bigint": "integer",
}


@dataclass(frozen=True, slots=True)
class BfclCase:
    """One BFCL question: its messages, its function docs and, for AST categories, answers."""

    id: str
    category: str
    messages: tuple[dict[str, str], ...]
    functions: tuple[dict[str, Any], ...]
    """BFCL's own function docs (``dict``/``float``/``tuple`` types), as the checker needs."""
    ground_truth: tuple[dict[str, Any], ...] | None
    """``[{function: {param: [allowed values]}}]``; None for relevance categories."""

    def graft_messages(self) -> list[Message]:
        """The question as graft messages (BFCL's roles are system, user and assistant)."""
        return [Message(m["role"], m["content"]) for m in self.messages]  # type: ignore[arg-type]

    def tools(self) -> list[ToolDef]:
        """The functions as graft tools, converted as BFCL's OpenAI handler converts them."""
        return tool_defs(self.functions)


def category_name(name: str) -> str:
    """The category ``name`` stands for; raise ``InvalidRequest`` for an unknown one."""
    category = _ALIASES.get(name.strip(), name.strip())
    if category not in CATEGORIES:
        raise InvalidRequest(
            f"unknown BFCL category {name!r}: choose from simple, {', '.join(CATEGORIES)}"
        )
    return category


def data_folder() -> Path:
    """The ``data`` folder of the installed ``bfcl-eval``; ``NotFound`` says how to install it."""
    spec = importlib.util.find_spec("bfcl_eval")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        data = Path(folder) / "data"
        if (data / "possible_answer").is_dir():
            return data
    raise NotFound(f"BFCL's data is not installed: {_INSTALL}")


def load_cases(category: str, folder: Path | None = None) -> list[BfclCase]:
    """Every case of ``category`` (a name from ``CATEGORIES`` or an alias), in file order."""
    category = category_name(category)
    folder = folder or data_folder()
    rows = _json_lines(folder / f"{_VERSION}_{category}.json")
    answers: dict[str, list[dict[str, Any]]] = {}
    if category in AST_CATEGORIES:
        for row in _json_lines(folder / "possible_answer" / f"{_VERSION}_{category}.json"):
            answers[row["id"]] = row["ground_truth"]
    cases = []
    for row in rows:
        if len(row["question"]) != 1:
            continue  # a multi-turn row: not scored by these rules
        truth = answers.get(row["id"])
        if category in AST_CATEGORIES and truth is None:
            raise NotFound(f"BFCL has no possible answer for {row['id']!r}")
        cases.append(
            BfclCase(
                row["id"],
                category,
                tuple(row["question"][0]),
                tuple(row["function"]),
                tuple(truth) if truth is not None else None,
            )
        )
    return cases


def sample(cases: list[BfclCase], limit: int | None) -> list[BfclCase]:
    """``limit`` cases spread evenly over the file (all of them without a limit).

    Deterministic, so two runs (or two models) see the same questions; spread rather than
    the first ``limit``, because BFCL's files are grouped by topic.
    """
    if limit is None or limit >= len(cases):
        return list(cases)
    if limit < 1:
        raise InvalidRequest(f"limit must be at least 1, not {limit}")
    return [cases[i * len(cases) // limit] for i in range(limit)]


def tool_defs(functions: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[ToolDef]:
    """BFCL function docs as graft tools (``convert_to_tool``, OpenAI completions style)."""
    tools = []
    for function in copy.deepcopy(list(functions)):
        parameters = dict(function.get("parameters") or {})
        parameters["type"] = "object"
        parameters["properties"] = _cast_to_openai_type(parameters.get("properties") or {})
        tools.append(
            ToolDef(
                openai_name(function["name"]),
                function.get("description", "") + _PYTHON_HINT,
                parameters,
                read_only=True,
            )
        )
    return tools


def openai_name(name: str) -> str:
    """A function name as OpenAI-style APIs accept it: BFCL turns ``.`` into ``_``."""
    return re.sub(r"\.", "_", name)


def _cast_to_openai_type(properties: dict[str, Any]) -> dict[str, Any]:
    # bfcl_eval/model_handler/utils.py _cast_to_openai_type, with GORILLA_TO_OPENAPI. BFCL
    # raises KeyError on an item type it does not know; here it becomes "string" as a
    # parameter's unknown type does (no row of the Python categories has one).
    for value in properties.values():
        kind = value.get("type")
        if kind is None:
            value["type"] = "string"
        else:
            if kind == "float":
                value["format"] = "float"
                value["description"] = value.get("description", "") + " This is a float type value."
            value["type"] = _TO_OPENAPI.get(kind, "string")
        if value["type"] in ("array", "object"):
            if "properties" in value:
                value["properties"] = _cast_to_openai_type(value["properties"])
            elif "items" in value:
                items = value["items"]
                items["type"] = _TO_OPENAPI.get(items.get("type"), "string")
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = _TO_OPENAPI.get(items["items"].get("type"), "string")
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _cast_to_openai_type(items["properties"])
    return properties


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise NotFound(f"BFCL file {str(path)!r} is missing: {_INSTALL}")
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
