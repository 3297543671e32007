"""Shared by the server tests: four people in two tenants, each with a key, on a live server;
and a turn already in the store for tests of what is done with conversations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from graft.context import Principal
from graft.identity import issue_key
from graft.messages import Message, Usage
from graft.runtime import Graft
from graft.store import Store
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))
"""Who made the keys (the command line's operator)."""

PEOPLE = (
    ("acme", "ann", ["user"]),
    ("acme", "bob", ["user"]),
    ("acme", "root", ["admin", "user"]),
    ("globex", "eve", ["admin", "user"]),
)


@dataclass
class Team:
    """The people's graft and keys, and a way to call the server as one of them."""

    graft: Graft
    keys: dict[str, str]
    url: str

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method path`` with ``who``'s key (``keys`` may gain more names)."""
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, **kwargs)


@pytest.fixture
async def team(graft_factory: Any, live_server: Any) -> Team:
    """ann and bob (users) and root (admin) in acme, eve (admin) in globex."""
    graft = graft_factory(FakeModel(*["ok"] * 5))
    keys: dict[str, str] = {}
    for tenant, name, roles in PEOPLE:
        user = await graft.store.create_user(tenant=tenant, name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="first")
    return Team(graft, keys, live_server(graft).url)


async def stored_turn(store: Store, tenant: str, user: str, text: str) -> tuple[str, str]:
    """A finished turn of a new conversation of ``user``'s: ``(conversation_id, turn_id)``."""
    cid, tid = await store.begin_turn(
        Principal(user, tenant=tenant),
        assistant="default",
        model="fake:ok",
        conversation_id=None,
        new_messages=[Message("user", text)],
    )
    await store.finish_turn(
        tid,
        messages=[Message("assistant", f"answer to {text}")],
        tool_runs=[],
        usage=Usage(3, 2),
        finish_reason="stop",
        duration_ms=1.0,
    )
    return cid, tid
