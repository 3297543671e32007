"""Who may use what: assistant access and which tools an assistant may call.

Every entry point goes through these checks: a model's tool call, ``graft tools call`` and
the HTTP routes. The security issue deepens them (per-tool roles, approvals); the call sites
stay the same.
"""

from __future__ import annotations

from graft.config import AssistantSettings
from graft.context import Context, Principal
from graft.errors import PermissionDenied

__all__ = ["ADMIN_ROLE", "authorize_assistant", "tool_allowed"]

ADMIN_ROLE = "admin"


def authorize_assistant(principal: Principal, name: str, assistant: AssistantSettings) -> None:
    """Raise ``PermissionDenied`` unless ``principal`` may talk to the assistant."""
    if not assistant.roles or principal.has_any_role([*assistant.roles, ADMIN_ROLE]):
        return
    raise PermissionDenied(f"you may not use assistant {name!r}")


def tool_allowed(ctx: Context, name: str) -> bool:
    """True when the context's assistant may call the tool ``name``."""
    allowed = ctx.assistant.tools
    return allowed is None or name in allowed
