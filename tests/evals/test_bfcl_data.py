"""BFCL's cases as shipped in ``bfcl-eval``: loading, sampling, and the tool conversion."""

from __future__ import annotations

import pytest

from graft.errors import InvalidRequest
from graft.evals.bfcl_data import (
    AST_CATEGORIES,
    CATEGORIES,
    category_name,
    load_cases,
    sample,
    tool_defs,
)


def test_every_category_loads_with_answers_where_scored() -> None:
    for category in CATEGORIES:
        cases = load_cases(category)
        assert len(cases) >= 16, category
        for case in cases:
            assert case.category == category
            assert case.messages[-1]["role"] == "user" or category == "live_irrelevance"
            assert (case.ground_truth is not None) == (category in AST_CATEGORIES)


def test_a_real_row() -> None:
    first = load_cases("simple")[0]
    assert first.id == "simple_python_0"
    assert first.graft_messages()[0].content == (
        "Find the area of a triangle with a base of 10 units and height of 5 units."
    )
    assert first.ground_truth == (
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}},
    )


def test_types_are_mapped_as_bfcls_openai_handler_does() -> None:
    case = next(c for c in load_cases("simple") if c.id == "simple_python_1")
    (tool,) = case.tools()
    assert tool.name == "math_factorial"  # "math.factorial": OpenAI names allow no dot
    assert tool.description.endswith("Note that the provided function is in Python 3 syntax.")
    assert tool.parameters["type"] == "object"  # BFCL writes "dict"
    assert tool.parameters["properties"]["number"]["type"] == "integer"


def test_float_tuple_dict_and_nested_types() -> None:
    (tool,) = tool_defs(
        [
            {
                "name": "f",
                "description": "d.",
                "parameters": {
                    "type": "dict",
                    "properties": {
                        "x": {"type": "float", "description": "x."},
                        "pair": {"type": "tuple", "items": {"type": "float"}, "description": "p"},
                        "rows": {
                            "type": "array",
                            "description": "r",
                            "items": {
                                "type": "dict",
                                "properties": {"n": {"type": "any", "description": "n"}},
                            },
                        },
                        "options": {"type": "dict", "description": "o"},
                        "untyped": {"description": "u"},
                    },
                    "required": ["x"],
                },
            }
        ]
    )
    props = tool.parameters["properties"]
    assert props["x"] == {
        "type": "number",
        "format": "float",
        "description": "x. This is a float type value.",
    }
    assert props["pair"]["type"] == "array" and props["pair"]["items"]["type"] == "number"
    assert props["rows"]["items"]["type"] == "object"
    assert props["rows"]["items"]["properties"]["n"]["type"] == "string"
    assert props["options"]["type"] == "object"
    assert props["untyped"]["type"] == "string"
    assert tool.parameters["required"] == ["x"]


def test_every_function_of_every_category_converts_to_json_schema_types() -> None:
    allowed = {"string", "integer", "number", "boolean", "array", "object"}
    for category in CATEGORIES:
        for case in load_cases(category):
            for tool in case.tools():
                for prop in tool.parameters["properties"].values():
                    assert prop["type"] in allowed, (case.id, prop)


def test_the_sample_is_spread_and_repeats() -> None:
    cases = load_cases("parallel")
    picked = sample(cases, 4)
    assert [c.id for c in picked] == [c.id for c in sample(cases, 4)]
    assert [c.id for c in picked] == ["parallel_0", "parallel_50", "parallel_100", "parallel_150"]
    assert len(sample(cases, None)) == len(cases) == len(sample(cases, 10_000))
    with pytest.raises(InvalidRequest, match="at least 1"):
        sample(cases, 0)


def test_unknown_category_is_a_clear_error() -> None:
    assert category_name("simple") == "simple_python"
    with pytest.raises(InvalidRequest, match="unknown BFCL category 'multi_turn_base'"):
        load_cases("multi_turn_base")
