"""graft: tools, services and knowledge grafted onto any OpenAI-compatible chat model.

The public API for plugin authors and embedders. Anything not listed in ``__all__`` is an
implementation detail; a test pins this list.
"""

from graft.config import Settings, load_settings
from graft.context import Context, Principal
from graft.errors import GraftError, ToolError
from graft.events import (
    ClientToolCalls,
    ErrorEvent,
    Event,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    TurnDone,
    TurnStarted,
)
from graft.hookspecs import hookimpl
from graft.messages import Message, ToolCall, Usage
from graft.middleware import Middleware, TextMiddleware
from graft.models.base import Model, ModelRequest
from graft.runtime import Graft
from graft.tools import FunctionToolset, ToolDef, Toolset, tool
from graft.turn import TurnRequest

__all__ = [
    "ClientToolCalls",
    "Context",
    "ErrorEvent",
    "Event",
    "FunctionToolset",
    "Graft",
    "GraftError",
    "hookimpl",
    "load_settings",
    "Message",
    "Middleware",
    "Model",
    "ModelRequest",
    "Principal",
    "Settings",
    "TextDelta",
    "TextMiddleware",
    "tool",
    "ToolCall",
    "ToolCallStarted",
    "ToolDef",
    "ToolError",
    "ToolResult",
    "Toolset",
    "TurnDone",
    "TurnRequest",
    "TurnStarted",
    "Usage",
]
