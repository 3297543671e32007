"""BFCL's scoring rules: AST matching of tool calls against possible answers, and relevance.

A faithful port of the Python-language path of BFCL's checker, from bfcl-eval 2026.3.23:
``bfcl_eval/eval_checker/ast_eval/ast_checker.py`` (``ast_checker`` and its helpers) and
``bfcl_eval/eval_checker/eval_runner.py`` (``_evaluate_single_ast_entry``,
``_evaluate_single_relevance_entry``) with ``bfcl_eval/utils.py``
(``is_function_calling_format_output``, ``is_empty_output``). BFCL's own module cannot be
imported without its dependencies: ``ast_checker.py`` imports ``MODEL_CONFIG_MAPPING``, which
imports every vendor handler (anthropic, cohere, google-genai, mistralai, qwen-agent, ...).
The rules, quirks included, are kept as BFCL has them, so a score here is BFCL's score;
``tests/evals/test_bfcl_checker.py`` checks them on BFCL's own possible answers.

Calls are scored as BFCL scores an OpenAI-style function-calling model: names with a ``.``
were offered with ``_`` (``underscore_to_dot``), and each call's arguments are parsed JSON.
Java and JavaScript categories (which convert string values by type first) are not ported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from graft.evals.bfcl_data import openai_name
from graft.messages import ToolCall

__all__ = ["Verdict", "ast_check", "decode_calls", "relevance_check", "score_calls"]

# ast_checker.py PYTHON_TYPE_MAPPING and PYTHON_NESTED_TYPE_CHECK_LIST
_PYTHON_TYPES: Final[dict[str, type]] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_NESTED: Final = ("array", "tuple")

Decoded = list[dict[str, dict[str, Any]]]
"""BFCL's decoded form of a model's calls: ``[{name: {param: value}}]``."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a case passed, and BFCL's error type and messages when it did not."""

    valid: bool
    error_type: str = ""
    errors: list[str] = field(default_factory=list)


_OK: Final = Verdict(True)


def decode_calls(calls: Sequence[ToolCall]) -> Decoded:
    """The calls as BFCL's OpenAI handler decodes them (``decode_ast``: JSON arguments).

    Raises:
        ValueError: A call's arguments are not JSON (BFCL: the decoder failed).
    """
    return [{call.name: json.loads(call.arguments)} for call in calls]


def score_calls(
    category: str,
    functions: Sequence[dict[str, Any]],
    calls: Sequence[ToolCall],
    ground_truth: Sequence[dict[str, Any]] | None,
) -> Verdict:
    """Score one case's calls by its category's rules (no calls: the model answered)."""
    if "relevance" in category:
        return relevance_check(category, calls)
    if ground_truth is None:
        raise ValueError(f"category {category!r} needs possible answers")
    if not calls:  # BFCL's decoder fails on a text answer
        return Verdict(False, "ast_decoder:decoder_failed", ["the model made no call"])
    try:
        decoded = decode_calls(calls)
    except ValueError as exc:
        return Verdict(False, "ast_decoder:decoder_failed", [f"Invalid syntax. {exc}"])
    if not _is_call_format(decoded):
        return Verdict(
            False, "ast_decoder:decoder_wrong_output_format", ["Did not output in the format."]
        )
    return ast_check(functions, decoded, list(ground_truth), category)


def relevance_check(category: str, calls: Sequence[ToolCall]) -> Verdict:
    """irrelevance: pass without a call; relevance: pass with one (``eval_runner.py``)."""
    try:
        decoded = decode_calls(calls)
        made_call = not _is_empty(decoded)
    except ValueError:
        made_call = False
    if "irrelevance" in category:
        if made_call:
            return Verdict(
                False,
                "irrelevance_error:decoder_success",
                ["Valid syntax. Successfully decode AST when it should not."],
            )
        return _OK
    if not made_call:
        return Verdict(
            False,
            "relevance_error:decoder_failed",
            ["Invalid syntax. Failed to decode AST when it should have."],
        )
    return _OK


def ast_check(
    functions: Sequence[dict[str, Any]], output: Decoded, answers: Decoded, category: str
) -> Verdict:
    """``ast_checker``: dispatch on the category (parallel, then multiple, then simple)."""
    if "parallel" in category:
        return _parallel_no_order(functions, output, answers)
    if "multiple" in category:
        return _multiple(functions, output, answers)
    if len(output) != 1:
        return Verdict(False, "simple_function_checker:wrong_count", ["Wrong number of functions."])
    return _simple(functions[0], output[0], answers[0])


def _is_call_format(decoded: Any) -> bool:
    # utils.py is_function_calling_format_output
    if not isinstance(decoded, list):
        return False
    return all(
        isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), dict)
        for item in decoded
    )


def _is_empty(decoded: Any) -> bool:
    # utils.py is_empty_output
    if not _is_call_format(decoded):
        return True
    return len(decoded) == 0 or (len(decoded) == 1 and len(decoded[0]) == 0)


def _find_description(functions: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in functions if f["name"] == name), None)


def _answer_type(possible: list[Any]) -> type | None:
    # get_possible_answer_type: the type of the first answer that is not "" (optional)
    return next((type(answer) for answer in possible if answer != ""), None)


def _type_check(
    param: str, value: Any, possible: list[Any], described: str, expected: type, nested: type | None
) -> tuple[Verdict, bool]:
    """``type_checker``: the verdict and whether the answer is a variable name (a string)."""
    answer_type = _answer_type(possible)
    is_variable = answer_type is not None and answer_type is not expected
    failure: Verdict | None = None
    if type(value) is expected:
        if nested is None:
            return _OK, is_variable
        values = cast("list[Any]", value)  # expected is list: "array" or "tuple"
        for item in possible:
            # Each possible answer that is a list must type-check item by item.
            if not isinstance(item, list) or all(
                _type_check(param, v, item, str(nested), nested, None)[0].valid for v in values
            ):
                return _OK, is_variable
        failure = Verdict(
            False,
            "type_error:nested",
            [
                f"Nested type checking failed for parameter {param!r}. Expected outer type "
                f"{described} with inner type {nested}. Parameter value: {value!r}."
            ],
        )
    if answer_type is not None and type(value) is answer_type:
        # BFCL returns its result here: still invalid after a failed nested check.
        return (failure or _OK), True
    errors = [*(failure.errors if failure else [])]
    errors.append(
        f"Incorrect type for parameter {param!r}. Expected type {described}, got "
        f"{type(value).__name__}. Parameter value: {value!r}."
    )
    return Verdict(False, "type_error:simple", errors), is_variable


def standardize(text: str) -> str:
    """``standardize_string``: no spaces or ``,./-_*^``, lower case, ``'`` as ``"``."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def _standardized(values: list[Any]) -> list[Any]:
    return [standardize(v) if isinstance(v, str) else v for v in values]


def _string_check(param: str, value: str, possible: list[Any]) -> Verdict:
    allowed = [standardize(p) for p in possible if isinstance(p, str)]
    if standardize(value) in allowed:
        return _OK
    return Verdict(
        False,
        "value_error:string",
        [
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {possible}. "
            "Case insensitive."
        ],
    )


def _list_check(param: str, value: list[Any], possible: list[Any]) -> Verdict:
    allowed = [_standardized(list(p)) for p in possible]
    if _standardized(list(value)) in allowed:
        return _OK
    return Verdict(
        False,
        "value_error:list/tuple",
        [f"Invalid value for parameter {param!r}: {value!r}. Expected one of {possible}."],
    )


def _dict_check(param: str, value: dict[str, Any], possible: list[Any]) -> Verdict:
    """``dict_checker``: some non-optional possible dict allows every key and value."""
    result = Verdict(False, "dict_checker:unclear")
    for answer in possible:
        if answer == "":
            continue
        result = _one_dict(value, answer)
        if result.valid:
            return _OK
    return result


def _one_dict(value: dict[str, Any], answer: dict[str, Any]) -> Verdict:
    for key, item in value.items():
        if key not in answer:
            return Verdict(
                False, "value_error:dict_key", [f"Unexpected dict key parameter: '{key}'."]
            )
        allowed = _standardized(list(answer[key]))
        if (standardize(item) if isinstance(item, str) else item) not in allowed:
            return Verdict(
                False,
                "value_error:dict_value",
                [f"Invalid value for parameter {key!r}: {item!r}. Expected one of {allowed}."],
            )
    for key, allowed_values in answer.items():
        if key not in value and "" not in allowed_values:
            return Verdict(False, "value_error:dict_key", [f"Missing dict key parameter: '{key}'."])
    return _OK


def _list_dict_check(param: str, value: list[Any], possible: list[Any]) -> Verdict:
    """``list_dict_checker``: the dicts match one possible list of dicts, in order."""
    result = Verdict(False, "list_dict_checker:unclear")
    for answer in possible:
        if len(value) != len(answer):
            result = Verdict(
                False,
                "value_error:list_dict_count",
                ["Wrong number of dictionaries in the list."],
            )
            continue
        for item, allowed in zip(value, answer, strict=True):
            result = _dict_check(param, item, [allowed])
            if not result.valid:
                break
        else:
            return _OK
    return result


def _simple(description: dict[str, Any], call: dict[str, Any], answer: dict[str, Any]) -> Verdict:
    """``simple_function_checker`` for Python, with ``underscore_to_dot`` names."""
    possible: dict[str, list[Any]] = next(iter(answer.values()))
    name = openai_name(description["name"])
    parameters = description["parameters"]
    details: dict[str, Any] = parameters["properties"]
    if name not in call:
        return Verdict(
            False,
            "simple_function_checker:wrong_func_name",
            [f"Function name {name!r} not found in model output."],
        )
    arguments: dict[str, Any] = call[name]
    for param in parameters.get("required", []):
        if param not in arguments:
            return Verdict(
                False,
                "simple_function_checker:missing_required",
                [f"Missing required parameter: {param!r}."],
            )
    for param, value in arguments.items():
        if param not in details or param not in possible:
            return Verdict(
                False,
                "simple_function_checker:unexpected_param",
                [f"Unexpected parameter: {param!r}."],
            )
        verdict = _check_value(param, value, details[param], possible[param])
        if not verdict.valid:
            return verdict
    for param, allowed in possible.items():
        if param not in arguments and "" not in allowed:
            return Verdict(
                False,
                "simple_function_checker:missing_optional",
                [f"Optional parameter {param!r} not provided and not marked as optional."],
            )
    return _OK


def _check_value(param: str, value: Any, detail: dict[str, Any], possible: list[Any]) -> Verdict:
    described = detail["type"]
    if described not in _PYTHON_TYPES:
        return Verdict(False, "type_error:simple", [f"Unknown type {described!r} of {param!r}."])
    expected = _PYTHON_TYPES[described]
    nested = _PYTHON_TYPES[detail["items"]["type"]] if described in _NESTED else None
    if described == "tuple" and isinstance(value, tuple):
        value = list(value)
    if described == "float" and type(value) is int:  # Python's int-to-float conversion
        value = float(value)
    verdict, is_variable = _type_check(param, value, possible, described, expected, nested)
    if not verdict.valid:
        return verdict
    if not is_variable:
        if expected is dict:
            return _dict_check(param, value, possible)
        if expected is list and nested is dict:
            return _list_dict_check(param, value, possible)
        if expected is str:
            return _string_check(param, value, possible)
        if expected is list:
            return _list_check(param, value, possible)
    if value not in possible:
        return Verdict(
            False,
            "value_error:others",
            [f"Invalid value for parameter {param!r}: {value!r}. Expected one of {possible}."],
        )
    return _OK


def _parallel_no_order(
    functions: Sequence[dict[str, Any]], output: Decoded, answers: Decoded
) -> Verdict:
    """``parallel_function_checker_no_order``: each answer matches a distinct call."""
    if len(output) != len(answers):
        return Verdict(
            False, "parallel_function_checker_no_order:wrong_count", ["Wrong number of functions."]
        )
    matched: set[int] = set()
    for index, answer in enumerate(answers):
        description = _find_description(functions, next(iter(answer)))
        errors: list[str] = []
        found = False
        for position, call in enumerate(output):
            if position in matched:
                continue
            verdict = _simple_or_missing(description, call, answer)
            if verdict.valid:
                matched.add(position)
                found = True
                break
            errors.extend(verdict.errors)
        if not found:
            return Verdict(
                False,
                "parallel_function_checker_no_order:cannot_find_match",
                [
                    f"Could not find a matching function for index {index} of possible answers.",
                    *errors,
                ],
            )
    return _OK


def _multiple(functions: Sequence[dict[str, Any]], output: Decoded, answers: Decoded) -> Verdict:
    """``multiple_function_checker``: one call, matching the one expected function."""
    if len(output) != len(answers):
        return Verdict(
            False, "multiple_function_checker:wrong_count", ["Wrong number of functions."]
        )
    description = _find_description(functions, next(iter(answers[0])))
    return _simple_or_missing(description, output[0], answers[0])


def _simple_or_missing(
    description: dict[str, Any] | None, call: dict[str, Any], answer: dict[str, Any]
) -> Verdict:
    if description is None:  # BFCL would fail with a TypeError: the data has none such
        return Verdict(False, "checker:no_description", [f"no function doc for {list(answer)}"])
    return _simple(description, call, answer)
