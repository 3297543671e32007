"""Tools: the ``Toolset`` protocol and the kinds of toolsets graft ships.

Python functions (``@tool``), OpenAPI services, MCP servers and databases all implement
``Toolset``; the agent loop never knows which kind it talks to.
"""

from graft.tools.base import ToolDef, Toolset, format_result
from graft.tools.function import FunctionTool, FunctionToolset, tool

__all__ = ["FunctionTool", "FunctionToolset", "ToolDef", "Toolset", "format_result", "tool"]
