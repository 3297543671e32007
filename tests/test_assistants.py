"""``graft.assistants``: resolving configured and stored assistants, and what a turn costs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from graft.context import Principal
from graft.errors import (
    ConfigError,
    Conflict,
    InvalidRequest,
    PermissionDenied,
    UnknownAssistant,
)
from graft.messages import Message
from graft.runtime import Graft
from graft.store.memory import MemoryStore
from graft.testing import FakeModel
from graft.turn import TurnRequest

BEA = Principal("bea", frozenset({"builder"}), tenant="acme")
ANN = Principal("ann", frozenset({"user"}), tenant="acme")
GIL = Principal("gil", frozenset({"builder"}), tenant="globex")


class CountingStore(MemoryStore):
    """Counts the reads of stored assistants."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get_assistant(self, tenant: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return await super().get_assistant(tenant, name)


@pytest.fixture
async def graft(settings_factory: Callable[..., Any]) -> Any:
    model = FakeModel(*["fine"] * 10)
    opened = Graft(
        settings_factory(model=model.id, assistants={"hr": {"system_prompt": "HR."}}),
        store=CountingStore(),
        entry_points=False,
        models={model.id: model},
    )
    await opened.start()
    yield opened
    await opened.aclose()


async def turn(graft: Graft, principal: Principal, assistant: str) -> list[Any]:
    request = TurnRequest(assistant, [Message("user", "hi")])
    return [event async for event in graft.run_turn(request, principal)]


async def test_configured_names_never_reach_the_store(graft: Graft) -> None:
    store: CountingStore = graft.store  # type: ignore[assignment]
    assert (await graft.resolve_assistant("hr", ANN)).system_prompt == "HR."
    assert (await graft.resolve_assistant("default", ANN)).tools is None
    await turn(graft, ANN, "hr")
    assert store.reads == 0


async def test_a_stored_assistant_is_read_once_per_cache_period(graft: Graft) -> None:
    store: CountingStore = graft.store  # type: ignore[assignment]
    await graft.catalog.put("helper", {"system_prompt": "Help."}, BEA)
    reads = store.reads  # put looked once: created or replaced?
    for _ in range(3):
        await turn(graft, ANN, "helper")
    assert store.reads == reads  # put filled the cache: no turn read the store

    graft.catalog._cache.clear()
    assert (await graft.resolve_assistant("helper", ANN)).system_prompt == "Help."
    assert (await graft.resolve_assistant("helper", ANN)).system_prompt == "Help."
    assert store.reads == reads + 1


async def test_unknown_names_are_remembered_too_and_odd_ones_never_read(graft: Graft) -> None:
    store: CountingStore = graft.store  # type: ignore[assignment]
    for _ in range(3):
        with pytest.raises(UnknownAssistant) as caught:
            await graft.resolve_assistant("gpt-4", ANN)
    assert caught.value.param == "model" and store.reads == 1
    with pytest.raises(UnknownAssistant):
        await graft.resolve_assistant("not a name: ' OR 1=1", ANN)
    assert store.reads == 1


async def test_another_worker_s_change_shows_once_the_cache_period_ends(
    settings_factory: Callable[..., Any],
) -> None:
    shared = MemoryStore()
    one, other = (Graft(settings_factory(), store=shared, entry_points=False) for _ in range(2))
    one.catalog._ttl = 0.0  # this worker reads every time
    await other.catalog.put("helper", {"system_prompt": "v1"}, BEA)
    assert (await one.resolve_assistant("helper", ANN)).system_prompt == "v1"
    await other.catalog.put("helper", {"system_prompt": "v2"}, BEA)
    assert (await one.resolve_assistant("helper", ANN)).system_prompt == "v2"
    await other.catalog.delete("helper", BEA)
    with pytest.raises(UnknownAssistant):
        await one.resolve_assistant("helper", ANN)


async def test_stored_assistants_belong_to_their_tenant(graft: Graft) -> None:
    await graft.catalog.put("helper", {"system_prompt": "acme's"}, BEA)
    with pytest.raises(UnknownAssistant):
        await graft.resolve_assistant("helper", GIL)
    assert await graft.catalog.find("helper", GIL) is None
    events = await turn(graft, ANN, "helper")
    assert type(events[-1]).__name__ == "TurnDone"


async def test_the_settings_win_over_a_stored_assistant_of_the_same_name(graft: Graft) -> None:
    # Stored before the settings named it (a later settings file): it can no longer be reached.
    await graft.store.put_assistant("acme", "hr", {"system_prompt": "stored HR"}, "bea")
    assert (await graft.resolve_assistant("hr", ANN)).system_prompt == "HR."
    names = [(e.name, e.source) for e in await graft.catalog.entries(BEA, managed=True)]
    assert names == [("default", "config"), ("hr", "config")]
    with pytest.raises(Conflict):
        await graft.catalog.put("hr", {"system_prompt": "again"}, BEA)


async def test_a_stored_definition_that_no_longer_validates_is_a_clear_error(
    graft: Graft, caplog: pytest.LogCaptureFixture
) -> None:
    await graft.store.put_assistant("acme", "old", {"system_prompt": "x", "gone": 1}, "bea")
    with pytest.raises(ConfigError, match="stored assistant 'old' is no longer valid: gone"):
        await graft.resolve_assistant("old", ANN)
    assert [e.name for e in await graft.catalog.entries(BEA, managed=True)] == ["default", "hr"]
    assert "no longer valid" in caplog.text


async def test_users_may_not_change_assistants(graft: Graft) -> None:
    with pytest.raises(PermissionDenied):
        await graft.catalog.put("helper", {"system_prompt": "x"}, ANN)
    with pytest.raises(PermissionDenied):
        await graft.catalog.delete("helper", ANN)
    [denied, _] = await graft.store.list_audit(None, 10, "acme")
    assert denied.action == "access.denied" and denied.target == "assistant:helper"


@pytest.mark.parametrize("name", ["helper\n", "", "-x", "two words", "a" * 65, "ümlaut"])
async def test_names_are_checked_whole(graft: Graft, name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await graft.catalog.put(name, {"system_prompt": "x"}, BEA)
    assert caught.value.param == "name"
    assert await graft.store.list_assistants("acme") == []
