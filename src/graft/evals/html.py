"""The HTML report: one self-contained page with every case and its transcript.

The page has its styles inline and no script: it opens from a CI artifact or a mail
attachment as it is. Everything that came from the suite, the model or a tool is untrusted
text and is escaped (``html.escape``, quotes included) before it is written; nothing is
ever rendered as markup or a link. A Content-Security-Policy that allows no script, no
remote load and no form is a second line of defence should an escape ever be missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from graft.evals.compare import Comparison
from graft.evals.runner import CaseResult, SuiteRun

__all__ = ["html_report"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1b1f24; background: #fff; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #d0d7de;
         vertical-align: top; }
.pass { color: #116329; font-weight: 600; } .fail, .error { color: #a40e26; font-weight: 600; }
details { border: 1px solid #d0d7de; border-radius: 6px; margin: .5rem 0; padding: .4rem .8rem; }
summary { cursor: pointer; }
.step { margin: .35rem 0; padding: .35rem .6rem; border-left: 3px solid #d0d7de;
        white-space: pre-wrap; overflow-wrap: anywhere; }
.step .role { font-weight: 600; color: #57606a; display: block; }
.step.tool_call, .step.tool_result { border-color: #0969da; background: #f6f8fa; }
.step.error { border-color: #a40e26; background: #fff0f0; }
.step.text { border-color: #116329; }
ul.checks { padding-left: 1.2rem; } .muted { color: #57606a; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _status(status: str) -> str:
    return f'<span class="{_e(status)}">{_e(status.upper())}</span>'


def _case(result: CaseResult, anchor: str) -> str:
    case = result.case
    checks = "".join(
        f"<li>{_status('pass' if c.passed else 'fail')} <code>{_e(c.label)}</code>: "
        f"{_e(c.message)}</li>"
        for c in result.checks
    )
    if result.error is not None:
        checks = f"<li>{_status('error')} the turn failed: {_e(result.error)}</li>" + checks
    steps = "".join(
        f'<div class="step {_e(step.kind)}"><span class="role">{_e(step.role)}</span>'
        f"{_e(step.text)}</div>"
        for step in result.transcript.steps
    )
    extra = []
    if case.description:
        extra.append(f'<p class="muted">{_e(case.description)}</p>')
    if case.reference is not None:
        extra.append(f"<p><strong>Reference:</strong> {_e(case.reference)}</p>")
    if case.source is not None and case.source.comment:
        extra.append(f"<p><strong>Feedback comment:</strong> {_e(case.source.comment)}</p>")
    opened = "" if result.passed else " open"
    return (
        f'<details id="{_e(anchor)}"{opened}><summary>{_status(result.status)} '
        f"<strong>{_e(case.id)}</strong> "
        f'<span class="muted">{result.transcript.latency_ms:.0f} ms</span></summary>'
        f'{"".join(extra)}<ul class="checks">{checks}</ul>'
        f"<h3>Transcript</h3>{steps}</details>"
    )


def _run(run: SuiteRun, prefix: str) -> str:
    rows = "".join(
        f'<tr><td><a href="#{_e(prefix)}-{index}">{_e(r.case.id)}</a></td>'
        f"<td>{_status(r.status)}</td><td>{r.transcript.latency_ms:.0f}</td>"
        f"<td>{_e(', '.join(c.label for c in r.checks if not c.passed) or r.error or '')}</td></tr>"
        for index, r in enumerate(run.results)
    )
    cases = "".join(_case(r, f"{prefix}-{index}") for index, r in enumerate(run.results))
    return (
        f"<h2>{_e(run.model)} · assistant {_e(run.assistant)}: {run.passed}/{len(run.results)} "
        f"passed ({run.pass_rate:.1%})</h2>"
        f'<p class="muted">started {_e(run.started_at.isoformat(timespec="seconds"))}, '
        f"{run.duration_s:.1f} s</p>"
        "<table><thead><tr><th>case</th><th>result</th><th>ms</th><th>failed checks</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{cases}"
    )


def _comparison(comparison: Comparison) -> str:
    verdict = "regression" if comparison.regressed else "no regression"
    moved = "".join(f"<li>fixed: {_e(case_id)}</li>" for case_id in comparison.fixed)
    moved += "".join(f"<li>broken: {_e(case_id)}</li>" for case_id in comparison.broken)
    return (
        f"<h2>Comparison: {_status('fail' if comparison.regressed else 'pass')} {verdict}</h2>"
        f"<p>baseline {_e(comparison.baseline.model)} {comparison.baseline.pass_rate:.1%} → "
        f"candidate {_e(comparison.candidate.model)} {comparison.candidate.pass_rate:.1%} "
        f"(threshold {comparison.threshold:.1%})</p><ul>{moved or '<li>no case moved</li>'}</ul>"
    )


def html_report(runs: Sequence[SuiteRun], comparison: Comparison | None = None) -> str:
    """The report page for one run, or the two runs of a comparison."""
    suite = runs[0].suite if runs else None
    title = f"graft eval: {suite.name}" if suite else "graft eval"
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
    )
    body = [f"<h1>{_e(title)}</h1>"]
    if suite is not None and suite.description:
        body.append(f'<p class="muted">{_e(suite.description)}</p>')
    if comparison is not None:
        body.append(_comparison(comparison))
    body += [_run(run, f"run{index}") for index, run in enumerate(runs)]
    return head + "".join(body) + "</body></html>\n"
