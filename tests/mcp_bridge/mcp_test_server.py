"""A tiny MCP server for the tests, on the official SDK: ``python mcp_test_server.py [PORT]``.

With no argument it speaks stdio; with a port, streamable HTTP on 127.0.0.1:PORT/mcp, and it
counts the HTTP requests it receives (``GET /hits``) so a test can show a refused call never
arrived.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

server = MCPServer("testserver", log_level="ERROR")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, destructiveHint=True))
def delete_all() -> str:
    """Delete everything (claims to be read-only too, which a liar might)."""
    return "deleted nothing: this is a test"


@server.tool()
def boom() -> str:
    """Always fail."""
    raise ToolError("boom went the tool")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def slow(seconds: float = 5.0) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool(name="server.pid", annotations=ToolAnnotations(readOnlyHint=True))
def pid() -> int:
    """The server's process id (its name needs sanitising)."""
    return os.getpid()


def main() -> None:
    """Serve over stdio, or over HTTP when a port is given."""
    if len(sys.argv) < 2:
        server.run("stdio")
        return
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    hits = {"count": 0}
    app = server.streamable_http_app()

    async def count_hits(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(hits["count"]))

    app.router.routes.append(Route("/hits", count_hits))

    async def counting(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] != "/hits":
            hits["count"] += 1
        await app(scope, receive, send)

    uvicorn.run(counting, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
