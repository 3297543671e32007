"""The feedback tests' world: a SQLite home served over HTTP, people who chat and rate.

Conversations run through the real ``run_turn`` behind the real app (``/v1/chat/completions``)
with a scripted model that calls the real calculator tool; ratings go through
``POST /v1/feedback``. The command line then reads the same SQLite file, encrypted at rest
as graft always stores it, from ``GRAFT_HOME``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from graft.config import load_settings
from graft.context import Principal
from graft.identity import issue_key
from graft.runtime import Graft
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


@dataclass
class World:
    """The served graft, its people's keys, and the model's script."""

    graft: Graft
    model: FakeModel
    url: str
    keys: dict[str, str] = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def chat(
        self, who: str, messages: list[dict[str, Any]], conversation_id: str | None = None
    ) -> tuple[str, str]:
        """One non-streamed turn; its ``(conversation_id, turn_id)``."""
        body: dict[str, Any] = {"model": "default", "messages": messages}
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        answer = self.call(who, "POST", "/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["conversation_id"], answer.json()["turn_id"]

    def rate(self, who: str, turn_id: str, rating: str, comment: str | None = None) -> None:
        body = {"turn_id": turn_id, "rating": rating, "comment": comment}
        given = self.call(who, "POST", "/v1/feedback", json=body)
        assert given.status_code == 200, given.text


@pytest.fixture
def database_url() -> str | None:
    """The database of the world: ``None`` for ``home``'s SQLite file."""
    return None


@pytest.fixture
async def world(
    home: Path,
    database_url: str | None,
    live_server: Callable[[Graft], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    """ann and bob (users) of acme on a live server over ``home``'s database."""
    model = FakeModel(id="test:fake")
    overrides: dict[str, Any] = {"home": home, "model": model.id}
    if database_url is not None:
        overrides["database_url"] = database_url
        monkeypatch.setenv("GRAFT_DATABASE_URL", database_url)  # for the command line
    graft = Graft(
        load_settings(**overrides),
        models={model.id: model},
        entry_points=False,
    )
    await graft.start()
    keys = {}
    for name in ("ann", "bob"):
        user = await graft.store.create_user(tenant="acme", name=name, roles=["user"], groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="first")
    server = live_server(graft)
    yield World(graft, model, server.url, keys)
