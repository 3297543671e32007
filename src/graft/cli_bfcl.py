"""``graft eval bfcl``: score a model on BFCL's tool-calling cases through graft's chat turn.

The cases come from the ``bfcl-eval`` package (``pip install --no-deps bfcl-eval``); each
runs as one turn on an assistant with the case's functions as client tools, and is scored
by BFCL's AST rules (``graft.evals.bfcl``). The run uses the in-memory store: nothing lands
in the installation's database. One line per case goes to standard error as it finishes;
the table (or, with ``--json -``, the whole report) goes to standard output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from graft.cli_common import run, settings_of
from graft.config import Settings
from graft.errors import GraftError
from graft.evals.bfcl import BfclReport, CaseResult, bfcl_settings, parse_categories, run_bfcl
from graft.evals.bfcl_data import CATEGORIES
from graft.runtime import Graft

__all__ = ["bfcl"]

_DEFAULT_CATEGORIES = "simple,multiple,parallel,parallel_multiple,irrelevance"


@click.command("bfcl")
@click.option("--model", default=None, help="Model id to score; defaults to the settings' model.")
@click.option(
    "--category",
    default=_DEFAULT_CATEGORIES,
    show_default=True,
    help=f"Comma-separated categories: simple, {', '.join(CATEGORIES)}.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Cases per category, spread evenly over its file.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Write the report (scores and every case) as JSON to this file, or - for stdout.",
)
@click.option("--quiet", is_flag=True, help="No line per case on standard error.")
@click.pass_context
def bfcl(
    ctx: click.Context,
    model: str | None,
    category: str,
    limit: int,
    json_path: Path | None,
    quiet: bool,
) -> None:
    """Score a model's tool calls on BFCL's cases (AST matching, per category)."""
    settings = bfcl_settings(settings_of(ctx), model)
    try:
        categories = parse_categories(category)
    except GraftError as exc:  # an unknown category: a usage error (exit 2), as in graft eval
        raise click.BadParameter(exc.message, param_hint="--category") from None
    report = run(_run(settings, categories, limit, None if quiet else _progress))
    if json_path is not None and str(json_path) == "-":
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    click.echo(report.table())


async def _run(
    settings: Settings,
    categories: list[str],
    limit: int,
    progress: Callable[[CaseResult], None] | None,
) -> BfclReport:
    async with Graft(settings) as graft:
        return await run_bfcl(graft, categories, limit, on_result=progress)


def _progress(result: CaseResult) -> None:
    mark = "pass" if result.valid else f"FAIL {result.error_type}"
    calls = "; ".join(f"{c['name']}({c['arguments']})" for c in result.calls) or "-"
    click.echo(f"{result.id:<32} {result.latency_s:6.2f}s {mark:<48} {calls[:100]}", err=True)
