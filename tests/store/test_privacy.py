"""Privacy in every Store (memory, SQLite, PostgreSQL): export, erasure, retention, metadata.

The backends come from this folder's ``conftest.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from graft.context import Principal
from graft.errors import InvalidRequest
from graft.messages import Message, ToolCall, Usage
from graft.store import Store, ToolRun
from graft.store import privacy as privacy_mod
from graft.store.privacy import EXPORT_FORMAT
from graft.store.sql import SQLStore, t_conversations, t_messages, t_tool_runs, t_turns

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")
ALICE_ELSEWHERE = Principal("alice", tenant="globex")


async def chat(
    store: Store,
    principal: Principal,
    text: str,
    *,
    assistant: str = "helper",
    conversation_id: str | None = None,
    tools: bool = False,
) -> str:
    """One finished turn (with a tool call and its run when ``tools``); the conversation id."""
    cid, tid = await store.begin_turn(
        principal,
        assistant=assistant,
        model="fake:echo",
        conversation_id=conversation_id,
        new_messages=[Message("user", text, name="me")],
    )
    produced = [Message("assistant", f"re: {text}")]
    runs: list[ToolRun] = []
    if tools:
        call = ToolCall("call_1", "lookup", '{"q": "x"}')
        produced = [
            Message("assistant", None, tool_calls=[call]),
            Message("tool", f"found for {text}", tool_call_id="call_1", name="lookup"),
            *produced,
        ]
        runs = [ToolRun("call_1", "lookup", '{"q": "x"}', f"found for {text}", False, 2.5)]
    await store.finish_turn(
        tid,
        messages=produced,
        tool_runs=runs,
        usage=Usage(5, 2),
        finish_reason="stop",
        duration_ms=10.0,
    )
    return cid


def row_counts(store: SQLStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (t_conversations, t_turns, t_messages, t_tool_runs)
        }


async def titles(store: Store, principal: Principal) -> list[str]:
    return sorted(c.title for c in await store.list_conversations(principal, limit=200))


# --- export ---------------------------------------------------------------------------------


async def test_export_holds_every_conversation_of_the_user_and_nothing_else(store: Store) -> None:
    first = await chat(store, ALICE, "alice's first", tools=True)
    await chat(store, BOB, "bob's secret")
    await chat(store, ALICE_ELSEWHERE, "alice at globex")
    second = await chat(store, ALICE, "alice's second")
    await chat(store, ALICE, "and a follow-up", conversation_id=first)

    document = await store.export_user_data("acme", "alice")

    assert json.loads(json.dumps(document)) == document  # JSON as it is
    assert (document["object"], document["format"]) == ("user_data_export", EXPORT_FORMAT)
    assert (document["tenant"], document["user"]) == ("acme", "alice")
    assert datetime.fromisoformat(document["exported_at"]).tzinfo is not None
    # Oldest first, each whole: what get_conversation reads, in plain JSON.
    assert [c["id"] for c in document["conversations"]] == [first, second]
    exported = document["conversations"][0]
    info, messages, turns = await store.get_conversation(first, ALICE)
    assert exported["title"] == "alice's first" and exported["assistant"] == "helper"
    assert exported["updated_at"] == info.updated_at.isoformat()
    assert [m["content"] for m in exported["messages"]] == [m.message.content for m in messages]
    assert exported["messages"][0] == {
        "role": "user",
        "content": "alice's first",
        "name": "me",
        "turn_id": turns[0].id,
        "created_at": messages[0].created_at.isoformat(),
    }
    assert exported["messages"][1]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]
    assert exported["messages"][2]["tool_call_id"] == "call_1"
    assert [t["id"] for t in exported["turns"]] == [t.id for t in turns]
    assert exported["turns"][0]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
    }
    assert exported["turns"][0]["tool_runs"] == [
        {
            "call_id": "call_1",
            "name": "lookup",
            "arguments": '{"q": "x"}',
            "result": "found for alice's first",
            "is_error": False,
            "duration_ms": 2.5,
        }
    ]
    assert exported["turns"][1]["tool_runs"] == []
    text = json.dumps(document)
    assert "bob's secret" not in text and "alice at globex" not in text


async def test_export_of_someone_without_conversations_is_empty(store: Store) -> None:
    await chat(store, ALICE, "hello")
    assert (await store.export_user_data("acme", "nobody"))["conversations"] == []
    assert (await store.export_user_data("initech", "alice"))["conversations"] == []


# --- erasure --------------------------------------------------------------------------------


async def test_deleting_a_users_data_leaves_other_users_and_tenants_alone(store: Store) -> None:
    await chat(store, ALICE, "one", tools=True)
    await chat(store, ALICE, "two")
    bobs = await chat(store, BOB, "bob's")
    await chat(store, ALICE_ELSEWHERE, "globex alice's")

    assert await store.delete_user_data("acme", "alice") == 2

    assert await store.list_conversations(ALICE) == []
    assert (await store.export_user_data("acme", "alice"))["conversations"] == []
    assert await titles(store, BOB) == ["bob's"]
    assert await titles(store, ALICE_ELSEWHERE) == ["globex alice's"]
    assert [m.content for m in await store.load_history(bobs, BOB)] == ["bob's", "re: bob's"]
    assert await store.delete_user_data("acme", "alice") == 0
    if isinstance(store, SQLStore):  # the turns, messages and tool runs went too
        assert row_counts(store) == {"conversations": 2, "turns": 2, "messages": 4, "tool_runs": 0}


async def test_deleting_many_conversations_goes_in_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(privacy_mod, "BATCH", 3)
    for i in range(7):
        await chat(store, ALICE, f"question {i}")
    await chat(store, BOB, "stays")
    assert await store.delete_user_data("acme", "alice") == 7
    assert await store.list_conversations(ALICE) == []
    assert await titles(store, BOB) == ["stays"]


# --- retention ------------------------------------------------------------------------------


async def test_purge_deletes_the_assistants_conversations_not_updated_since(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(privacy_mod, "BATCH", 2)
    old = [await chat(store, p, f"old {i}") for i, p in enumerate([ALICE, BOB, ALICE_ELSEWHERE])]
    revived = await chat(store, ALICE, "revived")
    other = await chat(store, ALICE, "another assistant's", assistant="other")
    cutoff = datetime.now(UTC)
    await chat(store, ALICE, "continued", conversation_id=revived)  # updated after the cutoff
    fresh = await chat(store, BOB, "fresh")

    assert await store.purge_conversations("helper", cutoff - timedelta(days=1)) == 0
    assert await store.purge_conversations("nobody", cutoff) == 0
    assert await store.purge_conversations("helper", cutoff) == 3  # every tenant's

    remaining = {
        c.id for p in (ALICE, BOB, ALICE_ELSEWHERE) for c in await store.list_conversations(p)
    }
    assert remaining == {revived, other, fresh}
    assert not remaining & set(old)
    assert await store.purge_conversations("helper", cutoff) == 0
    if isinstance(store, SQLStore):
        assert row_counts(store)["conversations"] == 3
        assert row_counts(store)["turns"] == 4  # revived has two


async def test_purge_refuses_a_naive_time(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.purge_conversations("helper", datetime.now())


async def test_purge_takes_tool_runs_with_the_turns(sql_store: SQLStore) -> None:
    await chat(sql_store, ALICE, "with tools", tools=True)
    assert row_counts(sql_store)["tool_runs"] == 1
    assert await sql_store.purge_conversations("helper", datetime.now(UTC) + timedelta(1)) == 1
    assert row_counts(sql_store) == {"conversations": 0, "turns": 0, "messages": 0, "tool_runs": 0}


# --- what admins see ------------------------------------------------------------------------


async def test_tenant_conversations_are_metadata_without_titles(store: Store) -> None:
    alice = await chat(store, ALICE, "alice's private question", tools=True)
    bob = await chat(store, BOB, "bob's private question")
    await chat(store, ALICE_ELSEWHERE, "globex")
    await chat(store, ALICE, "more", conversation_id=alice)  # now the most recent

    listed = await store.list_tenant_conversations("acme")

    assert [(c.id, c.user_id, c.tenant, c.assistant) for c in listed] == [
        (alice, "alice", "acme", "helper"),
        (bob, "bob", "acme", "helper"),
    ]
    assert [c.title for c in listed] == ["", ""]
    assert [c.message_count for c in listed] == [6, 2]
    info, _, _ = await store.get_conversation(alice, ALICE)
    assert (listed[0].created_at, listed[0].updated_at) == (info.created_at, info.updated_at)
    assert [c.id for c in await store.list_tenant_conversations("acme", limit=1, offset=1)] == [bob]
    assert await store.list_tenant_conversations("initech") == []
    with pytest.raises(InvalidRequest):
        await store.list_tenant_conversations("acme", limit=-1)
