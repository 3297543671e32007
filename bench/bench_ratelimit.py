"""What the rate-limit middleware and the JSON depth check cost per request, in process.

Runs ``graft.server.ratelimit.RateLimit`` with the in-process limiter around an ASGI app that
answers at once, and subtracts the same app called bare: the difference is the middleware's
own cost on the pass-through path (request count, headers, the state for the chat route).
Then the JSON depth check on chat bodies, beside pydantic's parse of the same body.
Prints microseconds per call (the best of a few rounds).

    python bench/bench_ratelimit.py
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from graft.config import load_settings
from graft.context import Principal
from graft.runtime import Graft
from graft.server.body import nests_deeper
from graft.server.ratelimit import RateLimit
from graft.server.schemas import ChatCompletionRequest
from graft.testing import MemoryStore

N = 200_000


async def answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def send(message: Any) -> None:
    pass


async def per_call(app: Any, principal: Principal) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(N):
            scope = {"type": "http", "path": "/v1/chat/completions", "state": {}}
            scope["state"]["principal"] = principal
            await app(scope, receive, send)
        best = min(best, (time.perf_counter() - started) / N)
    return best * 1e6


async def main() -> None:
    def middleware(**limits: Any) -> RateLimit:
        settings = load_settings(home="/tmp/graft-bench-ratelimit", limits=limits)
        return RateLimit(answer, Graft(settings, store=MemoryStore(), entry_points=False))

    user = Principal("ann", tenant="acme")
    keyed = Principal("ann", tenant="acme", key_id="gk_0123456789ab")
    huge = 10**12  # never refuses
    bare = await per_call(answer, user)
    rows = [
        ("bare app (baseline)", bare),
        (
            "RateLimit, all limits off",
            await per_call(middleware(requests_per_minute=0, max_streams_per_user=0), user),
        ),
        (
            "RateLimit, per user (default)",
            await per_call(middleware(requests_per_minute=huge), user),
        ),
        (
            "RateLimit, per user and per key",
            await per_call(
                middleware(requests_per_minute=huge, requests_per_minute_per_key=huge), keyed
            ),
        ),
    ]
    for name, micros in rows:
        extra = "" if name.startswith("bare") else f"  (+{micros - bare:.2f} µs)"
        print(f"{name:34} {micros:6.2f} µs/request{extra}")

    small = json.dumps({"model": "default", "messages": [{"role": "user", "content": "hi " * 50}]})
    tool = {
        "type": "function",
        "function": {
            "name": "t",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    tools = json.dumps(
        {
            "model": "default",
            "messages": [{"role": "user", "content": "x"}] * 20,
            "tools": [tool] * 20,
        }
    )
    history = json.dumps(
        {
            "model": "default",
            "messages": [{"role": "user", "content": 'a "line"\nand\\another ' * 20}] * 100,
        }
    )
    print(f"{'JSON depth check (limit 32)':34} {'check':>9} {'pydantic parse':>15}")
    for name, body in (
        ("small chat body", small),
        ("20 messages, 20 tools", tools),
        ("100 messages with escapes", history),
    ):
        data = body.encode()
        check = timed(lambda data=data: nests_deeper(data, 32))
        parse = timed(lambda data=data: ChatCompletionRequest.model_validate_json(data))
        label = f"{name} ({len(data)} B)"
        print(f"{label:34} {check:6.2f} µs {parse:11.2f} µs")


def timed(call: Any, n: int = 5_000) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


if __name__ == "__main__":
    asyncio.run(main())
