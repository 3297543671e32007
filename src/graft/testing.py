"""Fakes for testing graft and its plugins: scripted and computed models, an in-memory store.

``FakeModel`` answers from a script, one response per model call; ``FunctionModel`` computes
each response from the request. Both implement the real ``Model`` protocol, so tests drive
the real agent loop, turn and server with fake I/O, and both record every request they get.
A response is text, a tool call made with ``call()``, an exception to raise, or a list of
these (text and calls are streamed in order; an exception in a list is raised mid-stream)::

    model = FakeModel([call("calculator", expression="6*7")], "The answer is 42.")
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from graft.errors import ModelError
from graft.messages import ToolCall, Usage, new_id
from graft.models.base import (
    FinishChunk,
    ModelChunk,
    ModelRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from graft.store.memory import MemoryStore

__all__ = ["FakeModel", "FunctionModel", "MemoryStore", "Response", "call"]

ResponseItem: TypeAlias = str | ToolCall | BaseException
Response: TypeAlias = ResponseItem | Sequence[ResponseItem]


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for a scripted response."""
    return ToolCall(new_id("call"), name, json.dumps(arguments, ensure_ascii=False))


async def _play(response: Response, request: ModelRequest) -> AsyncIterator[ModelChunk]:
    items: Sequence[ResponseItem] = (
        [response] if isinstance(response, str | ToolCall | BaseException) else response
    )
    prompt_tokens = sum(len((m.content or "").split()) for m in request.messages)
    completion_tokens = 0
    calls = 0
    for item in items:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ToolCall):
            calls += 1
            yield ToolCallChunk(item)
            continue
        for piece in re.findall(r"\S+\s*|\s+", item):
            completion_tokens += 1
            yield TextChunk(piece)
    yield UsageChunk(Usage(prompt_tokens, completion_tokens))
    yield FinishChunk("tool_calls" if calls else "stop")


class FakeModel:
    """A model that plays scripted responses in order, one per call."""

    def __init__(self, *responses: Response, id: str = "test:fake") -> None:
        self.id = id
        self.responses = list(responses)
        self.requests: list[ModelRequest] = []

    def add(self, *responses: Response) -> None:
        """Append responses to the script."""
        self.responses.extend(responses)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Play the next scripted response."""
        self.requests.append(request)
        if not self.responses:
            raise ModelError("FakeModel has no scripted response left")
        async for chunk in _play(self.responses.pop(0), request):
            yield chunk


ModelFunction: TypeAlias = Callable[[ModelRequest], Response | Awaitable[Response]]


class FunctionModel:
    """A model whose every response is computed by ``function(request)`` (sync or async)."""

    def __init__(self, function: ModelFunction, *, id: str = "test:function") -> None:
        self.id = id
        self.function = function
        self.requests: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Compute and play the response."""
        self.requests.append(request)
        result = self.function(request)
        response: Response = await result if inspect.isawaitable(result) else result
        async for chunk in _play(response, request):
            yield chunk
