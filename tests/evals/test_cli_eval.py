"""``graft eval`` end to end: the command line, a real Graft on a real SQLite store, models and
a judge served by a real OpenAI-compatible HTTP server on 127.0.0.1, and the reports read back.

The server (a Starlette app under uvicorn, in a thread) answers by model name: ``good``
knows the capital of France, ``bad`` does not, ``hostile`` answers with markup and control
characters, and ``judge`` grades by the rule the criteria quote ("mentions 'X'") through
the forced ``verdict`` tool call, both streamed and not.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.conftest import LiveServer

from graft.cli import cli

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)> \x00\x1b bye'

SUITE = """
name: capitals
cases:
  - id: capital
    description: "Knows <b>France</b>"
    input: "What is the capital of France?"
    expect:
      - contains: Paris
  - id: graded
    input: "Name the capital of France."
    expect:
      - judge: "The answer mentions 'Paris'."
    reference: Paris
"""


def _answer(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message the named model answers with."""
    if model == "judge":
        prompt = messages[-1]["content"]
        wanted = re.search(r"Criteria: [^\n]*'([^']+)'", prompt)
        answer = re.search(r"<answer-(\w+)>\n(.*)\n</answer-\1>", prompt, re.DOTALL)
        passed = bool(wanted and answer and wanted[1] in answer[2])
        arguments = {"passed": passed, "reason": "it does" if passed else "it does not"}
        call = {"name": "verdict", "arguments": json.dumps(arguments)}
        return {"tool_calls": [{"index": 0, "id": "call_v", "type": "function", "function": call}]}
    text = {
        "good": "The capital of France is Paris.",
        "bad": "I do not know.",
        "hostile": HOSTILE,
    }[model]
    return {"content": text}


async def completions(request: Request) -> Response:
    body = await request.json()
    request.app.state.received.append(body)
    message = _answer(body["model"], body["messages"])
    finish = "tool_calls" if "tool_calls" in message else "stop"
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", **message},
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }
        )

    async def events() -> AsyncIterator[bytes]:
        for delta, reason in ((message, None), ({}, finish)):
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def server(home: Path, tmp_path: Path) -> Iterator[Starlette]:
    """The fake upstream, running, and a graft.toml in the working folder that points at it."""
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    app.state.received = []
    with LiveServer(app) as live:
        (tmp_path / "graft.toml").write_text(
            f'[providers.fake]\nbase_url = "{live.url}/v1"\nmax_retries = 0\n\n'
            '[evals]\njudge = "fake:judge"\n',
            encoding="utf-8",
        )
        yield app


def graft(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "capitals.yaml"
    path.write_text(SUITE, encoding="utf-8")
    return path


def test_a_passing_run_writes_every_report(server: Starlette, suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = graft(
        "eval", str(suite), "--model", "fake:good",
        "--junit", str(out / "junit.xml"), "--html", str(out / "report.html"),
        "--json", str(out / "run.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2/2 passed (100.0%)" in result.stdout
    assert "[1/2] capital  PASS" in result.stderr and "[2/2] graded  PASS" in result.stderr

    junit = ET.parse(out / "junit.xml").getroot()
    [testsuite] = junit.findall("testsuite")
    assert testsuite.get("tests") == "2" and testsuite.get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in testsuite.iter("property")}
    assert props == {"assistant": "default", "model": "fake:good"}
    cases = {c.get("name"): c for c in testsuite.findall("testcase")}
    assert set(cases) == {"capital", "graded"}
    out_text = cases["capital"].findtext("system-out") or ""
    assert "[user] What is the capital of France?" in out_text
    assert "[assistant] The capital of France is Paris." in out_text

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "The capital of France is Paris." in page and "What is the capital of France?" in page
    assert "Knows &lt;b&gt;France&lt;/b&gt;" in page and "<b>France" not in page

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["pass_rate"] == 1.0 and run["model"] == "fake:good"
    graded = run["results"][1]["checks"][0]
    assert graded["message"] == "judge fake:judge says pass: it does"

    judged = [b for b in server.state.received if b["model"] == "judge"]
    assert len(judged) == 1
    assert judged[0]["tool_choice"] == {"type": "function", "function": {"name": "verdict"}}
    assert judged[0]["tools"][0]["function"]["name"] == "verdict"


def test_failed_cases_exit_1_unless_the_rate_is_high_enough(
    server: Starlette, suite: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    result = graft("eval", "run", str(suite), "--model", "fake:bad", "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "0/2 passed (0.0%)" in result.stdout
    assert (
        "expected the answer to contain 'Paris'; the answer was 'I do not know.'" in result.stdout
    )
    failures = {
        c.get("name"): c.find("failure") for c in ET.parse(junit).getroot().iter("testcase")
    }
    assert failures["capital"] is not None
    assert failures["capital"].get("message", "").startswith("contains 'Paris': expected")
    assert failures["graded"] is not None
    assert "judge fake:judge says fail: it does not" in (failures["graded"].text or "")

    assert graft("eval", str(suite), "--model", "fake:bad", "--fail-under", "0").exit_code == 0
    assert graft("eval", str(suite), "--model", "fake:bad", "--fail-under", "0.5").exit_code == 1
    only = graft("eval", str(suite), "--model", "fake:good", "--case", "capital", "-q")
    assert only.exit_code == 0 and "1/1 passed" in only.stdout and only.stderr == ""


def test_hostile_answers_are_escaped_and_junit_still_parses(
    server: Starlette, suite: Path, tmp_path: Path
) -> None:
    html, junit = tmp_path / "r.html", tmp_path / "j.xml"
    result = graft(
        "eval", str(suite), "--model", "fake:hostile", "--html", str(html), "--junit", str(junit)
    )
    assert result.exit_code == 1, result.output
    page = html.read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert "script-src" not in page and "default-src &#x27;none&#x27;" in page
    root = ET.parse(junit).getroot()  # NUL and ESC would make invalid XML
    out_text = "".join(c.findtext("system-out") or "" for c in root.iter("testcase"))
    assert '<script>alert("x")</script>' in out_text and "\ufffd\ufffd bye" in out_text


def test_compare_fails_on_a_regression_and_passes_without(
    server: Starlette, suite: Path, tmp_path: Path
) -> None:
    worse = graft(
        "eval", "compare", str(suite), "--baseline", "fake:good", "--candidate", "fake:bad",
        "--junit", str(tmp_path / "j.xml"), "--html", str(tmp_path / "r.html"),
    )  # fmt: skip
    assert worse.exit_code == 1, worse.output
    assert "baseline  fake:good: 2/2 passed (100.0%)" in worse.stdout
    assert "candidate fake:bad: 0/2 passed (0.0%)" in worse.stdout
    assert "broken: capital" in worse.stdout and "broken: graded" in worse.stdout
    assert "REGRESSION: the pass rate dropped 100.0%, more than the threshold of 5.0%" in (
        worse.stdout
    )
    suites = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["capitals[fake:good]", "capitals[fake:bad]"]
    assert "Comparison:" in (tmp_path / "r.html").read_text(encoding="utf-8")

    better = graft(
        "eval", "compare", str(suite), "--baseline", "fake:bad", "--candidate", "fake:good"
    )
    assert better.exit_code == 0, better.output
    assert "fixed:  capital" in better.stdout and "ok: change +100.0%" in better.stdout
    same = graft(
        "eval", "compare", str(suite), "--baseline", "fake:good", "--candidate", "fake:good"
    )
    assert same.exit_code == 0 and "ok: change +0.0%" in same.stdout
    allowed = graft(
        "eval", "compare", str(suite), "--baseline", "fake:good", "--candidate", "fake:bad",
        "--threshold", "1",
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.output


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("name: x\ncases: [\n", "suite {path} is not valid YAML"),
        (
            "name: x\ncases:\n  - {id: a, input: hi, expect: [{nope: 1}]}\n",
            "suite {path}: case 'a': expect[0]: unknown check 'nope' (known: tool_called,",
        ),
        (
            "name: x\ncases:\n  - {id: a, input: hi, expect: [{contains: a}]}\n"
            "  - {id: a, input: hi, expect: [{contains: a}]}\n",
            "duplicate case id 'a'",
        ),
    ],
)
def test_a_malformed_suite_exits_2_with_a_clear_error(
    server: Starlette, tmp_path: Path, text: str, wanted: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = graft("eval", str(path))
    assert result.exit_code == 2, result.output
    assert wanted.format(path=path) in result.stderr
    assert server.state.received == [], "nothing ran"


def test_a_missing_suite_or_judge_exits_2_before_any_case(
    server: Starlette, suite: Path, tmp_path: Path
) -> None:
    missing = graft("eval", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert f"Error: suite file '{tmp_path / 'nope.yaml'}' does not exist" in missing.stderr
    toml = tmp_path / "graft.toml"
    toml.write_text(toml.read_text().split("[evals]")[0], encoding="utf-8")  # no judge now
    result = graft("eval", str(suite), "--model", "fake:good")
    assert result.exit_code == 2
    assert "has judge checks but no judge model" in result.stderr
    unknown = graft("eval", str(suite), "--model", "nowhere:x")
    assert unknown.exit_code == 2 and "no model provider 'nowhere'" in unknown.stderr
    assert server.state.received == []


def test_the_eval_group_lists_its_commands() -> None:
    result = graft("eval", "--help")
    assert result.exit_code == 0
    assert "compare" in result.stdout and "run" in result.stdout
    assert "graft eval SUITE.yaml" in result.stdout
    assert graft("eval").exit_code in (0, 2)  # no suite: the group's usage, nothing run


@pytest.mark.slow
def test_the_real_local_model_passes_a_tiny_suite(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\ncases:\n"
        "  - id: multiplies\n"
        "    input: What is 1234 * 5678? Use the calculator.\n"
        "    expect: [{tool_called: calculator}, {not_tool_called: current_time}]\n",
        encoding="utf-8",
    )
    junit = tmp_path / "j.xml"
    result = graft("eval", str(path), "--junit", str(junit))
    assert result.exit_code == 0, result.output
    [case] = ET.parse(junit).getroot().iter("testcase")
    assert "[assistant] calculator(" in (case.findtext("system-out") or "")
    assert "model local:smollm2" in result.stdout
