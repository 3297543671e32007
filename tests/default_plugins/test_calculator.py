from __future__ import annotations

import pytest

from graft.default_plugins.calculator import calculator, evaluate
from graft.default_plugins.clock import current_time
from graft.errors import ToolError


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1234*5678", 7006652),
        ("(2 + 3) * 4", 20),
        ("2^10", 1024),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-3 + +4", 1),
        ("sqrt(16) + abs(-2)", 6),
        ("round(pi, 2)", 3.14),
        ("10 % 4", 2),
        ("3 × 4 ÷ 2", 6),
    ],
)
def test_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "exponents"),
        ("10**99 * 10**99", "too large"),
        ("1/0", "division by zero"),
        ("__import__('os').system('true')", "unsupported"),
        ("(1).__class__", "unsupported"),
        ("x + 1", "unsupported"),
        ("2 +", "not an arithmetic expression"),
        ("", "empty"),
        ("sqrt(-1)", "sqrt"),
        ("[1, 2]", "unsupported"),
    ],
)
def test_hostile_or_broken_expressions_are_refused(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


def test_calculator_tool_schema_bounds_the_expression() -> None:
    schema = calculator.definition.parameters["properties"]["expression"]
    assert schema["maxLength"] == 200
    assert "pattern" in schema


def test_current_time_uses_the_timezone() -> None:
    shanghai = current_time("Asia/Shanghai")
    assert shanghai["iso"].endswith("+08:00")
    with pytest.raises(ToolError, match="unknown timezone"):
        current_time("Mars/Olympus")
