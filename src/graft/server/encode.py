"""Turning graft events into OpenAI wire objects: stream chunks and whole completions.

Standard fields carry what OpenAI clients expect (text deltas, client tool calls, finish
reason, usage). graft's server-side tool activity travels in an extra ``graft`` field of
otherwise empty chunks, which standard clients ignore and graft-aware clients read.
JSON is written by hand-built dicts and pydantic-core's ``to_json`` (several times faster
than the standard library's ``json`` here): this is the hot path of streaming.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic_core import to_json

from graft.events import (
    ApprovalRequired,
    Citations,
    ClientToolCalls,
    ErrorEvent,
    Escalated,
    Event,
    SentimentTagged,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    TurnDone,
    TurnStarted,
)
from graft.messages import Usage, new_id

__all__ = ["END_OF_STREAM", "ChunkEncoder", "CompletionBuilder", "error_body"]

END_OF_STREAM = b"data: [DONE]\n\n"
"""The last SSE event of every stream: ``EventStream`` ends the response with it."""


def error_body(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _note(event: SentimentTagged | Escalated) -> dict[str, Any]:
    if isinstance(event, SentimentTagged):
        return {
            "event": "sentiment",
            "label": event.label,
            "score": round(event.score, 4),
            "emotion": event.emotion,
            "backend": event.backend,
        }
    return {
        "event": "escalation",
        "reason": event.reason,
        "negative_in_a_row": event.negative_in_a_row,
    }


def _citations(event: Citations) -> dict[str, Any]:
    return {"event": "citations", "stage": event.stage, "citations": event.citations}


def _tool_event(event: ApprovalRequired | ToolCallStarted | ToolResult) -> dict[str, Any]:
    if isinstance(event, ApprovalRequired):
        return {
            "event": "approval_required",
            "id": event.approval_id,
            "call_id": event.call.id,
            "name": event.call.name,
            "arguments": event.call.arguments,
            "timeout": event.timeout,
        }
    if isinstance(event, ToolCallStarted):
        return {
            "event": "tool_call",
            "id": event.call.id,
            "name": event.call.name,
            "arguments": event.call.arguments,
        }
    result = {
        "event": "tool_result",
        "id": event.call_id,
        "name": event.name,
        "content": event.content,
        "is_error": event.is_error,
        "duration_ms": round(event.duration_ms, 3),
    }
    if event.data is not None:
        result["data"] = event.data
    return result


class ChunkEncoder:
    """Encodes the events of one streamed turn as ``data: ...`` SSE lines."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = new_id("chatcmpl")
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self._prefix = (
            f'data: {{"id":"{self.id}","object":"chat.completion.chunk",'
            f'"created":{self.created},"model":{to_json(model).decode()},'
        ).encode()
        self._sent_role = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        if not self._sent_role:
            delta = {"role": "assistant", **delta}
            self._sent_role = True
        body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return self._prefix + to_json(body)[1:] + b"\n\n"

    def encode(self, event: Event) -> bytes:
        """Return the SSE bytes for one event (empty when the event has no wire form)."""
        if isinstance(event, TextDelta):
            if self._sent_role:  # fast path: the common case, one small dict
                return (
                    self._prefix
                    + b'"choices":[{"index":0,"delta":{"content":'
                    + to_json(event.text)
                    + b'},"finish_reason":null}]}\n\n'
                )
            return self._chunk({"content": event.text})
        if isinstance(event, TurnStarted):
            return self._chunk(
                {"content": ""},
                conversation_id=event.conversation_id,
                turn_id=event.turn_id,
                graft_model=event.model,
            )
        if isinstance(event, ApprovalRequired | ToolCallStarted | ToolResult):
            return self._chunk({}, graft=_tool_event(event))
        if isinstance(event, SentimentTagged | Escalated):
            return self._chunk({}, graft=_note(event))
        if isinstance(event, Citations):
            return self._chunk({}, graft=_citations(event))
        if isinstance(event, ClientToolCalls):
            calls = [{"index": i, **c.to_openai()} for i, c in enumerate(event.calls)]
            return self._chunk({"tool_calls": calls})
        if isinstance(event, ErrorEvent):
            body = error_body(event.message, event.type, event.code)
            return b"data: " + to_json(body) + b"\n\n"
        if isinstance(event, TurnDone):
            return self._done(event)
        return b""

    def _done(self, event: TurnDone) -> bytes:
        if event.finish_reason == "error":
            return END_OF_STREAM
        # The model that answered: another than the first chunk's after a canary's fallback.
        out = self._chunk({}, event.finish_reason, graft_model=event.model)
        if self.include_usage:
            usage = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": event.usage.to_openai(),
            }
            out += b"data: " + to_json(usage) + b"\n\n"
        return out + END_OF_STREAM


class CompletionBuilder:
    """Collects the events of one turn into a ``chat.completion`` object."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.client_calls: list[dict[str, Any]] = []
        self.tool_activity: list[dict[str, Any]] = []
        self.notes: dict[str, dict[str, Any]] = {}
        self.citations: dict[str, list[dict[str, Any]]] = {}
        self.finish_reason = "stop"
        self.usage = Usage()
        self.conversation_id: str | None = None
        self.turn_id: str | None = None
        self.graft_model = ""
        self.error: ErrorEvent | None = None

    def add(self, event: Event) -> None:
        """Take one event into account."""
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, TurnStarted):
            self.conversation_id = event.conversation_id
            self.turn_id = event.turn_id
        elif isinstance(event, ApprovalRequired | ToolCallStarted | ToolResult):
            self.tool_activity.append(_tool_event(event))
        elif isinstance(event, SentimentTagged | Escalated):
            note = _note(event)
            self.notes[note.pop("event")] = note
        elif isinstance(event, Citations):
            self.citations[event.stage] = event.citations
        elif isinstance(event, ClientToolCalls):
            self.client_calls.extend(c.to_openai() for c in event.calls)
        elif isinstance(event, ErrorEvent):
            self.error = event
        elif isinstance(event, TurnDone):
            self.finish_reason = event.finish_reason
            self.usage = event.usage
            self.graft_model = event.model

    def body(self) -> bytes:
        """The completion as JSON bytes."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.client_calls:
            message["tool_calls"] = self.client_calls
        completion: dict[str, Any] = {
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage.to_openai(),
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "graft_model": self.graft_model,
        }
        extra: dict[str, Any] = dict(self.notes)
        if "cited" in self.citations:
            extra["citations"] = self.citations["cited"]
        if "retrieved" in self.citations:
            extra["retrieved"] = self.citations["retrieved"]
        if self.tool_activity:
            extra["tool_activity"] = self.tool_activity
        if extra:
            completion["graft"] = extra
        return to_json(completion)
