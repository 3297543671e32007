"""Registers one ``MCPToolset`` per ``[mcp_servers.NAME]`` table of the settings.

Nothing is started here: each server is started (or connected to) by its toolset on the
first turn that may see its tools. Without servers configured the ``mcp`` SDK is not even
imported, so graft runs without the ``mcp`` extra until someone configures one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from graft.config import Settings
from graft.errors import ConfigError
from graft.hookspecs import hookimpl
from graft.mcp_bridge.settings import MCPServerSettings


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register a toolset for each configured MCP server."""
    servers: Mapping[str, MCPServerSettings] = settings.mcp_servers
    if not servers:
        return
    try:
        from graft.mcp_bridge.toolset import MCPToolset
    except ImportError as exc:
        raise ConfigError(
            f"mcp_servers needs the MCP SDK: pip install 'graft[mcp]' ({exc})"
        ) from None
    network = settings.network.policy()
    prefixes: dict[str, str] = {}
    for name, server in servers.items():
        toolset = MCPToolset(name, server, network=network)
        if toolset.prefix in prefixes:
            raise ConfigError(
                f"mcp_servers.{name}: prefix {toolset.prefix!r} is taken by "
                f"mcp_servers.{prefixes[toolset.prefix]}; give one of them another `prefix`"
            )
        prefixes[toolset.prefix] = name
        register(toolset)
