"""``MCPToolset``: one MCP server, mounted as a graft toolset.

The toolset owns one session with its server, opened on first use (the first turn that may
see its tools) and kept open for every turn after, so a stdio server is started once, not
per call. The session lives in a task of its own (``_Session``): the SDK's transports open
anyio task groups, which must be left by the task that entered them, and a turn's task ends
long before the session should. ``aclose`` (from ``Graft.aclose``) ends it, which stops a
stdio server's process and ends an HTTP server's session.

What can go wrong, and what the model or the admin sees:

- the server cannot be started or reached: its tools are left out of the turn (a warning is
  logged) and graft tries again on a later turn, not before ``start_timeout`` seconds have passed;
- the network guard refuses the server's URL: the same, with the guard's reason (and a
  ``network.blocked`` audit record when the turn has a store); ``allow_hosts`` lets an admin
  allow an intranet server;
- a call takes longer than ``timeout``: the router's ``ToolTimeout``; the session stays;
- a call's ``isError`` result: a ``ToolError`` with the server's message;
- the server dies (a crash, a kill, a lost HTTP session): the call fails with a ``ToolError``
  saying so, the session is dropped, and the next call starts a new one.

The tool list is cached for the life of the session and dropped when the server announces
``notifications/tools/list_changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from graft.context import Context
from graft.errors import GraftError, NetworkBlocked, ToolArgumentError, ToolError, ToolNotFound
from graft.mcp_bridge.convert import implementation, result_text, tool_defs
from graft.mcp_bridge.http import guarded_mcp_client
from graft.mcp_bridge.settings import MCPServerSettings
from graft.netguard import DEFAULT_PORTS, NetworkPolicy, OnBlocked, audit_blocked
from graft.tools.base import ToolDef

__all__ = ["MCPToolset"]

log = logging.getLogger(__name__)

_ANSWERED = frozenset(
    {types.METHOD_NOT_FOUND, types.INVALID_REQUEST, types.INTERNAL_ERROR, types.INVALID_PARAMS}
)
"""JSON-RPC errors a live server answers with: the session is fine, the call was not."""
_MAX_PAGES = 50
_CLOSE_GRACE = 5.0


class _Session:
    """One open MCP session, held by a task of its own until ``close``."""

    def __init__(self, open_client: Callable[[AsyncExitStack], Awaitable[Client]]) -> None:
        self.loop = asyncio.get_running_loop()
        self.client: Client | None = None
        self.error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold(open_client))

    async def _hold(self, open_client: Callable[[AsyncExitStack], Awaitable[Client]]) -> None:
        try:
            async with AsyncExitStack() as stack:
                self.client = await open_client(stack)
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # the transport failed or died; the caller reports it
            self.error = exc
        finally:
            self.client = None
            self._ready.set()

    @property
    def alive(self) -> bool:
        """Open, on the running event loop, and not ended by its transport."""
        return not self._task.done() and self.loop is asyncio.get_running_loop()

    async def ready(self, within: float) -> Client:
        """The connected client, once the handshake is done; ``ToolError`` if it failed."""
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise ToolError(f"did not start within {within:g} s") from None
        if self.client is None:
            raise _failure(self.error)
        return self.client

    async def close(self) -> None:
        """End the session: leave the SDK's contexts (stops a stdio server), then the task."""
        self._stop.set()
        if self._task.done() or self.loop is not asyncio.get_running_loop():
            return
        try:
            async with asyncio.timeout(_CLOSE_GRACE):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _failure(error: BaseException | None) -> GraftError:
    """The error to report for a session that ended: the guard's refusal, or a ToolError."""
    found = _find(error, NetworkBlocked)
    if isinstance(found, NetworkBlocked):
        return found
    return ToolError(_describe(error))


def _find(error: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _find(inner, kind)) is not None:
                return found
    return None


def _describe(error: BaseException | None) -> str:
    """One line about ``error``, innermost cause first (exception groups unwrapped)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if error is None:
        return "the connection ended"
    if isinstance(error, MCPError):
        return error.message
    return str(error) or type(error).__name__


class MCPToolset:
    """The tools of one MCP server, named ``<prefix>_<tool>``."""

    def __init__(
        self, server: str, settings: MCPServerSettings, *, network: NetworkPolicy | None = None
    ) -> None:
        self.server = server
        self.name = f"mcp:{server}"
        self.settings = settings
        self.prefix = settings.prefix_for(server)
        self._policy = self._server_policy(network or NetworkPolicy())
        self._session: _Session | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._definitions: list[ToolDef] | None = None
        self._remote: dict[str, str] = {}
        self._retry_at = 0.0

    def _server_policy(self, network: NetworkPolicy) -> NetworkPolicy:
        """The network policy with this server's own hosts, and its URL's port, allowed."""
        if self.settings.url is None:
            return network
        url = httpx.URL(self.settings.url)
        port = url.port or DEFAULT_PORTS.get(url.scheme, 443)
        return network.allowing(*self.settings.allow_hosts, ports=[port])

    def visible_to(self, ctx: Context) -> bool:
        """Whether the context's assistant may see any of these tools (else: no connection)."""
        assistants = self.settings.assistants
        if assistants is not None and ctx.assistant_name not in assistants:
            return False
        allowed = ctx.assistant.tools
        return allowed is None or any(
            entry == "*" or entry.startswith(f"{self.prefix}_") for entry in allowed
        )

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """The server's tools; none (and a warning) while it cannot be reached."""
        if not self.visible_to(ctx):
            return []
        connected = self.connected_tools()
        if connected is not None:
            return connected
        if time.monotonic() < self._retry_at:
            return []
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                client = await self._client(ctx)
                tools = await self._fetch_tools(client)
        except (GraftError, TimeoutError, MCPError) as exc:
            self._retry_at = time.monotonic() + self.settings.start_timeout
            why = exc.message if isinstance(exc, GraftError | MCPError) else "timed out"
            log.warning("MCP server %r is left out of this turn: %s", self.server, why)
            await self._drop()
            return []
        self._definitions, self._remote = tool_defs(
            self.prefix, tools, trust_hints=self.settings.trust_hints, timeout=self.settings.timeout
        )
        return list(self._definitions)

    def connected_tools(self) -> list[ToolDef] | None:
        """The tools of the live session; ``None`` while there is none. Never connects.

        For status pages (``GET /v1/admin/plugins``): unlike ``list_tools`` it starts no
        server. ``None`` too while the session's tools are not listed yet: after the server
        announced a change of them, or after a call started a new session (the next turn
        lists them).
        """
        if self._definitions is None or self._session is None or not self._session.alive:
            return None
        return list(self._definitions)

    async def _fetch_tools(self, client: Client) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        include, exclude = self.settings.include, self.settings.exclude
        return [
            tool
            for tool in tools
            if (include is None or any(fnmatch.fnmatchcase(tool.name, p) for p in include))
            and not any(fnmatch.fnmatchcase(tool.name, p) for p in exclude)
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> Any:
        """Call the server's tool behind ``name``; its answer as text."""
        remote = self._remote.get(name)
        if remote is None:
            raise ToolNotFound(f"no tool named {name!r} on MCP server {self.server!r}")
        client = await self._client(ctx)
        session = self._session
        try:
            result = await client.call_tool(remote, arguments)
        except MCPError as exc:
            if exc.code == types.INVALID_PARAMS:
                raise ToolArgumentError(f"invalid arguments for {name!r}: {exc.message}") from None
            if exc.code in _ANSWERED:
                raise ToolError(f"{name}: {exc.message}") from None
            raise await self._stopped(exc, session) from None
        except Exception as exc:
            raise await self._stopped(exc, session) from None
        return result_text(result)

    async def _stopped(self, exc: BaseException, session: _Session | None) -> GraftError:
        """Drop the dead session; the error that says so (the next call starts a new one)."""
        cause = session.error if session is not None and session.error is not None else exc
        await self._drop(session)
        found = _find(cause, NetworkBlocked)
        if isinstance(found, NetworkBlocked):
            return found
        return ToolError(
            f"the MCP server {self.server!r} stopped answering ({_describe(cause)}); "
            "graft starts it again on the next call"
        )

    async def _client(self, ctx: Context) -> Client:
        """The open session's client, starting a session if there is none (or it died)."""
        async with self._connect_lock():
            session = self._session
            if session is None or not session.alive:
                if session is not None and session.loop is asyncio.get_running_loop():
                    await session.close()
                self._definitions = None
                on_blocked = (
                    audit_blocked(
                        ctx.store,
                        actor=ctx.principal.user_id,
                        tenant=ctx.principal.tenant,
                        service=self.name,
                    )
                    if ctx.store is not None
                    else None
                )
                session = self._session = _Session(lambda stack: self._open(stack, on_blocked))
        try:
            return await session.ready(self.settings.start_timeout)
        except GraftError as exc:
            await self._drop()
            if isinstance(exc, NetworkBlocked):
                raise
            raise ToolError(f"MCP server {self.server!r}: {exc.message}") from None

    def _connect_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def _open(self, stack: AsyncExitStack, on_blocked: OnBlocked | None) -> Client:
        """Enter the SDK's transport and client on ``stack``: a started, initialised session."""
        settings = self.settings
        if settings.command is not None:
            params = StdioServerParameters(
                command=settings.command,
                args=settings.args,
                env={key: value.get_secret_value() for key, value in settings.env.items()},
                cwd=settings.cwd,
            )
            transport = stdio_client(params)
        else:
            assert settings.url is not None
            http = guarded_mcp_client(
                self._policy,
                headers={key: value.get_secret_value() for key, value in settings.headers.items()},
                timeout=settings.timeout,
                on_blocked=on_blocked,
            )
            await stack.enter_async_context(http)
            transport = streamable_http_client(settings.url, http_client=http)
        client = Client(
            transport,
            client_info=implementation(),
            message_handler=self._on_message,
            cache=None,
        )
        return await stack.enter_async_context(client)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._definitions = None

    async def _drop(self, session: _Session | None = None) -> None:
        """Close ``session`` (by default the current one) unless another replaced it."""
        session = session or self._session
        if session is None or session is not self._session:
            return
        self._session = None
        self._definitions = None
        await session.close()

    async def aclose(self) -> None:
        """End the session, if one is open (``Graft.aclose`` calls this)."""
        await self._drop()
