"""Retention: purging conversations past their assistant's ``retention_days``.

Time is injected (``now``, a clock running ahead), never slept through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select, update

from graft import retention
from graft.config import Settings
from graft.context import Principal
from graft.messages import Message
from graft.runtime import Graft
from graft.store import Store
from graft.store.memory import MemoryStore
from graft.store.sql import SQLStore, t_conversations
from graft.testing import FakeModel

ANN = Principal("ann", tenant="acme")
ASSISTANTS = {"helper": {"retention_days": 30}, "keeper": {}}


async def start(store: Store, assistant: str, text: str = "hello") -> str:
    cid, _ = await store.begin_turn(
        ANN,
        assistant=assistant,
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("user", text)],
    )
    return cid


async def ids(store: Store) -> set[str]:
    return {c.id for c in await store.list_conversations(ANN, limit=200)}


def test_retention_days_is_a_positive_number_of_days(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(assistants=ASSISTANTS)
    assert settings.assistants["helper"].retention_days == 30
    assert settings.assistants["keeper"].retention_days is None
    assert retention.retention_configured(settings)
    assert not retention.retention_configured(settings_factory())
    from graft.errors import ConfigError

    with pytest.raises(ConfigError, match="retention_days"):
        settings_factory(assistants={"x": {"retention_days": 0}})


async def test_a_pass_purges_only_assistants_with_retention_and_is_audited(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory(assistants=ASSISTANTS)
    store = MemoryStore()
    doomed = await start(store, "helper")
    kept = await start(store, "keeper")
    default = await start(store, "default")

    assert await retention.purge_expired(store, settings) == {"helper": 0}  # not 30 days yet
    assert await ids(store) == {doomed, kept, default}

    later = datetime.now(UTC) + timedelta(days=31)
    with caplog.at_level(logging.INFO, logger="graft.retention"):
        assert await retention.purge_expired(store, settings, now=later) == {"helper": 1}
    assert await ids(store) == {kept, default}
    assert "removed 1 conversation(s) of assistant 'helper'" in caplog.text
    [record] = await store.list_audit(None, 10)
    assert (record.action, record.actor, record.target) == (
        "conversations.purge",
        retention.ACTOR,
        "assistant:helper",
    )
    assert '"conversations":1' in record.details and "hello" not in record.details


class FlakyStore(MemoryStore):
    """A store whose first purge fails, as a database that is briefly away."""

    def __init__(self) -> None:
        super().__init__()
        self.purges = 0
        self.removed = anyio.Event()
        """Set when a purge removed something."""

    async def purge_conversations(self, assistant: str, older_than: datetime) -> int:
        self.purges += 1
        if self.purges == 1:
            raise OSError("the database is away")
        count = await super().purge_conversations(assistant, older_than)
        if count:
            self.removed.set()
        return count


async def test_the_background_task_keeps_purging_after_a_failure(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory(assistants=ASSISTANTS)
    store = FlakyStore()
    kept = await start(store, "keeper")
    doomed = await start(store, "helper")

    def clock() -> datetime:  # 31 days ahead: everything of "helper" is expired
        return datetime.now(UTC) + timedelta(days=31)

    with anyio.fail_after(10):
        async with retention.purging(store, settings, first_delay=0, interval=0.01, clock=clock):
            await store.removed.wait()  # not on the first pass, which failed
            assert await ids(store) == {kept}
            store.removed = anyio.Event()
            await start(store, "helper")
            await store.removed.wait()  # a later pass takes the next one
    assert store.purges >= 3
    assert doomed not in await ids(store)
    assert await ids(store) == {kept}
    assert "the purge failed" in caplog.text and "the database is away" in caplog.text


async def test_without_retention_no_task_runs(settings_factory: Callable[..., Settings]) -> None:
    store = FlakyStore()
    with anyio.fail_after(5):
        await retention.run_retention(store, settings_factory(), first_delay=0, interval=0)
    assert store.purges == 0


def test_the_server_purges_shortly_after_it_starts(
    settings_factory: Callable[..., Settings],
    live_server: Callable[[Graft], Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention, "FIRST_DELAY", 0.0)
    url = f"sqlite:///{tmp_path / 'graft.db'}"
    seeder = SQLStore(url)

    async def seed() -> tuple[str, str]:
        await seeder.start()
        doomed, kept = await start(seeder, "helper", "old"), await start(seeder, "helper", "new")
        with seeder.engine.begin() as conn:  # 40 days without a turn
            conn.execute(
                update(t_conversations)
                .where(t_conversations.c.id == doomed)
                .values(updated_at=datetime.now(UTC) - timedelta(days=40))
            )
        await seeder.close()
        return doomed, kept

    doomed, kept = anyio.run(seed)
    model = FakeModel("ok")
    store = SQLStore(url)
    graft = Graft(
        settings_factory(model=model.id, assistants=ASSISTANTS),
        store=store,
        entry_points=False,
        models={model.id: model},
    )
    live_server(graft)

    def stored() -> set[str]:
        with store.engine.connect() as conn:
            return set(conn.scalars(select(t_conversations.c.id)))

    deadline = time.monotonic() + 10
    while doomed in stored() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored() == {kept}
