"""OpenAIModel against a real HTTP/1.1 server on 127.0.0.1, scripted response by response.

The fake upstream is a small asyncio server in the test's own event loop: each request pops
the next handler, which writes the status line, headers and body (chunked for streams) by
hand, so tests can pace the stream, split events anywhere, stall or drop the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from graft.config import PROVIDER_PRESETS, ProviderSettings, Settings, load_settings
from graft.default_plugins import openai_models
from graft.default_plugins.openai_models import openai_compatible_factory
from graft.errors import ModelError, ModelTimeout, ModelUnavailable
from graft.messages import Message, ToolCall, Usage
from graft.models.base import (
    FinishChunk,
    Model,
    ModelChunk,
    ModelRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from graft.models.openai import OpenAIModel
from graft.server import create_app
from graft.tools.base import ToolDef

# --- the fake upstream ------------------------------------------------------------------


class Reply:
    """Writes one HTTP response onto the connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        )
        await self.send(head.encode() + body)

    async def start_stream(self) -> None:
        await self.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )

    async def chunk(self, data: bytes) -> None:
        await self.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def end(self) -> None:
        await self.send(b"0\r\n\r\n")


Handler = Callable[[Reply], Awaitable[bool]]
"""Answers one request; returns whether the connection stays open for the next one."""


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class Upstream:
    """An OpenAI-compatible server that answers each request with the next scripted handler."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []
        self.received: list[Received] = []
        self.errors: list[BaseException] = []
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.base_url = ""

    def script(self, *handlers: Handler) -> None:
        self.handlers.extend(handlers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a failed handler must fail its test, not vanish
            self.errors.append(exc)
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b""):
            name, value = raw.decode().split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append(Received(method, path, headers, json.loads(body)))
        if not self.handlers:
            raise AssertionError(f"unscripted request #{len(self.received)}")
        return await self.handlers.pop(0)(Reply(writer))


def event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    role: str | None = None,
) -> bytes:
    fields: dict[str, Any] = {}
    if role is not None:
        fields["role"] = role
    if content is not None:
        fields["content"] = content
    if tool_calls is not None:
        fields["tool_calls"] = tool_calls
    choice = {"index": 0, "delta": fields, "finish_reason": finish}
    return event({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]})


def usage_event(prompt: int, completion: int) -> bytes:
    counts = {"prompt_tokens": prompt, "completion_tokens": completion}
    return event({"id": "chatcmpl-1", "choices": [], "usage": counts})


DONE = b"data: [DONE]\n\n"


def sse(*events: bytes, end: bool = True) -> Handler:
    """Stream ``events`` one HTTP chunk each; ``end=False`` drops the connection after them."""

    async def handler(reply: Reply) -> bool:
        await reply.start_stream()
        for item in events:
            await reply.chunk(item)
        if end:
            await reply.end()
        return end

    return handler


def answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Handler:
    async def handler(reply: Reply) -> bool:
        await reply.json(status, payload, headers)
        return True

    return handler


def stall(seconds: float) -> Handler:
    """Say nothing for ``seconds``, then hang up."""

    async def handler(reply: Reply) -> bool:
        await asyncio.sleep(seconds)
        return False

    return handler


def hang_up() -> Handler:
    async def handler(reply: Reply) -> bool:
        return False

    return handler


def openai_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


HELLO = sse(delta("Hello"), delta(finish="stop"), DONE)


# --- fixtures and helpers -----------------------------------------------------------------

MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()
    assert not server.errors, server.errors


@pytest.fixture
async def opened() -> AsyncIterator[list[OpenAIModel]]:
    """Models to close at the end of the test (before the server stops)."""
    models: list[OpenAIModel] = []
    yield models
    for model in models:
        await model.aclose()


@pytest.fixture
def make_model(upstream: Upstream, opened: list[OpenAIModel]) -> MakeModel:
    def make(
        *,
        api_key: str | None = None,
        timeout: float = 2.0,
        max_retries: int = 2,
        retry_max_delay: float = 5.0,
    ) -> OpenAIModel:
        provider = ProviderSettings(
            base_url=upstream.base_url,
            api_key=SecretStr(api_key) if api_key else None,
            timeout=timeout,
            connect_timeout=1.0,
            max_retries=max_retries,
        )
        model = OpenAIModel(
            "vllm:m", provider, retry_base_delay=0.01, retry_max_delay=retry_max_delay
        )
        opened.append(model)
        return model

    return make


def ask(text: str = "hi", **options: Any) -> ModelRequest:
    return ModelRequest(messages=[Message("user", text)], **options)


async def collect(model: Model, request: ModelRequest) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


async def collect_until_error(
    model: Model, request: ModelRequest, error: type[ModelError]
) -> tuple[list[ModelChunk], ModelError]:
    chunks: list[ModelChunk] = []
    with pytest.raises(error) as caught:
        async for chunk in model.stream(request):
            chunks.append(chunk)
    return chunks, caught.value


# --- streaming ------------------------------------------------------------------------------


async def test_streams_text_as_it_arrives(upstream: Upstream, make_model: MakeModel) -> None:
    client_saw_first = asyncio.Event()

    async def paced(reply: Reply) -> bool:
        await reply.start_stream()
        await reply.chunk(delta(role="assistant", content=""))
        await reply.chunk(delta("Hel"))
        # Nothing more is sent until the client has yielded "Hel": proves no buffering.
        await asyncio.wait_for(client_saw_first.wait(), 2)
        await reply.chunk(delta("lo"))
        await reply.chunk(delta(finish="stop"))
        await reply.chunk(usage_event(7, 2))
        await reply.chunk(DONE)
        await reply.end()
        return True

    upstream.script(paced)
    chunks: list[ModelChunk] = []
    async for chunk in make_model().stream(ask()):
        chunks.append(chunk)
        if chunk == TextChunk("Hel"):
            client_saw_first.set()

    assert chunks == [
        TextChunk("Hel"),
        TextChunk("lo"),
        UsageChunk(Usage(7, 2)),
        FinishChunk("stop"),
    ]
    [request] = upstream.received
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_events_that_arrive_together_go_on_as_one_piece(
    upstream: Upstream, make_model: MakeModel
) -> None:
    # One read of the body holds five events: their text goes on as one chunk, and a tool
    # call finished in the same read still comes after the text before it.
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    together = (
        delta("a", role="assistant")
        + delta("b")
        + delta("c")
        + delta(tool_calls=[call])
        + delta(finish="tool_calls")
    )
    upstream.script(sse(together, delta("d"), DONE))
    assert await collect(make_model(), ask()) == [
        TextChunk("abc"),
        ToolCallChunk(ToolCall("c1", "f", "{}")),
        TextChunk("d"),
        FinishChunk("tool_calls"),
    ]


async def test_parses_sse_framing_split_anywhere(upstream: Upstream, make_model: MakeModel) -> None:
    finish = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    raw = (
        b": keep-alive comment\r\n\r\n"
        b"event: message\r\ndata:" + delta("a")[6:-2] + b"\r\n\r\n"
        # one event on two data lines, joined with a newline; an escape and raw UTF-8
        b'data: {"choices":[{"index":0,\r\n'
        b'data: "delta":{"content":"b\\u00e9\xe2\x82\xac"}}]}\r\n\r\n'
        b"id: 3\r\nretry: 100\r\ndata: " + finish.encode() + b"\n\n"
        b"data: [DONE]"  # no blank line before the body ends
    )

    async def split(reply: Reply) -> bool:
        await reply.start_stream()
        for start in range(0, len(raw), 7):
            await reply.chunk(raw[start : start + 7])
        await reply.end()
        return True

    upstream.script(split)
    assert await collect(make_model(), ask()) == [
        TextChunk("a"),
        TextChunk("bé€"),
        FinishChunk("stop"),
    ]


async def test_assembles_parallel_tool_calls_from_fragments(
    upstream: Upstream, make_model: MakeModel
) -> None:
    def fragment(index: int, arguments: str, **first: str) -> dict[str, Any]:
        out: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if first:
            out["id"] = first["id"]
            out["type"] = "function"
            out["function"]["name"] = first["name"]
        return out

    client_saw_calls = asyncio.Event()

    async def calls(reply: Reply) -> bool:
        await reply.start_stream()
        for item in (
            delta(role="assistant"),
            delta(tool_calls=[fragment(0, "", id="call_a", name="weather")]),
            delta(tool_calls=[fragment(1, "", id="call_b", name="clock")]),
            delta(tool_calls=[fragment(0, '{"ci')]),
            delta(tool_calls=[fragment(1, '{"tz":')]),
            delta(tool_calls=[fragment(0, 'ty": "Par'), fragment(1, ' "UTC"}')]),
            delta(tool_calls=[fragment(0, 'is"}')]),
            delta(finish="tool_calls"),
        ):
            await reply.chunk(item)
        # Complete calls are yielded when finish_reason arrives, before usage and [DONE].
        await asyncio.wait_for(client_saw_calls.wait(), 2)
        await reply.chunk(usage_event(20, 9))
        await reply.chunk(DONE)
        await reply.end()
        return True

    upstream.script(calls)
    weather = ToolDef("weather", "Weather in a city", {"type": "object", "properties": {}})
    chunks: list[ModelChunk] = []
    async for chunk in make_model().stream(ask(tools=[weather])):
        chunks.append(chunk)
        if len(chunks) == 2:
            client_saw_calls.set()

    assert chunks == [
        ToolCallChunk(ToolCall("call_a", "weather", '{"city": "Paris"}')),
        ToolCallChunk(ToolCall("call_b", "clock", '{"tz": "UTC"}')),
        UsageChunk(Usage(20, 9)),
        FinishChunk("tool_calls"),
    ]
    body = upstream.received[0].body
    assert body["tools"] == [weather.to_openai()]
    assert body["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("upstream_reason", "with_call", "reason"),
    [
        ("content_filter", False, "stop"),
        ("length", False, "length"),
        ("stop", True, "tool_calls"),  # servers that say "stop" after calling a tool
    ],
)
async def test_maps_finish_reasons(
    upstream: Upstream, make_model: MakeModel, upstream_reason: str, with_call: bool, reason: str
) -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "clock", "arguments": "{}"}}
    events = [delta(tool_calls=[call])] if with_call else [delta("x")]
    upstream.script(sse(*events, delta(finish=upstream_reason), DONE))
    chunks = await collect(make_model(), ask())
    assert chunks[-1] == FinishChunk(reason)  # type: ignore[arg-type]


async def test_finish_reason_without_done_is_a_complete_answer(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(sse(delta("a"), delta(finish="length")))
    assert await collect(make_model(), ask()) == [TextChunk("a"), FinishChunk("length")]


async def test_stream_that_ends_early_is_an_error(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(sse(delta("a")))  # a clean end of body, but no finish_reason nor [DONE]
    chunks, error = await collect_until_error(make_model(), ask(), ModelError)
    assert chunks == [TextChunk("a")]
    assert "ended early" in str(error)


@pytest.mark.parametrize(
    "bad",
    [b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: {"choices": ["x"]}\n\n'],
)
async def test_malformed_event_is_an_error(
    upstream: Upstream, make_model: MakeModel, bad: bytes
) -> None:
    upstream.script(sse(delta("a"), bad, DONE))
    chunks, error = await collect_until_error(make_model(), ask(), ModelError)
    assert chunks == [TextChunk("a")]
    assert "malformed" in str(error) or "unexpected shape" in str(error)
    assert len(upstream.received) == 1


async def test_tool_calls_without_index(upstream: Upstream, make_model: MakeModel) -> None:
    # Some servers send each call whole, without "index".
    calls = [
        {"id": "c1", "function": {"name": "clock", "arguments": {"tz": "UTC"}}},
        {"id": "c2", "function": {"name": "clock", "arguments": ""}},
    ]
    upstream.script(sse(delta(tool_calls=calls), delta(finish="tool_calls"), DONE))
    assert await collect(make_model(), ask()) == [
        ToolCallChunk(ToolCall("c1", "clock", '{"tz": "UTC"}')),
        ToolCallChunk(ToolCall("c2", "clock", "{}")),
        FinishChunk("tool_calls"),
    ]


async def test_error_event_mid_stream_is_an_error(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(sse(delta("a"), event(openai_error("the engine is overloaded"))))
    _, error = await collect_until_error(make_model(), ask(), ModelError)
    assert "the engine is overloaded" in str(error)


async def test_long_events_pass_up_to_the_line_limit(
    upstream: Upstream, make_model: MakeModel
) -> None:
    long_text = "x" * (3 * 1024 * 1024)  # whole tool arguments can come in one event
    too_long = b"data: " + b"y" * (5 * 1024 * 1024) + b"\n\n"
    upstream.script(sse(delta(long_text), delta(finish="stop"), DONE), sse(too_long, DONE))
    model = make_model()
    assert await collect(model, ask()) == [TextChunk(long_text), FinishChunk("stop")]
    _, error = await collect_until_error(model, ask(), ModelError)
    assert "over 4194304 bytes" in str(error)
    assert len(upstream.received) == 2


# --- non-streaming ------------------------------------------------------------------------


async def test_non_streaming_answer_of_wrong_shape_is_an_error(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(answer(200, {"object": "chat.completion", "choices": []}))
    _, error = await collect_until_error(make_model(), ask(stream=False), ModelError)
    assert "unexpected shape" in str(error)


async def test_non_streaming_call_and_request_options(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(
        answer(
            200,
            {
                "id": "chatcmpl-2",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "Let me look.",
                            "tool_calls": [
                                {
                                    "id": "call_1",
                                    "type": "function",
                                    "function": {
                                        "name": "weather",
                                        "arguments": '{"city":"Paris"}',
                                    },
                                }
                            ],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )
    )
    weather = ToolDef("weather", "Weather in a city")
    request = ask(
        stream=False,
        tools=[weather],
        tool_choice="weather",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        seed=7,
    )
    assert await collect(make_model(), request) == [
        TextChunk("Let me look."),
        ToolCallChunk(ToolCall("call_1", "weather", '{"city":"Paris"}')),
        UsageChunk(Usage(10, 5)),
        FinishChunk("tool_calls"),
    ]
    body = upstream.received[0].body
    assert "stream" not in body and "stream_options" not in body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.2, 0.9, 50)
    assert (body["stop"], body["seed"]) == (["\n\n"], 7)


# --- retries --------------------------------------------------------------------------------


async def test_retries_503_then_succeeds(upstream: Upstream, make_model: MakeModel) -> None:
    busy = answer(503, openai_error("busy"))
    upstream.script(busy, busy, HELLO)
    chunks = await collect(make_model(max_retries=2), ask())
    assert chunks == [TextChunk("Hello"), FinishChunk("stop")]
    assert len(upstream.received) == 3


async def test_gives_up_after_max_retries(upstream: Upstream, make_model: MakeModel) -> None:
    upstream.script(answer(503, openai_error("busy")), answer(502, b"<html>Bad gateway</html>"))
    _, error = await collect_until_error(make_model(max_retries=1), ask(), ModelError)
    assert str(error) == "upstream 'vllm' answered 502: <html>Bad gateway</html>"
    assert len(upstream.received) == 2


async def test_retries_a_connection_dropped_before_the_answer(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(hang_up(), HELLO)
    assert await collect(make_model(), ask()) == [TextChunk("Hello"), FinishChunk("stop")]
    assert len(upstream.received) == 2


@pytest.mark.parametrize(
    ("retry_after", "cap", "least", "most"),
    [("0.4", 5.0, 0.4, 2.0), ("3600", 0.2, 0.2, 2.0)],
)
async def test_honours_retry_after_up_to_the_cap(
    upstream: Upstream,
    make_model: MakeModel,
    retry_after: str,
    cap: float,
    least: float,
    most: float,
) -> None:
    upstream.script(answer(429, openai_error("slow down"), {"Retry-After": retry_after}), HELLO)
    model = make_model(retry_max_delay=cap)
    started = time.perf_counter()
    assert await collect(model, ask()) == [TextChunk("Hello"), FinishChunk("stop")]
    assert least <= time.perf_counter() - started < most
    assert len(upstream.received) == 2


async def test_never_retries_once_the_body_started(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(sse(delta("partial"), end=False), HELLO)
    chunks, error = await collect_until_error(make_model(max_retries=3), ask(), ModelError)
    assert chunks == [TextChunk("partial")]
    assert type(error) is ModelError
    assert len(upstream.received) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_fail_at_once_with_the_upstream_message(
    upstream: Upstream, make_model: MakeModel, status: int
) -> None:
    key = "sk-secret-123"
    upstream.script(answer(status, openai_error(f"Incorrect API key provided: {key}")))
    _, error = await collect_until_error(make_model(api_key=key, max_retries=3), ask(), ModelError)
    assert type(error) is ModelError
    assert str(error) == f"upstream 'vllm' answered {status}: Incorrect API key provided: …-123"
    assert key not in repr(error) and key not in repr(error.__cause__)
    assert len(upstream.received) == 1


ECHOED_KEY = "sk-echo-Wq2Er4Ty6Ui8Op0As1wxyz"


def echo_authorization(upstream: Upstream, status: int) -> Handler:
    """Answer ``status`` with an error body that repeats the request's Authorization header."""

    async def handler(reply: Reply) -> bool:
        header = upstream.received[-1].headers["authorization"]
        message = f"rejected Authorization: {header} (key {header.removeprefix('Bearer ')})"
        await reply.json(status, openai_error(message))
        return True

    return handler


async def test_an_upstream_echoing_the_key_is_masked_in_errors_and_logs(
    upstream: Upstream, make_model: MakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.script(echo_authorization(upstream, 503), echo_authorization(upstream, 401))
    caplog.set_level(logging.WARNING, logger="graft.models.openai")
    model = make_model(api_key=ECHOED_KEY, max_retries=1)
    _, error = await collect_until_error(model, ask(), ModelError)
    assert str(error) == (
        "upstream 'vllm' answered 401: rejected Authorization: Bearer sk-…wxyz (key sk-…wxyz)"
    )
    [retry] = caplog.records  # the 503 was logged before the retry
    assert "answered 503: rejected Authorization: Bearer sk-…wxyz" in retry.getMessage()
    assert ECHOED_KEY not in caplog.text
    upstream.script(sse(delta("a"), event(openai_error(f"bad key {ECHOED_KEY}"))))
    _, error = await collect_until_error(model, ask(), ModelError)
    assert str(error) == "upstream 'vllm' failed mid-answer: bad key sk-…wxyz"


async def test_an_echoed_key_never_reaches_the_client(
    upstream: Upstream, make_model: MakeModel, started: Callable[..., Any]
) -> None:
    upstream.script(echo_authorization(upstream, 401))
    graft = await started(make_model(api_key=ECHOED_KEY))
    transport = httpx.ASGITransport(app=create_app(graft))
    async with httpx.AsyncClient(transport=transport, base_url="http://graft") as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 502
    assert ECHOED_KEY not in response.text
    assert response.json()["error"]["message"] == (
        "upstream 'vllm' answered 401: rejected Authorization: Bearer sk-…wxyz (key sk-…wxyz)"
    )


async def test_a_key_at_the_cut_of_a_long_error_is_masked_before_the_cut(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(answer(400, openai_error("x" * 280 + f" key {ECHOED_KEY} " + "y" * 100)))
    _, error = await collect_until_error(make_model(api_key=ECHOED_KEY), ask(), ModelError)
    assert f" key sk-…wxyz {'y' * 5}" in str(error) and ECHOED_KEY[:8] not in str(error)


async def test_long_error_bodies_are_truncated(upstream: Upstream, make_model: MakeModel) -> None:
    upstream.script(answer(400, {"detail": "x" * 5000}))
    _, error = await collect_until_error(make_model(), ask(), ModelError)
    assert str(error).startswith("upstream 'vllm' answered 400: xxx")
    assert len(str(error)) < 400


async def test_redirects_are_not_followed(upstream: Upstream, make_model: MakeModel) -> None:
    upstream.script(answer(307, openai_error("moved"), {"Location": f"{upstream.base_url}/x"}))
    _, error = await collect_until_error(make_model(), ask(), ModelError)
    assert str(error) == "upstream 'vllm' answered 307: moved"
    assert len(upstream.received) == 1


# --- timeouts -------------------------------------------------------------------------------


async def test_silence_before_the_answer_is_retried(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(stall(0.6), HELLO)
    chunks = await collect(make_model(timeout=0.2), ask())
    assert chunks == [TextChunk("Hello"), FinishChunk("stop")]
    assert len(upstream.received) == 2


async def test_silence_before_the_answer_times_out(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(stall(0.6), stall(0.6))
    _, error = await collect_until_error(
        make_model(timeout=0.2, max_retries=1), ask(), ModelTimeout
    )
    assert "sent nothing for 0.2 s" in str(error)
    assert len(upstream.received) == 2


async def test_silence_mid_stream_times_out_without_retry(
    upstream: Upstream, make_model: MakeModel
) -> None:
    async def stalls(reply: Reply) -> bool:
        await reply.start_stream()
        await reply.chunk(delta("a"))
        await asyncio.sleep(0.6)
        return False

    upstream.script(stalls, HELLO)
    chunks, _ = await collect_until_error(make_model(timeout=0.2), ask(), ModelTimeout)
    assert chunks == [TextChunk("a")]
    assert len(upstream.received) == 1


# --- keys, configuration, connections -------------------------------------------------------


async def test_authorization_header_only_when_a_key_is_set(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(HELLO, HELLO)
    await collect(make_model(api_key="sk-abc"), ask())
    await collect(make_model(), ask())
    with_key, without_key = upstream.received
    assert with_key.headers["authorization"] == "Bearer sk-abc"
    assert "authorization" not in without_key.headers


async def test_missing_api_key_names_the_variable(
    upstream: Upstream, opened: list[OpenAIModel]
) -> None:
    preset = PROVIDER_PRESETS["openai"].model_copy(update={"base_url": upstream.base_url})
    model = OpenAIModel("openai:gpt-4o-mini", preset)
    opened.append(model)
    _, error = await collect_until_error(model, ask(), ModelUnavailable)
    assert "OPENAI_API_KEY" in str(error)
    assert upstream.received == []


@pytest.mark.parametrize("base_url", [None, "localhost:8000/v1", "ftp://host/v1"])
async def test_missing_or_bad_base_url_is_unavailable(base_url: str | None) -> None:
    model = OpenAIModel("mine:m", ProviderSettings(base_url=base_url))
    with pytest.raises(ModelUnavailable, match="base_url"):
        await collect(model, ask())


async def test_unreachable_upstream_is_retried_then_an_error(
    upstream: Upstream, opened: list[OpenAIModel]
) -> None:
    await upstream.stop()  # nothing listens on the port any more
    provider = ProviderSettings(base_url=upstream.base_url, max_retries=2)
    model = OpenAIModel("vllm:m", provider, retry_base_delay=0.05)
    opened.append(model)
    started = time.perf_counter()
    _, error = await collect_until_error(model, ask(), ModelError)
    assert str(error).startswith("request to upstream 'vllm' failed: ClientConnectorError")
    assert time.perf_counter() - started >= 0.05 * 0.5 + 0.1 * 0.5  # two backoffs


async def test_reuses_one_connection_until_closed(
    upstream: Upstream, make_model: MakeModel
) -> None:
    upstream.script(HELLO, HELLO, answer(200, {"choices": [{"message": {"content": "x"}}]}), HELLO)
    model = make_model()
    await collect(model, ask())
    await collect(model, ask())
    await collect(model, ask(stream=False))
    assert upstream.connections == 1
    await model.aclose()
    await collect(model, ask())
    assert upstream.connections == 2


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def test_uses_the_proxy_the_environment_names(
    upstream: Upstream, opened: list[OpenAIModel], no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", upstream.base_url.removesuffix("/v1"))
    no_proxy_env.setenv("NO_PROXY", "elsewhere.invalid")
    model = OpenAIModel("vllm:m", ProviderSettings(base_url="http://upstream.invalid/v1"))
    opened.append(model)
    upstream.script(HELLO)
    assert await collect(model, ask()) == [TextChunk("Hello"), FinishChunk("stop")]
    assert upstream.received[0].path == "http://upstream.invalid/v1/chat/completions"


async def test_no_proxy_bypasses_the_proxy(
    upstream: Upstream, make_model: MakeModel, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    no_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    upstream.script(HELLO)
    assert await collect(make_model(), ask()) == [TextChunk("Hello"), FinishChunk("stop")]
    assert upstream.received[0].path == "/v1/chat/completions"


async def test_a_socks_proxy_is_unavailable_without_leaking_its_password(
    make_model: MakeModel, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("ALL_PROXY", "socks5://user:hunter2@127.0.0.1:1080")
    _, error = await collect_until_error(make_model(), ask(), ModelUnavailable)
    assert "socks5:// proxy" in str(error)
    assert "hunter2" not in str(error)


async def test_serves_many_concurrent_streams(upstream: Upstream, make_model: MakeModel) -> None:
    async def slow_hello(reply: Reply) -> bool:
        await reply.start_stream()
        await asyncio.sleep(0.05)
        for item in (delta("Hello"), delta(finish="stop"), DONE):
            await reply.chunk(item)
        await reply.end()
        return True

    upstream.script(*[slow_hello] * 60)
    model = make_model()
    results = await asyncio.gather(*(collect(model, ask()) for _ in range(60)))
    assert all(chunks == [TextChunk("Hello"), FinishChunk("stop")] for chunks in results)
    assert len(upstream.received) == 60


async def test_max_connections_bounds_the_streams_open_at_once(
    upstream: Upstream, opened: list[OpenAIModel]
) -> None:
    open_now = peak = 0

    async def held_hello(reply: Reply) -> bool:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        await reply.start_stream()
        await asyncio.sleep(0.2)
        for item in (delta("Hello"), delta(finish="stop"), DONE):
            await reply.chunk(item)
        await reply.end()
        open_now -= 1
        return True

    upstream.script(*[held_hello] * 5)
    provider = ProviderSettings(base_url=upstream.base_url, connect_timeout=2.0, max_connections=2)
    model = OpenAIModel("vllm:m", provider)
    opened.append(model)
    results = await asyncio.gather(*(collect(model, ask()) for _ in range(5)))
    # Every stream is answered; those past the limit waited for a free connection.
    assert all(chunks == [TextChunk("Hello"), FinishChunk("stop")] for chunks in results)
    assert peak == 2


# --- the default plugin ---------------------------------------------------------------------


def test_registers_every_preset_with_one_factory() -> None:
    registered: dict[str, object] = {}
    openai_models.register_models(lambda name, factory: registered.update({name: factory}))
    assert registered == dict.fromkeys(PROVIDER_PRESETS, openai_compatible_factory)


def test_factory_refuses_unknown_providers() -> None:
    with pytest.raises(ModelUnavailable, match="nowhere"):
        openai_compatible_factory("nowhere:m", Settings())


async def test_factory_builds_custom_providers(
    upstream: Upstream, opened: list[OpenAIModel]
) -> None:
    settings = Settings(providers={"mine": ProviderSettings(base_url=upstream.base_url)})
    model = openai_compatible_factory("mine:org/model:7b", settings)
    opened.append(model)
    upstream.script(HELLO)
    assert (model.id, model.name) == ("mine:org/model:7b", "org/model:7b")
    assert await collect(model, ask()) == [TextChunk("Hello"), FinishChunk("stop")]
    assert upstream.received[0].body["model"] == "org/model:7b"


async def test_factory_uses_the_key_from_the_environment(
    upstream: Upstream,
    opened: list[OpenAIModel],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAFT_CONFIG", raising=False)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek")
    monkeypatch.setenv("GRAFT_PROVIDERS__DEEPSEEK__BASE_URL", upstream.base_url)
    model = openai_compatible_factory("deepseek:deepseek-chat", load_settings())
    opened.append(model)
    upstream.script(HELLO)
    await collect(model, ask())
    assert upstream.received[0].headers["authorization"] == "Bearer sk-deepseek"
    assert upstream.received[0].body["model"] == "deepseek-chat"
