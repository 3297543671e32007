"""What workers share (``graft.coordination``) and the features built on it, in one process.

The contract runs against both implementations: in-process, and a real Redis on
127.0.0.1:6379 (the ``redis`` cases fail, never skip, without it). Two ``Graft``-less
instances on two Redis connections stand for two workers; ``tests/scale/test_workers.py``
runs two real processes. Also: ``graft serve --workers`` refusing what cannot be shared,
and a stream cancelled by ``POST /v1/conversations/{id}/cancel`` without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from tests.conftest import invoke

from graft.approvals import Approvals
from graft.context import Principal
from graft.coordination import Coordination, RedisCoordination
from graft.errors import NotFound
from graft.messages import ToolCall
from graft.models.base import FinishChunk, ModelChunk, ModelRequest, TextChunk
from graft.runtime import Graft
from graft.store.pending import PendingTurns
from graft.streams import RunningStreams

REDIS_URL = "redis://127.0.0.1:6379/0"
ANN = Principal("ann", tenant="acme")
ANNA = Principal("ann:x", tenant="acme")  # a name that extends ann's must not see hers
CALL = ToolCall("call_1", "send_mail", '{"to": "a@x.test"}')


async def _redis_up() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        pytest.fail(f"Redis is not reachable on 127.0.0.1:6379 ({exc}); scripts/test starts it")
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _redis_pair() -> AsyncIterator[list[Coordination]]:
    await _redis_up()
    prefix = f"graft:test:{secrets.token_hex(4)}:"
    pair: list[Coordination] = [RedisCoordination(REDIS_URL, prefix=prefix) for _ in range(2)]
    for worker in pair:
        await worker.start()
    try:
        yield pair
    finally:
        for worker in pair:
            await worker.aclose()


@pytest.fixture
async def redis_workers() -> AsyncIterator[list[Coordination]]:
    """Two workers' coordination: two connections to Redis, under a fresh prefix."""
    async with _redis_pair() as pair:
        yield pair


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def workers(request: pytest.FixtureRequest) -> AsyncIterator[list[Coordination]]:
    """The contract's two sides: one object in memory (one process), or two on Redis."""
    if request.param == "memory":
        one = Coordination()
        yield [one, one]
        return
    async with _redis_pair() as pair:
        yield pair


async def test_keys_expire_claims_win_once_and_counters_count(workers: list[Coordination]) -> None:
    a, b = workers
    await a.put("k:1", "v", ttl=0.2)
    assert await b.get("k:1") == "v"
    assert await b.get_many(["k:1", "k:none"]) == ["v", None]
    assert await b.keys("k:") == ["k:1"]
    assert await a.claim("c", "1", ttl=5) and not await b.claim("c", "1", ttl=5)
    assert await a.add("n", 1, ttl=5) == 1 and await b.add("n", 1, ttl=5) == 2
    assert await b.add("n", -2, ttl=5) == 0 and await a.get("n") is None
    await asyncio.sleep(0.3)
    assert await b.get("k:1") is None
    await a.delete("c")
    assert await b.claim("c", "1", ttl=5)


async def test_messages_reach_every_worker(workers: list[Coordination]) -> None:
    a, b = workers
    got: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def handler(message: dict[str, Any]) -> None:
        got.append(message)
        arrived.set()

    b.subscribe("topic", handler)
    await a.publish("topic", {"n": 1})
    await asyncio.wait_for(arrived.wait(), 2)
    assert got == [{"n": 1}]


@pytest.mark.integration
async def test_an_approval_asked_on_one_worker_is_answered_on_the_other(
    redis_workers: list[Coordination],
) -> None:
    workers = redis_workers
    asking, answering = Approvals(workers[0]), Approvals(workers[1])
    approval = await asking.open(ANN, CALL, "conv_1", within=5)
    waiting = asyncio.ensure_future(asking.wait(approval, 5))
    assert [a.id for a in await answering.listed(ANN)] == [approval.id]
    assert await answering.listed(ANNA) == []
    with pytest.raises(NotFound):
        await answering.answer(approval.id, ANNA, True)
    answered = await answering.answer(approval.id, ANN, False, "not now")
    assert (answered.call, answered.conversation_id) == (CALL, "conv_1")
    assert await asyncio.wait_for(waiting, 2) == (False, "not now")
    with pytest.raises(NotFound):  # decided once
        await asking.answer(approval.id, ANN, True)
    assert await answering.listed(ANN) == []


@pytest.mark.integration
async def test_an_unanswered_approval_is_denied_and_forgotten(
    redis_workers: list[Coordination],
) -> None:
    workers = redis_workers
    asking = Approvals(workers[0])
    approval = await asking.open(ANN, CALL, None, within=0.05)
    assert await asking.wait(approval, 0.05) == (False, "no answer within 0.05 s")
    assert await Approvals(workers[1]).listed(ANN) == []


@pytest.mark.integration
async def test_a_reader_on_another_worker_waits_for_the_answered_turn(
    redis_workers: list[Coordination],
) -> None:
    workers = redis_workers
    writer, reader = PendingTurns(workers[0]), PendingTurns(workers[1])
    await writer.answered("conv_1")
    reading = asyncio.ensure_future(reader.wait("conv_1"))
    other = asyncio.ensure_future(reader.wait("conv_2"))
    await asyncio.sleep(0.1)
    assert other.done()
    assert not reading.done()
    await writer.stored("conv_1")
    await asyncio.wait_for(reading, 2)


@pytest.mark.integration
async def test_a_cancel_on_another_worker_stops_the_stream(
    redis_workers: list[Coordination],
) -> None:
    workers = redis_workers
    running, other = RunningStreams(workers[0]), RunningStreams(workers[1])
    stopped = asyncio.Event()
    watch = running.watch(ANN, "conv_1")
    await watch.start(stopped.set)
    assert not await other.cancel(ANNA, "conv_1")  # not hers: nothing runs
    assert await other.cancel(ANN, "conv_1")
    await asyncio.wait_for(stopped.wait(), 2)
    await watch.stop()
    assert not await other.cancel(ANN, "conv_1")


# --- graft serve --workers -----------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "graft.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.usefixtures("home")
def test_several_workers_need_a_shared_store_and_redis(tmp_path: Path) -> None:
    result = invoke("serve", "--workers", "2")
    assert result.exit_code == 1
    assert "a SQLite store is one process's" in result.output
    postgres = _config(tmp_path, 'database_url = "postgresql://graft@127.0.0.1:1/graft"\n')
    result = invoke("--config", postgres, "serve", "--workers", "2")
    assert result.exit_code == 1
    assert "--workers 2 needs limits.redis_url" in result.output
    result = invoke("serve", "--workers", "0")
    assert result.exit_code == 1
    assert "--workers must be at least 1, not 0" in result.output


# --- the cancel route, one process, no Redis -----------------------------------------------


class Ticks:
    """Streams ``tick`` every 20 ms for 20 s."""

    id = "test:ticks"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        for _ in range(1000):
            yield TextChunk("tick ")
            await asyncio.sleep(0.02)
        yield FinishChunk("stop")


async def test_the_cancel_route_stops_a_stream_of_this_process(
    graft_factory: Callable[..., Graft], live_server: Callable[[Graft], Any]
) -> None:
    server = live_server(graft_factory(Ticks()))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        missing = await http.post("/v1/conversations/conv_none/cancel")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "stream_not_found"
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            conversation = response.headers["x-graft-conversation-id"]
            lines = response.aiter_lines()
            async for line in lines:
                if "tick" in line:
                    break
            cancel = await http.post(f"/v1/conversations/{conversation}/cancel")
            assert cancel.json() == {
                "id": conversation,
                "object": "conversation.cancel",
                "cancelled": True,
            }
            rest = [line async for line in lines if line.startswith("data: ")]
        assert rest[-2:] == [
            'data: {"error":{"message":"the answer was cancelled","type":"cancelled",'
            '"code":"cancelled"}}',
            "data: [DONE]",
        ]
        assert json.loads(rest[-2][6:])["error"]["code"] == "cancelled"
        stored = (await http.get(f"/v1/conversations/{conversation}")).json()
        assert stored["messages"][0]["content"] == "go"
