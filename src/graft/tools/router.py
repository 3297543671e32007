"""One door to every tool: resolving names across toolsets, policy, timeouts.

``ToolRouter.resolve(ctx)`` lists every toolset once for the turn, keeps the tools the
assistant may call and returns a ``ToolBox``. ``ToolBox.call`` is the single path a tool call
takes, whether the model asked for it or a person typed ``graft tools call``: policy check,
argument parsing, the per-tool timeout, and the result formatted as text; and, given a store
to audit to, a ``tool.call`` record in the audit log for every call (``graft.audit``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from graft.audit import audited_tool_call
from graft.context import Context
from graft.errors import ToolArgumentError, ToolNotFound, ToolTimeout
from graft.policy import tool_allowed
from graft.tools.base import ToolDef, ToolOutput, Toolset, format_result

if TYPE_CHECKING:
    from graft.store.base import Store

__all__ = ["ToolBox", "ToolRouter", "parse_arguments"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ToolBox:
    """The tools of one turn: definitions, and which toolset owns each name."""

    definitions: list[ToolDef] = field(default_factory=list)
    owners: dict[str, Toolset] = field(default_factory=dict)
    default_timeout: float = 30.0
    audit: Store | None = None
    """Where each call is recorded (``graft.audit``); ``None`` records nothing."""

    def get(self, name: str) -> ToolDef | None:
        """The definition of ``name``, if the turn may call it."""
        for definition in self.definitions:
            if definition.name == name:
                return definition
        return None

    async def call(self, name: str, arguments: str | dict[str, Any], ctx: Context) -> str:
        """Run one call and return its result as text.

        Raises ``ToolError`` subclasses (unknown tool, bad arguments, timeout, or the tool's
        own error) for the caller to report.
        """
        return (await self.call_output(name, arguments, ctx)).text

    async def call_output(
        self, name: str, arguments: str | dict[str, Any], ctx: Context
    ) -> ToolOutput:
        """Run one call: its text for the model and any data for the client (``call``)."""
        if self.audit is not None:
            return await audited_tool_call(
                self.audit,
                lambda: self._call(name, arguments, ctx),
                name=name,
                arguments=arguments,
                ctx=ctx,
            )
        return await self._call(name, arguments, ctx)

    async def _call(self, name: str, arguments: str | dict[str, Any], ctx: Context) -> ToolOutput:
        definition = self.get(name)
        owner = self.owners.get(name)
        # Checked again at the call, not only when the tools were listed (graft.policy).
        if definition is None or owner is None or not tool_allowed(ctx, name):
            raise ToolNotFound(f"no tool named {name!r} is available")
        parsed = parse_arguments(name, arguments)
        timeout = definition.timeout or self.default_timeout
        try:
            with anyio.fail_after(timeout):
                result = await owner.call_tool(name, parsed, ctx)
        except TimeoutError:
            raise ToolTimeout(f"tool {name!r} did not finish within {timeout:g} s") from None
        if isinstance(result, ToolOutput):
            return result
        return ToolOutput(format_result(result))


def parse_arguments(name: str, arguments: str | dict[str, Any]) -> dict[str, Any]:
    """Parse a model's JSON argument text into an object, or raise ``ToolArgumentError``."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise ToolArgumentError(f"arguments for tool {name!r} are not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ToolArgumentError(f"arguments for tool {name!r} must be a JSON object")
    return parsed


class ToolRouter:
    """Every registered toolset behind one name space."""

    def __init__(
        self,
        toolsets: Sequence[Toolset],
        *,
        default_timeout: float = 30.0,
        audit: Store | None = None,
    ) -> None:
        self.toolsets = list(toolsets)
        self.default_timeout = default_timeout
        self.audit = audit

    async def resolve(self, ctx: Context) -> ToolBox:
        """List the tools this context may call (first toolset wins on a name clash)."""
        box = ToolBox(default_timeout=self.default_timeout, audit=self.audit)
        for toolset in self.toolsets:
            for definition in await toolset.list_tools(ctx):
                if definition.name in box.owners:
                    log.warning(
                        "tool %r of %r is shadowed by %r",
                        definition.name,
                        toolset.name,
                        box.owners[definition.name].name,
                    )
                    continue
                if tool_allowed(ctx, definition.name):
                    box.definitions.append(definition)
                    box.owners[definition.name] = toolset
        return box
