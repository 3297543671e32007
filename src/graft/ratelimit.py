"""The counters behind graft's 429s: request rates, daily token budgets, stream slots.

``Limiter`` is the protocol the HTTP layer (``graft.server.ratelimit``) talks to, with two
implementations: ``MemoryLimiter`` keeps the counters in this process (the default; each
worker counts on its own), ``RedisLimiter`` keeps them in Redis (``limits.redis_url``), so
that every worker of a deployment shares them. ``open_limiter`` picks one from the settings.

Three kinds of counter, each O(1) per request:

- **Request rates** use GCRA, the generic cell rate algorithm: one number per key, the
  "theoretical arrival time" (TAT) at which the key would be idle again. ``limit`` requests
  per ``period`` may arrive at once, then one every ``period / limit`` (the interval). A
  request is allowed when ``max(TAT, now) + interval - now <= limit * interval``; a refused
  request changes nothing. The arithmetic is in whole microseconds, the interval rounded
  up: floats would drift over a burst of hundreds, and a burst of exactly ``limit`` must
  fit. A key whose TAT has passed holds no information, which bounds the memory: the
  in-process limiter drops such keys once per period (each survivor was hit within the last
  period, so the sweep costs O(1) per request, amortized), Redis expires them itself.
  ``hit`` checks several keys (a user's, and the API key's) atomically: one request counts
  against all of them or none.
- **Token budgets** are counters per key and UTC day: ``spend`` adds a turn's tokens after
  it ends, ``spent`` reads today's sum. In Redis the counter expires an hour after its day.
- **Stream slots**: ``acquire`` takes one of ``cap`` slots of a key, ``release`` gives it
  back. A worker that crashes cannot give its slots back, so in Redis each slot is a member
  of a sorted set scored with its expiry (``stream_ttl``, 15 minutes by default) and
  expired slots are dropped before counting: a crash costs its user the slots only until
  then. A stream that runs longer than that stops counting against the cap.

``RedisLimiter`` fails open: while Redis cannot be reached, requests are allowed (and a
warning is logged at most once a minute), so a limiter outage does not take the API down.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from graft.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DAY_S",
    "Decision",
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
    "Rule",
    "open_limiter",
    "seconds_to_next_day",
]

log = logging.getLogger(__name__)

DAY_S = 86_400
"""Seconds in a (UTC) day: budgets start again at every multiple of it since the epoch."""
_US = 1_000_000

Rule = tuple[str, int]
"""A key and its limit: at most ``limit`` requests per period."""


@dataclass(slots=True)  # not frozen: a frozen one takes three times as long to make
class Decision:
    """The answer to one request: allowed or not, and what the rate-limit headers say.

    For several rules, the one that binds: the refusing rule with the longest wait, or, when
    all allow, the one with the fewest requests left.
    """

    allowed: bool
    limit: int
    remaining: int
    """Requests that could still come at once."""
    reset_after: float
    """Seconds until the limit is whole again."""
    retry_after: float = 0.0
    """Seconds until a refused request would be allowed; 0 when allowed."""
    key: str = ""
    """The key of the rule that binds."""


def seconds_to_next_day(now: float) -> float:
    """Seconds from ``now`` (epoch seconds) to the next UTC midnight."""
    return (math.floor(now / DAY_S) + 1) * DAY_S - now


class Limiter(Protocol):
    """Where the counters live. Every method is safe to call from concurrent requests."""

    async def hit(self, rules: Sequence[Rule], period: float) -> Decision:
        """Count one request against every rule, if all allow it; else count nothing."""
        ...

    async def spend(self, key: str, tokens: int) -> int:
        """Add ``tokens`` to today's count of ``key``; return the new count."""
        ...

    async def spent(self, key: str) -> int:
        """Today's token count of ``key``."""
        ...

    async def acquire(self, key: str, cap: int) -> str | None:
        """Take one of ``cap`` slots of ``key``: a slot id to release, or None when full."""
        ...

    async def release(self, key: str, slot: str) -> None:
        """Give back a slot that ``acquire`` returned."""
        ...

    async def aclose(self) -> None:
        """Close connections, if any."""
        ...


def _gcra(key: str, limit: int, tat: int, now: int, period: int) -> tuple[int, Decision]:
    """The TAT after one request at ``now``, and the decision (same TAT when refused).

    Times in microseconds; ``_HIT`` below is the same in Lua.
    """
    interval = -(-period // limit)
    tolerance = interval * limit
    tat = max(tat, now)
    new_tat = tat + interval
    if new_tat - now > tolerance:
        wait = new_tat - tolerance - now
        return tat, Decision(False, limit, 0, (tat - now) / _US, wait / _US, key)
    remaining = (tolerance - (new_tat - now)) // interval
    return new_tat, Decision(True, limit, remaining, (new_tat - now) / _US, 0.0, key)


def _binding(decisions: Sequence[Decision]) -> Decision:
    refused = [d for d in decisions if not d.allowed]
    if refused:
        return max(refused, key=lambda d: d.retry_after)
    return min(decisions, key=lambda d: d.remaining)


class MemoryLimiter:
    """Counters in this process: exact for one worker, per worker for several."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._sweep_at = 0
        self._day = -1
        self._spent: dict[str, int] = {}
        self._streams: dict[str, int] = {}

    def __len__(self) -> int:
        """Keys held: rate keys that are not idle, today's budgets, streams in flight."""
        return len(self._tats) + len(self._spent) + len(self._streams)

    async def hit(self, rules: Sequence[Rule], period: float) -> Decision:
        """Count one request against every rule, if all allow it; else count nothing."""
        now = round(self._clock() * _US)
        span = round(period * _US)
        tats = self._tats
        if now >= self._sweep_at:
            self._tats = tats = {key: tat for key, tat in tats.items() if tat > now}
            self._sweep_at = now + span
        if len(rules) == 1:  # the common case, without the lists
            key, limit = rules[0]
            tat, decision = _gcra(key, limit, tats.get(key, now), now, span)
            tats[key] = tat
            return decision
        outcomes = [_gcra(key, limit, tats.get(key, now), now, span) for key, limit in rules]
        decision = _binding([d for _, d in outcomes])
        if decision.allowed:
            for (key, _), (tat, _) in zip(rules, outcomes, strict=True):
                tats[key] = tat
        return decision

    def _today(self) -> None:
        day = int(self._clock() // DAY_S)
        if day != self._day:
            self._day = day
            self._spent = {}

    async def spend(self, key: str, tokens: int) -> int:
        """Add ``tokens`` to today's count of ``key``; return the new count."""
        self._today()
        total = self._spent[key] = self._spent.get(key, 0) + tokens
        return total

    async def spent(self, key: str) -> int:
        """Today's token count of ``key``."""
        self._today()
        return self._spent.get(key, 0)

    async def acquire(self, key: str, cap: int) -> str | None:
        """Take one of ``cap`` slots of ``key``: a slot id to release, or None when full."""
        held = self._streams.get(key, 0)
        if held >= cap:
            return None
        self._streams[key] = held + 1
        return key

    async def release(self, key: str, slot: str) -> None:
        """Give back a slot that ``acquire`` returned."""
        held = self._streams.get(key, 0) - 1
        if held > 0:
            self._streams[key] = held
        else:
            self._streams.pop(key, None)

    async def aclose(self) -> None:
        """Nothing to close."""


# Times are whole microseconds: the caller's clock when ARGV[1] is a number, else Redis's
# own (one clock for every worker). They stay below 2^53, so Lua's doubles hold them exactly.
_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""

# ``_gcra`` for every key; the TATs are written only when every key allows the request.
# Returns {allowed, index of the binding key, its limit, remaining, reset, wait}.
_HIT = (
    _NOW
    + """
local period = tonumber(ARGV[2])
local ok = 1
local best, best_limit, best_remaining, best_reset, best_wait = 1, 0, -1, 0, -1
local tats = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + i])
  local interval = math.ceil(period / limit)
  local tolerance = interval * limit
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > tolerance then
    local wait = new_tat - tolerance - now
    if ok == 1 or wait > best_wait then
      best, best_limit, best_reset, best_wait = i, limit, tat - now, wait
    end
    ok = 0
  elseif ok == 1 then
    tats[i] = new_tat
    local remaining = math.floor((tolerance - (new_tat - now)) / interval)
    if best_remaining < 0 or remaining < best_remaining then
      best, best_limit, best_remaining, best_reset = i, limit, remaining, new_tat - now
    end
  end
end
if ok == 0 then
  return {0, best, best_limit, 0, best_reset, best_wait}
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', tats[i]),
             'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {1, best, best_limit, best_remaining, best_reset, 0}
"""
)

# Slots are members of a sorted set, scored with the time they expire.
_ACQUIRE = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000))
return 1
"""
)


class RedisLimiter:
    """Counters in Redis, shared by every worker that uses the same ``url`` and ``prefix``.

    Args:
        url: ``redis://host:port/db`` (or ``rediss://`` for TLS, ``unix://`` for a socket).
        prefix: Namespace of every key this limiter writes.
        clock: Epoch seconds for the counters; by default Redis's own clock, which every
            worker shares, for rates and slots, and this process's for the budgets' days
            (the budget counters themselves are shared; only which UTC day it is comes from
            each worker's clock, so keep the clocks in sync). Tests pass a fake one.
        stream_ttl: Seconds after which a slot that was never released is dropped.
        client: An existing ``redis.asyncio.Redis`` to use instead of connecting to ``url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "graft:rl:",
        clock: Callable[[], float] | None = None,
        stream_ttl: float = 900.0,
        client: Redis | None = None,
    ) -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError:
            raise ConfigError(
                "limits.redis_url is set, but the redis client is not installed: "
                'pip install "graft[redis]"'
            ) from None
        self._failures: tuple[type[Exception], ...] = (RedisError, OSError)
        # Short timeouts: a Redis that hangs must not hang every request (it fails open).
        self._redis: Redis = client or Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.prefix = prefix
        self._clock = clock
        self.stream_ttl = stream_ttl
        self._hit = self._redis.register_script(_HIT)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._warned_at = -math.inf

    def _now(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * _US))

    def _wall(self) -> float:
        return (self._clock or time.time)()

    def _unreachable(self, exc: Exception) -> None:
        if time.monotonic() - self._warned_at >= 60:
            self._warned_at = time.monotonic()
            log.warning("rate limits are not enforced: Redis failed (%s)", exc)

    async def hit(self, rules: Sequence[Rule], period: float) -> Decision:
        """Count one request against every rule, if all allow it; else count nothing."""
        keys = [self.prefix + key for key, _ in rules]
        args = [self._now(), str(round(period * _US)), *(str(limit) for _, limit in rules)]
        try:
            ok, index, limit, remaining, reset, wait = await self._hit(keys=keys, args=args)
        except self._failures as exc:  # allow (see the module docstring)
            self._unreachable(exc)
            key, limit = min(rules, key=lambda rule: rule[1])
            return Decision(True, limit, limit, 0.0, 0.0, key)
        key = rules[int(index) - 1][0]
        return Decision(bool(ok), int(limit), int(remaining), reset / _US, wait / _US, key)

    def _budget_key(self, key: str, now: float) -> str:
        return f"{self.prefix}{key}:{int(now // DAY_S)}"

    async def spend(self, key: str, tokens: int) -> int:
        """Add ``tokens`` to today's count of ``key``; return the new count."""
        now = self._wall()  # the day is the worker's: Redis's clock is read only in scripts
        name = self._budget_key(key, now)
        ttl = math.ceil(seconds_to_next_day(now)) + 3600  # an hour's grace for skewed clocks
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, tokens)
                pipe.expire(name, ttl)
                total, _ = await pipe.execute()
        except self._failures as exc:
            self._unreachable(exc)
            return 0
        return int(total)

    async def spent(self, key: str) -> int:
        """Today's token count of ``key``."""
        try:
            value = await self._redis.get(self._budget_key(key, self._wall()))
        except self._failures as exc:
            self._unreachable(exc)
            return 0
        return int(value or 0)

    async def acquire(self, key: str, cap: int) -> str | None:
        """Take one of ``cap`` slots of ``key``: a slot id to release, or None when full."""
        slot = secrets.token_hex(8)
        ttl = str(round(self.stream_ttl * _US))
        args: list[str | int] = [self._now(), ttl, cap, slot]
        try:
            taken = await self._acquire(keys=[self.prefix + key], args=args)
        except self._failures as exc:
            self._unreachable(exc)
            return slot
        return slot if taken else None

    async def release(self, key: str, slot: str) -> None:
        """Give back a slot that ``acquire`` returned."""
        try:
            await self._redis.zrem(self.prefix + key, slot)
        except self._failures as exc:
            self._unreachable(exc)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_limiter(redis_url: str | None) -> Limiter:
    """A ``RedisLimiter`` on ``redis_url``, or a ``MemoryLimiter`` without one."""
    return MemoryLimiter() if redis_url is None else RedisLimiter(redis_url)
