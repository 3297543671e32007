"""The ``Toolset`` protocol every source of tools implements, and the tool definition.

A toolset lists the tools a context may see and runs one call. Each tool says whether it
only reads (``read_only``) or may have side effects, which decides when a call needs the
user's approval. Arguments arrive already
parsed from JSON; a toolset raises ``ToolArgumentError`` when they do not fit, which the
agent loop sends back to the model. Results may be any JSON-serialisable value:
``format_result`` turns them into the text the model reads. A tool that has something for the
client besides (the rows of a query, for a table in the UI) returns a ``ToolOutput``: its
``text`` goes to the model, its ``data`` into the ``tool_result`` event of the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from graft.context import Context

__all__ = ["ToolDef", "ToolOutput", "Toolset", "format_result"]


@dataclass(frozen=True, slots=True)
class ToolDef:
    """What the model is told about one tool."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON schema of the arguments object."""
    timeout: float | None = None
    """Seconds; ``None`` uses ``limits.tool_timeout``."""
    read_only: bool = False
    """Whether the tool only reads. A tool that may change or send anything (the default,
    as the safe assumption) needs the user's approval once the turn has read untrusted
    content (``graft.approvals``)."""

    def to_openai(self) -> dict[str, Any]:
        """Return the definition in the OpenAI ``tools`` wire shape."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@runtime_checkable
class Toolset(Protocol):
    """A source of tools."""

    name: str
    """Short identifier, shown by ``graft tools list``."""

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """Return the tools visible in this context."""
        ...

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> Any:
        """Run one tool; raise ``ToolError`` subclasses for failures the model should see."""
        ...


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A tool's result in two forms: ``text`` for the model, ``data`` for the client."""

    text: str
    data: dict[str, Any] | None = None
    """JSON-serialisable; sent with the ``tool_result`` event, never shown to the model."""


def format_result(value: Any) -> str:
    """Turn a tool's return value into text for the model (JSON unless it is a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, ToolOutput):
        return value.text
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
