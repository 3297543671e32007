"""BFCL's AST rules (graft.evals.bfcl_checker) on BFCL's own possible answers.

Right answers are built from each case's ground truth (the first allowed value of every
parameter that is not optional); wrong ones change that answer in one way each. A handful
of BFCL rows cannot be passed by any answer, BFCL's checker included: their ground truth
leaves out a parameter the function doc marks required (or names one it does not have).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from graft.evals.bfcl_checker import score_calls, standardize
from graft.evals.bfcl_data import AST_CATEGORIES, BfclCase, load_cases, openai_name
from graft.messages import ToolCall

# Ground truth that contradicts the function doc (so BFCL rejects every answer too).
UNPASSABLE = {
    "simple_python_200",  # omits the required fuel_efficiency
    "parallel_multiple_26",  # passes 'type', which the function does not have
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_144-56-0",
    "live_multiple_507-149-4",
    "live_multiple_834-178-9",
    "live_multiple_862-181-3",  # passes 'journey_start_time', which the function does not have
    "live_multiple_964-207-0",
}


def first(value: Any) -> Any:
    """The first allowed value, with dicts (and lists of dicts) filled in the same way."""
    if isinstance(value, dict):
        return {
            k: first(v[0] if isinstance(v, list) else v)
            for k, v in value.items()
            if not (isinstance(v, list) and (not v or v[0] == ""))
        }
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        return [first(i) for i in value]
    return value


def right_arguments(case: BfclCase) -> list[tuple[str, dict[str, Any]]]:
    assert case.ground_truth is not None
    out = []
    for answer in case.ground_truth:
        name, params = next(iter(answer.items()))
        arguments = {k: first(v[0]) for k, v in params.items() if v and v[0] != ""}
        out.append((openai_name(name), arguments))
    return out


def calls(pairs: list[tuple[str, dict[str, Any]]]) -> list[ToolCall]:
    return [ToolCall(f"call_{i}", name, json.dumps(args)) for i, (name, args) in enumerate(pairs)]


def score(case: BfclCase, pairs: list[tuple[str, dict[str, Any]]]) -> bool:
    return score_calls(case.category, case.functions, calls(pairs), case.ground_truth).valid


@pytest.mark.parametrize("category", AST_CATEGORIES)
def test_right_answers_pass_and_wrong_ones_fail(category: str) -> None:
    cases = load_cases(category)
    unpassable = [c.id for c in cases if not score(c, right_arguments(c))]
    assert set(unpassable) <= UNPASSABLE
    for case in cases:
        if case.id in UNPASSABLE:
            continue
        right = right_arguments(case)
        name, arguments = right[0]
        assert not score(case, [(name + "_x", arguments), *right[1:]]), case.id
        assert not score(case, [*right, right[0]]), case.id  # one call too many
        assert not score(case, [(name, {**arguments, "not_a_parameter": 1}), *right[1:]])
        assert not score(case, []), case.id  # a text answer
        if arguments:
            key = next(iter(arguments))
            changed = {**arguments, key: wrong_value(arguments[key])}
            assert not score(case, [(name, changed), *right[1:]]), (case.id, key)


def wrong_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1234567
    if isinstance(value, str):
        return value + " zzz"
    if isinstance(value, list):
        return [*value, "zzz"]
    return {"zzz": "zzz"}


def case_of(case_id: str) -> BfclCase:
    category = case_id.rsplit("_", 1)[0]
    return next(c for c in load_cases(category) if c.id == case_id)


def test_bfcl_leniencies() -> None:
    # simple_python_0: base and height integers, unit optional ("units" or left out).
    case = case_of("simple_python_0")
    assert score(case, [("calculate_triangle_area", {"base": 10, "height": 5})])
    assert score(case, [("calculate_triangle_area", {"base": 10, "height": 5, "unit": "Units"})])
    assert not score(case, [("calculate_triangle_area", {"base": 10.0, "height": 5})])  # a float
    assert not score(case, [("calculate_triangle_area", {"base": "10", "height": 5})])
    # Strings compare without case, spaces and ",./-_*^".
    assert standardize("New York, NY") == standardize("new york ny") == "newyorkny"


def test_an_int_is_accepted_for_a_float() -> None:
    doc = {
        "name": "geo.scale",
        "description": "d",
        "parameters": {
            "type": "dict",
            "properties": {"factor": {"type": "float", "description": "f"}},
            "required": ["factor"],
        },
    }
    truth = ({"geo.scale": {"factor": [2.0]}},)

    def ok(value: Any) -> bool:
        call = ToolCall("c", "geo_scale", json.dumps({"factor": value}))
        return score_calls("simple_python", [doc], [call], truth).valid

    assert ok(2) and ok(2.0)
    assert not ok("2") and not ok(2.5)


def test_parallel_calls_match_in_any_order() -> None:
    case = load_cases("parallel")[0]
    right = right_arguments(case)
    assert len(right) >= 2
    assert score(case, right) and score(case, list(reversed(right)))
    assert not score(case, right[:1])


def test_relevance_rules() -> None:
    call = [ToolCall("c", "anything", "{}"), ToolCall("d", "f", json.dumps({"x": 1}))]
    assert score_calls("irrelevance", [], [], None).valid
    assert not score_calls("irrelevance", [], call[1:], None).valid
    assert not score_calls("irrelevance", [], call[:1], None).valid  # no arguments: a call
    assert not score_calls("live_relevance", [], [], None).valid
    assert score_calls("live_relevance", [], call[1:], None).valid
    bad = [ToolCall("c", "f", "{not json")]
    assert score_calls("irrelevance", [], bad, None).valid
    case = load_cases("simple")[0]
    verdict = score_calls(case.category, case.functions, bad, case.ground_truth)
    assert not verdict.valid and verdict.error_type == "ast_decoder:decoder_failed"
