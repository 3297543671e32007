"""The HTTP client of streamable-HTTP MCP servers: the SDK's client type, graft's network guard.

The ``mcp`` SDK (2.x) talks HTTP through ``httpx2``, while every outbound call graft makes
goes through ``graft.netguard.guarded_client`` (an ``httpx`` client that checks the URL,
resolves the host once, checks every address and connects to a checked one). So that an MCP
server gets no way around the guard, the SDK is handed an ``httpx2.AsyncClient`` whose only
transport, ``GuardedBridge``, sends each request through a guarded client: the SDK keeps its
own request logic (sessions, SSE, same-origin redirects, each hop a request of its own), the
guard sees every connection. Response bodies are passed through raw and streamed, so the
SDK's long-lived SSE stream works as it does without the bridge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
import httpx2

from graft.netguard import NetworkPolicy, OnBlocked, guarded_client

__all__ = ["GuardedBridge", "guarded_mcp_client"]

_CONNECT_TIMEOUT = 10.0
_SSE_READ_TIMEOUT = 300.0
"""An MCP server may keep its event stream quiet for minutes; the SDK reconnects after."""


class _Body(httpx2.AsyncByteStream):
    """An httpx response body, read as an httpx2 byte stream."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc)) from exc
        except httpx.TransportError as exc:
            raise httpx2.ReadError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class GuardedBridge(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends every request through a guarded httpx client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` through the guard; stream the answer back as it arrives."""
        body = await request.aread()
        outgoing = self._client.build_request(
            request.method,
            str(request.url),
            headers=request.headers.raw,
            content=body,
            timeout=_timeout(request.extensions.get("timeout")),
        )
        try:
            response = await self._client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            raise httpx2.ConnectTimeout(str(exc), request=request) from exc
        except httpx.TransportError as exc:
            raise httpx2.ConnectError(str(exc), request=request) from exc
        return httpx2.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=_Body(response),
            request=request,
        )

    async def aclose(self) -> None:
        """Close the guarded client and its connections."""
        await self._client.aclose()


def _timeout(value: object) -> httpx.Timeout:
    """httpx2's per-request timeout extension as an ``httpx.Timeout``."""
    if isinstance(value, Mapping):
        return httpx.Timeout(
            connect=value.get("connect"),
            read=value.get("read"),
            write=value.get("write"),
            pool=value.get("pool"),
        )
    return httpx.Timeout(_CONNECT_TIMEOUT, read=_SSE_READ_TIMEOUT)


def guarded_mcp_client(
    policy: NetworkPolicy,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    on_blocked: OnBlocked | None = None,
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for the SDK whose every request obeys ``policy``.

    ``timeout`` bounds connecting and sending; reading allows the SDK's quiet event streams.
    """
    inner = guarded_client(policy, on_blocked=on_blocked, timeout=timeout)
    return httpx2.AsyncClient(
        transport=GuardedBridge(inner),
        headers=dict(headers or {}),
        timeout=httpx2.Timeout(timeout, read=max(timeout, _SSE_READ_TIMEOUT)),
        trust_env=False,
    )
