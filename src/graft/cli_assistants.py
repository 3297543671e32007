"""``graft assistants``: list, show, create and delete assistants from the command line.

The command line acts as the installation's operator (``graft.cli_common.operator``) on the
store the settings point at, in one tenant (``--tenant``, default ``default``). It goes
through the same checks and audit records as ``PUT /v1/assistants/{name}``
(``graft.assistants``); an assistant it creates is a stored one, usable at once by every
server on that store (within a few seconds by the other workers). The assistants of the
settings file are listed too, and are changed in the file.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from graft.assistants import AssistantEntry
from graft.cli_common import async_command, operator, settings_of
from graft.context import Principal
from graft.errors import ConfigError
from graft.runtime import Graft

__all__ = ["assistants"]

_TENANT = click.option("--tenant", default="default", show_default=True, help="The tenant.")


@asynccontextmanager
async def _graft(ctx: click.Context) -> AsyncIterator[Graft]:
    """A started ``Graft`` on the store the settings point at (never ``memory://``)."""
    settings = settings_of(ctx)
    if settings.sqlalchemy_url == "memory://":
        raise ConfigError("the store is memory://: assistants would vanish with this command")
    async with Graft(settings) as graft:
        yield graft


def _actor(tenant: str) -> Principal:
    return dataclasses.replace(operator(), tenant=tenant)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _json(graft: Graft, entry: AssistantEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "source": entry.source,
        "model": entry.settings.model or graft.settings.model,
        "description": entry.settings.description,
        "created_by": entry.created_by,
        "created_at": _when(entry.created_at),
        "updated_at": _when(entry.updated_at),
        # A configured assistant's plugin settings may hold secrets: read the file.
        "definition": entry.definition,
    }


def _names(value: str | None) -> list[str] | None:
    """``"a, b"`` as ``["a", "b"]``; ``""`` as ``[]`` (none); no option as ``None``."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _read_file(path: Path, name: str) -> dict[str, Any]:
    """An assistant's fields from a TOML or JSON file.

    Its top-level keys, or the ``[assistants.NAME]`` table of a file shaped like the
    settings (a block copied from ``graft.toml``).
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError included
        message = f"cannot read {str(path)!r}: {exc}"
        raise click.BadParameter(message, param_hint="--from-file") from None
    table = data.get("assistants") if isinstance(data, dict) else None
    if isinstance(table, dict) and isinstance(table.get(name), dict):
        data = table[name]
    if not isinstance(data, dict):
        raise click.BadParameter("the file must hold an object of fields", param_hint="--from-file")
    return data


@click.group()
def assistants() -> None:
    """List, show, create and delete assistants (custom GPTs) of a tenant."""


@assistants.command("list")
@_TENANT
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@click.pass_context
@async_command
async def assistants_list(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """List the configured assistants, then the tenant's stored ones."""
    async with _graft(ctx) as graft:
        entries = await graft.catalog.entries(_actor(tenant), managed=True)
        listed = [_json(graft, entry) for entry in entries]
    if as_json:
        click.echo(json.dumps(listed, ensure_ascii=False, indent=2))
        return
    for item in listed:
        click.echo(
            f"{item['name']:<24} {item['source']:<7} {item['model']:<32} {item['description']}"
        )


@assistants.command("show")
@click.argument("name")
@_TENANT
@click.pass_context
@async_command
async def assistants_show(ctx: click.Context, name: str, tenant: str) -> None:
    """Print assistant NAME as JSON (a stored one with its definition)."""
    async with _graft(ctx) as graft:
        entry = await graft.catalog.find(name, _actor(tenant))
        if entry is None:
            raise click.ClickException(f"no assistant {name!r} in tenant {tenant!r}")
        click.echo(json.dumps(_json(graft, entry), ensure_ascii=False, indent=2))


@assistants.command("create")
@click.argument("name")
@click.option("--prompt", default=None, help="Its system prompt (required without a file).")
@click.option("--model", default=None, help="Model id, provider:name (default: `model`).")
@click.option("--collections", default=None, help="Document collections, comma-separated.")
@click.option("--sources", default=None, help="Data sources, comma-separated.")
@click.option("--tools", default=None, help='Tools, comma-separated ("": none; default: all).')
@click.option("--description", default=None, help="Shown by GET /v1/models.")
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML or JSON file of its fields; the options above win over it.",
)
@click.option("--replace", is_flag=True, help="Replace a stored assistant of that name.")
@_TENANT
@click.pass_context
@async_command
async def assistants_create(
    ctx: click.Context,
    name: str,
    prompt: str | None,
    model: str | None,
    collections: str | None,
    sources: str | None,
    tools: str | None,
    description: str | None,
    from_file: Path | None,
    replace: bool,
    tenant: str,
) -> None:
    """Create assistant NAME in the tenant: a prompt, a model, collections, sources, tools."""
    fields = _read_file(from_file, name) if from_file is not None else {}
    options = {
        "system_prompt": prompt,
        "model": model,
        "collections": _names(collections),
        "sources": _names(sources),
        "tools": _names(tools),
        "description": description,
    }
    fields.update({key: value for key, value in options.items() if value is not None})
    if "system_prompt" not in fields:
        raise click.UsageError("give the assistant a system prompt: --prompt TEXT or --from-file")
    async with _graft(ctx) as graft:
        if not replace and await graft.store.get_assistant(tenant, name) is not None:
            raise click.ClickException(
                f"tenant {tenant!r} has an assistant {name!r}; --replace replaces it"
            )
        change = await graft.catalog.put(name, fields, _actor(tenant))
    if not change.recorded:
        raise click.ClickException(
            f"assistant {name!r} was stored but could not be written to the audit log"
        )
    done = "created" if change.created else "replaced"
    click.echo(f"{done} assistant {name!r} in tenant {tenant!r}")
    if tenant == "default":  # the command line's own user is of the default tenant
        click.echo(f'try it: graft ask -a {name} "hello"', err=True)


@assistants.command("delete")
@click.argument("name")
@_TENANT
@click.pass_context
@async_command
async def assistants_delete(ctx: click.Context, name: str, tenant: str) -> None:
    """Delete the stored assistant NAME of the tenant (its conversations stay)."""
    async with _graft(ctx) as graft:
        change = await graft.catalog.delete(name, _actor(tenant))
    if not change.recorded:
        raise click.ClickException(
            f"assistant {name!r} was deleted but could not be written to the audit log"
        )
    click.echo(f"deleted assistant {name!r} from tenant {tenant!r}")
