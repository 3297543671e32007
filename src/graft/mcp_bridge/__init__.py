"""MCP both ways: MCP servers mounted as graft toolsets, and graft's tools served over MCP.

- ``settings``: ``MCPServerSettings``, one ``[mcp_servers.NAME]`` table (no SDK import, so
  the settings load without the ``mcp`` extra);
- ``toolset``: ``MCPToolset``, one server's tools as ``<prefix>_<tool>``, its session
  opened on first use and kept;
- ``convert``: names, the read-only policy for the server's hints, results as text;
- ``http``: the SDK's HTTP client, sending every request through ``graft.netguard``;
- ``server``: graft's own tools as an MCP server (``graft mcp serve``).

The package is called ``mcp_bridge``, not ``mcp``, so that no reader (and no tool that
resolves imports by file name) confuses it with the ``mcp`` SDK it imports. Only
``settings`` is imported here; the rest needs ``pip install 'graft[mcp]'``.
"""

from __future__ import annotations

from graft.mcp_bridge.settings import MCPServerSettings

__all__ = ["MCPServerSettings"]
