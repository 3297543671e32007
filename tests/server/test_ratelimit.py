"""Limits over the real server, seen by the official client: 429, Retry-After and headers."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
import redis

from graft.context import Principal
from graft.default_plugins.api_key_auth import hash_api_key
from graft.identity import issue_key
from graft.messages import Usage
from graft.models.base import FinishChunk, ModelChunk, ModelRequest, TextChunk, UsageChunk
from graft.ratelimit import seconds_to_next_day
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))
ASK = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


class _Model:
    """Answers "ok" using 10 tokens; a turn that says "hold" streams until ``go`` is set."""

    id = "test:limits"

    def __init__(self) -> None:
        self.go = threading.Event()
        self.holding = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        yield TextChunk("ok")
        if request.messages[-1].content == "hold":
            self.holding += 1
            try:
                # A thread's event (the test sets it), polled: cancellable when a client leaves.
                while not self.go.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            finally:
                self.holding -= 1
        yield UsageChunk(Usage(6, 4))
        yield FinishChunk("stop")


@pytest.fixture
def serve(graft_factory: Any, live_server: Any) -> Any:
    def start(model: Any = None, auth: Any = None, **limits: Any) -> tuple[Any, openai.OpenAI]:
        graft = graft_factory(model or _Model(), limits=limits, auth=auth or {})
        server = live_server(graft)
        return server, client(server, "unused")

    return start


def client(server: Any, key: str) -> openai.OpenAI:
    # The client retries a 429 by default; these tests want to see it.
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_over_the_request_rate_is_429_with_retry_after_and_openai_headers(serve: Any) -> None:
    server, api = serve(requests_per_minute=3)
    seen = []
    for _ in range(3):
        raw = api.chat.completions.with_raw_response.create(**ASK)
        seen.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.parse().choices[0].message.content == "ok"
    assert seen == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        api.chat.completions.create(**ASK)
    response = caught.value.response
    assert response.status_code == 429
    # 60 s / 3: one comes back every 20 s, the first 20 s after the first request.
    assert 18 <= int(response.headers["retry-after"]) <= 20
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "3 requests per minute" in error["message"] and "this user" in error["message"]
    # Every route but the public ones is counted; the public ones never are.
    assert httpx.get(f"{server.url}/v1/models").status_code == 429
    for _ in range(5):
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 200 and "x-ratelimit-limit-requests" not in health.headers


def test_streamed_answers_carry_the_headers_too(serve: Any) -> None:
    server, _ = serve(requests_per_minute=5)
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json={**ASK, "stream": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-remaining-requests"] == "4"
        assert "data: [DONE]" in list(response.iter_lines())


def test_zero_turns_the_request_rate_off(serve: Any) -> None:
    server, api = serve(FakeModel(*["ok"] * 30), requests_per_minute=0)
    for _ in range(30):
        assert httpx.get(f"{server.url}/v1/models").status_code == 200
    raw = api.chat.completions.with_raw_response.create(**ASK)
    assert "x-ratelimit-limit-requests" not in raw.headers


@pytest.fixture
def people(graft_factory: Any, live_server: Any) -> Any:
    """ann with two keys and bob with one, on a server allowing 3 a minute, 2 per key."""
    graft = graft_factory(
        _Model(), limits={"requests_per_minute": 3, "requests_per_minute_per_key": 2}
    )
    keys: dict[str, str] = {}

    async def setup() -> None:
        ann = await graft.store.create_user(tenant="acme", name="ann", roles=["user"], groups=[])
        bob = await graft.store.create_user(tenant="acme", name="bob", roles=["user"], groups=[])
        keys["ann1"], _ = await issue_key(graft.store, ann, creator=OPERATOR, name="one")
        keys["ann2"], _ = await issue_key(graft.store, ann, creator=OPERATOR, name="two")
        keys["bob"], _ = await issue_key(graft.store, bob, creator=OPERATOR)

    asyncio.run(setup())
    server = live_server(graft)
    return {name: client(server, key) for name, key in keys.items()}


def test_each_key_has_its_own_limit_within_its_users(people: Any) -> None:
    ann1, ann2, bob = people["ann1"], people["ann2"], people["bob"]
    ann1.models.list()
    raw = ann1.models.with_raw_response.list()
    assert raw.headers["x-ratelimit-limit-requests"] == "2"  # the key's limit binds
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        ann1.models.list()
    assert "this API key: 2 requests per minute" in caught.value.message
    # The refused request did not count: ann's other key gets the last of her three.
    raw = ann2.models.with_raw_response.list()
    assert raw.headers["x-ratelimit-limit-requests"] == "3"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        ann2.models.list()
    assert "this user: 3 requests per minute" in caught.value.message
    assert len(bob.models.list().data) == 1  # bob counts on his own


def test_keys_of_the_settings_file_have_their_own_limit_too(serve: Any) -> None:
    keys = [{"sha256": hash_api_key(key), "user": "ann", "roles": ["user"]} for key in ("k1", "k2")]
    server, _ = serve(requests_per_minute_per_key=1, auth={"api_keys": keys})
    one, two = client(server, "k1"), client(server, "k2")
    one.models.list()
    with pytest.raises(openai.RateLimitError, match="this API key"):
        one.models.list()
    two.models.list()


def test_turns_are_refused_once_the_days_tokens_are_spent(serve: Any) -> None:
    server, api = serve(tokens_per_day=25)  # each turn takes 10 tokens
    first = api.chat.completions.with_raw_response.create(**ASK)
    assert first.headers["x-ratelimit-limit-tokens"] == "25"
    assert first.headers["x-ratelimit-remaining-tokens"] == "25"
    # Streamed turns count too.
    assert len(list(api.chat.completions.create(**ASK, stream=True))) > 1
    third = api.chat.completions.with_raw_response.create(**ASK)  # 20 spent: still under
    assert third.headers["x-ratelimit-remaining-tokens"] == "5"
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as caught:
            api.chat.completions.create(**ASK, stream=stream)
        response = caught.value.response
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("tokens", "budget_exceeded")
        assert "30 of 25 tokens" in error["message"]
        # Until the next UTC midnight.
        expected = math.ceil(seconds_to_next_day(time.time()))
        assert abs(int(response.headers["retry-after"]) - expected) <= 2
        assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert httpx.get(f"{server.url}/v1/models").status_code == 200  # not a turn


def _hold(server: Any) -> Iterator[Iterator[str]]:
    """Open a streamed turn that the model holds open; once it started, yield its lines."""
    body = {**ASK, "messages": [{"role": "user", "content": "hold"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: dropping the iterator would close the stream
        next(lines)
        yield lines


def test_streams_over_the_cap_are_429_and_slots_come_back(serve: Any) -> None:
    model = _Model()
    server, api = serve(model, max_streams_per_user=2)
    held = [_hold(server), _hold(server)]
    lines = [next(stream) for stream in held]
    with pytest.raises(openai.RateLimitError) as caught:
        api.chat.completions.create(**ASK, stream=True)
    error = caught.value.response.json()["error"]
    assert error["code"] == "too_many_streams" and "at most 2" in error["message"]
    assert caught.value.response.headers["retry-after"] == "1"
    # An answer that is not streamed takes no slot.
    assert api.chat.completions.create(**ASK).choices[0].message.content == "ok"
    # A client that goes away gives its slot back.
    held.pop().close()
    deadline = time.monotonic() + 10
    while model.holding > 1:
        assert time.monotonic() < deadline, "the server did not notice the disconnect"
        time.sleep(0.01)
    assert "".join(
        c.choices[0].delta.content or "" for c in api.chat.completions.create(**ASK, stream=True)
    ) == ("ok")
    # A stream that ends gives its slot back.
    model.go.set()
    assert "data: [DONE]" in list(lines[0])
    held.pop().close()
    for _ in range(3):
        assert len(list(api.chat.completions.create(**ASK, stream=True))) > 1


def test_a_stream_that_fails_gives_its_slot_back(serve: Any) -> None:
    server, api = serve(FakeModel(), max_streams_per_user=1)  # no answer scripted: 502
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as caught:
            list(api.chat.completions.create(**ASK, stream=True))
        assert caught.value.status_code == 502


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


def test_bodies_that_nest_too_deep_are_refused(serve: Any) -> None:
    server, api = serve(max_json_depth=8)
    tools = [
        {"type": "function", "function": {"name": f"t{n}", "parameters": {"type": "object"}}}
        for n in range(20)
    ]
    # Many brackets but shallow: fine. (Depth 5: body, tools, tool, function, parameters.)
    assert api.chat.completions.create(**ASK, tools=tools).choices[0].message.content == "ok"
    deep = {**ASK, "tools": [{**tools[0], "function": {"name": "t", "parameters": _nested(5)}}]}
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(**deep)
    error = caught.value.response.json()["error"]
    assert error["code"] == "json_too_deep" and "nests 9 levels" in error["message"]
    # Brackets inside strings are text, not nesting.
    text = {**ASK, "messages": [{"role": "user", "content": '[[[[[[[[[[{{{{{{{{{{\\"'}]}
    assert api.chat.completions.create(**text).choices[0].message.content == "ok"
    hostile = b"[" * 100_000 + b"]" * 100_000
    response = httpx.post(f"{server.url}/v1/chat/completions", content=hostile)
    assert response.status_code == 400 and response.json()["error"]["code"] == "json_too_deep"


@pytest.fixture
def shared_redis() -> Iterator[str]:
    """A user name of this test's own; its keys in Redis are deleted afterwards."""
    connection = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        connection.ping()
    except (OSError, redis.RedisError) as exc:
        pytest.fail(
            f"Redis is not reachable on 127.0.0.1:6379 ({exc}); start it: redis-server "
            '--daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
        )
    user = f"test-{uuid.uuid4().hex}"
    yield user
    keys = list(connection.scan_iter(match=f"graft:rl:*{user}*"))
    assert keys, "the server wrote nothing to Redis"
    connection.delete(*keys)
    connection.close()


def test_workers_sharing_redis_share_the_limits(
    graft_factory: Any, live_server: Any, shared_redis: str
) -> None:
    limits = {"requests_per_minute": 3, "redis_url": "redis://127.0.0.1:6379/0"}
    workers = [
        live_server(graft_factory(_Model(), limits=limits, auth={"default_user": shared_redis}))
        for _ in range(2)
    ]
    one, two = (client(worker, "unused") for worker in workers)
    one.models.list()
    two.models.list()
    raw = one.models.with_raw_response.list()
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        two.models.list()
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 20


def test_budgets_and_streams_in_redis(
    graft_factory: Any, live_server: Any, shared_redis: str
) -> None:
    limits = {
        "tokens_per_day": 15,
        "max_streams_per_user": 1,
        "redis_url": "redis://127.0.0.1:6379/0",
    }
    model = _Model()
    server = live_server(graft_factory(model, limits=limits, auth={"default_user": shared_redis}))
    api = client(server, "unused")
    held = _hold(server)
    lines = next(held)
    with pytest.raises(openai.RateLimitError) as caught:
        api.chat.completions.create(**ASK, stream=True)
    assert caught.value.response.json()["error"]["code"] == "too_many_streams"
    model.go.set()
    assert "data: [DONE]" in list(lines)
    held.close()
    deadline = time.monotonic() + 10
    while True:  # the slot comes back once the server has seen the end
        try:
            list(api.chat.completions.create(**ASK, stream=True))
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    with pytest.raises(openai.RateLimitError) as caught:  # 20 tokens of 15 spent
        api.chat.completions.create(**ASK)
    assert caught.value.response.json()["error"]["code"] == "budget_exceeded"
    assert json.loads(caught.value.response.text)["error"]["type"] == "tokens"
