"""What one eval case's turn did: the events of ``run_turn`` folded into a ``Transcript``.

Checks read the transcript, never the raw events: the answer text, the tool calls with
their arguments and results, the passages the answer cites, the error if the turn failed,
and how long it took. Reports show it as the case's transcript, so it also keeps the
conversation that was asked and every step in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from graft.events import (
    ApprovalRequired,
    Citations,
    ClientToolCalls,
    ErrorEvent,
    Event,
    SentimentTagged,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    TurnDone,
    TurnStarted,
)
from graft.messages import Message

__all__ = ["Step", "ToolUse", "Transcript"]


@dataclass(slots=True)
class ToolUse:
    """One tool call of the turn and, once it ran, its result."""

    call_id: str
    name: str
    arguments_text: str
    result: str | None = None
    is_error: bool = False
    denied: bool = False
    """The call needed an approval, which an eval run never gives."""

    @property
    def arguments(self) -> dict[str, Any] | None:
        """The arguments as JSON, or None when the model wrote no JSON object."""
        try:
            parsed = json.loads(self.arguments_text or "{}")
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None


@dataclass(slots=True)
class Step:
    """One line of the transcript: who said or did what."""

    kind: Literal["message", "text", "tool_call", "tool_result", "citations", "note", "error"]
    role: str
    text: str


@dataclass(slots=True)
class Transcript:
    """Everything a case's turn produced, in the order it happened."""

    conversation: list[Message] = field(default_factory=list)
    answer: str = ""
    tools: list[ToolUse] = field(default_factory=list)
    cited: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    finish_reason: str | None = None
    latency_ms: float = 0.0
    conversation_id: str | None = None
    turn_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.steps:
            for message in self.conversation:
                self.steps.append(Step("message", message.role, _message_text(message)))

    def add(self, event: Event) -> None:
        """Fold one event of the turn in."""
        if isinstance(event, TextDelta):
            self.answer += event.text
            if self.steps and self.steps[-1].kind == "text":
                self.steps[-1].text += event.text
            else:
                self.steps.append(Step("text", "assistant", event.text))
        elif isinstance(event, ToolCallStarted):
            self._call(event.call.id, event.call.name, event.call.arguments)
        elif isinstance(event, ToolResult):
            self._result(event)
        elif isinstance(event, ApprovalRequired):
            use = self._call(event.call.id, event.call.name, event.call.arguments)
            use.denied = True
            self.steps.append(Step("note", "eval", f"{event.call.name} needs approval: denied"))
        elif isinstance(event, ClientToolCalls):
            for call in event.calls:
                self._call(call.id, call.name, call.arguments)
        else:
            self._other(event)

    def _other(self, event: Event) -> None:
        if isinstance(event, TurnStarted):
            self.conversation_id, self.turn_id = event.conversation_id, event.turn_id
        elif isinstance(event, Citations) and event.stage == "cited":
            self.cited = list(event.citations)
            titles = ", ".join(f"[{c.get('n')}] {c.get('title')}" for c in event.citations)
            self.steps.append(Step("citations", "assistant", titles))
        elif isinstance(event, SentimentTagged):
            self.steps.append(Step("note", "graft", f"user sentiment: {event.label}"))
        elif isinstance(event, ErrorEvent):
            self.fail(event.message)
        elif isinstance(event, TurnDone):
            self.finish_reason = event.finish_reason
            self.prompt_tokens = event.usage.prompt_tokens
            self.completion_tokens = event.usage.completion_tokens

    def fail(self, message: str) -> None:
        """Record that the turn failed (an error event, or an exception before one)."""
        self.error = message
        self.steps.append(Step("error", "graft", message))

    def _call(self, call_id: str, name: str, arguments: str) -> ToolUse:
        for use in self.tools:
            if use.call_id == call_id:
                return use
        use = ToolUse(call_id, name, arguments)
        self.tools.append(use)
        self.steps.append(Step("tool_call", "assistant", f"{name}({arguments})"))
        return use

    def _result(self, event: ToolResult) -> None:
        use = next((u for u in self.tools if u.call_id == event.call_id), None)
        if use is None:
            use = self._call(event.call_id, event.name, "")
        use.result, use.is_error = event.content, event.is_error
        role = f"tool {event.name}" + (" (error)" if event.is_error else "")
        self.steps.append(Step("tool_result", role, event.content))

    def to_json(self) -> dict[str, Any]:
        """The transcript as plain JSON (``graft eval --json``)."""
        return {
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "answer": self.answer,
            "tools": [
                {
                    "name": u.name,
                    "arguments": u.arguments_text,
                    "result": u.result,
                    "is_error": u.is_error,
                    "denied": u.denied,
                }
                for u in self.tools
            ],
            "cited": self.cited,
            "error": self.error,
            "finish_reason": self.finish_reason,
            "latency_ms": round(self.latency_ms, 1),
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
            "steps": [{"kind": s.kind, "role": s.role, "text": s.text} for s in self.steps],
        }


def _message_text(message: Message) -> str:
    calls = "".join(f"\n→ {c.name}({c.arguments})" for c in message.tool_calls)
    return (message.content or "") + calls
