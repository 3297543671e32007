"""The ``Model`` protocol: one streaming call from messages and tools to chunks.

A provider turns a ``ModelRequest`` into an async iterator of chunks: text as it arrives,
complete tool calls, token usage, and the finish reason. Providers raise ``ModelError`` (or a
subclass) on failure; the agent loop decides whether that ends the turn. Tool calls are
yielded whole, never as fragments, so the loop stays simple and every provider assembles
streamed argument fragments itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from graft.messages import Message, ToolCall, Usage

if TYPE_CHECKING:
    from graft.config import Settings
    from graft.tools.base import ToolDef

__all__ = [
    "FinishChunk",
    "Model",
    "ModelChunk",
    "ModelFactory",
    "ModelRequest",
    "TextChunk",
    "ToolCallChunk",
    "UsageChunk",
]


@dataclass(slots=True)
class ModelRequest:
    """Everything one model call needs. ``tools`` is empty when no tool may be called."""

    messages: list[Message]
    tools: list[ToolDef] = field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] | str = "auto"
    """``auto``, ``none``, ``required`` or the name of one tool to force."""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    stream: bool = True
    """A hint: False lets a provider make one non-streaming upstream call (still yielded
    as chunks), which is cheaper when the caller wants the whole answer at once."""


@dataclass(slots=True)
class TextChunk:
    """A piece of text."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class ToolCallChunk:
    """One complete tool call."""

    call: ToolCall
    kind: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class UsageChunk:
    """Token usage of the call, when the provider reports it."""

    usage: Usage
    kind: Literal["usage"] = "usage"


@dataclass(slots=True)
class FinishChunk:
    """Why the model stopped: ``stop``, ``length`` or ``tool_calls``."""

    reason: Literal["stop", "length", "tool_calls"]
    kind: Literal["finish"] = "finish"


ModelChunk = TextChunk | ToolCallChunk | UsageChunk | FinishChunk


@runtime_checkable
class Model(Protocol):
    """A chat model. ``id`` is the full ``provider:name`` id."""

    id: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Run one call, yielding chunks as they arrive."""
        ...


ModelFactory = Callable[[str, "Settings"], Model]
"""Builds a model from its full id (``provider:name``) and the settings."""
