"""graft's own tools as an MCP server, for other MCP hosts: what ``graft mcp serve`` runs.

The server offers the tools one assistant may call (``Graft.toolbox``: the router, the
assistant's ``tools`` list and the access rules), and runs each call through
``ToolBox.call``, the path a model's call takes, so the access rules apply again at the call,
arguments are checked, the timeout holds and the call is audited.

**Who calls.** Over stdio the caller is the local operator who started the process: the
principal ``--user`` names (``Graft.principal_for``, as ``graft tools call`` does). Over
HTTP each request is authenticated like one to graft's API (``Graft.authenticate``: API
keys, sessions, or the single user while nobody is set up); a request that fails gets a 401
before it reaches the MCP layer. Either way the caller must be allowed the assistant.

**Approvals.** graft cannot know whether the host's model has read untrusted content, and
it cannot ask the host's user for approval; so it assumes the worst and refuses (audited as
``denied``) every call of a tool that is not ``read_only``, with a message that says why
and where to run it instead. ``allow_side_effects`` lifts that for a host that asks its
user before each call itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from graft.audit import audited_tool_call
from graft.context import Context, Principal
from graft.errors import AuthenticationError, GraftError, PermissionDenied
from graft.mcp_bridge.convert import implementation
from graft.policy import authorize_assistant
from graft.runtime import Graft

__all__ = ["ToolServer"]

log = logging.getLogger(__name__)

_PRINCIPAL = "graft.principal"
"""Where the HTTP wrapper leaves the request's principal, in the ASGI scope's state."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ToolServer:
    """The tools of one assistant of ``graft``, served over MCP."""

    def __init__(
        self,
        graft: Graft,
        *,
        assistant: str = "default",
        user: str | None = None,
        allow_side_effects: bool = False,
    ) -> None:
        # The assistant is resolved at each request, for the caller's tenant (it may be a
        # stored one); ``graft mcp serve`` checks it once before anything is served.
        self.graft = graft
        self.assistant = assistant
        self.principal = graft.principal_for(user)
        self.allow_side_effects = allow_side_effects
        self._over_http = False
        self.server: Server[Any] = Server(
            "graft",
            version=implementation().version,
            instructions=f"The tools of graft's assistant {assistant!r}.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def _context(self, ctx: ServerRequestContext[Any]) -> Context:
        """The caller's context: over HTTP the request's principal, else the operator's.

        The assistant may be one of the settings' or one stored for the caller's tenant; the
        caller must be allowed it (``PermissionDenied``), as in a turn.
        """
        principal = self.principal
        if self._over_http:
            scope = getattr(ctx.request, "scope", None)
            state = scope.get("state") if isinstance(scope, dict) else None
            found = state.get(_PRINCIPAL) if isinstance(state, dict) else None
            if not isinstance(found, Principal):
                raise AuthenticationError("the request was not authenticated")
            principal = found
        assistant = await self.graft.resolve_assistant(self.assistant, principal)
        authorize_assistant(principal, self.assistant, assistant)
        return self.graft.context(principal, self.assistant, assistant)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            context = await self._context(ctx)
        except GraftError as exc:  # the SDK would answer "Internal server error"
            raise MCPError(types.INVALID_REQUEST, exc.message) from None
        box = await self.graft.toolbox(context)
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=definition.name,
                    description=definition.description,
                    input_schema=definition.parameters,
                    annotations=types.ToolAnnotations(read_only_hint=definition.read_only),
                )
                for definition in box.definitions
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name, arguments = params.name, dict(params.arguments or {})
        try:
            context = await self._context(ctx)
            box = await self.graft.toolbox(context)
            definition = box.get(name)
            if definition is not None and not definition.read_only and not self.allow_side_effects:
                text = await audited_tool_call(
                    self.graft.store,
                    lambda: _refuse(name),
                    name=name,
                    arguments=arguments,
                    ctx=context,
                )
            else:
                text = await box.call(name, arguments, context)
        except GraftError as exc:
            return _result(f"error: {exc.message}", is_error=True)
        except Exception:
            log.exception("tool %r failed for an MCP client", name)
            return _result(f"error: tool {name!r} failed with an internal error", is_error=True)
        return _result(text)

    async def serve_stdio(self) -> None:
        """Serve one MCP client on this process's stdin and stdout until it leaves."""
        async with stdio_server() as (read_stream, write_stream):
            await self.server.run(
                read_stream, write_stream, self.server.create_initialization_options()
            )

    def http_app(self, host: str = "127.0.0.1", path: str = "/mcp") -> ASGIApp:
        """The streamable-HTTP app at ``path``; every request authenticated first."""
        self._over_http = True
        app = self.server.streamable_http_app(streamable_http_path=path, host=host)
        return _authenticated(self.graft, app)


async def _refuse(name: str) -> str:
    raise PermissionDenied(
        f"graft does not run {name!r} for MCP clients: it may change or send something, so "
        "it needs a person's approval, which graft cannot ask for over MCP. Run it from "
        "graft chat or graft's API, or have the operator start `graft mcp serve "
        "--allow-side-effects` for a host that asks its user before every call."
    )


def _result(text: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=is_error
    )


def _authenticated(graft: Graft, app: ASGIApp) -> ASGIApp:
    """``app`` behind graft's authentication: 401 unless ``Graft.authenticate`` agrees."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the SDK's session manager starts there
            await app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        try:
            principal = await graft.authenticate(headers, scope.get("method", "GET"))
        except AuthenticationError as exc:
            body = json.dumps({"error": {"message": exc.message, "code": exc.code}}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[_PRINCIPAL] = principal
        await app(scope, receive, send)

    return guarded
