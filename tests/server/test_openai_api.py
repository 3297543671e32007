"""The OpenAI-compatible routes, driven by the official `openai` client against a real server."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from graft.errors import ModelError, ModelTimeout
from graft.models.base import ModelRequest, TextChunk
from graft.testing import FakeModel, call


@pytest.fixture
def serve(graft_factory, live_server):
    def start(model: FakeModel, **overrides):
        graft = graft_factory(model, **overrides)
        server = live_server(graft)
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        return server, client

    return start


def test_non_streaming_completion(serve) -> None:
    server, client = serve(FakeModel("Hello from graft."))
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hello from graft."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "default"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert completion.model_extra["conversation_id"].startswith("conv_")
    # The turn's id, for feedback on this answer (POST /v1/feedback).
    assert completion.model_extra["turn_id"].startswith("turn_")


def test_streaming_completion_ends_with_done(serve) -> None:
    server, client = serve(FakeModel("one two three", "again"))
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    raw = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "x"}], "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in raw.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["conversation_id"].startswith("conv_")
    assert first["turn_id"].startswith("turn_")


def test_server_tool_activity_rides_in_extra_fields(serve) -> None:
    server, client = serve(FakeModel([call("calculator", expression="6*7")], "42"))
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "6*7?"}], stream=True
    )
    extras = [c.model_extra.get("graft") for c in stream if c.model_extra.get("graft")]
    assert [e["event"] for e in extras] == ["tool_call", "tool_result"]
    assert extras[0]["name"] == "calculator"
    assert json.loads(extras[1]["content"])["result"] == 42


def test_client_side_function_calling_round_trip(serve) -> None:
    model = FakeModel([call("get_weather", city="Paris")], "It is sunny in Paris.")
    server, client = serve(model)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages: list[dict] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="default", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 24C"},
    ]
    second = client.chat.completions.create(model="default", messages=messages, tools=tools)
    assert second.choices[0].message.content == "It is sunny in Paris."
    sent = model.requests[-1].messages
    assert sent[-1].role == "tool" and "sunny, 24C" in (sent[-1].content or "")
    assert sent[-2].tool_calls[0].name == "get_weather"


def test_streamed_client_tool_calls(serve) -> None:
    server, client = serve(FakeModel([call("lookup", q="x")]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = list(
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}], tools=tools, stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "lookup"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stateful_conversation_by_id(serve) -> None:
    model = FakeModel("first answer", "second answer")
    server, client = serve(model)
    first = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "one"}]
    )
    conversation_id = first.model_extra["conversation_id"]
    client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "two"}],
        extra_body={"conversation_id": conversation_id},
    )
    assert [m.content for m in model.requests[-1].messages[1:]] == ["one", "first answer", "two"]
    listed = httpx.get(f"{server.url}/v1/conversations").json()
    assert [c["id"] for c in listed["data"]] == [conversation_id]
    detail = httpx.get(f"{server.url}/v1/conversations/{conversation_id}").json()
    assert [m["content"] for m in detail["messages"]] == [
        "one",
        "first answer",
        "two",
        "second answer",
    ]
    assert [t["status"] for t in detail["turns"]] == ["done", "done"]
    deleted = httpx.delete(f"{server.url}/v1/conversations/{conversation_id}")
    assert deleted.json()["deleted"] is True
    assert httpx.get(f"{server.url}/v1/conversations/{conversation_id}").status_code == 404


def test_models_health_metrics_openapi(serve) -> None:
    server, client = serve(FakeModel("x"), assistants={"support": {"description": "Helpdesk"}})
    ids = [m.id for m in client.models.list()]
    assert ids == ["default", "support"]
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'graft_turns_total{assistant="default",finish_reason="stop"} 1.0' in metrics
    assert 'route="/v1/chat/completions"' in metrics
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"] and "/v1/conversations" in spec["paths"]


USER = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        ({"model": "nope", "messages": USER}, 404, "does not exist"),
        ({"model": "default", "messages": []}, 400, "messages"),
        ({"model": "default", "messages": USER, "temperature": 5}, 400, "temperature"),
        ({"model": "default", "messages": USER, "n": 3}, 400, "n"),
        ({"model": "default", "messages": USER, "api_base": "http://evil"}, 400, "api_base"),
        ({"model": "default", "messages": USER, "base_url": "http://evil"}, 400, "base_url"),
        ({"model": "default", "messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
        (
            {
                "model": "default",
                "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
            },
            400,
            "image_url",
        ),
        (
            {"model": "default", "messages": USER, "conversation_id": "conv_gone"},
            404,
            "conversation",
        ),
        ({"model": "default", "messages": [{"role": "tool", "content": "x"}]}, 400, "tool_call_id"),
        ({"model": "default", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ],
)
def test_bad_requests_get_openai_errors(serve, body: object, status: int, fragment: str) -> None:
    server, _ = serve(FakeModel("never used"))
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"]
    assert "Traceback" not in response.text


def test_oversized_body_is_refused(serve) -> None:
    server, _ = serve(FakeModel("x"), limits={"max_body_bytes": 2000})
    big = {"model": "default", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    streamed = httpx.post(f"{server.url}/v1/chat/completions", content=chunks())
    assert streamed.status_code == 413


def test_upstream_failure_before_first_byte_is_a_status(serve) -> None:
    server, client = serve(FakeModel(ModelTimeout("upstream 'openai' did not answer in 120 s")))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert info.value.status_code == 504
    assert "did not answer" in str(info.value)


def test_upstream_failure_after_first_byte_is_a_terminal_event(serve) -> None:
    server, client = serve(FakeModel(["partial answer ", ModelError("connection dropped")]))
    received = []
    with pytest.raises(openai.APIError, match="connection dropped"):
        for chunk in client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            received.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert "partial " in "".join(r or "" for r in received)
    raw = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "x"}], "stream": True},
    )
    # The script is used up: the model now fails before its first byte, so a status it is.
    assert raw.status_code == 502
    assert "no scripted response" in raw.json()["error"]["message"]


def test_api_keys(serve) -> None:
    from graft.default_plugins.api_key_auth import hash_api_key

    keys = [{"sha256": hash_api_key("sk-good"), "user": "ann", "roles": ["staff"]}]
    server, _ = serve(FakeModel("hi ann"), auth={"api_keys": keys})
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}]}
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-bad", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(**body)
    assert httpx.post(f"{server.url}/v1/chat/completions", json=body).status_code == 401
    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-good", max_retries=0)
    assert good.chat.completions.create(**body).choices[0].message.content == "hi ann"
    assert httpx.get(f"{server.url}/v1/conversations").status_code == 401


class _Endless:
    """A model that streams until it is stopped, and records that it was."""

    id = "test:endless"

    def __init__(self) -> None:
        self.stopped = threading.Event()

    async def stream(self, request: ModelRequest) -> AsyncIterator[TextChunk]:
        try:
            yield TextChunk("first ")
            while True:
                await asyncio.sleep(0.005)
                yield TextChunk("more ")
        finally:
            self.stopped.set()


def test_a_client_that_goes_away_stops_the_model_and_the_turn_is_stored_failed(
    graft_factory, live_server
) -> None:
    model = _Endless()
    server = live_server(graft_factory(model))
    body = {"model": "default", "messages": [{"role": "user", "content": "go on"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        first = json.loads(next(lines).removeprefix("data: "))
        assert "more " in "".join(itertools.islice(lines, 20))
    # The connection is closed mid-stream: graft notices and stops asking the model.
    assert model.stopped.wait(timeout=10)
    url = f"{server.url}/v1/conversations/{first['conversation_id']}"
    deadline = time.monotonic() + 10
    while (turn := httpx.get(url).json()["turns"][0])["status"] == "running":
        assert time.monotonic() < deadline, "the turn was never finished"
        time.sleep(0.02)
    assert turn["status"] == "interrupted"
    assert "cancelled" in turn["error"] or "went away" in turn["error"]
    # What was streamed before the disconnect is kept.
    assert httpx.get(url).json()["messages"][-1]["content"].startswith("first more")


def test_a_client_leaving_mid_body_is_not_a_server_error(
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    server, client = serve(FakeModel("still here"))
    body = b'{"model": "default", "messages": [{"role": "user", "content": "hi"}]}'
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                head = (
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
                )
                sock.sendall(head + body[:20])  # then the client goes away
        time.sleep(0.3)
        reply = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}]
        )
    assert reply.choices[0].message.content == "still here"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
