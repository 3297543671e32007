"""The docs are tested: every Python example runs, every hook and setting is documented.

Each fenced ```python block of ``docs/*.md`` and ``README.md`` runs on its own, as a fresh
module, with the working directory at a temporary folder. A block that prints and contains
``#>`` lines (``# >`` once formatted) must print exactly those lines. A block that defines
``test_*`` functions has them called (awaited when async), the way a plugin author's pytest
would. A block that talks to ``http://127.0.0.1:8080`` gets a live graft server there
instead, answered by a stand-in model. Code that is not meant to run (a ``pyproject.toml``
fragment, a shell session) carries its own language tag; an untagged fence is an error, so
nothing is skipped by accident.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import graft
from graft import hookspecs
from graft.config import Settings, load_settings
from graft.models.base import ModelRequest
from graft.runtime import Graft
from graft.testing import FunctionModel, Response, call

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
REQUIRED_DOCS = ("plugins.md", "configuration.md", "api.md")
PYTHON_TAGS = {"python", "py", "python3"}
SERVER_URL = "http://127.0.0.1:8080"
"""Where the examples expect a running graft; the test serves one and points them at it."""

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    """Line number of the block's first code line."""
    lang: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    files = sorted(DOCS.glob("*.md"))
    return [*files, README] if README.is_file() else files


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, dedented (blocks may sit inside list items)."""
    blocks: list[Block] = []
    opening: re.Match[str] | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if opening is None:
            opening = _FENCE.match(line)
            start, body = number + 1, []
            continue
        fence = opening["fence"]
        stripped = line.strip()
        if stripped.startswith(fence) and not stripped.strip(fence[0]):
            lang = opening["info"].lower()
            blocks.append(Block(path, start, lang, textwrap.dedent("\n".join(body))))
            opening = None
        else:
            body.append(line)
    assert opening is None, f"{path.name}: the fence opened on line {start - 1} is never closed"
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in fenced_blocks(path)]


def python_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.lang in PYTHON_TAGS]


def expected_output(code: str) -> list[str] | None:
    """The ``#>`` lines of a block (what it must print), or None when it has none."""
    # "# >" too: that is how ruff format writes a "#>" comment.
    found = []
    for line in code.splitlines():
        line = line.strip()
        for mark in ("# > ", "#> ", "# >", "#>"):
            if line.startswith(mark):
                found.append(line[len(mark) :])
                break
    return found or None


def markdown(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


# --- the stand-in model behind the API examples ------------------------------------------


def _unwrap(content: str | None) -> str:
    """The text inside graft's ``<tool-output>`` wrapper."""
    lines = (content or "").splitlines()
    return "\n".join(lines[1:-1]) if len(lines) >= 2 else (content or "")


def stand_in(request: ModelRequest) -> Response:
    """Answer the API examples plausibly: call the tool they ask for, then report its result."""
    last = request.messages[-1]
    offered = {tool.name for tool in request.tools}
    if last.role == "tool":
        result = _unwrap(last.content)
        try:
            data = json.loads(result)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "result" in data:
            return f"{data['expression']} = {data['result']}."
        return f"The tool says: {result}"
    text = last.content or ""
    asked = [m.content or "" for m in request.messages if m.role == "user"][:-1]
    arithmetic = re.search(r"\d[\d\s+\-*/^().]*\d", text)
    if "get_weather" in offered and "weather" in text.lower():
        city = re.search(r"in ([A-Z]\w+)", text)
        return [call("get_weather", city=city[1] if city else "Paris")]
    if "calculator" in offered and arithmetic:
        return [call("calculator", expression=arithmetic[0].strip())]
    if asked and "ask" in text.lower():
        return f"You asked: {asked[-1]}"
    return f"You said: {text}"


@pytest.fixture
def serve_examples(
    graft_factory: Callable[..., Graft], live_server: Callable[[Graft], Any]
) -> Callable[[], str]:
    """Start a live graft with the stand-in model; return its base URL."""

    def start() -> str:
        return str(live_server(graft_factory(FunctionModel(stand_in))).url)

    return start


# --- the tests ---------------------------------------------------------------------------


def test_the_docs_exist() -> None:
    for name in REQUIRED_DOCS:
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    assert python_blocks(), "the docs have no Python examples"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_names_its_language(path: Path) -> None:
    untagged = [block.line - 1 for block in fenced_blocks(path) if not block.lang]
    assert not untagged, (
        f"{path.name}: fences on lines {untagged} have no language; tag runnable code "
        "'python' and anything else 'toml', 'bash', 'text'..."
    )


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: b.name)
def test_python_example_runs(
    block: Block,
    serve_examples: Callable[[], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = block.code
    if SERVER_URL in code:
        code = code.replace(SERVER_URL, serve_examples())
    module_name = "docs_example_" + re.sub(r"\W", "_", block.name)
    module = types.ModuleType(module_name)
    monkeypatch.setitem(sys.modules, module_name, module)
    # Line numbers in tracebacks are those of the Markdown file.
    compiled = compile("\n" * (block.line - 1) + code, str(block.path), "exec")
    saved_environ = dict(os.environ)
    try:
        exec(compiled, module.__dict__)
        for name, value in list(vars(module).items()):
            if name.startswith("test_") and inspect.isfunction(value):
                result = value()
                if inspect.iscoroutine(result):
                    asyncio.run(result)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
    expected = expected_output(block.code)
    if expected is not None:
        printed = [line.rstrip() for line in capsys.readouterr().out.rstrip("\n").split("\n")]
        assert printed == expected, f"{block.name} printed something else than its #> lines"


def configuration_blocks() -> list[Block]:
    path = DOCS / "configuration.md"
    return [b for b in fenced_blocks(path) if b.lang == "toml"] if path.is_file() else []


@pytest.mark.parametrize("block", configuration_blocks(), ids=lambda b: b.name)
def test_configuration_examples_are_valid_settings(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "graft.toml"
    path.write_text(block.code, encoding="utf-8")
    load_settings(path)
    assert "api_key =" not in block.code, "API keys never go into the settings file"


def _hook_names() -> list[str]:
    return sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "graft_spec"))


def test_every_hook_has_a_heading_in_the_plugin_docs() -> None:
    headings = [line for line in markdown("plugins.md").splitlines() if line.startswith("#")]
    hooks = _hook_names()
    assert hooks, "no hooks found in graft.hookspecs"
    missing = [name for name in hooks if not any(f"`{name}`" in h for h in headings)]
    assert not missing, f"hooks without a heading in docs/plugins.md: {missing}"


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def setting_names(model: type[BaseModel]) -> set[str]:
    """Every field of ``model`` and of the models nested in it (lists, dicts, optionals)."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for nested in _models_in(field.annotation):
            names |= setting_names(nested)
    return names


def test_every_setting_is_documented() -> None:
    text = markdown("configuration.md")
    names = setting_names(Settings)
    assert {"model", "max_steps", "sha256", "api_key_env", "system_prompt"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"settings not mentioned in docs/configuration.md: {missing}"


def test_public_api_is_pinned() -> None:
    assert graft.__all__ == sorted(graft.__all__, key=str.casefold), "sort __all__ (casefold)"
    public = [
        name
        for name, value in vars(graft).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]
    assert graft.__all__ == sorted(public, key=str.casefold)
