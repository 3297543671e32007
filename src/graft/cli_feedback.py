"""``graft feedback`` (list, export) and ``graft eval from-feedback``: ratings put to use.

People rate answers with the thumbs of the web UI or ``POST /v1/feedback``. ``list``
shows a tenant's ratings with their comments; ``export`` writes fine-tuning data in
OpenAI's chat formats (``graft.feedback_export``); ``from-feedback`` turns thumbs-down
answers into eval cases for a reviewer to finish (``graft.feedback_cases``).

Like ``graft privacy``, these act as the installation's operator (``cli_common.operator``)
over other people's conversations, so each is recorded in the audit log (counts and
options, never contents), and an export or a suite is written only once its record is:
nothing leaves unrecorded. Exports mask personal data (``graft.redaction``) unless
``--no-redact`` is given, which the record notes. Files are written readable by their
owner only: they hold people's chats.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from graft import audit
from graft.agent import UNTRUSTED_NOTICE
from graft.cli_common import (
    async_command,
    opened_store,
    operator,
    settings_of,
    time_window,
    write_private,
)
from graft.errors import ConfigError, UnknownAssistant
from graft.feedback_cases import SUITE_NAME, eval_cases
from graft.feedback_export import (
    FORMATS,
    PAGE,
    FeedbackFilter,
    Format,
    Gathered,
    Offered,
    dpo_rows,
    gather,
    sft_rows,
)
from graft.runtime import Graft
from graft.store import Store
from graft.store.base import RATINGS, FeedbackRating, StoredFeedback

__all__ = ["feedback", "from_feedback"]

F = TypeVar("F", bound=Callable[..., Any])
_IF_MEMORY = "it holds no ratings outside a running process"


def _filters(func: F) -> F:
    """The options that choose ratings: tenant, assistant, a time window."""
    for option in reversed(
        [
            click.option("--tenant", default="default", show_default=True, help="The tenant."),
            click.option("--assistant", default=None, help="Only ratings of this assistant."),
            click.option("--since", default=None, help="Rated since: 7d, 12h, 2w or a date."),
            click.option("--until", default=None, help="Rated before: 1d or a date."),
        ]
    ):
        func = option(func)
    return func


def _filter(
    tenant: str,
    assistant: str | None,
    since: str | None,
    until: str | None,
    rating: FeedbackRating | None = None,
) -> FeedbackFilter:
    start, end = time_window(since, until)
    return FeedbackFilter(tenant, assistant, rating, start, end)


def _none_match(filters: FeedbackFilter, what: str) -> click.ClickException:
    narrowed = [
        f"{name} {value if isinstance(value, str) else value.isoformat()}"
        for name, value in (
            ("assistant", filters.assistant),
            ("since", filters.since),
            ("until", filters.until),
        )
        if value is not None
    ]
    where = f" ({', '.join(narrowed)})" if narrowed else ""
    return click.ClickException(
        f"no {what} in tenant {filters.tenant!r}{where}: people rate answers with the "
        "thumbs in the web UI or POST /v1/feedback"
    )


def _reasons(skipped: Counter[str]) -> str:
    return ", ".join(f"{count} {why}" for why, count in skipped.most_common())


def _summary(wrote: str, out: Path | None, skipped: Counter[str]) -> str:
    where = f" to {out}" if out is not None else ""
    total = sum(skipped.values())
    left = f"; skipped {total}: {_reasons(skipped)}" if total else "; skipped none"
    return f"wrote {wrote}{where}{left}"


async def _recorded(store: Store, action: str, tenant: str, details: dict[str, Any]) -> None:
    """Record the action, or refuse to go on: an export must not leave unrecorded."""
    event = audit.AuditEvent(action, operator().user_id, tenant, f"tenant:{tenant}", "ok", details)
    if await audit.record(store, event) is None:
        raise click.ClickException("could not write the audit record; nothing was written")


def _window(filters: FeedbackFilter) -> dict[str, Any]:
    return {
        "assistant": filters.assistant,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
    }


@click.group()
def feedback() -> None:
    """Read people's ratings of answers; export them as fine-tuning data."""


@feedback.command("list")
@_filters
@click.option("--rating", type=click.Choice(RATINGS), default=None, help="Only up or down.")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, for scripts.")
@click.pass_context
@async_command
async def feedback_list(
    ctx: click.Context,
    tenant: str,
    assistant: str | None,
    since: str | None,
    until: str | None,
    rating: FeedbackRating | None,
    limit: int,
    as_json: bool,
) -> None:
    """Print the newest ratings with who gave them and their comments."""
    filters = _filter(tenant, assistant, since, until, rating)
    shown: list[StoredFeedback] = []
    async with opened_store(settings_of(ctx), if_memory=_IF_MEMORY) as store:
        after: str | None = None
        while len(shown) < limit:
            page = await store.list_feedback(tenant, rating=rating, after=after, limit=PAGE)
            shown += [f for f in page if filters.keeps(f)][: limit - len(shown)]
            if len(page) < PAGE:
                break
            after = page[-1].id
        details = {"rating": rating, "limit": limit, "returned": len(shown), **_window(filters)}
        await _recorded(store, "feedback.list_tenant", tenant, details)
    for given in shown:
        if as_json:
            line = {**given.to_json(), "user": given.user_id, "assistant": given.assistant}
            click.echo(json.dumps(line, ensure_ascii=False))
            continue
        comment = " ".join((given.comment or "").split())
        click.echo(
            f"{given.updated_at:%Y-%m-%d %H:%M}  {given.rating:<4}  {given.user_id}  "
            f"{given.assistant}  {given.turn_id}  {comment}".rstrip()
        )
    if not shown:
        click.echo(f"no ratings in tenant {tenant!r} match", err=True)


@feedback.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="openai-sft: thumbs-up conversations; dpo: up/down answer pairs.",
)
@_filters
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSONL to this file (mode 600) instead of standard output.",
)
@click.option("--no-redact", is_flag=True, help="Keep personal data unmasked (audited).")
@click.option("--no-tools", is_flag=True, help="Leave out the assistants' tool definitions.")
@click.pass_context
@async_command
async def feedback_export(
    ctx: click.Context,
    fmt: Format,
    tenant: str,
    assistant: str | None,
    since: str | None,
    until: str | None,
    out: Path | None,
    no_redact: bool,
    no_tools: bool,
) -> None:
    """Write rated conversations as fine-tuning rows (JSONL), with their tool calls."""
    filters = _filter(tenant, assistant, since, until, "up" if fmt == "openai-sft" else None)
    settings = settings_of(ctx)
    if settings.sqlalchemy_url == "memory://":
        raise ConfigError(f"the store is memory://: {_IF_MEMORY}")
    async with Graft(settings) as graft:
        found = await gather(graft.store, filters, redacted=not no_redact)
        if not found.matched:
            raise _none_match(filters, "thumbs-up ratings" if fmt == "openai-sft" else "ratings")
        names = {t.feedback.assistant for t in found.turns}
        offered = await _offered(graft, tenant, names, tools=not no_tools)
        made = (sft_rows if fmt == "openai-sft" else dpo_rows)(found.turns, offered)
        skipped = found.skipped + made.skipped
        if not made.rows:
            raise click.ClickException(
                f"no {fmt} rows from {found.matched} rating(s): {_reasons(skipped)}"
            )
        details = {
            "format": fmt,
            "rows": len(made.rows),
            "ratings": found.matched,
            "skipped": sum(skipped.values()),
            "redacted": not no_redact,
            "tools": not no_tools,
            **_window(filters),
        }
        await _recorded(graft.store, "feedback.export", tenant, details)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in made.rows)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_private(out, text)
    click.echo(_summary(f"{len(made.rows)} {fmt} row(s)", out, skipped), err=True)


async def _offered(
    graft: Graft, tenant: str, names: Iterable[str], *, tools: bool
) -> dict[str, Offered]:
    """Each assistant's system message and tool definitions as a turn would get them now."""
    principal = replace(operator(), tenant=tenant)
    known: dict[str, Offered] = {}
    for name in sorted(names):
        try:
            context = await graft.open_context(principal, name)
        except UnknownAssistant:  # deleted since: neither is known any more
            known[name] = Offered()
            continue
        definitions = None
        if tools:
            box = await graft.toolbox(context)
            definitions = [d.to_openai() for d in box.definitions] or None
        system = f"{context.assistant.system_prompt}\n\n{UNTRUSTED_NOTICE}"
        known[name] = Offered(system, definitions)
    return known


@click.command("from-feedback")
@_filters
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The suite file to write (YAML, mode 600).",
)
@click.option("--name", default="from-feedback", show_default=True, help="The suite's name.")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.option("--no-redact", is_flag=True, help="Keep personal data unmasked (audited).")
@click.pass_context
@async_command
async def from_feedback(
    ctx: click.Context,
    tenant: str,
    assistant: str | None,
    since: str | None,
    until: str | None,
    out: Path,
    name: str,
    force: bool,
    no_redact: bool,
) -> None:
    """Write an eval case for each thumbs-down answer, for a reviewer to finish."""
    if SUITE_NAME.fullmatch(name) is None:
        raise click.BadParameter(f"{name!r}: use 1-64 of a-z 0-9 _ . -", param_hint="--name")
    filters = _filter(tenant, assistant, since, until)
    _check_target(out, force)
    async with opened_store(settings_of(ctx), if_memory=_IF_MEMORY) as store:
        # Up-rated answers too: one to the same prompt becomes the case's reference.
        found = await gather(store, filters, redacted=not no_redact)
        suite_assistant = _one_assistant(found, filters)
        cases = eval_cases(
            found.turns, name=name, assistant=suite_assistant, made=datetime.now(UTC)
        )
        skipped = found.skipped + cases.skipped
        if not found.matched:
            raise _none_match(filters, "ratings")
        if not cases.count:
            why = _reasons(skipped) or "none of them is a thumbs-down"
            raise click.ClickException(f"no eval cases from {found.matched} rating(s): {why}")
        details = {
            "cases": cases.count,
            "skipped": sum(skipped.values()),
            "redacted": not no_redact,
            **_window(filters),
        }
        await _recorded(store, "feedback.eval_cases", tenant, details)
    write_private(out, cases.text)
    click.echo(_summary(f"{cases.count} eval case(s)", out, skipped), err=True)
    click.echo(f"review {out} before you use it: each case's `expect` is a stub", err=True)


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists (a reviewer may have edited it); add --force")


def _one_assistant(found: Gathered, filters: FeedbackFilter) -> str | None:
    """The suite's assistant: the one asked for, or the only one rated down."""
    if filters.assistant is not None:
        return filters.assistant
    names = sorted({t.feedback.assistant for t in found.turns if t.feedback.rating == "down"})
    if len(names) > 1:
        raise click.UsageError(
            f"thumbs-down answers of {len(names)} assistants ({', '.join(names)}): a suite "
            "runs one; pass --assistant"
        )
    return names[0] if names else None
