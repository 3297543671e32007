"""The per-model report (``graft.store.model_stats``) on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.store.conftest import finished_turn

from graft.context import Principal
from graft.errors import InvalidRequest
from graft.messages import Message, Usage
from graft.store import Store


async def test_the_report_groups_and_counts_on_every_store(store: Store) -> None:
    ann = Principal("ann", tenant="acme")
    _, rated = await finished_turn(store, ann, "one", assistant="support")
    await store.put_feedback(ann, rated, "up")
    cid, tid = await store.begin_turn(
        ann,
        assistant="support",
        model="test:canary",
        conversation_id=None,
        new_messages=[Message("user", "two")],
    )
    await store.finish_turn(
        tid,
        messages=[],
        tool_runs=[],
        usage=Usage(4, 0),
        finish_reason="error",
        duration_ms=30.0,
        error="boom",
        model="test:primary",
        route="fallback",
        first_token_ms=12.0,
    )
    _, gone = await store.begin_turn(
        ann,
        assistant="support",
        model="test:primary",
        conversation_id=None,
        new_messages=[Message("user", "three")],
    )
    await store.finish_turn(
        gone,
        messages=[],
        tool_runs=[],
        usage=Usage(2, 0),
        finish_reason="error",
        duration_ms=5.0,
        error="the client went away",
        model="test:primary",
        route="fallback",
        status="interrupted",
    )
    await finished_turn(store, Principal("eve", tenant="globex"), "other tenant")
    rows = await store.model_stats("acme")
    assert [
        (r.assistant, r.model, r.route, r.turns, r.failed, r.interrupted, r.feedback_up)
        for r in rows
    ] == [
        ("support", "fake:echo", "", 1, 0, 0, 1),
        ("support", "test:primary", "fallback", 2, 1, 1, 0),
    ]
    assert rows[1].to_json()["interrupted"] == 1
    assert rows[1].mean_first_token_ms == 12.0 and rows[1].prompt_tokens == 6
    assert await store.turn_model(tid) == ("support", "test:primary")
    assert len(await store.model_stats(None)) == 3
    assert await store.model_stats("acme", assistant="nobody") == []
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await store.model_stats("acme", since=later) == []
    with pytest.raises(InvalidRequest, match="until must be after since"):
        await store.model_stats("acme", since=later, until=later)
