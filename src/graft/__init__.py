"""graft: tools, services and knowledge grafted onto any OpenAI-compatible chat model.

The public API for plugin authors and embedders; a test pins ``__all__``. These modules are
public too, for what they list in their own ``__all__``: ``graft.errors``, ``graft.events``,
``graft.messages``, ``graft.models``, ``graft.tools``, ``graft.middleware``,
``graft.config``, ``graft.context`` and ``graft.testing``. Everything else is an
implementation detail.
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
