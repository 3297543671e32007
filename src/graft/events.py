"""What streams out of a chat turn.

The agent loop and ``run_turn`` are async generators of these events. The HTTP layer turns
them into OpenAI chunks, the CLI prints them, the store records them and tests assert on
them: one vocabulary for every consumer. Each event has a ``kind`` tag so consumers can
``match`` on it and serialise it without a type registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from graft.messages import ToolCall, Usage

__all__ = [
    "ApprovalRequired",
    "ClientToolCalls",
    "ErrorEvent",
    "Escalated",
    "Event",
    "FinishReason",
    "NOTES",
    "Citations",
    "SentimentTagged",
    "TextDelta",
    "ToolCallStarted",
    "ToolResult",
    "TurnDone",
    "TurnStarted",
]

FinishReason = Literal["stop", "length", "tool_calls", "error"]


@dataclass(slots=True)
class TurnStarted:
    """The turn is accepted and the user's message is stored."""

    conversation_id: str
    turn_id: str
    model: str = ""
    """The model id the turn is routed to (``graft.model_routing``)."""
    kind: Literal["turn_started"] = "turn_started"


@dataclass(slots=True)
class TextDelta:
    """A piece of the assistant's answer."""

    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(slots=True)
class ToolCallStarted:
    """graft is running one of its own tools (server side)."""

    call: ToolCall
    kind: Literal["tool_call_started"] = "tool_call_started"


@dataclass(slots=True)
class ApprovalRequired:
    """A tool call waits for the user's yes or no (``graft.approvals``)."""

    approval_id: str
    call: ToolCall
    timeout: float
    """Seconds until no answer counts as a denial."""
    kind: Literal["approval_required"] = "approval_required"


@dataclass(slots=True)
class ToolResult:
    """A server-side tool finished; ``content`` is what the model will see (unwrapped)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    duration_ms: float = 0.0
    data: dict[str, Any] | None = None
    """What the tool gave the client besides (``graft.tools.base.ToolOutput``)."""
    kind: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class ClientToolCalls:
    """The model called tools that the client declared; the client must run them."""

    calls: list[ToolCall] = field(default_factory=list)
    kind: Literal["client_tool_calls"] = "client_tool_calls"


@dataclass(slots=True)
class ErrorEvent:
    """The turn failed after it started streaming. Always followed by ``TurnDone``."""

    message: str
    type: str = "server_error"
    code: str | None = None
    status: int = 500
    """The HTTP status this error maps to, used when nothing was streamed yet."""
    kind: Literal["error"] = "error"


@dataclass(slots=True)
class SentimentTagged:
    """The user's message was read for sentiment (the ``sentiment`` middleware)."""

    label: str
    """``negative``, ``neutral`` or ``positive``."""
    score: float
    """Confidence in ``label``, 0 to 1."""
    emotion: str | None = None
    backend: str = ""
    kind: Literal["sentiment"] = "sentiment"


@dataclass(slots=True)
class Escalated:
    """An assistant's escalation rule fired (e.g. several negative messages in a row)."""

    reason: str
    negative_in_a_row: int = 0
    kind: Literal["escalation"] = "escalation"


@dataclass(slots=True)
class TurnDone:
    """The turn is over; ``usage`` sums every model call in it."""

    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    """The model id that answered, set by ``run_turn`` (``graft.model_routing``)."""
    route: str = ""
    """``primary``, ``canary``, or ``fallback`` (the canary failed, the primary answered)."""
    first_token_ms: float | None = None
    """From the agent loop's start to its first event; ``None`` if it produced none."""
    duration_ms: float | None = None
    """From the turn's start to this event."""
    kind: Literal["turn_done"] = "turn_done"


@dataclass(slots=True)
class Citations:
    """Passages of documents: ``retrieved`` for the model before it answers, or ``cited``.

    Each citation is a dict (``n``, title, source, section, page, offsets, text) that the
    client can show as a footnote; ``cited`` lists those the answer's ``[n]`` markers name.
    """

    citations: list[dict[str, Any]]
    stage: Literal["retrieved", "cited"] = "cited"
    kind: Literal["citations"] = "citations"


Event = (
    TurnStarted
    | TextDelta
    | ApprovalRequired
    | ToolCallStarted
    | ToolResult
    | ClientToolCalls
    | ErrorEvent
    | SentimentTagged
    | Escalated
    | Citations
    | TurnDone
)
NOTES = (SentimentTagged, Escalated)
"""Events about the user's message that middleware sends before the model's first event."""
