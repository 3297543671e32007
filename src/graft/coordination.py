"""``Coordination``: the state that the workers of one deployment share, and their messages.

Several ``graft serve`` processes (``--workers N``, or several hosts behind a load balancer)
share one PostgreSQL store; what they also need to share is small and short-lived:

- **approvals** (``graft.approvals``): a tool call waiting on worker A is listed and
  answered on worker B, and A's waiting turn learns the answer;
- **answered turns** (``graft.store.pending``): a turn whose answer went out on A but is not
  stored yet makes a reader of that conversation on B wait for it;
- **running streams** (``graft.streams``): a cancel received by B stops the stream on A.

Two implementations of one small interface, chosen by ``limits.redis_url``
(``open_coordination``), the same setting that shares rate limits and budgets:

- ``Coordination`` (in-process, the default): keys in a dict, messages handed to this
  process's subscribers. ``shared`` is false, and the features above keep their in-process
  fast paths: nothing on a request's path changes without Redis.
- ``RedisCoordination``: keys in Redis under ``prefix`` (each with a time to live, so a
  crashed worker leaves nothing behind for long) and messages over one pub/sub channel,
  read by one listener task per process.

Voice calls and rooms stay per-process: a call's media and its peer connection live in the
worker that took it (a load balancer must keep a call's requests on one worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from graft.config import Settings

__all__ = ["Coordination", "Handler", "RedisCoordination", "open_coordination"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
"""Called with each message of a topic, in the event loop (it must not block)."""


class Coordination:
    """Keys with a time to live, and topics: within this process only."""

    shared = False
    """Whether other processes see these keys and messages."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._values: dict[str, tuple[float, str]] = {}

    async def start(self) -> None:
        """Connect (and start listening for messages)."""

    async def aclose(self) -> None:
        """Stop listening and disconnect."""

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler`` with every message published on ``topic``, by any worker."""
        self._handlers[topic].append(handler)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Send ``message`` (JSON-serialisable) to the subscribers of ``topic``."""
        self._deliver(topic, message)

    def _deliver(self, topic: str, message: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                handler(message)
            except Exception:
                log.exception("a handler of %r failed", topic)

    # --- keys -------------------------------------------------------------------------------

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._values[key]
            return None
        return entry[1]

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` for ``ttl`` seconds."""
        self._values[key] = (time.monotonic() + ttl, value)

    async def claim(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` unless it is set; whether this call set it (one caller wins)."""
        if self._live(key) is not None:
            return False
        await self.put(key, value, ttl)
        return True

    async def get(self, key: str) -> str | None:
        """The value of ``key``, or None."""
        return self._live(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        """The values of ``keys``, in order."""
        return [self._live(key) for key in keys]

    async def delete(self, *keys: str) -> None:
        """Remove ``keys``."""
        for key in keys:
            self._values.pop(key, None)

    async def add(self, key: str, delta: int, ttl: float) -> int:
        """Add ``delta`` to the counter ``key`` (kept ``ttl`` seconds more); the new count."""
        count = int(self._live(key) or 0) + delta
        if count <= 0:
            self._values.pop(key, None)
        else:
            await self.put(key, str(count), ttl)
        return count

    async def keys(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix`` (for small sets: one user's approvals)."""
        return [key for key in list(self._values) if key.startswith(prefix) and self._live(key)]


class RedisCoordination(Coordination):
    """Keys and topics in Redis, shared by every worker with the same ``url`` and ``prefix``.

    Unlike the rate limiter, this does not fail open: an approval or a cancel that cannot
    reach Redis raises (``redis.RedisError``), and the request that asked gets a 500.
    """

    shared = True

    def __init__(self, url: str, *, prefix: str = "graft:co:") -> None:
        super().__init__()
        try:
            from redis.asyncio import Redis
        except ImportError:
            raise ConfigError(
                "limits.redis_url is set, but the redis client is not installed: "
                'pip install "graft[redis]"'
            ) from None
        self._redis: Redis = Redis.from_url(url, socket_connect_timeout=2.0)
        self.prefix = prefix
        self._channel = f"{prefix}events"
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to the channel and start the listener task."""
        if self._listener is not None:
            return
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._channel)
        self._listener = asyncio.create_task(self._listen(self._pubsub), name="coordination")

    async def aclose(self) -> None:
        """Stop the listener; close the connections."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        await self._redis.aclose()

    async def ping(self) -> None:
        """Return once Redis answered a ``PING`` (``graft.readiness``)."""
        await self._redis.ping()

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: redis-py reconnects on retry
                log.warning("coordination: Redis pub/sub failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                envelope = json.loads(message["data"])
                self._deliver(str(envelope["topic"]), dict(envelope["message"]))
            except (ValueError, KeyError, TypeError):
                log.warning("coordination: dropped a malformed message")

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Send ``message`` to the subscribers of ``topic`` in every worker (this one too)."""
        envelope = json.dumps({"topic": topic, "message": message}, separators=(",", ":"))
        await self._redis.publish(self._channel, envelope)

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` for ``ttl`` seconds."""
        await self._redis.set(self.prefix + key, value, px=_ms(ttl))

    async def claim(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` unless it is set; whether this call set it (one worker wins)."""
        return bool(await self._redis.set(self.prefix + key, value, px=_ms(ttl), nx=True))

    async def get(self, key: str) -> str | None:
        """The value of ``key``, or None."""
        value = await self._redis.get(self.prefix + key)
        return None if value is None else _text(value)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        """The values of ``keys``, in order."""
        if not keys:
            return []
        values = await self._redis.mget([self.prefix + key for key in keys])
        return [None if value is None else _text(value) for value in values]

    async def delete(self, *keys: str) -> None:
        """Remove ``keys``."""
        if keys:
            await self._redis.delete(*(self.prefix + key for key in keys))

    async def add(self, key: str, delta: int, ttl: float) -> int:
        """Add ``delta`` to the counter ``key`` (kept ``ttl`` seconds more); the new count."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(self.prefix + key, delta)
            pipe.pexpire(self.prefix + key, _ms(ttl))
            count, _ = await pipe.execute()
        if int(count) <= 0:
            await self._redis.delete(self.prefix + key)
        return int(count)

    async def keys(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix`` (SCAN: for small sets, one user's approvals)."""
        pattern = _glob_escape(self.prefix + prefix) + "*"
        start = len(self.prefix)
        return [_text(key)[start:] async for key in self._redis.scan_iter(match=pattern)]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def open_coordination(settings: Settings) -> Coordination:
    """Redis when ``limits.redis_url`` is set, else this process alone."""
    url = settings.limits.redis_url
    return RedisCoordination(url) if url else Coordination()
