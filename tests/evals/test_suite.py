"""The suite file format (graft.evals.suite): what loads, and the errors for what does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graft.errors import ConfigError
from graft.evals.suite import (
    CHECK_KINDS,
    Contains,
    Judge,
    Matches,
    SentimentIs,
    ToolCalled,
    load_suite,
    parse_suite,
)

ROOT = Path(__file__).resolve().parents[2]

EVERY_CHECK = """
name: every-check
judge: openai:gpt-4o-mini
threshold: 0.1
cases:
  - id: all
    tags: [a]
    input: "hi"
    expect:
      - tool_called: calculator
      - tool_called: {name: calculator, arguments: {expression: {regex: "1234"}}}
      - not_tool_called: web_search
      - contains: "7006652"
      - contains: {text: "Paris", case_sensitive: true}
      - not_contains: "sorry"
      - matches: "\\\\b7,?006,?652\\\\b"
      - json_schema: {type: object, required: [city]}
      - cites: handbook.md
      - sql_result: {contains: "42"}
      - sentiment: positive
      - latency_ms: 5000
      - judge: "The answer is polite."
"""


def error_of(text: str, *, name: str = "s.yaml") -> str:
    with pytest.raises(ConfigError) as raised:
        parse_suite(text, name=name)
    return raised.value.message


def test_every_kind_of_check_loads() -> None:
    suite = parse_suite(EVERY_CHECK)
    kinds = [next(iter(type(c).model_fields)) for c in suite.cases[0].expect]
    assert sorted(set(kinds)) == sorted(CHECK_KINDS)
    assert suite.threshold == 0.1 and suite.judge == "openai:gpt-4o-mini"
    first, second = suite.cases[0].expect[:2]
    assert isinstance(first, ToolCalled) and first.tool_called.arguments is None
    assert isinstance(second, ToolCalled)
    assert second.tool_called.arguments == {"expression": {"regex": "1234"}}
    contains = suite.cases[0].expect[4]
    assert isinstance(contains, Contains) and contains.contains.case_sensitive
    matches = suite.cases[0].expect[6]
    assert isinstance(matches, Matches) and matches.matches.pattern == r"\b7,?006,?652\b"
    assert isinstance(suite.cases[0].expect[10], SentimentIs)
    judge = suite.cases[0].expect[12]
    assert isinstance(judge, Judge) and judge.judge.criteria == "The answer is polite."
    assert suite.needs_judge()


def test_the_shipped_example_suite_loads() -> None:
    suite = load_suite(ROOT / "examples" / "evals" / "smoke.yaml")
    assert suite.name == "smoke"
    assert [c.id for c in suite.cases] == ["multiplies", "adds", "tells-the-time"]


def test_json_suites_load(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {"name": "j", "cases": [{"id": "c", "input": "x", "expect": [{"contains": "y"}]}]}
        )
    )
    assert load_suite(path).cases[0].id == "c"


def test_a_from_feedback_case_loads() -> None:
    """The shape graft eval from-feedback writes: messages with OpenAI tool calls, a source."""
    text = """
name: from-feedback
assistant: "default"
cases:
  - id: "turn_01a2"
    description: "Rated down on 2026-01-02: wrong total"
    tags: ["from-feedback", "default"]
    messages:
      - {"role": "user", "content": "What is 2+2?"}
      - {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
          "function": {"name": "calculator", "arguments": "{\\"expression\\": \\"2+2\\"}"}}]}
      - {"role": "tool", "content": "4", "tool_call_id": "call_1"}
      - {"role": "assistant", "content": "5"}
      - {"role": "user", "content": "Are you sure?"}
    expect:
      - judge: "The answer is correct."
    reference: "4"
    source:
      conversation_id: "conv_1"
      turn_id: "turn_01a2"
      rating: "down"
      comment: null
      answer: "It is 5."
"""
    case = parse_suite(text).cases[0]
    messages = case.conversation()
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[1].content is None
    assert messages[1].tool_calls[0].name == "calculator"
    assert json.loads(messages[1].tool_calls[0].arguments) == {"expression": "2+2"}
    assert messages[2].tool_call_id == "call_1"
    assert case.prompt() == "Are you sure?"
    assert case.source is not None and case.source.answer == "It is 5."


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"suite file '.*nope\.yaml' does not exist"):
        load_suite(tmp_path / "nope.yaml")


def test_bad_yaml_says_where() -> None:
    message = error_of("name: x\ncases: [\n  - id: a\n")
    assert message.startswith("suite s.yaml is not valid YAML")
    assert "line" in message


def test_a_key_written_twice_is_refused() -> None:
    message = error_of("name: x\nname: y\ncases: []\n")
    assert "duplicate key 'name'" in message


def test_an_unknown_check_names_the_case_and_the_known_kinds() -> None:
    message = error_of(
        "name: x\ncases:\n  - id: first\n    input: hi\n    expect:\n      - containz: a\n"
    )
    assert "case 'first': expect[0]: unknown check 'containz'" in message
    assert "tool_called" in message and "judge" in message


def test_duplicate_case_ids_are_refused() -> None:
    case = "  - id: same\n    input: hi\n    expect: [{contains: a}]\n"
    message = error_of("name: x\ncases:\n" + case + case)
    assert "duplicate case id 'same'" in message


def test_errors_name_the_case_and_the_field() -> None:
    text = "name: x\ncases:\n  - id: c1\n    input: hi\n    expect:\n      - contains: {text: 3}\n"
    message = error_of(text)
    assert message.startswith("suite s.yaml: case 'c1': expect[0].contains.text:"), message


def test_a_misspelt_key_is_refused() -> None:
    message = error_of("name: x\ncases:\n  - id: c\n    inputs: hi\n    expect: [{contains: a}]\n")
    assert "case 'c': inputs: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("case", "wanted"),
    [
        ("input: hi\n    expect: [{matches: '('}]", "is not a valid regular expression"),
        (
            "input: hi\n    expect: [{tool_called: {name: t, arguments: {a: {regex: '['}}}}]",
            "is not a valid regular expression",
        ),
        ("input: hi\n    expect: [{json_schema: {type: 12}}]", "not a valid JSON schema"),
        ("input: hi\n    expect: []", "at least 1 item"),
        ("input: hi\n    expect: [{contains: a, matches: b}]", "must be a mapping with one key"),
        ("input: hi\n    expect: [{sql_result: {tool: x}}]", "needs `contains` or `matches`"),
        ("input: hi\n    expect: [{sentiment: happy}]", "sentiment.label"),
        ("input: hi\n    expect: [{latency_ms: 0}]", "greater than 0"),
        ("input: hi\n    expect: [{judge: {criteria: ok, model: nocolon}}]", "provider:name"),
        (
            "input: hi\n    messages: [{role: user, content: hi}]\n    expect: [{contains: a}]",
            "either `input`",
        ),
        (
            "messages: [{role: user, content: a}, {role: assistant, content: b}]\n"
            "    expect: [{contains: a}]",
            "must end with the user's message",
        ),
        ("input: '  '\n    expect: [{contains: a}]", "`input` is empty"),
    ],
)
def test_malformed_cases_are_refused(case: str, wanted: str) -> None:
    message = error_of(f"name: x\ncases:\n  - id: c\n    {case}\n")
    assert "case 'c'" in message
    assert wanted in message


def test_suite_level_fields_are_checked() -> None:
    assert "name:" in error_of(
        "name: Not Valid\ncases: [{id: c, input: hi, expect: [{contains: a}]}]"
    )
    assert "threshold" in error_of(
        "name: x\nthreshold: 2\ncases: [{id: c, input: hi, expect: [{contains: a}]}]"
    )
    assert "at least 1 item" in error_of("name: x\ncases: []")
    assert "top level must be a mapping" in error_of("- a\n- b\n")
    assert "provider:name" in error_of(
        "name: x\nmodel: gpt\ncases: [{id: c, input: hi, expect: [{contains: a}]}]"
    )
