"""BFCL cases run through graft's chat turn on the real local model, and ``graft eval bfcl``.

Nothing is faked: SmolLM2-135M decides with llama.cpp (greedy, so the outcome repeats), the
turn runs on the in-memory store, and BFCL's rules score the calls. A few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graft.cli import cli
from graft.evals.bfcl import ASSISTANT, run_bfcl, run_case
from graft.evals.bfcl_data import load_cases
from graft.runtime import Graft

pytestmark = pytest.mark.slow

BFCL_ASSISTANT = {ASSISTANT: {"model": "local:smollm2", "tools": []}}


def case(case_id: str) -> Any:
    category = case_id.rsplit("_", 1)[0]
    return next(c for c in load_cases(category) if c.id == case_id)


async def test_a_simple_case_is_called_right_and_scored(started: Callable[..., Any]) -> None:
    graft: Graft = await started(assistants=BFCL_ASSISTANT)
    result = await run_case(graft, case("simple_python_0"), graft.principal_for())
    assert result.calls and result.calls[0]["name"] == "calculate_triangle_area"
    assert json.loads(result.calls[0]["arguments"]) == {"base": 10, "height": 5}
    assert result.valid and result.error_type == ""
    assert 0 < result.latency_s < 60


async def test_a_parallel_case_gets_one_call_per_request(started: Callable[..., Any]) -> None:
    # "Play songs from Taylor Swift and Maroon 5, 20 and 15 minutes respectively": two calls
    # in one decision (graft.models.local_grammar allows up to four).
    graft: Graft = await started(assistants=BFCL_ASSISTANT)
    result = await run_case(graft, case("parallel_0"), graft.principal_for())
    assert [json.loads(c["arguments"]) for c in result.calls] == [
        {"artist": "Taylor Swift", "duration": 20},
        {"artist": "Maroon 5", "duration": 15},
    ]
    assert result.valid


async def test_an_irrelevant_question_gets_no_call(started: Callable[..., Any]) -> None:
    graft: Graft = await started(assistants=BFCL_ASSISTANT)
    result = await run_case(graft, case("irrelevance_0"), graft.principal_for())
    assert result.valid and result.calls == [] and result.answer


async def test_a_report_scores_each_category(started: Callable[..., Any]) -> None:
    graft: Graft = await started(assistants=BFCL_ASSISTANT)
    seen: list[str] = []
    report = await run_bfcl(
        graft, ["simple", "irrelevance"], 1, on_result=lambda r: seen.append(r.id)
    )
    assert seen == ["simple_python_0", "irrelevance_0"]
    scores = {s.category: s for s in report.scores()}
    assert scores["simple_python"].cases == 1 and scores["simple_python"].accuracy == 1.0
    assert report.to_json()["scores"][1]["category"] == "irrelevance"


def test_the_command_prints_json(home: Path) -> None:
    result = CliRunner().invoke(
        cli, ["eval", "bfcl", "--category", "simple", "--limit", "1", "--json", "-", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"] == "local:smollm2"
    assert report["scores"] == [
        {
            "category": "simple_python",
            "cases": 1,
            "passed": 1,
            "mean_latency_s": pytest.approx(report["cases"][0]["latency_s"]),
            "accuracy": 1.0,
        }
    ]


def test_the_command_refuses_an_unknown_category(home: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "bfcl", "--category", "simple,nope"])
    assert result.exit_code == 2  # a usage error, as in graft eval
    assert "unknown BFCL category 'nope'" in result.output
