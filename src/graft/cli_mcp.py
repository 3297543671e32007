"""``graft mcp``: graft's tools for other MCP hosts (``graft mcp serve``).

``serve`` speaks MCP on stdin and stdout by default, the way a desktop host starts a local
server (``"command": "graft", "args": ["mcp", "serve"]``); ``--http`` serves streamable
HTTP on 127.0.0.1 instead. Everything the server does is in ``graft.mcp_bridge.server``;
this module reads the options, builds the ``Graft`` and keeps stdout free for the protocol
(messages go to stderr).
"""

from __future__ import annotations

import click

from graft.cli_common import async_command, settings_of
from graft.runtime import Graft

__all__ = ["mcp"]


@click.group()
def mcp() -> None:
    """Serve graft's tools to other MCP hosts."""


@mcp.command("serve")
@click.option("-a", "--assistant", default="default", show_default=True, help="Whose tools.")
@click.option("--user", default=None, help="Over stdio, call as this user (default: local).")
@click.option("--http", "use_http", is_flag=True, help="Serve streamable HTTP, not stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for --http.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port for --http.")
@click.option(
    "--allow-side-effects",
    is_flag=True,
    help="Run tools that may change or send something. Only for a host that asks its user "
    "before every call: graft cannot ask for approval over MCP, so it refuses them otherwise.",
)
@click.pass_context
@async_command
async def serve(
    ctx: click.Context,
    assistant: str,
    user: str | None,
    use_http: bool,
    host: str,
    port: int,
    allow_side_effects: bool,
) -> None:
    """Serve the tools an assistant may call, over MCP (stdio unless --http).

    Every call takes the path a model's call takes: access rules, argument checks, timeout
    and the audit log. Over HTTP each request is authenticated like one to graft's API.
    """
    from graft.mcp_bridge.server import ToolServer

    graft = Graft(settings_of(ctx))
    await graft.store.start()  # calls are recorded in the audit log
    try:
        # UnknownAssistant before anything is served (a stored one: the operator's tenant).
        await graft.resolve_assistant(assistant, graft.principal_for(user))
        server = ToolServer(
            graft, assistant=assistant, user=user, allow_side_effects=allow_side_effects
        )
        if not use_http:
            await server.serve_stdio()
            return
        import uvicorn

        click.echo(f"graft MCP server on http://{host}:{port}/mcp ({assistant!r})", err=True)
        config = uvicorn.Config(
            server.http_app(host), host=host, port=port, log_level="warning", lifespan="on"
        )
        await uvicorn.Server(config).serve()
    finally:
        await graft.aclose()
