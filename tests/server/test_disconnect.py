"""``DisconnectWatch``: a client's going away is noticed once the watch starts, not before.

The integration side (a real client disconnecting from ``graft serve`` closes the upstream
request within a second) is in ``tests/scale/test_faults.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graft.server.disconnect import WATCH_AFTER, DisconnectWatch


class Client:
    """An ASGI ``receive`` that answers ``http.disconnect`` once the client has left."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.waits = 0

    async def receive(self) -> dict[str, Any]:
        self.waits += 1
        await self.left.wait()
        return {"type": "http.disconnect"}


async def test_a_short_request_never_waits_for_a_disconnect() -> None:
    client, calls = Client(), []
    watch = DisconnectWatch(client.receive, lambda: calls.append("gone"))
    await asyncio.sleep(WATCH_AFTER / 5)
    watch.close()
    client.left.set()
    await asyncio.sleep(WATCH_AFTER * 2)
    assert client.waits == 0 and calls == [] and not watch.gone


async def test_a_client_that_leaves_is_noticed_once_the_watch_starts() -> None:
    client, calls = Client(), []
    watch = DisconnectWatch(client.receive, lambda: calls.append("gone"), after=0.01)
    client.left.set()  # gone before the watch started: noticed when it starts
    await asyncio.sleep(0.1)
    assert calls == ["gone"] and watch.gone and client.waits == 1
    watch.close()


async def test_a_disarmed_watch_lets_the_client_leave() -> None:
    client, calls = Client(), []
    watch = DisconnectWatch(client.receive, lambda: calls.append("gone"), after=0.01)
    await asyncio.sleep(0.05)
    assert client.waits == 1  # waiting now
    watch.armed = False  # the answer is complete: leaving is the client being done
    client.left.set()
    await asyncio.sleep(0.05)
    assert calls == [] and watch.gone
    watch.close()


async def test_closing_stops_a_started_wait() -> None:
    client, calls = Client(), []
    watch = DisconnectWatch(client.receive, lambda: calls.append("gone"), after=0.01)
    await asyncio.sleep(0.05)
    watch.close()
    await asyncio.sleep(0)
    client.left.set()
    await asyncio.sleep(0.05)
    assert calls == [] and not watch.gone
