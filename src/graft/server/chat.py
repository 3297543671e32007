"""``POST /v1/chat/completions`` and ``GET /v1/models``: the OpenAI-compatible surface.

A request becomes a ``TurnRequest`` and runs through ``run_turn``, like every other entry
point. Streaming answers start only once the model has produced something: an upstream
failure before that is a plain JSON error with its status (502, 503, 504), after it a
terminal ``error`` event followed by ``[DONE]``. A client that goes away cancels the turn
and its upstream request at once, before the response starts (watched here, streamed or
not) as after (``EventStream``); the turn is stored as ``interrupted``. Either way the
response is complete once the turn's last event is out; the turn is stored right after
(``graft.store.pending`` makes readers of the conversation wait for that).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager

import anyio
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive

from graft.events import NOTES, ErrorEvent, Event, TurnDone, TurnStarted
from graft.server.body import json_body, parse_json_body
from graft.server.deps import CurrentGraft, CurrentPrincipal, graft_of, principal_of
from graft.server.disconnect import DisconnectWatch
from graft.server.encode import ChunkEncoder, CompletionBuilder
from graft.server.errors import error_response
from graft.server.metrics import Metrics
from graft.server.ratelimit import turn_limits
from graft.server.schemas import ChatCompletionRequest
from graft.server.sse import EventStream

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible)",
    response_model=None,
    # The body is parsed by the route itself (see below); this documents it.
    openapi_extra={"requestBody": json_body(ChatCompletionRequest)},
    responses={
        200: {"description": "A chat.completion object, or an SSE stream of chunks."},
        400: {"description": "Invalid request"},
        401: {"description": "Missing or invalid API key"},
        404: {"description": "Unknown assistant or conversation"},
        413: {"description": "Body over the size limit"},
        429: {"description": "Over a rate limit, the token budget or the open streams"},
        502: {"description": "The upstream model failed"},
    },
)
async def chat_completions(request: Request) -> Response:
    """Run one chat turn. ``model`` names a graft assistant (``GET /v1/models``)."""
    # The hottest route parses its body in one step (pydantic reads the JSON itself) and
    # takes no dependencies: FastAPI's body handling and dependency resolution cost a fifth
    # of graft's own CPU per pass-through request (measured in-process).
    graft = graft_of(request)
    body = await parse_json_body(
        request, ChatCompletionRequest, max_depth=graft.settings.limits.max_json_depth
    )
    principal = principal_of(request)
    metrics: Metrics = request.app.state.metrics
    limits = turn_limits(request)
    if limits is not None:
        # Over the day's budget or the open streams: 429 before the turn begins.
        await limits.start_turn(stream=body.stream)
    events = graft.run_turn(body.to_turn(), principal)
    if limits is not None:
        events = limits.metered(events)
    # Until the response starts, a client that goes away cancels the turn (its upstream
    # request with it); the streamed response watches for that itself from then on.
    with _cancelled_on_disconnect(request.receive) as watch:
        started = await anext(events)  # raises request errors before anything is sent
        assert isinstance(started, TurnStarted)
        head: list[Event] = [started]
        first = await anext(events)
        while isinstance(first, NOTES):  # what middleware says of the user's message comes first
            head.append(first)
            first = await anext(events)
        if isinstance(first, ErrorEvent):
            metrics.observe(body.model, first)
            done = await anext(events, None)  # TurnDone: the failure counts against its model
            if done is not None:
                metrics.observe(body.model, done)
            await events.aclose()
            return error_response(first.status, first.message, first.type, first.code)
        head.append(first)
        headers = {"x-graft-conversation-id": started.conversation_id}
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            encoder = ChunkEncoder(body.model, include_usage=include_usage)
            return EventStream(
                _sse(encoder, head, events, metrics, body.model),
                headers={**_SSE_HEADERS, **headers},
                watch=graft.streams.watch(principal, started.conversation_id),
            )
        builder = CompletionBuilder(body.model)
        event: Event
        for event in head:
            builder.add(event)
            metrics.observe(body.model, event)
        while not isinstance(event, TurnDone):
            event = await anext(events)
            builder.add(event)
            metrics.observe(body.model, event)
        # The turn is stored once the answer has gone out (graft.store.pending).
        finish = BackgroundTask(_finish, events, metrics, body.model)
        if builder.error is not None:
            error = builder.error
            response = error_response(error.status, error.message, error.type, error.code)
            response.background = finish
            return response
        return Response(
            builder.body(), media_type="application/json", headers=headers, background=finish
        )
    # The client went away before its answer: the turn was stored as interrupted.
    assert watch.cancelled_caught
    await events.aclose()
    return Response(status_code=499)


@contextmanager
def _cancelled_on_disconnect(receive: Receive) -> Iterator[anyio.CancelScope]:
    """A cancel scope that the client's going away (``http.disconnect``) cancels."""
    with anyio.CancelScope() as scope:
        watch = DisconnectWatch(receive, scope.cancel)
        try:
            yield scope
        finally:
            # The body was read: the next message can only be the disconnect, and a
            # cancelled wait for it takes nothing from the queue (the stream waits next).
            watch.close()


async def _finish(events: AsyncGenerator[Event, None], metrics: Metrics, assistant: str) -> None:
    """Run the rest of a turn whose answer was sent: storing it."""
    try:
        async for event in events:
            metrics.observe(assistant, event)
    finally:
        await events.aclose()


async def _sse(
    encoder: ChunkEncoder,
    head: list[Event],
    events: AsyncGenerator[Event, None],
    metrics: Metrics,
    assistant: str,
) -> AsyncIterator[bytes]:
    try:
        for event in head:
            metrics.observe(assistant, event)
        # The events that were ready before the response started go out in one write.
        yield b"".join(encoder.encode(event) for event in head)
        async for event in events:
            metrics.observe(assistant, event)
            data = encoder.encode(event)
            if data:
                yield data
    finally:
        await events.aclose()


@router.get("/models", summary="List the assistants (OpenAI-compatible)")
async def list_models(graft: CurrentGraft, principal: CurrentPrincipal) -> dict[str, object]:
    """Every assistant this principal may use, in the OpenAI ``model`` list shape.

    The configured assistants, then those stored for the principal's tenant
    (``graft.assistants``), whose ``created`` is when they were first stored.
    """
    data = [
        {
            "id": entry.name,
            "object": "model",
            "created": int(entry.created_at.timestamp()) if entry.created_at else 0,
            "owned_by": "graft",
            "description": entry.settings.description,
            "graft_model": entry.settings.model or graft.settings.model,
        }
        for entry in await graft.catalog.entries(principal)
    ]
    return {"object": "list", "data": data}
