"""Reports of a run for people and for CI: a terminal table, JUnit XML and JSON.

JUnit XML is what CI systems (GitHub Actions test reporters, GitLab, Jenkins) read: one
``testsuite`` per run (suite and model), one ``testcase`` per case, a ``failure`` with each
failed check's message, an ``error`` when the turn itself failed, and the transcript in
``system-out``. Model and tool text is untrusted and may hold characters XML 1.0 cannot
carry at all (NUL, most control characters): those become U+FFFD, so the file always
parses. The HTML report, with each case's transcript, is ``graft.evals.html``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from graft.evals.runner import CaseResult, SuiteRun
from graft.evals.transcript import Transcript

__all__ = ["json_report", "junit_xml", "result_line", "table", "transcript_text", "xml_safe"]

_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WIDTH = 100


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def result_line(result: CaseResult, index: int, total: int) -> str:
    """The progress line of a finished case: ``[2/5] adds-numbers  PASS  812 ms``."""
    status = result.status.upper()
    took = f"{result.transcript.latency_ms:.0f} ms"
    return f"[{index}/{total}] {result.case.id}  {status}  {took}"


def table(run: SuiteRun) -> str:
    """The run as a plain-text table: each case, its status, time, and why it failed."""
    width = max([len("case"), *(len(r.case.id) for r in run.results)])
    lines = [
        f"suite {run.suite.name} · assistant {run.assistant} · model {run.model}",
        f"{'case':<{width}}  {'result':<6}  {'ms':>7}  details",
        f"{'-' * width}  {'-' * 6}  {'-' * 7}  {'-' * 7}",
    ]
    for result in run.results:
        if result.error is not None:
            details = [f"error: {result.error}"]
        else:
            details = [f"{c.label}: {c.message}" for c in result.checks if not c.passed]
        first = _one_line(details[0], _WIDTH) if details else ""
        lines.append(
            f"{result.case.id:<{width}}  {result.status.upper():<6}  "
            f"{result.transcript.latency_ms:>7.0f}  {first}"
        )
        pad = " " * (width + 19)
        lines += [f"{pad}{_one_line(more, _WIDTH)}" for more in details[1:]]
    lines.append(
        f"{run.passed}/{len(run.results)} passed ({run.pass_rate:.1%}) in {run.duration_s:.1f} s"
    )
    return "\n".join(lines)


def transcript_text(transcript: Transcript) -> str:
    """The transcript as plain text, one step a paragraph."""
    return "\n".join(f"[{step.role}] {step.text}" for step in transcript.steps)


def _testsuite(run: SuiteRun, name: str) -> ET.Element:
    failures = sum(1 for r in run.results if r.status == "fail")
    errors = sum(1 for r in run.results if r.status == "error")
    suite = ET.Element(
        "testsuite",
        name=xml_safe(name),
        tests=str(len(run.results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{run.duration_s:.3f}",
        timestamp=run.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (("assistant", run.assistant), ("model", run.model)):
        ET.SubElement(properties, "property", name=key, value=xml_safe(value))
    for result in run.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=xml_safe(name),
            name=xml_safe(result.case.id),
            time=f"{result.transcript.latency_ms / 1000:.3f}",
        )
        if result.error is not None:
            error = ET.SubElement(case, "error", message=xml_safe(result.error), type="turn_error")
            error.text = xml_safe(result.error)
        else:
            failed = [c for c in result.checks if not c.passed]
            if failed:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=xml_safe(_one_line(f"{failed[0].label}: {failed[0].message}", 300)),
                    type="check_failed",
                )
                failure.text = xml_safe("\n".join(f"{c.label}: {c.message}" for c in failed))
        ET.SubElement(case, "system-out").text = xml_safe(transcript_text(result.transcript))
    return suite


def junit_xml(runs: Sequence[SuiteRun]) -> bytes:
    """JUnit XML for one or more runs (``compare`` writes both), UTF-8 with a declaration."""
    root = ET.Element("testsuites", name=xml_safe(runs[0].suite.name if runs else "graft-eval"))
    for run in runs:
        name = f"{run.suite.name}[{run.model}]" if len(runs) > 1 else run.suite.name
        root.append(_testsuite(run, name))
    root.set("tests", str(sum(len(run.results) for run in runs)))
    root.set("failures", str(sum(1 for run in runs for r in run.results if r.status == "fail")))
    root.set("errors", str(sum(1 for run in runs for r in run.results if r.status == "error")))
    ET.indent(root)
    written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return written


def json_report(data: dict[str, Any]) -> str:
    """A run's or a comparison's ``to_json()`` as indented JSON text."""
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
