"""The limiters: GCRA rates, daily budgets, stream slots; in process and on a real Redis.

Every behaviour runs against both implementations with a fake clock. The Redis tests need a
server on 127.0.0.1:6379 (scripts/test starts one) and fail, not skip, without it; each
test writes under its own key prefix and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from graft.ratelimit import DAY_S, Limiter, MemoryLimiter, RedisLimiter, seconds_to_next_day
from graft.server.body import json_depth, nests_deeper
from graft.server.ratelimit import _duration

REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
)
T0 = 1_700_000_000.0  # a fixed "now", far from a day's end


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _connect() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        await client.aclose()
        pytest.fail(f"Redis is not reachable on 127.0.0.1:6379 ({exc}); start it: {START_REDIS}")
    return client


async def _delete_under(client: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


def _unique_prefix() -> str:
    return f"graft:rl:test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = await _connect()
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; everything under it is deleted afterwards."""
    name = _unique_prefix()
    yield name
    await _delete_under(redis_client, name)


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[Clock], Limiter]]:
    """A factory of limiters of one kind; Redis ones share this test's own prefix."""
    if request.param == "memory":
        yield MemoryLimiter
        return
    client = await _connect()
    name = _unique_prefix()
    yield lambda clock: RedisLimiter(prefix=name, clock=clock, client=client)
    await _delete_under(client, name)
    await client.aclose()


async def test_gcra_allows_a_burst_then_one_per_interval(make: Any) -> None:
    clock = Clock()
    limiter = make(clock)
    rules = [("u:req", 3)]
    decisions = [await limiter.hit(rules, 60.0) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert decisions[0].reset_after == pytest.approx(20.0)
    assert decisions[2].reset_after == pytest.approx(60.0)
    refused = await limiter.hit(rules, 60.0)
    assert not refused.allowed and refused.limit == 3 and refused.remaining == 0
    assert refused.retry_after == pytest.approx(20.0)
    clock.now += 19.9
    assert not (await limiter.hit(rules, 60.0)).allowed  # refusals cost nothing...
    clock.now += 0.1
    again = await limiter.hit(rules, 60.0)  # ...so it is allowed right on time
    assert again.allowed and again.remaining == 0
    clock.now += 60.0
    assert (await limiter.hit(rules, 60.0)).remaining == 2  # idle a period: whole again


async def test_a_burst_of_exactly_the_limit_fits_for_awkward_limits(make: Any) -> None:
    limiter = make(Clock())
    for limit in (7, 13, 599, 600):
        rules = [(f"u{limit}", limit)]
        allowed = [(await limiter.hit(rules, 60.0)).allowed for _ in range(limit + 1)]
        assert allowed == [True] * limit + [False], limit


async def test_several_rules_count_all_or_nothing(make: Any) -> None:
    limiter = make(Clock())
    user, key_a, key_b = ("u", 3), ("u:key:a", 2), ("u:key:b", 2)
    assert (await limiter.hit([user, key_a], 60.0)).remaining == 1  # the key binds
    assert (await limiter.hit([user, key_a], 60.0)).allowed
    refused = await limiter.hit([user, key_a], 60.0)
    assert not refused.allowed and refused.key.endswith("u:key:a") and refused.limit == 2
    # The refused request did not count against the user: one request is left for key b.
    last = await limiter.hit([user, key_b], 60.0)
    assert last.allowed and last.remaining == 0 and last.key.endswith("u")
    refused = await limiter.hit([user, key_b], 60.0)
    assert not refused.allowed and refused.key.endswith("u") and refused.limit == 3
    assert (await limiter.hit([("other", 3)], 60.0)).allowed


async def test_budgets_count_tokens_per_utc_day(make: Any) -> None:
    clock = Clock(DAY_S * 19_000 + DAY_S - 5)  # five seconds before midnight
    limiter = make(clock)
    assert await limiter.spent("u:tok") == 0
    assert await limiter.spend("u:tok", 40) == 40
    assert await limiter.spend("u:tok", 2) == 42
    assert await limiter.spent("u:tok") == 42 and await limiter.spent("v:tok") == 0
    assert seconds_to_next_day(clock.now) == pytest.approx(5)
    clock.now += 5
    assert await limiter.spent("u:tok") == 0  # a new day
    assert seconds_to_next_day(clock.now) == pytest.approx(DAY_S)


async def test_stream_slots(make: Any) -> None:
    limiter = make(Clock())
    slots = [await limiter.acquire("u:streams", 2) for _ in range(3)]
    assert slots[0] is not None and slots[1] is not None and slots[2] is None
    await limiter.release("u:streams", slots[0])
    again = await limiter.acquire("u:streams", 2)
    assert again is not None
    assert await limiter.acquire("v:streams", 2) is not None  # another user
    await limiter.release("u:streams", slots[1])
    await limiter.release("u:streams", again)
    assert [await limiter.acquire("u:streams", 2) for _ in range(3)][-1] is None


async def test_memory_limiter_forgets_idle_keys() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    for n in range(1000):
        await limiter.hit([(f"user{n}", 10)], 60.0)
    assert len(limiter) == 1000
    clock.now += 61
    await limiter.hit([("late", 10)], 60.0)  # the first hit of a new period sweeps
    assert len(limiter) == 1
    slot = await limiter.acquire("s", 1)
    assert slot is not None and len(limiter) == 2
    await limiter.release("s", slot)
    await limiter.spend("t", 5)
    clock.now += DAY_S
    await limiter.spent("t")
    await limiter.hit([("late", 10)], 60.0)
    assert len(limiter) == 1


async def test_redis_keys_are_namespaced_and_expire(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    limiter = RedisLimiter(prefix=prefix, client=redis_client)  # Redis's own clock
    assert (await limiter.hit([("{u}:req", 5)], 60.0)).allowed
    await limiter.spend("{u}:tok", 3)
    assert await limiter.acquire("{u}:streams", 1) is not None
    keys = sorted([key.decode() async for key in redis_client.scan_iter(match=prefix + "*")])
    day = int(time.time() // DAY_S)
    assert keys == [prefix + "{u}:req", prefix + "{u}:streams", prefix + f"{{u}}:tok:{day}"]
    for key in keys:
        ttl = await redis_client.pttl(key)
        assert 0 < ttl <= (DAY_S + 3600) * 1000, key
    assert 0 < await redis_client.pttl(prefix + "{u}:req") <= 12_001  # one interval


async def test_redis_drops_the_slots_of_a_crashed_worker(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    clock = Clock()
    crashed = RedisLimiter(prefix=prefix, clock=clock, client=redis_client, stream_ttl=30)
    assert await crashed.acquire("u:streams", 2) is not None
    assert await crashed.acquire("u:streams", 2) is not None  # never released
    worker = RedisLimiter(prefix=prefix, clock=clock, client=redis_client, stream_ttl=30)
    assert await worker.acquire("u:streams", 2) is None
    clock.now += 31
    assert await worker.acquire("u:streams", 2) is not None


async def test_redis_is_shared_and_atomic_between_workers(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    clients = [aioredis.Redis.from_url(REDIS_URL) for _ in range(4)]
    try:
        workers = [RedisLimiter(prefix=prefix, client=c) for c in clients]
        decisions = await asyncio.gather(
            *(workers[n % 4].hit([("{u}:req", 10)], 60.0) for n in range(50))
        )
        assert sum(d.allowed for d in decisions) == 10
        slots = await asyncio.gather(*(workers[n % 4].acquire("{u}:s", 3) for n in range(20)))
        assert sum(s is not None for s in slots) == 3
    finally:
        for client in clients:
            await client.aclose()


async def test_redis_fails_open_when_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0")
    with caplog.at_level(logging.WARNING, logger="graft.ratelimit"):
        decision = await limiter.hit([("u", 2), ("k", 1)], 60.0)
        assert decision.allowed and decision.limit == 1
        assert await limiter.spend("u:tok", 5) == 0 and await limiter.spent("u:tok") == 0
        slot = await limiter.acquire("u:s", 1)
        assert slot is not None
        await limiter.release("u:s", slot)
    await limiter.aclose()
    warnings = [r for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(warnings) == 1  # once a minute, not once a call


def test_a_missing_redis_client_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from graft.errors import ConfigError

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigError, match=r'pip install "graft\[redis\]"'):
        RedisLimiter()


def test_reset_durations_read_like_openais() -> None:
    assert [_duration(s) for s in (0, 0.0004, 0.02, 1, 8.64, 60, 359.9991, 3723)] == [
        "0s",
        "1ms",
        "20ms",
        "1s",
        "8.64s",
        "1m0s",
        "6m0s",
        "1h2m3s",
    ]


# JSON nesting depth: the byte scan must agree with a real parser on every valid document.


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\/:,ab \n\t\u00e9\u4e2d\U0001f600'))
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _tricky_text
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_tricky_text, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(_documents, st.booleans(), st.sampled_from([None, 0, 2]), st.integers(0, 8))
def test_json_depth_matches_the_parsed_document(
    value: Any, ascii_only: bool, indent: Any, limit: int
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    depth = _depth(json.loads(text))
    assert json_depth(text) == depth
    assert nests_deeper(text, limit) == (depth > limit)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet='[]{}"\\ a', max_size=200).map(str.encode))
def test_json_depth_takes_any_bytes(data: bytes) -> None:
    depth = json_depth(data)
    assert 0 <= depth <= data.count(b"[") + data.count(b"{")
    assert nests_deeper(data, 3) == (depth > 3)
    try:
        value = json.loads(data)
    except ValueError:
        return
    assert depth == _depth(value)


def test_json_depth_is_linear_on_hostile_input() -> None:
    n = 1_000_000
    for hostile in (
        b'"' + b'\\"' * n,  # an unterminated string full of escaped quotes
        b'["' * n,  # unterminated strings, one after another
        b"[" * n + b"]" * n,
        b'"\\' * n,
    ):
        started = time.perf_counter()
        json_depth(hostile)
        nests_deeper(hostile, 32)
        assert time.perf_counter() - started < 2.0, hostile[:10]
    assert json_depth(b"[" * n + b"]" * n) == n and nests_deeper(b"[" * n + b"]" * n, 32)
    assert json_depth(b'["]]]]", {"a": ["\\"[[["]}]') == 3
    assert json_depth(b'["\\\\", ["\\\\\\"]", []]]') == 3  # escaped backslashes, then a quote
