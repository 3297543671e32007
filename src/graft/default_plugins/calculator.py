"""The ``calculator`` tool: arithmetic parsed safely, never evaluated as Python.

The expression is parsed with ``ast`` and only numeric literals, the four operations, ``%``,
``//``, ``**`` (``^`` is accepted as power), unary signs and a few math functions are
allowed. Exponents and intermediate results are bounded so that a hostile expression such as
``9**9**9`` is refused instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated

from pydantic import Field

from graft.errors import ToolError
from graft.tools.function import tool

__all__ = ["calculator", "evaluate"]

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 10**100


def _check(value: float) -> float:
    if isinstance(value, complex):
        raise ToolError("the result is not a real number")
    if abs(value) > _MAX_MAGNITUDE:
        raise ToolError("the result is too large")
    return value


def _eval(node: ast.AST) -> float:  # noqa: C901 - one branch per allowed node kind
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ToolError("booleans are not numbers here")
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ToolError(f"exponents above {_MAX_EXPONENT} are not allowed")
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and 1 <= len(node.args) <= 2
    ):
        args = [_eval(a) for a in node.args]
        try:
            return _check(_FUNCTIONS[node.func.id](*args))
        except (ValueError, OverflowError, TypeError) as exc:
            raise ToolError(f"{node.func.id}: {exc}") from None
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:60]}")


def evaluate(expression: str) -> float | int:
    """Evaluate an arithmetic expression such as ``(2 + 3) * sqrt(16) ^ 2``."""
    source = expression.replace("^", "**").replace("×", "*").replace("÷", "/").strip()
    if not source:
        raise ToolError("the expression is empty")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from None
    result = _eval(tree)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result


@tool(read_only=True)
def calculator(
    expression: Annotated[
        str, Field(min_length=1, max_length=200, pattern=r"^[0-9a-z+\-*/%^()., ]+$")
    ],
) -> dict[str, float | int | str]:
    """Evaluate an arithmetic expression exactly, e.g. '1234*5678' or 'sqrt(2)/3'.

    Args:
        expression: Arithmetic using + - * / // % ^ ( ) and sqrt, log, sin, cos, pi, e.
    """
    return {"expression": expression, "result": evaluate(expression)}
