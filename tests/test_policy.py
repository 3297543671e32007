"""Access rules: who may use which assistant, tool, collection and data source."""

from __future__ import annotations

import json

import pytest

from graft.config import AccessRule, AssistantSettings
from graft.context import Principal
from graft.errors import PermissionDenied
from graft.events import ToolResult
from graft.messages import Message
from graft.policy import allows, authorize, authorize_assistant
from graft.testing import FakeModel, call
from graft.turn import TurnRequest

ANN = Principal("ann", frozenset({"user"}), frozenset({"finance"}), "acme")
BOB = Principal("bob", frozenset({"user"}), frozenset({"sales"}), "acme")
ROOT = Principal("root", frozenset({"admin"}), frozenset(), "acme")
EVE = Principal("eve", frozenset({"admin"}), frozenset({"finance"}), "globex")


@pytest.mark.parametrize(
    ("rule", "admitted"),
    [
        (AccessRule(), {"ann", "bob", "root", "eve"}),
        (AccessRule(users=["bob"]), {"bob", "root", "eve"}),
        (AccessRule(groups=["finance"]), {"ann", "root", "eve"}),
        (AccessRule(roles=["builder"]), {"root", "eve"}),
        (AccessRule(tenants=["acme"]), {"ann", "bob", "root"}),
        # The tenant is a hard boundary, for admins too.
        (AccessRule(groups=["finance"], tenants=["acme"]), {"ann", "root"}),
    ],
)
def test_rules(rule: AccessRule, admitted: set[str]) -> None:
    assert {p.user_id for p in (ANN, BOB, ROOT, EVE) if allows(rule, p)} == admitted


def test_authorize_names_the_kind_and_leaves_unruled_things_open(settings_factory) -> None:
    settings = settings_factory(
        access={"data_sources": {"ledger": {"groups": ["finance"]}}, "collections": {}}
    )
    authorize(settings, ANN, "data_sources", "ledger")
    authorize(settings, BOB, "data_sources", "crm")  # no rule: open
    with pytest.raises(PermissionDenied, match="may not use the data source 'ledger'"):
        authorize(settings, BOB, "data_sources", "ledger")


def test_assistant_rules_by_group_user_and_tenant() -> None:
    assistant = AssistantSettings(groups=["sales"], users=["ann"], tenants=["acme"])
    authorize_assistant(ANN, "crm", assistant)
    authorize_assistant(BOB, "crm", assistant)
    with pytest.raises(PermissionDenied, match="assistant 'crm'"):
        authorize_assistant(EVE, "crm", assistant)  # an admin, but of another tenant


async def test_a_ruled_tool_is_neither_offered_nor_callable_outside_its_rule(started) -> None:
    # The model calls the calculator for both users; only a finance user may use it.
    model = FakeModel(
        [call("calculator", expression="6*7")], "42", [call("calculator", expression="6*7")], "?"
    )
    graft = await started(model, access={"tools": {"calculator": {"groups": ["finance"]}}})

    async def results(principal: Principal) -> list[ToolResult]:
        request = TurnRequest("default", [Message("user", "6*7?")])
        events = [e async for e in graft.run_turn(request, principal)]
        return [e for e in events if isinstance(e, ToolResult)]

    [allowed] = await results(ANN)
    assert not allowed.is_error and json.loads(allowed.content)["result"] == 42
    assert "calculator" in [t.name for t in model.requests[0].tools]
    [refused] = await results(BOB)
    assert refused.is_error and "no tool named 'calculator'" in refused.content
    assert "calculator" not in [t.name for t in model.requests[2].tools]


async def test_the_call_itself_is_checked_not_only_the_list(started) -> None:
    graft = await started(FakeModel("x"), access={"tools": {"calculator": {"users": ["ann"]}}})
    ctx = graft.context(ANN, "default")
    box = await graft.toolbox(ctx)  # listed for ann...
    as_bob = graft.context(BOB, "default")
    with pytest.raises(Exception, match="no tool named 'calculator'"):
        await box.call("calculator", '{"expression": "1+1"}', as_bob)  # ...not callable by bob
    assert json.loads(await box.call("calculator", '{"expression": "1+1"}', ctx))["result"] == 2


@pytest.mark.parametrize(
    ("tools", "name", "allowed"),
    [
        (None, "wiki_search", True),
        (["wiki_search"], "wiki_search", True),
        (["wiki_*"], "wiki_search", True),
        (["wiki_*"], "wikipedia", False),
        (["*"], "anything", True),
        (["calculator"], "wiki_search", False),
        ([], "calculator", False),
    ],
)
def test_an_assistant_lists_tools_by_name_or_prefix(
    settings_factory, tools: list[str] | None, name: str, allowed: bool
) -> None:
    from graft.context import Context
    from graft.policy import tool_allowed

    assistant = AssistantSettings(tools=tools)
    ctx = Context(ANN, settings_factory(), "a", assistant)
    assert tool_allowed(ctx, name) is allowed
