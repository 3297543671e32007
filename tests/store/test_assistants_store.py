"""Stored assistants on every Store: in memory, a SQLite file and a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from graft.store import Store
from graft.store.base import StoredAssistant

HELPDESK = {
    "description": "Answers IT questions",
    "system_prompt": "你是 ACME 的服务台。Answer briefly.",
    "tools": ["calculator"],
    "collections": ["handbook", "it"],
    "temperature": 0.2,
    "plugins": {"sentiment": {"negative_in_a_row": 2}},
}


async def test_put_get_list_delete_round_trip(store: Store) -> None:
    assert await store.get_assistant("acme", "helpdesk") is None
    assert await store.list_assistants("acme") == []

    await store.put_assistant("acme", "helpdesk", HELPDESK, "bea")

    assert await store.get_assistant("acme", "helpdesk") == HELPDESK
    [stored] = await store.list_assistants("acme")
    assert isinstance(stored, StoredAssistant)
    assert (stored.tenant, stored.name, stored.definition) == ("acme", "helpdesk", HELPDESK)
    assert stored.created_by == "bea"
    assert stored.created_at == stored.updated_at
    assert stored.created_at.tzinfo is not None

    assert await store.delete_assistant("acme", "helpdesk") is True
    assert await store.delete_assistant("acme", "helpdesk") is False
    assert await store.get_assistant("acme", "helpdesk") is None
    assert await store.list_assistants("acme") == []


async def test_putting_again_replaces_the_definition_and_keeps_the_creator(store: Store) -> None:
    await store.put_assistant("acme", "helpdesk", HELPDESK, "bea")
    [first] = await store.list_assistants("acme")
    await asyncio.sleep(0.01)

    await store.put_assistant("acme", "helpdesk", {"system_prompt": "Shorter."}, "root")

    assert await store.get_assistant("acme", "helpdesk") == {"system_prompt": "Shorter."}
    [second] = await store.list_assistants("acme")
    assert second.created_by == "bea" and second.created_at == first.created_at
    assert second.updated_at > first.updated_at


async def test_each_tenant_has_its_own_names(store: Store) -> None:
    await store.put_assistant("acme", "helpdesk", HELPDESK, "bea")
    await store.put_assistant("globex", "helpdesk", {"system_prompt": "globex"}, "gil")
    await store.put_assistant("acme", "analyst", {"system_prompt": "numbers"}, "bea")

    assert [a.name for a in await store.list_assistants("acme")] == ["analyst", "helpdesk"]
    assert await store.get_assistant("globex", "helpdesk") == {"system_prompt": "globex"}
    assert await store.get_assistant("initech", "helpdesk") is None

    assert await store.delete_assistant("globex", "analyst") is False
    assert await store.delete_assistant("globex", "helpdesk") is True
    assert await store.get_assistant("acme", "helpdesk") == HELPDESK


async def test_definitions_handed_out_are_copies(store: Store) -> None:
    definition = {"system_prompt": "x", "tools": ["calculator"]}
    await store.put_assistant("acme", "a", definition, "bea")
    definition["tools"].append("clock")

    got = await store.get_assistant("acme", "a")
    assert got == {"system_prompt": "x", "tools": ["calculator"]}
    got["tools"].append("clock")
    [listed] = await store.list_assistants("acme")
    listed.definition["tools"].append("clock")

    assert await store.get_assistant("acme", "a") == {"system_prompt": "x", "tools": ["calculator"]}


async def test_a_definition_must_be_json(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.put_assistant("acme", "a", {"when": object()}, "bea")
    assert await store.get_assistant("acme", "a") is None
