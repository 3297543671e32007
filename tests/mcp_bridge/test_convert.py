"""Names, hints, results and settings of mounted MCP servers, without a server."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import mcp_types as types
import pytest
from pydantic import SecretStr, ValidationError

from graft.config import Settings
from graft.default_plugins import mcp_servers
from graft.errors import ConfigError, ToolError
from graft.mcp_bridge.convert import is_read_only, result_text, tool_defs, tool_name
from graft.mcp_bridge.settings import MCPServerSettings
from graft.mcp_bridge.toolset import MCPToolset


def mcp_tool(name: str, **hints: bool) -> types.Tool:
    annotations = types.ToolAnnotations(**hints) if hints else None  # type: ignore[arg-type]
    return types.Tool(name=name, input_schema={"type": "object"}, annotations=annotations)


def test_names_are_prefixed_sanitised_and_bounded() -> None:
    assert tool_name("fs", "read_file") == "fs_read_file"
    assert tool_name("fs", "files.read/all") == "fs_files_read_all"
    long = tool_name("fs", "x" * 100)
    assert len(long) == 64 and long.startswith("fs_xxx")
    assert long != tool_name("fs", "x" * 99)
    definitions, remote = tool_defs(
        "fs", [mcp_tool("a.b"), mcp_tool("a_b")], trust_hints=False, timeout=5
    )
    assert len({d.name for d in definitions}) == 2  # "a.b" and "a_b" do not collide
    assert sorted(remote.values()) == ["a.b", "a_b"]
    assert definitions[0].parameters == {"type": "object", "properties": {}}
    assert definitions[0].timeout == 5


@pytest.mark.parametrize(
    ("hints", "trusted", "expected"),
    [
        ({"readOnlyHint": True}, True, True),
        ({"readOnlyHint": True}, False, False),
        ({"readOnlyHint": True, "destructiveHint": True}, True, False),
        ({"destructiveHint": False}, True, False),
        ({}, True, False),
    ],
)
def test_read_only_only_on_trusted_consistent_hints(
    hints: dict[str, bool], trusted: bool, expected: bool
) -> None:
    assert is_read_only(mcp_tool("t", **hints), trust_hints=trusted) is expected


def test_results_become_text_and_errors_tool_errors() -> None:
    image = types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png")
    resource = types.EmbeddedResource(
        type="resource",
        resource=types.TextResourceContents(uri="file:///a.txt", text="inside"),
    )
    link = types.ResourceLink(type="resource_link", name="report", uri="https://x/r.pdf")
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text="hello"), image, resource, link]
    )
    assert result_text(result) == (
        "hello\n[image: image/png, 5 bytes]\n[resource <file:///a.txt>]\ninside\n"
        "[resource link: report <https://x/r.pdf>]"
    )
    structured = types.CallToolResult(content=[], structured_content={"n": 1})
    assert result_text(structured) == '{"n": 1}'
    failed = types.CallToolResult(
        content=[types.TextContent(type="text", text="no such file")], is_error=True
    )
    with pytest.raises(ToolError, match="no such file"):
        result_text(failed)


def test_settings_pick_one_transport_and_keep_secrets_out_of_reprs() -> None:
    stdio = MCPServerSettings(command="server", env={"TOKEN": "s3cret-value"})  # type: ignore[dict-item]
    assert stdio.transport == "stdio" and "s3cret" not in repr(stdio)
    http = MCPServerSettings(url="https://mcp.example.com/mcp", headers={"A": SecretStr("x")})
    assert http.transport == "http" and http.prefix_for("wiki.corp") == "wiki_corp"
    invalid: list[dict[str, Any]] = [
        {},
        {"command": "a", "url": "https://b/mcp"},
        {"url": "ftp://b/mcp"},
        {"url": "https://b/mcp", "args": ["x"]},
        {"command": "a", "allow_hosts": ["wiki.corp"]},
        {"url": "https://b/mcp", "allow_hosts": ["not a host!"]},
        {"command": "a", "env": {"T": {"$env": "T"}}},
        {"command": "a", "prefix": "has space"},
        {"command": "a", "transport": "stdio"},
    ]
    for fields in invalid:
        with pytest.raises(ValidationError):
            MCPServerSettings(**fields)


class WithServers(Settings):
    """Settings as graft.config will have them once ``mcp_servers`` is a field."""

    mcp_servers: dict[str, MCPServerSettings] = {}


def registered(settings: Settings) -> list[Any]:
    found: list[Any] = []
    mcp_servers.register_tools(found.append, settings)
    return found


def test_default_plugin_registers_one_toolset_per_server() -> None:
    assert registered(Settings()) == []
    servers = {
        "files": MCPServerSettings(command=sys.executable),
        "wiki": MCPServerSettings(url="http://wiki.corp:8000/mcp", prefix="w"),
    }
    toolsets = registered(WithServers(mcp_servers=servers))
    assert [(t.name, t.prefix) for t in toolsets] == [("mcp:files", "files"), ("mcp:wiki", "w")]
    assert all(isinstance(t, MCPToolset) for t in toolsets)
    wiki_policy = toolsets[1]._policy
    assert 8000 in wiki_policy.ports and not wiki_policy.allows_host("wiki.corp")
    clash: Callable[[], Any] = lambda: registered(  # noqa: E731
        WithServers(
            mcp_servers={
                "a": MCPServerSettings(command="x", prefix="same"),
                "b": MCPServerSettings(command="y", prefix="same"),
            }
        )
    )
    with pytest.raises(ConfigError, match="prefix 'same' is taken"):
        clash()
