from __future__ import annotations

import asyncio

import pytest

from graft.store.pending import PendingTurns


async def test_readers_wait_for_the_pending_turns_of_their_conversation() -> None:
    pending = PendingTurns()
    await asyncio.wait_for(pending.wait("c1"), 1)  # nothing pending: no wait
    pending.add("c1")
    pending.add("c1")
    pending.add("c2")
    one = asyncio.ensure_future(pending.wait("c1"))
    every = asyncio.ensure_future(pending.wait())
    other = asyncio.ensure_future(pending.wait("c3"))
    await asyncio.sleep(0)
    assert other.done()
    pending.done("c1")
    await asyncio.sleep(0)
    assert not one.done()  # the second turn of c1 is still being stored
    pending.done("c1")
    await asyncio.wait_for(one, 1)
    assert not every.done()  # c2 still pending
    pending.done("c2")
    await asyncio.wait_for(every, 1)
    assert len(pending) == 0


def test_done_without_add_is_a_bug_that_shows() -> None:
    with pytest.raises(KeyError):
        PendingTurns().done("c1")
