"""The model registry over HTTP, in /metrics, in the store's report and on the command line.

A live server with fake models routed by alias and canary, and ``graft models list|stats``
on a SQLite file. The store's report on every backend is in ``tests/store/test_model_stats.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import invoke
from tests.store.conftest import finished_turn

from graft.context import Principal
from graft.identity import issue_key
from graft.runtime import Graft
from graft.testing import FunctionModel, MemoryStore

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))
ASSISTANTS = {
    "support": {"model": "prod", "canary": {"model": "test:canary", "share": 1.0}},
    "plain": {"model": "prod"},
}


@pytest.fixture
async def served(settings_factory: Any, live_server: Any) -> tuple[str, dict[str, str]]:
    """A live server: ``support`` sends every turn to its canary, ``plain`` to ``prod``."""
    primary = FunctionModel(lambda r: "primary says hi", id="test:primary")
    canary = FunctionModel(lambda r: "canary says hi", id="test:canary")
    settings = settings_factory(models={"aliases": {"prod": "test:primary"}}, assistants=ASSISTANTS)
    graft = Graft(
        settings,
        store=MemoryStore(),
        entry_points=False,
        models={primary.id: primary, canary.id: canary},
    )
    keys = {}
    for name, roles in (("ann", ["user"]), ("root", ["admin", "user"])):
        user = await graft.store.create_user(tenant="acme", name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="k")
    return live_server(graft).url, keys


def call(url: str, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, url + path, headers={"authorization": f"Bearer {key}"}, timeout=10, **kwargs
    )


def test_routed_turns_rated_and_reported(served: tuple[str, dict[str, str]]) -> None:
    url, keys = served
    chat = {"messages": [{"role": "user", "content": "hello"}]}
    canary = call(
        url, keys["ann"], "POST", "/v1/chat/completions", json={**chat, "model": "support"}
    )
    assert canary.status_code == 200, canary.text
    body = canary.json()
    # The client's model stays what it asked; graft's own field names the model that answered.
    assert (body["model"], body["graft_model"]) == ("support", "test:canary")
    assert body["choices"][0]["message"]["content"] == "canary says hi"
    plain = call(url, keys["ann"], "POST", "/v1/chat/completions", json={**chat, "model": "plain"})
    assert plain.json()["graft_model"] == "test:primary"

    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {keys['ann']}"},
        json={**chat, "model": "support", "stream": True},
    ) as stream:
        chunks = [
            json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")
        ]
    assert chunks[0]["graft_model"] == chunks[-1]["graft_model"] == "test:canary"

    rated = call(
        url,
        keys["ann"],
        "POST",
        "/v1/feedback",
        json={"turn_id": body["turn_id"], "rating": "down"},
    )
    assert rated.status_code == 200, rated.text

    metrics = httpx.get(url + "/metrics").text
    turns = 'graft_model_turns_total{assistant=%s,model=%s,outcome="ok",route=%s} %s'
    assert turns % ('"support"', '"test:canary"', '"canary"', "2.0") in metrics
    assert turns % ('"plain"', '"test:primary"', '"primary"', "1.0") in metrics
    assert (
        'graft_model_feedback_total{assistant="support",model="test:canary",rating="down"} 1.0'
        in metrics
    )
    assert (
        'graft_model_first_token_seconds_count{assistant="support",model="test:canary"} 2.0'
        in metrics
    )

    # Admin-only: anyone else gets the answer of an unknown path.
    for method in ("GET", "POST"):
        assert call(url, keys["ann"], method, "/v1/admin/models/stats").status_code == 404
    report = call(url, keys["root"], "GET", "/v1/admin/models/stats")
    assert report.status_code == 200, report.text
    rows = {(r["assistant"], r["model"], r["route"]): r for r in report.json()["data"]}
    assert set(rows) == {("support", "test:canary", "canary"), ("plain", "test:primary", "primary")}
    support = rows["support", "test:canary", "canary"]
    assert (support["turns"], support["failed"], support["feedback_down"]) == (2, 0, 1)
    assert support["up_rate"] == 0.0 and support["mean_first_token_ms"] is not None
    registry = report.json()["registry"]
    assert registry["aliases"] == {"prod": "test:primary"}
    listed = {a["assistant"]: a for a in registry["assistants"]}
    assert listed["support"]["canary"] == {
        "model": "test:canary",
        "resolved": "test:canary",
        "share": 1.0,
    }
    bad = call(url, keys["root"], "GET", "/v1/admin/models/stats", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since must be a date-time" in bad.text


def test_the_command_line_lists_and_reports(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text(
        '[models.aliases]\nprod = "openai:gpt-4o-mini"\n\n'
        '[assistants.support]\nmodel = "prod"\n'
        '[assistants.support.canary]\nmodel = "local:smollm2@tuned-v1"\nshare = 0.1\n'
    )
    listed = invoke("--config", str(config), "models", "list")
    assert listed.exit_code == 0, listed.output
    assert "prod -> openai:gpt-4o-mini" in listed.output
    assert (
        "support: prod (openai:gpt-4o-mini); canary local:smollm2@tuned-v1 at 10%" in listed.output
    )

    import asyncio

    from graft.store import open_store

    async def fill() -> None:
        store = open_store(f"sqlite:///{home / 'graft.db'}")
        await store.start()
        await finished_turn(store, Principal("ann"), "hello", assistant="support")
        await store.close()

    asyncio.run(fill())
    stats = invoke("--config", str(config), "models", "stats", "--json")
    assert stats.exit_code == 0, stats.output
    rows = json.loads(stats.output)
    assert [(r["assistant"], r["model"], r["turns"]) for r in rows] == [("support", "fake:echo", 1)]
    table = invoke("--config", str(config), "models", "stats", "--assistant", "support")
    assert "fake:echo" in table.output and table.exit_code == 0
    wrong = invoke("--config", str(config), "models", "stats", "--since", "soon")
    assert wrong.exit_code == 2 and "use 7d, 12h, 2w" in wrong.output
