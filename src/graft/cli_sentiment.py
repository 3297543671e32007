"""``graft sentiment``: the analyzer from the command line.

``graft sentiment analyze "text"`` prints one result; with no text it reads one text per
line from standard input and writes one JSON object per line, for batch use. ``graft
sentiment report`` prints sentiment over time per assistant (or per conversation) from the
store. ``graft finetune sentiment`` (training a head on the user's own examples) lives in
``graft.cli_finetune``.

The sentiment modules (and the e5 model) load only when one of these commands runs.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from graft.cli_common import opened_store, run, settings_of, time_window
from graft.errors import ConfigError

if TYPE_CHECKING:
    from graft.config import Settings
    from graft.default_plugins.sentiment.analyzer import Analyzer
    from graft.store.base import SentimentPoint

__all__ = ["sentiment"]

BATCH = 32
"""Lines read from standard input per call of the analyzer."""


@click.group()
def sentiment() -> None:
    """Analyze sentiment (Chinese and English) and report it over time."""


def _analyzer(settings: Settings, backend: str | None) -> Analyzer:
    from graft.default_plugins.sentiment.plugin import NAME, analyzer_for

    spec = backend or settings.plugin_config(NAME).get("backend") or "e5"
    try:
        return analyzer_for(settings, str(spec))
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


@sentiment.command("analyze")
@click.argument("text", required=False)
@click.option("--backend", default=None, help="e5, e5:HEAD, transformers:DIR or lexicon.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON also for one text.")
@click.pass_context
def analyze(ctx: click.Context, text: str | None, backend: str | None, as_json: bool) -> None:
    """Analyze TEXT, or each line of standard input (one JSON object per line out)."""
    analyzer = _analyzer(settings_of(ctx), backend)
    if text is not None:
        result = analyzer.analyze(text)
        if as_json:
            click.echo(json.dumps({"text": text, **result.to_dict()}, ensure_ascii=False))
            return
        emotion = f" ({result.emotion})" if result.emotion else ""
        note = f"  [{result.note}]" if result.note else ""
        cut = "  [truncated]" if result.truncated else ""
        click.echo(f"{result.label} {result.score:.2f}{emotion}{note}{cut}")
        return
    if sys.stdin.isatty():
        click.echo("reading one text per line from standard input (Ctrl-D ends)", err=True)
    batch: list[str] = []
    for line in sys.stdin:
        batch.append(line.rstrip("\r\n"))
        if len(batch) == BATCH:
            _write(analyzer, batch)
            batch = []
    if batch:
        _write(analyzer, batch)


def _write(analyzer: Analyzer, texts: list[str]) -> None:
    for text, result in zip(texts, analyzer.analyze_many(texts), strict=True):
        sys.stdout.write(json.dumps({"text": text, **result.to_dict()}, ensure_ascii=False))
        sys.stdout.write("\n")
    sys.stdout.flush()


@sentiment.command("report")
@click.option("--tenant", default="default", show_default=True)
@click.option("--assistant", default=None, help="Only this assistant.")
@click.option("--conversation", default=None, help="One conversation, point by point.")
@click.option("--user", default=None, help="Only this user's conversations.")
@click.option("--since", default=None, help="7d, 12h, 2w, or an ISO date.")
@click.option("--until", default=None, help="The end (not included): 1d, or an ISO date.")
@click.option(
    "--bucket", type=click.Choice(["hour", "day", "week"]), default="day", show_default=True
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def report(
    ctx: click.Context,
    tenant: str,
    assistant: str | None,
    conversation: str | None,
    user: str | None,
    since: str | None,
    until: str | None,
    bucket: str,
    as_json: bool,
) -> None:
    """Sentiment of users' messages over time, per assistant (or per conversation)."""
    start, end = time_window(since, until)

    async def read() -> list[SentimentPoint]:
        settings = settings_of(ctx)
        async with opened_store(settings, if_memory="it has no sentiment to report") as store:
            return await store.sentiment_report(
                tenant,
                assistant=assistant,
                conversation_id=conversation,
                user_id=user,
                since=start,
                until=end,
                bucket=bucket,  # type: ignore[arg-type]  # click.Choice checked it
            )

    points = run(read())
    if as_json:
        click.echo(json.dumps([point_json(p) for p in points], indent=2))
        return
    if not points:
        click.echo("no tagged messages (is the sentiment middleware on?)", err=True)
        return
    click.echo(f"{'from':<17} {'assistant':<16} {'neg':>5} {'neu':>5} {'pos':>5} {'mean':>6}")
    for p in points:
        name = p.assistant if p.conversation_id is None else p.conversation_id
        click.echo(
            f"{p.start:%Y-%m-%d %H:%M} {name[:16]:<16} "
            f"{p.negative:>5} {p.neutral:>5} {p.positive:>5} {p.mean:>+6.2f}"
        )


def point_json(point: SentimentPoint) -> dict[str, Any]:
    """A report point as JSON (the REST endpoint answers the same shape)."""
    return {
        "start": point.start.isoformat(),
        "assistant": point.assistant,
        "conversation_id": point.conversation_id,
        "negative": point.negative,
        "neutral": point.neutral,
        "positive": point.positive,
        "mean": round(point.mean, 4),
    }


@sentiment.command("heads")
@click.pass_context
def heads(ctx: click.Context) -> None:
    """List the classification heads an assistant can select (backend = "e5:NAME")."""
    from graft.default_plugins.sentiment.finetune import list_heads
    from graft.default_plugins.sentiment.plugin import heads_dir

    for head in list_heads(heads_dir(settings_of(ctx))):
        click.echo(f"{head.spec:<32} {head.path}")
