"""``graft mcp serve``: graft's tools driven by the official MCP client."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from graft.audit import tail
from graft.cli_common import opened_store
from graft.config import load_settings
from graft.hookspecs import hookimpl
from graft.mcp_bridge.server import ToolServer
from graft.runtime import Graft
from graft.tools.function import tool

# ``graft mcp serve`` as the installed script runs it, with the group added if the CLI does
# not list it yet.
LAUNCH = (
    "from graft.cli import cli; from graft.cli_mcp import mcp; "
    "cli.commands.setdefault('mcp', mcp); cli()"
)


@tool
def send_mail(to: str) -> str:
    """Send a mail (a tool with side effects)."""
    return f"sent to {to}"


class SideEffects:
    @hookimpl
    def register_tools(self, register: Callable[..., None]) -> None:
        register(send_mail)


def text(result: types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def audit_of(home: Path, config: Path | None = None) -> list[Any]:
    async with opened_store(load_settings(config, home=home), if_memory="") as store:
        return await tail(store, 10)


@pytest.mark.integration
async def test_mcp_serve_over_stdio_lists_and_calls_the_calculator(tmp_path: Path) -> None:
    home = tmp_path / "home"
    params = StdioServerParameters(
        command=sys.executable, args=["-c", LAUNCH, "mcp", "serve"], env={"GRAFT_HOME": str(home)}
    )
    async with Client(stdio_client(params)) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        calculator = listed["calculator"]
        assert calculator.input_schema["required"] == ["expression"]
        assert calculator.annotations is not None and calculator.annotations.read_only_hint
        result = await client.call_tool("calculator", {"expression": "1234*5678"})
        assert not result.is_error and '"result": 7006652' in text(result)
        bad = await client.call_tool("calculator", {"expr": "1"})
        assert bad.is_error and "invalid arguments" in text(bad)
    records = await audit_of(home)
    assert [(r.actor, r.target, r.outcome) for r in records] == [
        ("local", "calculator", "ok"),
        ("local", "calculator", "error"),
    ]


async def test_side_effect_tools_are_refused_and_access_rules_hold(
    graft_factory: Callable[..., Graft],
) -> None:
    graft = graft_factory(
        plugins=(SideEffects(),),
        assistants={"mail": {"tools": ["send_mail", "calculator"], "users": ["local"]}},
    )
    await graft.store.start()
    async with Client(ToolServer(graft, assistant="mail").server) as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == ["calculator", "send_mail"]  # current_time is not the assistant's
        refused = await client.call_tool("send_mail", {"to": "bob@example.com"})
        assert refused.is_error
        assert "needs a person's approval" in text(refused)
        hidden = await client.call_tool("current_time", {})
        assert hidden.is_error and "no tool named" in text(hidden)
    records = await tail(graft.store, 10)
    assert [(r.target, r.outcome) for r in records] == [
        ("send_mail", "denied"),
        ("current_time", "error"),
    ]
    trusting = ToolServer(graft, assistant="mail", allow_side_effects=True)
    async with Client(trusting.server) as client:
        sent = await client.call_tool("send_mail", {"to": "bob@example.com"})
        assert text(sent) == "sent to bob@example.com"
    async with Client(ToolServer(graft, assistant="mail", user="eve").server) as client:
        with pytest.raises(MCPError, match="may not use assistant 'mail'"):
            await client.list_tools()
    await graft.aclose()


@pytest.fixture
def http_serve(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``graft mcp serve --http`` with one API key: its URL, the key and the config file."""
    key = "sk-mcp-test-0123456789abcdef"
    config = tmp_path / "graft.toml"
    digest = hashlib.sha256(key.encode()).hexdigest()
    config.write_text(f'[[auth.api_keys]]\nsha256 = "{digest}"\nuser = "ann"\n')
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "GRAFT_HOME": str(tmp_path / "home"), "GRAFT_CONFIG": str(config)}
    command = [sys.executable, "-c", LAUNCH, "mcp", "serve", "--http", "--port", str(port)]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "graft mcp serve --http did not start"
                time.sleep(0.05)
        yield url, key, config
    finally:
        process.terminate()
        process.wait(5)


@pytest.mark.integration
async def test_mcp_serve_over_http_authenticates_every_request(
    http_serve: tuple[str, str, Path],
) -> None:
    url, key, config = http_serve
    async with httpx2.AsyncClient() as anonymous:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        assert (await anonymous.post(url, json=ping)).status_code == 401
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool("calculator", {"expression": "6*7"})
        assert '"result": 42' in text(result)
    records = await audit_of(config.parent / "home", config)
    assert [(r.actor, r.target, r.outcome) for r in records][-1] == ("ann", "calculator", "ok")


async def test_a_stored_assistant_is_served_and_an_unknown_one_refused(
    graft_factory: Callable[..., Graft],
) -> None:
    graft = graft_factory()
    principal = graft.principal_for(None)
    await graft.store.put_assistant(
        principal.tenant, "calc", {"system_prompt": "Compute.", "tools": ["calculator"]}, "test"
    )
    async with Client(ToolServer(graft, assistant="calc").server) as client:
        listed = await client.list_tools()
        assert [tool.name for tool in listed.tools] == ["calculator"]
        result = await client.call_tool("calculator", {"expression": "6*7"})
        assert "42" in result.content[0].text  # type: ignore[union-attr]
    async with Client(ToolServer(graft, assistant="nobody").server) as client:
        with pytest.raises(MCPError, match="'nobody' does not exist"):
            await client.list_tools()
