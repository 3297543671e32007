"""The ``graft`` command line: serve, chat, ask, call, tools, plugins, assistants, users, etc.

Every command builds one ``Graft`` from the settings and runs the same turn path as the
server, in-process. Domain errors become a one-line message and exit code 1; nothing prints
a traceback at a user.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Literal

import click

from graft.cli_assistants import assistants
from graft.cli_audit import audit
from graft.cli_common import async_command, settings_of
from graft.cli_eval import eval_group
from graft.cli_feedback import feedback
from graft.cli_finetune import finetune
from graft.cli_identity import keys, users
from graft.cli_knowledge import ingest, knowledge
from graft.cli_mcp import mcp
from graft.cli_models import models
from graft.cli_privacy import privacy
from graft.cli_sentiment import sentiment
from graft.cli_services import add_openapi
from graft.cli_sources import demo_data, sources
from graft.cli_voice import call
from graft.context import Principal
from graft.errors import ConfigError, GraftError
from graft.events import (
    ApprovalRequired,
    Citations,
    ClientToolCalls,
    ErrorEvent,
    Escalated,
    Event,
    SentimentTagged,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    TurnDone,
    TurnStarted,
)
from graft.messages import Message
from graft.runtime import Graft
from graft.turn import TurnRequest

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="GRAFT_CONFIG",
    help="TOML settings file (default: ./graft.toml if present).",
)
@click.version_option(package_name="graft")
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """graft: tools, services and knowledge grafted onto any chat model."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.option(
    "--ssl-certfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (chain): serve HTTPS. Needs --ssl-keyfile.",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of the certificate.",
)
@click.option("--access-log/--no-access-log", default=True, help="Log every request.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="json: one JSON object per log line, with request and trace ids "
    "(default: telemetry.log_format, text).",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Worker processes; more than 1 needs PostgreSQL and limits.redis_url.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    access_log: bool,
    log_format: Literal["text", "json"] | None,
    workers: int,
) -> None:
    """Start the OpenAI-compatible HTTP server."""
    import uvicorn

    from graft.logs import uvicorn_log_config
    from graft.server import create_app
    from graft.server.gctune import tune_for_serving
    from graft.server.workers import check_workers, run_workers
    from graft.telemetry import check_tracing

    try:
        settings = settings_of(
            ctx, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
        )
        for path in (settings.ssl_certfile, settings.ssl_keyfile):
            if path is not None and not path.is_file():
                raise ConfigError(f"TLS file {str(path)!r} does not exist or is not a file")
        check_workers(settings, workers)
        check_tracing(settings.telemetry)
        graft = Graft(settings)
        graft.check()
        problems = graft.problems()
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    for problem in problems:
        click.secho(f"warning: {problem}", fg="yellow", err=True)
    scheme = "https" if settings.ssl_certfile else "http"
    click.echo(
        f"graft serving {', '.join(settings.assistant_names())} on "
        f"{scheme}://{settings.host}:{settings.port}/v1 (model {settings.model})",
        err=True,
    )
    if workers > 1:  # each worker builds its own app from the same settings
        run_workers(
            settings,
            ctx.obj.get("config") if ctx.obj else None,
            workers,
            access_log=access_log,
            log_config=uvicorn_log_config(log_format or settings.telemetry.log_format),
        )
        return
    app = create_app(graft)
    tune_for_serving()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        access_log=access_log,
        log_level="info",
        log_config=uvicorn_log_config(log_format or settings.telemetry.log_format),
        timeout_graceful_shutdown=10,
    )


async def _answer_approval(
    graft: Graft, principal: Principal, event: ApprovalRequired, *, ask: bool
) -> None:
    """Ask at the terminal whether a waiting tool call may run; with no terminal, deny it."""
    call = event.call
    if ask:
        prompt = f"allow {call.name}({call.arguments})? it may change or send something"
        approved = await asyncio.to_thread(click.confirm, prompt, default=False, err=True)
        reason = "" if approved else "the user said no"
    else:
        click.secho(f"denied {call.name}: no terminal to ask for approval", fg="red", err=True)
        approved, reason = False, "no one could be asked (not a terminal)"
    graft.approvals.decide(event.approval_id, principal, approved, reason)


async def _stream_turn(
    graft: Graft, request: TurnRequest, user: str | None, *, show: bool
) -> dict[str, Any]:
    """Run a turn, printing as it streams when ``show``; return a summary."""
    result: dict[str, Any] = {"content": "", "tool_calls": [], "client_tool_calls": []}
    principal = graft.principal_for(user)
    async for event in graft.run_turn(request, principal):
        if isinstance(event, ApprovalRequired):
            await _answer_approval(graft, principal, event, ask=show and sys.stdin.isatty())
        _record(result, event)
        if show:
            _show(event)
    if show and result["content"] and not result["content"].endswith("\n"):
        click.echo()
    return result


def _record(result: dict[str, Any], event: Event) -> None:
    """Add what ``event`` says to the turn's summary (``graft ask --json`` prints it)."""
    if isinstance(event, TurnStarted):
        result["conversation_id"] = event.conversation_id
    elif isinstance(event, TextDelta):
        result["content"] += event.text
    elif isinstance(event, ToolResult):
        result["tool_calls"].append(
            {"name": event.name, "result": event.content, "is_error": event.is_error}
        )
    elif isinstance(event, SentimentTagged):
        result["sentiment"] = {"label": event.label, "score": round(event.score, 4)}
        if event.emotion:
            result["sentiment"]["emotion"] = event.emotion
    elif isinstance(event, Escalated):
        result["escalation"] = {"reason": event.reason}
    elif isinstance(event, Citations) and event.stage == "cited":
        result["citations"] = event.citations
    elif isinstance(event, ClientToolCalls):
        result["client_tool_calls"] = [c.to_openai() for c in event.calls]
    elif isinstance(event, ErrorEvent):
        result["error"] = {"message": event.message, "code": event.code}
    elif isinstance(event, TurnDone):
        result["finish_reason"] = event.finish_reason
        result["usage"] = event.usage.to_openai()


def _show(event: Event) -> None:
    """Print ``event`` at the terminal: the answer on stdout, the rest on stderr."""
    if isinstance(event, TextDelta):
        click.echo(event.text, nl=False)
    elif isinstance(event, ToolCallStarted):
        click.secho(f"→ {event.call.name}({event.call.arguments})", fg="cyan", err=True)
    elif isinstance(event, ToolResult):
        color = "red" if event.is_error else "cyan"
        click.secho(f"← {event.name}: {event.content[:300]}", fg=color, err=True)
    elif isinstance(event, SentimentTagged):
        emotion = f", {event.emotion}" if event.emotion else ""
        click.secho(f"(you: {event.label} {event.score:.2f}{emotion})", dim=True, err=True)
    elif isinstance(event, Escalated):
        click.secho(f"(escalation: {event.reason})", fg="yellow", err=True)
    elif isinstance(event, Citations) and event.stage == "cited":
        click.echo("\n\nSources:")
        for cited in event.citations:
            where = " · ".join(str(x) for x in (cited.get("section"), cited.get("page")) if x)
            click.echo(f"  [{cited['n']}] {cited.get('title')} ({where}) {cited.get('link')}")
    elif isinstance(event, ErrorEvent):
        click.secho(f"\nerror: {event.message}", fg="red", err=True)


@cli.command()
@click.argument("question", required=False)
@click.option("-a", "--assistant", default="default", show_default=True)
@click.option("-c", "--conversation", default=None, help="Continue a stored conversation.")
@click.option("--user", default=None, help="Run as this user (default: the local user).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
@click.pass_context
@async_command
async def ask(
    ctx: click.Context,
    question: str | None,
    assistant: str,
    conversation: str | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Ask one question (or read it from standard input) and print the answer."""
    if question is None or question == "-":
        question = sys.stdin.read()
    if not question.strip():
        raise click.UsageError("the question is empty")
    async with Graft(settings_of(ctx)) as graft:
        request = TurnRequest(assistant, [Message("user", question)], conversation)
        result = await _stream_turn(graft, request, user, show=not as_json)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    if "error" in result:
        sys.exit(1)


@cli.command()
@click.option("-a", "--assistant", default="default", show_default=True)
@click.option("-c", "--conversation", default=None, help="Continue a stored conversation.")
@click.option("--user", default=None, help="Run as this user (default: the local user).")
@click.pass_context
@async_command
async def chat(
    ctx: click.Context, assistant: str, conversation: str | None, user: str | None
) -> None:
    """Chat in the terminal. /new starts a new conversation, /exit or Ctrl-D leaves."""
    async with Graft(settings_of(ctx)) as graft:
        await graft.resolve_assistant(assistant, graft.principal_for(user))
        click.secho(f"graft chat with {assistant!r}. /new, /exit, Ctrl-D.", dim=True, err=True)
        while True:
            try:
                line = await asyncio.to_thread(input, "you> ")
            except (EOFError, KeyboardInterrupt):
                click.echo(err=True)
                return
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return
            if text == "/new":
                conversation = None
                click.secho("(new conversation)", dim=True, err=True)
                continue
            request = TurnRequest(assistant, [Message("user", line)], conversation)
            try:
                result = await _stream_turn(graft, request, user, show=True)
            except GraftError as exc:
                click.secho(f"error: {exc.message}", fg="red", err=True)
                continue
            conversation = result.get("conversation_id", conversation)


@cli.group()
def tools() -> None:
    """List and call tools."""


@tools.command("list")
@click.option("-a", "--assistant", default="default", show_default=True)
@click.option("--user", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@async_command
async def tools_list(ctx: click.Context, assistant: str, user: str | None, as_json: bool) -> None:
    """List the tools an assistant may call."""
    async with Graft(settings_of(ctx)) as graft:  # started: the assistant may be stored
        box = await graft.toolbox(await graft.open_context(graft.principal_for(user), assistant))
    owners = {name: toolset.name for name, toolset in box.owners.items()}
    if as_json:
        click.echo(
            json.dumps(
                [{**d.to_openai()["function"], "toolset": owners[d.name]} for d in box.definitions],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for definition in box.definitions:
        summary = definition.description.splitlines()[0] if definition.description else ""
        click.echo(f"{definition.name:<24} {owners[definition.name]:<16} {summary}")


@tools.command("call")
@click.argument("name")
@click.argument("arguments", default="{}")
@click.option("-a", "--assistant", default="default", show_default=True)
@click.option("--user", default=None, help="Run as this user (default: the local user).")
@click.pass_context
@async_command
async def tools_call(
    ctx: click.Context, name: str, arguments: str, assistant: str, user: str | None
) -> None:
    """Call tool NAME with JSON ARGUMENTS through the same policy path a model call takes."""
    # Started: the assistant may be stored, and the call is recorded in the audit log.
    async with Graft(settings_of(ctx)) as graft:
        context = await graft.open_context(graft.principal_for(user), assistant)
        box = await graft.toolbox(context)
        result = await box.call(name, arguments, context)
    click.echo(result)


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins, the package each comes from and the hooks it implements.

    ``graft plugins add-openapi SPEC`` registers an HTTP API as a service.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        graft = Graft(settings_of(ctx))
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    infos = graft.plugin_infos()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return
    for info in infos:
        package = f"{info.package} {info.version}" if info.package else "(registered in code)"
        click.echo(f"{info.name:<40} {package:<20} {', '.join(info.hooks)}")


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check the settings and that every assistant's model can be called; exit 1 if not."""
    try:
        graft = Graft(settings_of(ctx))
        graft.check()
        problems = graft.problems()
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"ok: {', '.join(graft.settings.assistant_names())}")


cli.add_command(assistants)
cli.add_command(users)
cli.add_command(keys)
cli.add_command(audit)
cli.add_command(privacy)
cli.add_command(feedback)
cli.add_command(models)
cli.add_command(sentiment)
cli.add_command(finetune)
cli.add_command(mcp)
cli.add_command(sources)
cli.add_command(demo_data)
cli.add_command(ingest)
cli.add_command(knowledge)
cli.add_command(call)
cli.add_command(eval_group)
plugins.add_command(add_openapi)


def main() -> None:
    """Entry point of the ``graft`` script: adds plugin commands, then runs the CLI."""
    from graft.plugins import make_plugin_manager

    make_plugin_manager().hook.register_commands(cli=cli)
    cli()
