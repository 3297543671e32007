"""Python functions as tools: ``@tool`` turns a typed function with a docstring into a tool.

The signature is the schema: each parameter becomes a property of a pydantic model whose JSON
schema the model sees and which validates the model's arguments. ``Annotated`` constraints
(``Field(max_length=...)``, ``Literal`` choices) flow into the schema, which also bounds what
the embedded model's constrained decoder may produce. A parameter annotated ``Context`` is
injected, never shown to the model. Sync functions run in a worker thread so they cannot
stall the event loop (on timeout the caller is answered at once and the thread is left to
finish); async functions are awaited.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, get_type_hints, overload

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from graft.context import Context
from graft.errors import ToolArgumentError, ToolNotFound
from graft.tools.base import ToolDef

__all__ = ["FunctionTool", "FunctionToolset", "tool"]

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and ``Args:`` entries."""
    doc = inspect.cleandoc(doc)
    description, params = [], {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        header = stripped.rstrip(":").lower()
        if stripped.endswith(":") and header in {
            "args",
            "arguments",
            "parameters",
            "returns",
            "raises",
        }:
            section = header
            continue
        if section in {"args", "arguments", "parameters"} and stripped:
            match = re.match(r"^(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", stripped)
            if match and line.startswith((" ", "\t")) and not line.startswith("        "):
                current = match.group(1)
                params[current] = match.group(3)
            elif current:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section is None:
            description.append(line)
    return "\n".join(description).strip(), params


def _format_validation_error(name: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )
    return f"invalid arguments for tool {name!r}: {problems}"


class FunctionTool:
    """A Python function exposed as a tool."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        read_only: bool = False,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        if not _TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_TOOL_NAME.pattern}")
        doc_description, param_docs = _parse_docstring(func.__doc__ or "")
        self.description = description or doc_description
        if not self.description:
            raise ValueError(f"tool {self.name!r} needs a docstring or a description")
        self.is_async = inspect.iscoroutinefunction(func)
        self._context_param: str | None = None
        self.args_model = self._build_model(param_docs)
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        self.definition = ToolDef(self.name, self.description, schema, timeout, read_only)

    def _build_model(self, param_docs: dict[str, str]) -> type[BaseModel]:
        hints = get_type_hints(self.func, include_extras=True)
        fields: dict[str, Any] = {}
        for param in inspect.signature(self.func).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {self.name!r}: *args and **kwargs cannot form a schema")
            annotation = hints.get(param.name, Any)
            if annotation is Context:
                self._context_param = param.name
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (
                annotation,
                Field(default, description=param_docs.get(param.name)),
            )
        return create_model(
            f"{self.name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against the schema and return them coerced."""
        try:
            parsed = self.args_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolArgumentError(_format_validation_error(self.name, exc)) from None
        return {key: getattr(parsed, key) for key in type(parsed).model_fields}

    async def call(self, arguments: dict[str, Any], ctx: Context) -> Any:
        """Validate and run the function."""
        kwargs = self.validate(arguments)
        if self._context_param:
            kwargs[self._context_param] = ctx
        if self.is_async:
            return await self.func(**kwargs)
        # abandon_on_cancel: a timeout returns at once; the thread finishes in the background.
        return await anyio.to_thread.run_sync(lambda: self.func(**kwargs), abandon_on_cancel=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, as plain Python."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<FunctionTool {self.name}>"


@overload
def tool(func: Callable[..., Any], /) -> FunctionTool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    read_only: bool = False,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...
def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    read_only: bool = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a typed function with a docstring into a tool.

    Usable bare (``@tool``) or with options (``@tool(name="add", timeout=5)``). Declare
    ``read_only=True`` for a tool that changes and sends nothing: others need the user's
    approval when the turn has read untrusted content.
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            f, name=name, description=description, timeout=timeout, read_only=read_only
        )

    return wrap(func) if func is not None else wrap


class FunctionToolset:
    """A toolset of ``FunctionTool`` objects (plain functions are wrapped with ``@tool``)."""

    def __init__(
        self, tools: Sequence[FunctionTool | Callable[..., Any]] = (), *, name: str = "functions"
    ) -> None:
        self.name = name
        self.tools: dict[str, FunctionTool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: FunctionTool | Callable[..., Any]) -> FunctionTool:
        """Add one tool; names must be unique within the toolset."""
        function_tool = item if isinstance(item, FunctionTool) else FunctionTool(item)
        if function_tool.name in self.tools:
            raise ValueError(f"tool {function_tool.name!r} is registered twice")
        self.tools[function_tool.name] = function_tool
        return function_tool

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """Every tool of the set."""
        return [t.definition for t in self.tools.values()]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> Any:
        """Run the named tool."""
        found = self.tools.get(name)
        if found is None:
            raise ToolNotFound(f"no tool named {name!r}")
        return await found.call(arguments, ctx)
