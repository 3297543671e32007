"""The model registry: aliases and their errors, canary routing and fallback, the stored turn.

Through ``run_turn`` with ``graft.testing`` fake models registered under their ids, on the
in-memory store; the HTTP surface, metrics, reports and the CLI are in
``test_registry_api.py``.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from graft.config import load_settings
from graft.context import Principal
from graft.errors import ConfigError, InvalidRequest, ModelError
from graft.events import Event, TextDelta, TurnDone, TurnStarted
from graft.messages import Message
from graft.model_routing import bucket, route_turn, routing_key
from graft.model_settings import resolve_model_id
from graft.runtime import Graft
from graft.testing import FakeModel, FunctionModel, MemoryStore
from graft.turn import TurnRequest

ALICE = Principal("alice", frozenset({"user"}))
ADMIN = Principal("root", frozenset({"admin", "user"}))


def graft_with(tmp_path: Path, fakes: list[Any], **overrides: Any) -> Graft:
    settings = load_settings(home=tmp_path / "home", **overrides)
    return Graft(
        settings,
        store=MemoryStore(),
        entry_points=False,
        models={m.id: m for m in fakes},
    )


async def turn(
    graft: Graft, text: str, cid: str | None = None, assistant: str = "support"
) -> list[Event]:
    request = TurnRequest(assistant, [Message("user", text)], conversation_id=cid)
    return [e async for e in graft.run_turn(request, ALICE)]


def answer(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- aliases --------------------------------------------------------------------------------


def test_aliases_resolve_through_each_other_and_own_aliases_win() -> None:
    shared = {"prod": "fast", "fast": "openai:gpt-4o-mini"}
    assert resolve_model_id("prod", None, shared) == "openai:gpt-4o-mini"
    assert resolve_model_id("prod", {"prod": "vllm:qwen"}, shared) == "vllm:qwen"
    assert resolve_model_id("deepseek:deepseek-chat", None, shared) == "deepseek:deepseek-chat"


@pytest.mark.parametrize(
    ("aliases", "fragment"),
    [
        ({"a": "b", "b": "a"}, "model aliases loop: a → b → a"),
        ({"a": "a"}, "model aliases loop: a → a"),
        ({"a": "nowhere"}, "'nowhere' (via a → nowhere) is no model alias"),
    ],
)
def test_loops_and_dead_ends_are_config_errors(aliases: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        resolve_model_id("a", None, aliases)


def test_an_unknown_alias_fails_when_the_settings_load(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text('[models.aliases]\nprod = "test:a"\n\n[assistants.support]\nmodel = "prdo"\n')
    with pytest.raises(ConfigError, match=r"assistants\.support\.model: 'prdo' is no model alias"):
        load_settings(config, home=tmp_path / "home")
    config.write_text('[models.aliases]\nx = "y"\ny = "x"\n\n[assistants.support]\nmodel = "x"\n')
    with pytest.raises(ConfigError, match="model aliases loop: x → y → x"):
        load_settings(config, home=tmp_path / "home")


async def test_an_alias_moves_every_assistant_that_uses_it(tmp_path: Path) -> None:
    old, new = FakeModel("old", id="test:old"), FakeModel("new", "new", id="test:new")
    assistants = {"support": {"model": "prod"}, "sales": {"model": "prod"}}
    async with graft_with(
        tmp_path, [old, new], models={"aliases": {"prod": "test:new"}}, assistants=assistants
    ) as graft:
        events = await turn(graft, "hi")
        assert answer(events) == "new" and not old.requests
        started = events[0]
        assert isinstance(started, TurnStarted) and started.model == "test:new"
        _, _, turns = await graft.store.get_conversation(started.conversation_id, ALICE)
        assert [(t.model, t.route) for t in turns] == [("test:new", "primary")]
        assert answer(await turn(graft, "hi", assistant="sales")) == "new"


async def test_a_stored_assistant_with_an_unknown_alias_is_refused_at_put(tmp_path: Path) -> None:
    model = FakeModel(id="test:a")
    async with graft_with(tmp_path, [model], models={"aliases": {"prod": "test:a"}}) as graft:
        with pytest.raises(InvalidRequest, match="model: 'prdo' is no model alias") as info:
            await graft.catalog.put("mine", {"model": "prdo"}, ADMIN)
        assert info.value.param == "model"
        with pytest.raises(InvalidRequest, match="model aliases loop: x → y → x"):
            definition = {"models": {"x": "y", "y": "x"}, "canary": {"model": "x", "share": 0.5}}
            await graft.catalog.put("mine", definition, ADMIN)
        change = await graft.catalog.put(
            "mine", {"model": "prod", "canary": {"model": "test:a", "share": 0.2}}, ADMIN
        )
        assert change.created


# --- canary ---------------------------------------------------------------------------------


def test_the_canary_share_holds_over_many_conversations() -> None:
    keys = [f"support\x00t\x00u{uuid.uuid4()}" for _ in range(1000)]
    share = sum(bucket(k) < 0.1 for k in keys) / len(keys)
    assert 0.07 <= share <= 0.13
    assert all(0 <= bucket(k) < 1 for k in keys)
    assert bucket(keys[0]) == bucket(keys[0])


def test_routing_keys_on_the_first_user_message_of_the_conversation(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        assistants={"support": {"model": "test:a", "canary": {"model": "test:b", "share": 0.5}}},
    )
    assistant = settings.assistant("support")
    assert assistant is not None
    first = [Message("system", "be brief"), Message("user", "hello")]
    later = [*first, Message("assistant", "hi"), Message("user", "and then?")]
    assert routing_key("support", ALICE, first) == routing_key("support", ALICE, later)
    routes = {
        route_turn(settings, "support", assistant, ALICE, [Message("user", f"q{i}")]).route
        for i in range(40)
    }
    assert routes == {"primary", "canary"}
    fixed = route_turn(settings, "support", assistant, ALICE, first, "test:c")
    assert (fixed.model, fixed.route) == ("test:c", "primary")


async def test_a_conversation_keeps_its_model_and_the_share_splits(tmp_path: Path) -> None:
    primary = FunctionModel(lambda r: "from primary", id="test:primary")
    candidate = FunctionModel(lambda r: "from canary", id="test:canary")
    assistants = {"support": {"model": "prod", "canary": {"model": "test:canary", "share": 0.5}}}
    async with graft_with(
        tmp_path,
        [primary, candidate],
        models={"aliases": {"prod": "test:primary"}},
        assistants=assistants,
    ) as graft:
        seen: dict[str, int] = {}
        for i in range(30):
            events = await turn(graft, f"question {i}")
            started, done = events[0], events[-1]
            assert isinstance(started, TurnStarted) and isinstance(done, TurnDone)
            assert answer(events) == f"from {done.route}"
            assert started.model == done.model == f"test:{done.route}"
            seen[done.route] = seen.get(done.route, 0) + 1
            for follow_up in ("more", "again"):  # the conversation sticks to its model
                later = await turn(graft, follow_up, started.conversation_id)
                assert answer(later) == f"from {done.route}"
        assert set(seen) == {"primary", "canary"}


async def test_a_failing_canary_falls_back_to_the_primary(tmp_path: Path) -> None:
    primary = FakeModel("steady answer", id="test:primary")
    broken = FakeModel(ModelError("upstream is down"), id="test:broken")
    assistants = {
        "support": {"model": "test:primary", "canary": {"model": "test:broken", "share": 1}}
    }
    async with graft_with(tmp_path, [primary, broken], assistants=assistants) as graft:
        events = await turn(graft, "hello")
        started, done = events[0], events[-1]
        assert isinstance(started, TurnStarted) and started.model == "test:broken"
        assert isinstance(done, TurnDone) and done.finish_reason == "stop"
        assert (done.model, done.route) == ("test:primary", "fallback")
        assert answer(events) == "steady answer" and len(broken.requests) == 1
        assert done.first_token_ms is not None and done.duration_ms is not None
        _, _, turns = await graft.store.get_conversation(started.conversation_id, ALICE)
        stored = turns[0]
        assert (stored.model, stored.route, stored.status) == ("test:primary", "fallback", "done")
        assert stored.first_token_ms is not None and stored.first_token_ms >= 0


async def test_a_canary_failing_after_its_first_chunk_fails_the_turn(tmp_path: Path) -> None:
    primary = FakeModel("never used", id="test:primary")
    flaky = FakeModel(["half an ans", ModelError("cut off")], id="test:flaky")
    assistants = {
        "support": {"model": "test:primary", "canary": {"model": "test:flaky", "share": 1}}
    }
    async with graft_with(tmp_path, [primary, flaky], assistants=assistants) as graft:
        events = await turn(graft, "hello")
        done = events[-1]
        assert isinstance(done, TurnDone) and done.finish_reason == "error"
        assert (done.model, done.route) == ("test:flaky", "canary") and not primary.requests
        stats = await graft.store.model_stats(None)
        assert [(s.model, s.route, s.turns, s.failed) for s in stats] == [
            ("test:flaky", "canary", 1, 1)
        ]
