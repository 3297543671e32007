"""The reports (graft.evals.report, graft.evals.html) of a run with a pass, a fail and an error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from graft.errors import ModelError
from graft.evals.compare import compare_runs
from graft.evals.html import html_report
from graft.evals.report import junit_xml, table, xml_safe
from graft.evals.runner import SuiteRun, run_suite
from graft.evals.suite import parse_suite
from graft.testing import FakeModel

SUITE = """
name: mixed
description: "<i>three</i> cases"
cases:
  - {id: passes, input: "one", expect: [{contains: fine}]}
  - {id: fails, input: "two <b>", expect: [{contains: Paris}, {not_contains: fine}]}
  - {id: errors, input: "three", expect: [{contains: fine}]}
"""


@pytest.fixture
async def run(started: Callable[..., Any]) -> SuiteRun:
    model = FakeModel("fine", "fine </details><script>x</script>", ModelError("boom"), id="t:m")
    graft = await started(model)
    return await run_suite(graft, parse_suite(SUITE))


def test_the_table(run: SuiteRun) -> None:
    lines = table(run).splitlines()
    assert lines[0] == "suite mixed · assistant default · model t:m"
    assert lines[3].startswith("passes  PASS")
    assert lines[4].startswith("fails   FAIL") and "contains 'Paris': expected" in lines[4]
    assert lines[5].strip().startswith("not_contains 'fine': expected the answer not to")
    assert lines[6].startswith("errors  ERROR") and "error: " in lines[6] and "boom" in lines[6]
    assert lines[-1].startswith("1/3 passed (33.3%) in ")


def test_junit_marks_failures_and_errors(run: SuiteRun) -> None:
    root = ET.fromstring(junit_xml([run]))
    assert root.get("tests") == "3" and root.get("failures") == "1" and root.get("errors") == "1"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["passes"].find("failure") is None and cases["passes"].find("error") is None
    failure = cases["fails"].find("failure")
    assert failure is not None and (failure.text or "").count("\n") == 1  # both failed checks
    error = cases["errors"].find("error")
    assert error is not None and "boom" in (error.get("message") or "")


def test_the_html_escapes_and_opens_what_failed(run: SuiteRun) -> None:
    page = html_report([run])
    assert "<script>" not in page and "</details><script>" not in page
    assert "fine &lt;/details&gt;&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;i&gt;three&lt;/i&gt; cases" in page and "two &lt;b&gt;" in page
    assert page.count("<details") == 3 and page.count("<details id") - page.count(" open>") == 1
    assert "the turn failed:" in page


def test_the_html_of_a_comparison(run: SuiteRun) -> None:
    page = html_report([run, run], compare_runs(run, run, 0.0))
    assert "Comparison:" in page and "no regression" in page and "no case moved" in page


def test_xml_safe() -> None:
    assert xml_safe("a\x00b\x1bc\td\ud800e") == "a\ufffdb\ufffdc\td\ufffde"
