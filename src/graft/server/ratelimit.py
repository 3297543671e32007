"""Enforcing ``[limits]`` over HTTP: request rates, token budgets, streams; 429 when over.

``RateLimit`` is an ASGI middleware right inside ``Authenticate``: it needs the principal,
and it answers before the body is read. On every path but ``PUBLIC_PATHS`` it counts the
request against the user (``requests_per_minute``) and, for a request with an API key,
against that key (``requests_per_minute_per_key``): a request over either gets a 429 with
``Retry-After`` and never reaches a route. Every answer on these paths carries OpenAI's
``x-ratelimit-{limit,remaining,reset}-requests`` headers.

Budgets and streams concern turns, which only the chat route knows it starts (and whether
it streams), so the middleware leaves a ``TurnLimits`` in the request's state for it
(``turn_limits``): ``start_turn`` refuses a turn once the user's tokens of the day are spent
(``budget_exceeded``, until UTC midnight) or takes one of the user's stream slots
(``too_many_streams``); ``metered`` counts the turn's tokens when it ends. The middleware
gives the slot back once the whole response is sent, whatever ended it: the end of the
stream, a client that went away, an error (its ``finally``).

The counters live in a ``graft.ratelimit.Limiter``: in this process, or in Redis with
``limits.redis_url``. The middleware owns it and closes it when the app shuts down.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.context import Principal
from graft.errors import BudgetExceeded, RateLimited
from graft.events import Event, TurnDone
from graft.ratelimit import Decision, Limiter, Rule, open_limiter, seconds_to_next_day
from graft.runtime import Graft
from graft.server.auth import PUBLIC_PATHS
from graft.server.errors import error_response, retry_after_header

__all__ = ["RateLimit", "TurnLimits", "turn_limits"]

_PERIOD = 60.0
"""Seconds of a request-rate window: limits are per minute."""


def _duration(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms``, ``6m0s``."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


_NAMES = {
    kind: tuple(f"x-ratelimit-{what}-{kind}".encode() for what in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens")
}


def _headers(kind: str, limit: int, remaining: int, reset: float) -> list[tuple[bytes, bytes]]:
    """OpenAI's three rate-limit headers for ``kind`` (``requests`` or ``tokens``)."""
    names = _NAMES[kind]
    return [
        (names[0], b"%d" % limit),
        (names[1], b"%d" % remaining),
        (names[2], _duration(reset).encode()),
    ]


def _tag(principal: Principal) -> str:
    """The user's part of every key: ``{u:<len(tenant)>:<tenant>:<user>}``.

    The tenant's length makes it unambiguous; the braces make it a Redis hash tag, so that a
    user's keys share a cluster slot.
    """
    return f"{{u:{len(principal.tenant)}:{principal.tenant}:{principal.user_id}}}"


class TurnLimits:
    """The limits of one request's user, for the route that starts a turn."""

    __slots__ = ("_guard", "_tag", "headers", "slot")

    def __init__(self, guard: RateLimit, tag: str) -> None:
        self._guard = guard
        self._tag = tag
        self.headers: list[tuple[bytes, bytes]] = []
        """Rate-limit headers for the answer (added to its start by the middleware)."""
        self.slot: str | None = None
        """The stream slot this request holds, if any."""

    async def start_turn(self, *, stream: bool) -> None:
        """Check the day's budget and, for a streamed answer, take a stream slot.

        Raises:
            BudgetExceeded: The user's tokens of the day are spent.
            RateLimited: The user has ``max_streams_per_user`` streams open already.
        """
        guard = self._guard
        budget = guard.tokens_per_day
        if budget:
            spent = await guard.limiter.spent(self._tag + ":tok")
            reset = seconds_to_next_day(time.time())
            self.headers += _headers("tokens", budget, max(0, budget - spent), reset)
            if spent >= budget:
                raise BudgetExceeded(
                    f"Token budget reached: {spent} of {budget} tokens per day used. "
                    f"It renews at 00:00 UTC, in {retry_after_header(reset)}s.",
                    retry_after=reset,
                )
        if stream and guard.max_streams:
            slot = await guard.limiter.acquire(self._tag + ":streams", guard.max_streams)
            if slot is None:
                raise RateLimited(
                    f"Too many streams: at most {guard.max_streams} streamed answers per user "
                    "at once. Finish or close one, then try again.",
                    retry_after=1.0,
                    code="too_many_streams",
                )
            self.slot = slot

    def metered(self, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        """``events``, counting the turn's tokens into the day's budget when it is done."""
        return self._metered(events) if self._guard.tokens_per_day else events

    async def _metered(self, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        try:
            async for event in events:
                if isinstance(event, TurnDone) and event.usage.total_tokens:
                    # Before the event goes out: a client that leaves now has still spent it.
                    await self._guard.limiter.spend(self._tag + ":tok", event.usage.total_tokens)
                yield event
        finally:
            await events.aclose()

    async def release(self) -> None:
        """Give the stream slot back (shielded: it runs while a request is cancelled too)."""
        slot, self.slot = self.slot, None
        if slot is not None:
            with anyio.CancelScope(shield=True):
                await self._guard.limiter.release(self._tag + ":streams", slot)


def call_limits(scope: Scope, principal: Principal) -> TurnLimits | None:
    """Limits for the turns of a voice call that ``principal`` opened with this request.

    A call outlives its request and its turns start without one, so it gets its own
    ``TurnLimits`` (the day's budget, counted per turn; no stream slot). ``scope`` may be a
    WebSocket's: the middleware leaves itself in the state of both kinds. None when limits
    are off.
    """
    guard: RateLimit | None = scope.get("state", {}).get("rate_guard")
    return TurnLimits(guard, _tag(principal)) if guard is not None else None


def turn_limits(request: Request) -> TurnLimits | None:
    """The ``TurnLimits`` that ``RateLimit`` left for this request; None when limits are off."""
    limits: TurnLimits | None = request.scope.get("state", {}).get("limits")
    return limits


class RateLimit:
    """Pure ASGI middleware: request rates per user and API key, and ``TurnLimits``.

    Args:
        app: The app inside.
        graft: Its ``settings.limits`` say the limits and where the counters live.
        limiter: Counters to use instead of the ones ``limits.redis_url`` selects.
    """

    def __init__(self, app: ASGIApp, graft: Graft, limiter: Limiter | None = None) -> None:
        limits = graft.settings.limits
        self.app = app
        self.per_user = limits.requests_per_minute
        self.per_key = limits.requests_per_minute_per_key
        self.tokens_per_day = limits.tokens_per_day
        self.max_streams = limits.max_streams_per_user
        on = self.per_user or self.per_key or self.tokens_per_day or self.max_streams
        self.enabled = bool(on)
        self.limiter = (
            limiter if limiter is not None else open_limiter(limits.redis_url if on else None)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] == "websocket" and self.enabled:  # for call_limits: a voice call
            scope.setdefault("state", {})["rate_guard"] = self
        if scope["type"] != "http" or not self.enabled or scope["path"] in PUBLIC_PATHS:
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._closing(send))
            else:
                await self.app(scope, receive, send)
            return
        state: dict[str, Any] | None = scope.get("state")
        principal: Principal | None = state.get("principal") if state else None
        if state is None or principal is None:  # no Authenticate: nobody to count against
            await self.app(scope, receive, send)
            return
        tag = _tag(principal)
        limits = state["limits"] = TurnLimits(self, tag)
        state["rate_guard"] = self
        rules: list[Rule] = []
        if self.per_user:
            rules.append((tag + ":req", self.per_user))
        if self.per_key and principal.key_id:
            rules.append((f"{tag}:key:{principal.key_id}", self.per_key))
        if rules:
            decision = await self.limiter.hit(rules, _PERIOD)
            limits.headers = _headers(
                "requests", decision.limit, decision.remaining, decision.reset_after
            )
            if not decision.allowed:
                await self._refuse(decision, rules, limits.headers, scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *limits.headers]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if limits.slot is not None:
                await limits.release()

    async def _refuse(
        self,
        decision: Decision,
        rules: list[Rule],
        headers: list[tuple[bytes, bytes]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        who = "user" if decision.key == rules[0][0] and self.per_user else "API key"
        wait = retry_after_header(decision.retry_after)
        refusal = error_response(
            429,
            f"Rate limit reached for this {who}: {decision.limit} requests per minute. "
            f"Please try again in {wait}s.",
            RateLimited.type,
            RateLimited.code,
            headers={"retry-after": wait},
        )
        refusal.raw_headers += headers
        await refusal(scope, receive, send)

    def _closing(self, send: Send) -> Send:
        """``send`` for the lifespan: close the limiter as the app finishes shutting down."""

        async def closing_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.limiter.aclose()
            await send(message)

        return closing_send
