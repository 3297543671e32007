"""``graft models``: the model registry from the command line (``list``, ``stats``).

``list`` prints the aliases of ``[models.aliases]`` and, for each configured assistant, its
model and canary as written and as resolved (``graft.model_routing``). ``stats`` reads the
store: finished turns by assistant, model and route, with failures, latency, tokens and
ratings (``graft.store.model_stats``), so that a canary's candidate reads beside its
baseline before the alias is moved. Both read only; ``stats`` covers every tenant unless
``--tenant`` names one.
"""

from __future__ import annotations

import json

import click

from graft.cli_common import opened_store, run, settings_of, time_window
from graft.model_routing import registry_listing
from graft.store.model_stats import ModelStats

__all__ = ["models"]


@click.group()
def models() -> None:
    """Model aliases, canaries and per-model statistics."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """The aliases, and each configured assistant's model and canary."""
    settings = settings_of(ctx)
    names = settings.assistant_names()
    listing = registry_listing(settings, [(n, a) for n in names if (a := settings.assistant(n))])
    if as_json:
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    click.echo("aliases:" if listing["aliases"] else "aliases: none ([models.aliases])")
    for alias, target in listing["aliases"].items():
        click.echo(f"  {alias} -> {target}")
    click.echo("assistants:")
    for entry in listing["assistants"]:
        model = entry["model"]
        resolved = entry.get("resolved", model)
        shown = model if resolved == model else f"{model} ({resolved})"
        line = f"  {entry['assistant']}: {shown}"
        canary = entry.get("canary")
        if canary is not None:
            target = canary["model"]
            named = target if canary["resolved"] == target else f"{target} ({canary['resolved']})"
            line += f"; canary {named} at {canary['share']:.0%}"
        if "error" in entry:
            line += f"; error: {entry['error']}"
        click.echo(line)


@models.command("stats")
@click.option("--since", default="7d", show_default=True, help="7d, 12h, 2w, or an ISO date.")
@click.option("--until", default=None, help="The end (not included): 1d, or an ISO date.")
@click.option("--assistant", default=None, help="Only this assistant.")
@click.option("--tenant", default=None, help="Only this tenant (default: every tenant).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(
    ctx: click.Context,
    since: str,
    until: str | None,
    assistant: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Turns, failures, latency, tokens and ratings by assistant, model and route."""
    start, end = time_window(since, until)

    async def read() -> list[ModelStats]:
        settings = settings_of(ctx)
        async with opened_store(settings, if_memory="it holds no turns to report") as store:
            return await store.model_stats(tenant, since=start, until=end, assistant=assistant)

    rows = run(read())
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no finished turns in that window", err=True)
        return
    click.echo(
        f"{'assistant':<16} {'model':<28} {'route':<8} {'turns':>6} {'err%':>6} {'intr':>5} "
        f"{'mean ms':>8} {'1st ms':>7} {'tokens':>8} {'up':>4} {'down':>4} {'up%':>5}"
    )
    for row in rows:
        up_rate = "-" if row.up_rate is None else f"{row.up_rate:.0%}"
        click.echo(
            f"{row.assistant[:16]:<16} {row.model[:28]:<28} {row.route or '-':<8} "
            f"{row.turns:>6} {row.error_rate:>6.1%} {row.interrupted:>5} {_ms(row.mean_ms):>8} "
            f"{_ms(row.mean_first_token_ms):>7} "
            f"{row.prompt_tokens + row.completion_tokens:>8} "
            f"{row.feedback_up:>4} {row.feedback_down:>4} {up_rate:>5}"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
