"""``graft eval``: run an eval suite, or compare two models on one (the regression gate).

``graft eval SUITE.yaml`` is ``graft eval run SUITE.yaml``: a first argument that names no
subcommand goes to ``run``. Other subcommands join the group with ``eval_group.add_command``
(``from-feedback``, ``bfcl``).

Exit codes, for CI:

- ``run``: 0 when every case passed; 1 when one failed. With ``--fail-under RATE``: 1 only
  when the pass rate is below RATE (0 to 1).
- ``compare``: 1 when the candidate's pass rate is below the baseline's by more than the
  threshold (``--threshold``, else the suite's ``threshold``, else ``[evals] threshold``).
- 2 for everything that stops a run before its first case: a malformed suite (the message
  names the file, case and field), an unknown assistant or model, a missing judge.

Progress goes to stderr, a line per finished case; the table (or ``compare``'s summary) to
stdout; ``--junit``, ``--html`` and ``--json`` write the reports too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graft.cli_bfcl import bfcl
from graft.cli_common import settings_of
from graft.cli_feedback import from_feedback
from graft.errors import ConfigError, GraftError

if TYPE_CHECKING:
    from graft.evals.compare import Comparison
    from graft.evals.runner import SuiteRun
    from graft.evals.suite import Case, Suite

__all__ = ["eval_group"]


class SuiteProblem(click.ClickException):
    """The suite or the settings do not allow a run: nothing ran (exit code 2)."""

    exit_code = 2


class _EvalGroup(click.Group):
    """A group whose first argument, when it names no subcommand, is ``run``'s suite."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    r"""Run eval suites against an assistant, and gate model changes on them.

    \b
    graft eval SUITE.yaml [--model M] [--junit FILE] [--html FILE]
    graft eval compare --baseline M1 --candidate M2 SUITE.yaml
    """


def _report_options(func: Any) -> Any:
    options = [
        click.option("-a", "--assistant", default=None, help="Assistant (default: the suite's)."),
        click.option("--judge", default=None, help="Judge model for `judge:` checks."),
        click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None),
        click.option("--html", type=click.Path(dir_okay=False, path_type=Path), default=None),
        click.option(
            "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None
        ),
        click.option("--tag", "tags", multiple=True, help="Only cases with this tag (repeat)."),
        click.option("--case", "case_ids", multiple=True, help="Only this case (repeat)."),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            default=1,
            show_default=True,
            help="Cases run at once.",
        ),
        click.option(
            "--keep-conversations",
            is_flag=True,
            help="Keep each case's conversation in the store (deleted by default).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@eval_group.command("run")
@click.argument("suite_path", metavar="SUITE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-m", "--model", default=None, help="Model instead of the assistant's.")
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 1),
    default=None,
    help="Exit 1 only when the pass rate is below this (0-1); default: any failed case.",
)
@_report_options
@click.pass_context
def run_command(
    ctx: click.Context,
    /,
    suite_path: Path,
    model: str | None,
    fail_under: float | None,
    **options: Any,
) -> None:
    """Run the cases of SUITE (YAML or JSON) and report; exit 1 when cases fail."""
    from graft.evals.report import table

    suite, cases = _load(suite_path, options)
    (run,), _ = _run(ctx, _runs(suite, cases, [model], options), options)
    click.echo(table(run))
    _write_reports([run], None, options)
    failed = run.pass_rate < fail_under if fail_under is not None else run.passed < len(run.results)
    if failed:
        sys.exit(1)


@eval_group.command("compare")
@click.argument("suite_path", metavar="SUITE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--baseline", required=True, help="The model in use now.")
@click.option("--candidate", required=True, help="The model that would replace it.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Largest pass-rate drop allowed (0-1); default: the suite's, else [evals] threshold.",
)
@_report_options
@click.pass_context
def compare_command(
    ctx: click.Context,
    /,
    suite_path: Path,
    baseline: str,
    candidate: str,
    threshold: float | None,
    **options: Any,
) -> None:
    """Run SUITE on two models; exit 1 when the candidate's pass rate drops too far."""
    from graft.evals.compare import compare_runs, resolve_threshold

    suite, cases = _load(suite_path, options)
    (before, after), configured = _run(
        ctx, _runs(suite, cases, [baseline, candidate], options), options
    )
    limit = resolve_threshold(threshold, suite.threshold, configured)
    comparison = compare_runs(before, after, limit)
    click.echo(comparison.summary())
    _write_reports([before, after], comparison, options)
    if comparison.regressed:
        sys.exit(1)


def _load(path: Path, options: dict[str, Any]) -> tuple[Suite, list[Case]]:
    from graft.evals.runner import select_cases
    from graft.evals.suite import load_suite

    try:
        suite = load_suite(path)
        return suite, select_cases(suite, tags=options["tags"], ids=options["case_ids"])
    except ConfigError as exc:
        raise SuiteProblem(exc.message) from None


def _runs(
    suite: Suite, cases: list[Case], models: Sequence[str | None], options: dict[str, Any]
) -> list[dict[str, Any]]:
    """The runs to make, one per model, as arguments for ``run_suite``."""
    return [
        dict(
            suite=suite,
            cases=cases,
            model=model,
            assistant=options["assistant"],
            judge=options["judge"],
            concurrency=options["concurrency"],
            keep_conversations=options["keep_conversations"],
        )
        for model in models
    ]


def _run(
    ctx: click.Context, runs: list[dict[str, Any]], options: dict[str, Any]
) -> tuple[list[SuiteRun], float]:
    """Make the runs on one started ``Graft``; progress lines on stderr.

    Returns the runs and the settings' ``[evals] threshold``.
    """
    import asyncio

    from graft.evals.report import result_line
    from graft.evals.runner import CaseResult, run_suite
    from graft.runtime import Graft

    async def main() -> tuple[list[SuiteRun], float]:
        async with Graft(settings_of(ctx)) as graft:
            done: list[SuiteRun] = []
            for arguments in runs:
                total = len(arguments["cases"])
                seen = [0]

                def progress(
                    result: CaseResult, total: int = total, seen: list[int] = seen
                ) -> None:
                    seen[0] += 1
                    if not options["quiet"]:
                        click.echo(result_line(result, seen[0], total), err=True)

                if not options["quiet"]:
                    which = arguments["model"] or "the assistant's model"
                    click.echo(f"running {total} cases on {which}", err=True)
                done.append(await run_suite(graft, on_result=progress, **arguments))
            return done, graft.settings.evals.threshold

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        raise SuiteProblem(exc.message) from None
    except GraftError as exc:
        raise click.ClickException(exc.message) from None


def _write_reports(
    runs: list[SuiteRun], comparison: Comparison | None, options: dict[str, Any]
) -> None:
    from graft.evals.html import html_report
    from graft.evals.report import json_report, junit_xml

    writers: dict[str, Callable[[], bytes]] = {
        "junit": lambda: junit_xml(runs),
        "html": lambda: html_report(runs, comparison).encode("utf-8"),
        "json_path": lambda: json_report(
            comparison.to_json() if comparison is not None else runs[0].to_json()
        ).encode("utf-8"),
    }
    for key, render in writers.items():
        path: Path | None = options[key]
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(render())
        except OSError as exc:
            raise click.ClickException(f"cannot write {str(path)!r}: {exc.strerror}") from None
        click.echo(f"wrote {path}", err=True)


eval_group.add_command(bfcl)
eval_group.add_command(from_feedback)
