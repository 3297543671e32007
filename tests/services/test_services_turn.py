"""A service tool called by a (scripted) model through graft's real turn path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.services.conftest import SPEC, DemoAPI

from graft.config import Settings
from graft.default_plugins import openapi_services
from graft.events import ToolResult
from graft.hookspecs import hookimpl
from graft.messages import Message
from graft.services.toolset import OpenAPIToolset
from graft.testing import FakeModel, call
from graft.turn import TurnRequest


class ServicePlugin:
    def __init__(self, toolset: OpenAPIToolset) -> None:
        self.toolset = toolset

    @hookimpl
    def register_tools(self, register: Callable[..., None]) -> None:
        register(self.toolset)


async def test_the_model_calls_a_service_and_reads_its_answer_as_untrusted(
    api: DemoAPI, started: Callable[..., Any]
) -> None:
    model = FakeModel([call("demo_getItem", item_id="42")], "Item 42 it is.")
    graft = await started(model, plugins=(ServicePlugin(api.toolset()),))
    request = TurnRequest("default", [Message("user", "what is item 42?")])
    events = [e async for e in graft.run_turn(request, graft.principal_for())]

    offered = {tool.name: tool for tool in model.requests[0].tools}
    assert offered["demo_getItem"].read_only and not offered["demo_createItem"].read_only
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert not result.is_error and json.loads(result.content)["name"] == "item 42"
    tool_message = model.requests[1].messages[-1]
    assert tool_message.role == "tool"
    assert tool_message.content is not None and tool_message.content.startswith(
        '<tool-output tool="demo_getItem" trust="untrusted">'
    )
    assert '"name":"item 42"' in tool_message.content
    assert api.seen[-1]["raw_path"] == "/api/items/42"
    audit = await graft.store.list_audit(None, 20)
    [call_record] = [r for r in audit if r.action == "tool.call"]
    assert (call_record.target, call_record.outcome) == ("demo_getItem", "ok")


async def test_a_refused_call_reaches_the_model_as_an_error(
    api: DemoAPI, started: Callable[..., Any]
) -> None:
    model = FakeModel([call("demo_getItem", item_id="1")], "Sorry.")
    graft = await started(model, plugins=(ServicePlugin(api.toolset(allow_hosts=[])),))
    request = TurnRequest("default", [Message("user", "item 1?")])
    events = [e async for e in graft.run_turn(request, graft.principal_for())]
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert result.is_error and "blocked by the network policy" in result.content
    assert not api.seen
    actions = {(r.action, r.outcome) for r in await graft.store.list_audit(None, 20)}
    assert {("network.blocked", "denied"), ("tool.call", "denied")} <= actions


def test_the_default_plugin_registers_one_toolset_per_service(
    api: DemoAPI, settings: Settings, tmp_path: Path
) -> None:
    spec = tmp_path / "shop.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    services = {
        "shop": {"spec": str(spec), "base_url": f"{api.url}/api"},
        "crm": {"spec": "https://crm.example.com/openapi.json"},
    }
    from graft.services.manifest import ServiceSettings

    configured = SimpleNamespace(
        services={name: ServiceSettings.model_validate(s) for name, s in services.items()},
        network=settings.network,
    )
    registered: list[OpenAPIToolset] = []
    openapi_services.register_tools(registered.append, configured)  # type: ignore[arg-type]
    assert [t.name for t in registered] == ["shop", "crm"]
    assert registered[0].operations and registered[1].spec_url  # a URL is fetched later
    registered.clear()
    openapi_services.register_tools(registered.append, settings)  # no [services]: nothing
    assert registered == []
