"""``graft plugins add-openapi``: register an OpenAPI service in the settings file.

The command reads the document (a file, or a URL fetched through the network guard with
the manifest's ``allow_hosts``), checks it, lists the tools it would make, and adds a
``[services.NAME]`` table to the file given by ``--config``. The file is edited with
``tomlkit``, which keeps every comment and table of it as it was; an existing table of the
same name is never replaced, and the file is replaced atomically. Without ``--config`` the
table is printed for the user to add.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from graft.cli_common import run
from graft.config import Settings, load_settings
from graft.errors import ConfigError, GraftError, NetworkBlocked
from graft.netguard import check_url
from graft.services.manifest import NAME_PATTERN, Manifest, ServiceSettings, load_manifest
from graft.services.openapi import OpenAPIDocument, fetch_document, read_document
from graft.services.toolset import OpenAPIToolset
from graft.settings_file import add_table, table_text

if TYPE_CHECKING:
    pass

__all__ = ["add_openapi"]


def _settings(config: Path | None) -> Settings:
    if config is not None and not config.exists():
        return Settings()  # a new file: the defaults (and GRAFT_* variables) apply
    return load_settings(config)


def _default_name(document: OpenAPIDocument) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", document.title.lower()).strip("_")[:32]
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError("the document has no usable title: give the service a --name")
    return name


def _values(spec: str, manifest: Path | None) -> dict[str, str]:
    values = {"spec": spec}
    if manifest is not None:
        values["manifest"] = str(manifest)
    return values


def _show(toolset: OpenAPIToolset) -> None:
    click.echo(
        f"service {toolset.name}: {len(toolset.operations)} tools, calls go to {toolset.base_url}"
    )
    for operation in toolset.operations:
        reads = "  (read-only)" if operation.tool.read_only else ""
        click.echo(f"  {operation.tool.name:<40} {operation.method} {operation.path}{reads}")
    try:
        check_url(toolset.base_url or "", toolset.policy)
    except NetworkBlocked as exc:
        click.echo(f"warning: calls will be refused: {exc.message}", err=True)


@click.command("add-openapi")
@click.argument("spec")
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Manifest file (JSON or TOML): description, auth, allow_hosts, limits.",
)
@click.option("--name", default=None, help="Service name (default: the manifest's or title's).")
@click.pass_context
def add_openapi(
    ctx: click.Context, spec: str, manifest_path: Path | None, name: str | None
) -> None:
    """Check the OpenAPI document SPEC (file or URL), list its tools, add it to the settings."""
    config: Path | None = (ctx.obj or {}).get("config")
    try:
        settings = _settings(config)
        manifest = load_manifest(manifest_path, name=name) if manifest_path else None
        policy = settings.network.policy()
        if manifest is not None:
            policy = policy.allowing(*manifest.allow_hosts, ports=manifest.allow_ports)
        if spec.startswith(("http://", "https://")):
            document = run(fetch_document(spec, policy))
            source = spec
        else:
            document = read_document(spec)
            source = str(Path(spec).resolve())
        name = name or (manifest.name if manifest else _default_name(document))
        if not re.fullmatch(NAME_PATTERN, name):
            raise ConfigError(f"service name {name!r} must match {NAME_PATTERN}")
        manifest = manifest or Manifest(name=name)
        toolset = OpenAPIToolset(manifest, document=document, network=settings.network.policy())
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    _show(toolset)
    absolute = manifest_path.resolve() if manifest_path else None
    if config is None:
        click.echo("\nAdd this to your settings file (or pass --config to have it added):\n")
        click.echo(table_text("services", name, _values(source, absolute)))
        return
    try:
        add_table(
            config,
            "services",
            name,
            _values(source, absolute),
            check=ServiceSettings.model_validate,
            taken="pick --name",
        )
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"added [services.{name}] to {config}")
