"""MCP servers mounted as toolsets: a real SDK server in a subprocess, over stdio and HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graft.config import AssistantSettings, Settings
from graft.context import Context, Principal
from graft.errors import NetworkBlocked, ToolError, ToolTimeout
from graft.mcp_bridge.settings import MCPServerSettings
from graft.mcp_bridge.toolset import MCPToolset
from graft.netguard import NetworkPolicy
from graft.testing import MemoryStore
from graft.tools.router import ToolRouter

SERVER = Path(__file__).with_name("mcp_test_server.py")

pytestmark = pytest.mark.integration


def context(tools: list[str] | None = None, store: MemoryStore | None = None) -> Context:
    return Context(
        Principal("alice"),
        Settings(),
        "default",
        AssistantSettings(tools=tools),
        store=store,
    )


def stdio_settings(**extra: Any) -> MCPServerSettings:
    return MCPServerSettings(command=sys.executable, args=[str(SERVER)], **extra)


@pytest.fixture
async def stdio_toolset() -> AsyncIterator[MCPToolset]:
    settings = stdio_settings(prefix="t", timeout=1.0, assistants=["default"])
    toolset = MCPToolset("test", settings)
    yield toolset
    await toolset.aclose()


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen([sys.executable, str(SERVER), str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/hits")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the test MCP server did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(5)


def hits(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/hits").text)


async def test_stdio_server_tools_are_prefixed_and_callable(stdio_toolset: MCPToolset) -> None:
    ctx = context()
    box = await ToolRouter([stdio_toolset]).resolve(ctx)
    names = [d.name for d in box.definitions]
    assert names == ["t_add", "t_delete_all", "t_boom", "t_slow", "t_server_pid"]
    add = box.get("t_add")
    assert add is not None and add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert await box.call("t_add", '{"a": 2, "b": 40}', ctx) == "42"
    with pytest.raises(ToolError, match="boom went the tool"):
        await box.call("t_boom", "{}", ctx)
    with pytest.raises(ToolError, match="a"):
        await box.call("t_add", '{"a": "x"}', ctx)


async def test_hints_count_only_when_the_admin_trusts_them() -> None:
    untrusted = MCPToolset("test", stdio_settings())
    trusted = MCPToolset("test", stdio_settings(trust_hints=True, include=["add", "delete_*"]))
    try:
        listed = await asyncio.gather(
            untrusted.list_tools(context()), trusted.list_tools(context())
        )
        plain, believed = ({d.name: d.read_only for d in tools} for tools in listed)
    finally:
        await untrusted.aclose()
        await trusted.aclose()
    assert not any(plain.values()), "untrusted hints must not make a tool read-only"
    # add claims readOnly; delete_all claims readOnly *and* destructive: not believed.
    assert believed == {"test_add": True, "test_delete_all": False}


async def test_session_is_kept_and_a_crashed_server_restarts() -> None:
    # The default timeout: the call after the crash has to start the server again.
    toolset = MCPToolset("test", stdio_settings(prefix="t"))
    ctx = context()
    try:
        assert toolset.connected_tools() is None  # asking starts nothing
        assert toolset._session is None
        box = await ToolRouter([toolset]).resolve(ctx)
        connected = toolset.connected_tools()
        assert connected is not None and connected == box.definitions
        pid = int(await box.call("t_server_pid", "{}", ctx))
        assert int(await box.call("t_server_pid", "{}", ctx)) == pid  # one process, kept open
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ToolError, match="stopped answering.*starts it again"):
            await box.call("t_add", '{"a": 1, "b": 1}', ctx)
        assert toolset.connected_tools() is None
        assert await box.call("t_add", '{"a": 1, "b": 1}', ctx) == "2"
        assert int(await box.call("t_server_pid", "{}", ctx)) != pid
        assert toolset.connected_tools() is None  # reconnected by a call: tools not listed
        await ToolRouter([toolset]).resolve(ctx)  # the next turn lists them
        assert toolset.connected_tools() == connected
        await toolset.aclose()
        assert toolset.connected_tools() is None
    finally:
        await toolset.aclose()


async def test_slow_call_times_out_and_only_allowed_assistants_see_the_server(
    stdio_toolset: MCPToolset,
) -> None:
    ctx = context()
    box = await ToolRouter([stdio_toolset]).resolve(ctx)
    with pytest.raises(ToolTimeout):
        await box.call("t_slow", '{"seconds": 5}', ctx)
    assert await box.call("t_add", '{"a": 1, "b": 2}', ctx) == "3"
    box = await ToolRouter([stdio_toolset]).resolve(context(tools=["t_add"]))
    assert [d.name for d in box.definitions] == ["t_add"]
    # An assistant that may not use the server does not see it, and starts nothing.
    await stdio_toolset.aclose()
    assert await stdio_toolset.list_tools(context(tools=["calculator"])) == []
    other = Context(Principal("alice"), Settings(), "other", AssistantSettings())
    assert await stdio_toolset.list_tools(other) == []
    assert stdio_toolset._session is None


async def test_unstartable_server_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    toolset = MCPToolset("broken", MCPServerSettings(command="/nonexistent/mcp-server"))
    assert await toolset.list_tools(context()) == []
    assert "MCP server 'broken' is left out" in caplog.text


async def test_http_server_through_the_network_guard(http_server: int) -> None:
    url = f"http://127.0.0.1:{http_server}/mcp"
    toolset = MCPToolset("web", MCPServerSettings(url=url, allow_hosts=["127.0.0.1"]))
    ctx = context()
    try:
        box = await ToolRouter([toolset]).resolve(ctx)
        assert "web_add" in [d.name for d in box.definitions]
        assert await box.call("web_add", '{"a": 20, "b": 22}', ctx) == "42"
        with pytest.raises(ToolError, match="boom went the tool"):
            await box.call("web_boom", "{}", ctx)
    finally:
        await toolset.aclose()


async def test_guard_refuses_a_loopback_server_without_allow_hosts(http_server: int) -> None:
    before = hits(http_server)
    url = f"http://127.0.0.1:{http_server}/mcp"
    store = MemoryStore()
    toolset = MCPToolset("web", MCPServerSettings(url=url), network=NetworkPolicy())
    assert await toolset.list_tools(context(store=store)) == []
    with pytest.raises(NetworkBlocked, match="loopback"):
        await toolset._client(context(store=store))
    assert hits(http_server) == before, "a refused server must not be reached at all"
    records = await store.list_audit(None, 10)
    assert [r.action for r in records] == ["network.blocked", "network.blocked"]
    assert json.loads(records[0].details)["service"] == "mcp:web"
    assert records[0].actor == "alice" and records[0].target == "127.0.0.1"
