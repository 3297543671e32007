"""``graft sources ...`` and ``graft demo-data``: data sources from the command line.

- ``graft sources add NAME URL`` checks that the database answers, then adds
  ``[sources.NAME]`` to the settings file (``--config``). A password in the URL is taken
  out of it and sealed with the installation's data keys (``password = "g1:..."``), or
  replaced by a reference with ``--password-env``; it never reaches the file as text.
- ``graft sources list``, ``tables``, ``describe``: what is configured, and what a user may
  read of it.
- ``graft sources query NAME "SQL" [--user U]`` runs a query through exactly the path a
  model's ``query_database`` call takes (the guard, the user's grants and row filters, the
  read-only transaction, the audit log) and prints the rows, or the refusal with exit code 2.
- ``graft demo-data`` creates the demo company database of the README's walkthrough.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import click

from graft.cli_common import async_command, run, settings_of
from graft.config import Settings
from graft.crypto import KeySource
from graft.errors import ConfigError, GraftError, PermissionDenied
from graft.runtime import Graft
from graft.settings_file import add_table, table_text
from graft.sources.settings import NAME_PATTERN, SourceSettings

__all__ = ["demo_data", "sources"]

REFUSED_EXIT = 2
"""The exit code of a query the guard or the user's grants refuse."""


@click.group()
def sources() -> None:
    """Databases the SQL tools may query."""


@sources.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sources_list(ctx: click.Context, as_json: bool) -> None:
    """List the configured data sources (without credentials)."""
    settings = settings_of(ctx)
    shown = {name: source.public() for name, source in sorted(settings.sources.items())}
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    if not shown:
        click.echo("no data sources; add one with: graft sources add NAME URL")
    for name, source in shown.items():
        tables = "every table" if source["tables"] is None else ", ".join(source["tables"])
        click.echo(f"{name:<16} {source['url']}  ({tables})")


def _split_password(url: str) -> tuple[str, str | None]:
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{url!r} is not a database URL (e.g. sqlite:///company.db)") from None
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).absolute()))
    password = parsed.password
    # URL.set() reads password=None as "unchanged": build the URL without it.
    bare = URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    ).render_as_string(hide_password=False)
    return bare, str(password) if password is not None else None


def _seal(settings: Settings, name: str, password: str) -> str:
    source = KeySource.from_settings(settings)
    keys = source.load() if source is not None else None
    if keys is None:
        raise ConfigError(
            "there is no data key to seal the password with (encrypt_at_rest is off and no "
            "key is set); give --password-env VARIABLE instead"
        )
    return keys.encrypt(password, f"sources.{name}.password")


@sources.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--password-env", default=None, help="Read the password from this variable.")
@click.option("--description", default="", help="What the database holds, for the model.")
@click.option("--tables", default=None, help="Readable tables, comma-separated (default: all).")
@click.option("--no-check", is_flag=True, help="Do not connect before adding.")
@click.pass_context
def sources_add(
    ctx: click.Context,
    name: str,
    url: str,
    password_env: str | None,
    description: str,
    tables: str | None,
    no_check: bool,
) -> None:
    """Add data source NAME at URL (SQLite, PostgreSQL, MySQL/MariaDB) to the settings."""
    config: Path | None = (ctx.obj or {}).get("config")
    try:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ConfigError(
                f"{name!r} is not a source name: a letter, then letters, digits, _ or -"
            )
        settings = settings_of(ctx) if config is None or config.exists() else Settings()
        if name in settings.sources:
            raise ConfigError(f"a data source {name!r} exists already")
        bare, password = _split_password(url)
        values: dict[str, Any] = {"url": bare}
        if password_env:
            values["password"] = {"$env": password_env}
        elif password:
            values["password"] = _seal(settings, name, password)
        if description:
            values["description"] = description
        if tables:
            values["tables"] = [t.strip() for t in tables.split(",") if t.strip()]
        if not no_check:
            found = run(_check(name, url, password_env, tables=values.get("tables")))
            more = "…" if len(found) > 8 else ""
            click.echo(f"connected: {len(found)} tables ({', '.join(found[:8])}{more})")
        if config is None:
            click.echo("Add this to your settings file (or pass --config FILE):\n")
            click.echo(table_text("sources", name, values))
            return
        add_table(config, "sources", name, values, check=SourceSettings.model_validate)
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"added [sources.{name}] to {config}")


async def _check(
    name: str, url: str, password_env: str | None, *, tables: list[str] | None
) -> list[str]:
    from sqlalchemy.engine import make_url

    from graft.sources.engine import Database, database_url

    full = url
    if password_env:
        secret = os.environ.get(password_env)
        if not secret:
            raise ConfigError(f"--password-env {password_env}: the variable is not set")
        full = database_url(url).set(password=secret).render_as_string(hide_password=False)
    make_url(full)
    database = Database(name, full)
    try:
        found = await database.tables()
    finally:
        await database.aclose()
    missing = sorted({t.lower() for t in tables or []} - {t.lower() for t in found})
    if missing:
        raise ConfigError(f"the database has no table {', '.join(missing)}")
    return found


def _graft_for(ctx: click.Context) -> Graft:
    return Graft(settings_of(ctx))


def _toolset(graft: Graft) -> Any:
    from graft.sources.toolset import SourcesToolset

    for toolset in graft.tools.toolsets:
        if isinstance(toolset, SourcesToolset):
            return toolset
    raise ConfigError("no data sources are configured; add one with: graft sources add NAME URL")


_USER = click.option("--user", default=None, help="Act as this user (default: the local user).")
_ASSISTANT = click.option("-a", "--assistant", default="default", show_default=True)


@sources.command("tables")
@click.argument("name")
@_USER
@_ASSISTANT
@click.pass_context
@async_command
async def sources_tables(ctx: click.Context, name: str, user: str | None, assistant: str) -> None:
    """List the tables of NAME that a user may read."""
    async with _graft_for(ctx) as graft:
        context = await graft.open_context(graft.principal_for(user), assistant)
        click.echo(await _toolset(graft).list_tables(name, context))


@sources.command("describe")
@click.argument("name")
@click.argument("table")
@_USER
@_ASSISTANT
@click.pass_context
@async_command
async def sources_describe(
    ctx: click.Context, name: str, table: str, user: str | None, assistant: str
) -> None:
    """Describe TABLE of NAME as a user may see it."""
    async with _graft_for(ctx) as graft:
        context = await graft.open_context(graft.principal_for(user), assistant)
        click.echo(await _toolset(graft).describe_table(name, table, context))


@sources.command("query")
@click.argument("name")
@click.argument("sql")
@_USER
@_ASSISTANT
@click.option("--json", "as_json", is_flag=True, help="Print columns and rows as JSON.")
@click.pass_context
def sources_query(
    ctx: click.Context, name: str, sql: str, user: str | None, assistant: str, as_json: bool
) -> None:
    """Run SQL on NAME through the guard, as a user; exit code 2 if it is refused."""

    async def query() -> Any:
        async with _graft_for(ctx) as graft:
            context = await graft.open_context(graft.principal_for(user), assistant)
            return await _toolset(graft).run_query(name, sql, context)

    try:
        output = asyncio.run(query())
    except PermissionDenied as exc:  # the guard, the user's grants, the source's rule
        click.echo(f"refused: {exc.message}", err=True)
        ctx.exit(REFUSED_EXIT)
    except GraftError as exc:  # QueryFailed (a timeout, the database's error) and the rest
        raise click.ClickException(exc.message) from None
    if as_json:
        data = output.data or {}
        shown = {k: data.get(k) for k in ("columns", "rows", "truncated")}
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        click.echo(output.text)


@click.command("demo-data")
@click.option(
    "--url",
    default=None,
    help="Database to fill (default: demo.db in graft's home folder); sqlite, postgresql, mysql.",
)
@click.option("--reset", is_flag=True, help="Drop and recreate the demo tables if they exist.")
@click.pass_context
def demo_data(ctx: click.Context, url: str | None, reset: bool) -> None:
    """Create the demo company database (employees, departments, products, orders)."""
    from graft.sources.demo import create_demo

    settings = settings_of(ctx)
    if url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(settings.home / 'demo.db').absolute()}"
    counts = run(create_demo(url, reset=reset))
    for table, count in counts.items():
        click.echo(f"{table:<14} {count:>6} rows")
    bare, _ = _split_password(url)
    click.echo(f"\nnext: graft sources add demo {bare}")
