"""A turn's answer goes out before the turn is stored; readers never see the gap."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from graft.runtime import Graft
from graft.store.memory import MemoryStore
from graft.testing import FakeModel

DELAY = 0.3


class SlowFinish(MemoryStore):
    """Takes ``DELAY`` seconds to store a turn's result; counts the turns stored."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = 0

    async def finish_turn(self, turn_id: str, **kwargs: Any) -> None:
        await asyncio.sleep(DELAY)
        await super().finish_turn(turn_id, **kwargs)
        self.finished += 1


@pytest.fixture
def slow(settings_factory: Any, live_server: Any) -> tuple[Graft, SlowFinish, str]:
    store = SlowFinish()
    model = FakeModel("first answer", "second answer", "third")
    graft = Graft(
        settings_factory(model=model.id),
        store=store,
        entry_points=False,
        models={model.id: model},
    )
    return graft, store, live_server(graft).url


def _ask(url: str, content: str, *, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": "default", "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": stream}, timeout=10)


def test_the_answer_comes_before_the_write_and_readers_wait_for_it(slow: Any) -> None:
    graft, store, url = slow
    first = _ask(url, "one")
    assert first.status_code == 200
    # The response did not wait for the store...
    assert store.finished == 0
    conversation_id = first.json()["conversation_id"]
    # ...but a read does: the answer is there, and the turn is done.
    detail = httpx.get(f"{url}/v1/conversations/{conversation_id}", timeout=10).json()
    assert [m["content"] for m in detail["messages"]] == ["one", "first answer"]
    assert [t["status"] for t in detail["turns"]] == ["done"]
    # A next turn sent at once sees the first answer in its history.
    _ask(url, "two", conversation_id=conversation_id)
    model = graft.model_for(graft.assistant("default"))
    sent = [m.content for m in model.requests[-1].messages[1:]]  # type: ignore[attr-defined]
    assert sent == ["one", "first answer", "two"]


def test_a_stream_ends_at_done_and_the_turn_is_stored_whole(slow: Any) -> None:
    graft, store, url = slow
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=10,
    ) as response:
        body = b"".join(response.iter_bytes())
    assert body.endswith(b"data: [DONE]\n\n")
    assert store.finished == 0  # the body ended before the turn was stored
    first = json.loads(body.split(b"\n\n")[0].removeprefix(b"data: "))
    detail = httpx.get(f"{url}/v1/conversations/{first['conversation_id']}", timeout=10).json()
    # Stored as a finished turn, not as one whose client went away.
    assert [t["status"] for t in detail["turns"]] == ["done"]
    assert detail["turns"][0]["error"] is None
    assert detail["messages"][-1]["content"] == "first answer"


def test_shutting_down_waits_for_the_turns_still_being_stored(
    settings_factory: Any, live_server: Any
) -> None:
    store = SlowFinish()
    model = FakeModel("answer")
    graft = Graft(
        settings_factory(model=model.id), store=store, entry_points=False, models={model.id: model}
    )
    server = live_server(graft)
    assert _ask(server.url, "one").status_code == 200
    assert store.finished == 0
    server.__exit__(None, None, None)  # the lifespan's shutdown closes graft
    assert store.finished == 1
