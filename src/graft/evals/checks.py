"""One function per kind of check: a case's ``Transcript`` in, a ``CheckResult`` out.

Each result says what was expected and what came, precisely enough to fix the prompt or
the model without rerunning the case: which tool was called with which arguments, the
part of the answer that was read, the judge's reason. Most checks are plain functions of
the transcript; ``sentiment`` and ``judge`` ask a model, through the ``Graders`` the runner
builds once per run (``graft.evals.judge``).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from graft.evals.suite import (
    Case,
    Check,
    Cites,
    Contains,
    JsonSchema,
    Judge,
    JudgeSpec,
    LatencyMs,
    Matches,
    NotContains,
    NotToolCalled,
    SentimentIs,
    SqlResult,
    ToolCalled,
)
from graft.evals.transcript import ToolUse, Transcript

__all__ = [
    "SQL_TOOLS",
    "CheckResult",
    "Graders",
    "Verdict",
    "check_cites",
    "check_contains",
    "check_json_schema",
    "check_judge",
    "check_latency",
    "check_matches",
    "check_not_contains",
    "check_not_tool_called",
    "check_sentiment",
    "check_sql_result",
    "check_tool_called",
    "run_check",
]

SQL_TOOLS = ("ask_database", "query_database")
"""The tools whose results ``sql_result`` reads unless it names one."""
_SHOWN = 240
"""Characters of an answer or a result quoted in a failure message."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: its kind, a short label, whether it held, and why."""

    kind: str
    label: str
    passed: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON."""
        return {
            "kind": self.kind,
            "label": self.label,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's answer: whether the criteria hold, and its one-sentence reason."""

    passed: bool
    reason: str
    model: str


JudgeFunction = Callable[[JudgeSpec, Case, Transcript], Awaitable[Verdict]]
SentimentFunction = Callable[[str], Awaitable[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class Graders:
    """The model-backed graders of a run; None where no case of the run needs one."""

    judge: JudgeFunction | None = None
    sentiment: SentimentFunction | None = None


def _quote(text: str) -> str:
    """``text`` for a message: repr-quoted, and cut when long."""
    if len(text) > _SHOWN:
        return repr(text[:_SHOWN]) + f"… ({len(text)} characters)"
    return repr(text)


def _calls(tools: list[ToolUse]) -> str:
    if not tools:
        return "no tool"
    return ", ".join(f"{use.name}({use.arguments_text})" for use in tools)


# --- tools ---------------------------------------------------------------------------------


def _mismatch(expected: Any, actual: Any, path: str) -> str | None:
    """Where ``actual`` differs from the subset ``expected``, or None when it fits."""
    if (
        isinstance(expected, dict)
        and set(expected) == {"regex"}
        and isinstance(expected["regex"], str)
    ):
        text = actual if isinstance(actual, str) else json.dumps(actual, ensure_ascii=False)
        if actual is None or re.search(expected["regex"], text) is None:
            return f"{path}: expected a match of /{expected['regex']}/, got {actual!r}"
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing"
            found = _mismatch(value, actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{path}: expected {expected!r}, got {actual!r}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            found = _mismatch(want, got, f"{path}[{index}]")
            if found:
                return found
        return None
    # 1 == True in Python: a boolean matches a boolean only.
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return f"{path}: expected {expected!r}, got {actual!r}"
    return None


def check_tool_called(check: ToolCalled, transcript: Transcript) -> CheckResult:
    """A call to the tool, with arguments that contain the expected ones (if any)."""
    spec = check.tool_called
    label = f"tool_called {spec.name}" + (
        f" {json.dumps(spec.arguments, ensure_ascii=False)}" if spec.arguments else ""
    )
    named = [use for use in transcript.tools if use.name == spec.name]
    if not named:
        return CheckResult(
            "tool_called",
            label,
            False,
            f"expected a call to {spec.name!r}; the turn called {_calls(transcript.tools)}",
        )
    if spec.arguments is None:
        return CheckResult("tool_called", label, True, f"{spec.name!r} was called")
    problems = []
    for number, use in enumerate(named, 1):
        arguments = use.arguments
        if arguments is None:
            problems.append(
                f"call {number}: arguments are not a JSON object: {use.arguments_text!r}"
            )
            continue
        found = _mismatch(spec.arguments, arguments, "arguments")
        if found is None:
            return CheckResult(
                "tool_called", label, True, f"{spec.name!r} was called with {use.arguments_text}"
            )
        problems.append(f"call {number}: {found}")
    return CheckResult(
        "tool_called",
        label,
        False,
        f"{spec.name!r} was called, but not with matching arguments: " + "; ".join(problems),
    )


def check_not_tool_called(check: NotToolCalled, transcript: Transcript) -> CheckResult:
    """No call to the tool."""
    name = check.not_tool_called
    calls = [use for use in transcript.tools if use.name == name]
    label = f"not_tool_called {name}"
    if calls:
        return CheckResult(
            "not_tool_called",
            label,
            False,
            f"expected no call to {name!r}; it was called: {_calls(calls)}",
        )
    return CheckResult("not_tool_called", label, True, f"{name!r} was not called")


# --- the answer's text ---------------------------------------------------------------------


def _has(text: str, needle: str, case_sensitive: bool) -> bool:
    return needle in text if case_sensitive else needle.casefold() in text.casefold()


def check_contains(check: Contains, transcript: Transcript) -> CheckResult:
    """The answer contains the text."""
    spec = check.contains
    label = f"contains {spec.text!r}" + (" (case-sensitive)" if spec.case_sensitive else "")
    if _has(transcript.answer, spec.text, spec.case_sensitive):
        return CheckResult("contains", label, True, f"the answer contains {spec.text!r}")
    return CheckResult(
        "contains",
        label,
        False,
        f"expected the answer to contain {spec.text!r}; the answer was {_quote(transcript.answer)}",
    )


def check_not_contains(check: NotContains, transcript: Transcript) -> CheckResult:
    """The answer does not contain the text."""
    spec = check.not_contains
    label = f"not_contains {spec.text!r}"
    if not _has(transcript.answer, spec.text, spec.case_sensitive):
        return CheckResult(
            "not_contains", label, True, f"the answer does not contain {spec.text!r}"
        )
    return CheckResult(
        "not_contains",
        label,
        False,
        f"expected the answer not to contain {spec.text!r}; the answer was "
        f"{_quote(transcript.answer)}",
    )


def check_matches(check: Matches, transcript: Transcript) -> CheckResult:
    """A regular expression is found in the answer."""
    spec = check.matches
    flags = re.IGNORECASE if spec.ignore_case else 0
    label = f"matches /{spec.pattern}/"
    found = re.search(spec.pattern, transcript.answer, flags)
    if found:
        return CheckResult("matches", label, True, f"the answer matches at {found.group()!r}")
    return CheckResult(
        "matches",
        label,
        False,
        f"expected the answer to match /{spec.pattern}/; the answer was "
        f"{_quote(transcript.answer)}",
    )


_FENCED = re.compile(r"^```[\w-]*\s*\n(.*?)\n?```$", re.DOTALL)


def check_json_schema(check: JsonSchema, transcript: Transcript) -> CheckResult:
    """The answer is JSON (alone, or as one fenced block) that the schema accepts."""
    validator = importlib.import_module("jsonschema").Draft202012Validator(check.json_schema)
    label = "json_schema"
    text = transcript.answer.strip()
    fenced = _FENCED.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return CheckResult(
            "json_schema",
            label,
            False,
            f"expected JSON; the answer is not JSON ({exc}): {_quote(transcript.answer)}",
        )
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return CheckResult("json_schema", label, True, "the answer is JSON valid for the schema")
    where = "".join(f"[{p!r}]" for p in errors[0].absolute_path) or " (top level)"
    return CheckResult(
        "json_schema",
        label,
        False,
        f"the answer's JSON does not fit the schema: at ${where}: {errors[0].message}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
    )


# --- citations, SQL, latency -------------------------------------------------------------


def _names(citation: dict[str, Any]) -> set[str]:
    """What a citation may be called by: title, source, the source's file name, document id."""
    names = set()
    for key in ("title", "source", "document_id"):
        value = citation.get(key)
        if isinstance(value, str) and value:
            names.add(value.casefold())
    source = citation.get("source")
    if isinstance(source, str) and source:
        names.add(PurePosixPath(source.split("?")[0].rstrip("/")).name.casefold())
    return names


def check_cites(check: Cites, transcript: Transcript) -> CheckResult:
    """The answer cites the document (by title, source, file name or id; any case)."""
    wanted = check.cites
    label = f"cites {wanted!r}"
    if any(wanted.casefold() in _names(c) for c in transcript.cited):
        return CheckResult("cites", label, True, f"the answer cites {wanted!r}")
    cited = ", ".join(
        f"[{c.get('n')}] {c.get('title')!r} ({c.get('source')})" for c in transcript.cited
    )
    return CheckResult(
        "cites",
        label,
        False,
        f"expected a citation of {wanted!r}; the answer cited " + (cited or "nothing"),
    )


def check_sql_result(check: SqlResult, transcript: Transcript) -> CheckResult:
    """A SQL tool's successful result holds the text (any case) or matches the pattern."""
    spec = check.sql_result
    tools = (spec.tool,) if spec.tool else SQL_TOOLS
    wants = [f"contains {spec.contains!r}"] if spec.contains is not None else []
    wants += [f"matches /{spec.matches}/"] if spec.matches is not None else []
    label = "sql_result " + " and ".join(wants)
    results = [u for u in transcript.tools if u.name in tools and u.result is not None]
    for use in results:
        if use.is_error:
            continue
        text = use.result or ""
        if (spec.contains is None or _has(text, spec.contains, False)) and (
            spec.matches is None or re.search(spec.matches, text)
        ):
            return CheckResult("sql_result", label, True, f"{use.name}'s result {wants[0]}")
    if not results:
        said = f"no {' or '.join(tools)} result; the turn called {_calls(transcript.tools)}"
    else:
        said = "; ".join(
            f"{u.name}{' (error)' if u.is_error else ''}: {_quote(u.result or '')}" for u in results
        )
    return CheckResult(
        "sql_result", label, False, f"expected a SQL result that {' and '.join(wants)}; got {said}"
    )


def check_latency(check: LatencyMs, transcript: Transcript) -> CheckResult:
    """The whole turn took less than the budget."""
    budget = check.latency_ms
    label = f"latency_ms < {budget:g}"
    took = transcript.latency_ms
    if took < budget:
        return CheckResult("latency_ms", label, True, f"the turn took {took:.0f} ms")
    return CheckResult(
        "latency_ms",
        label,
        False,
        f"expected the turn to take < {budget:g} ms; it took {took:.0f} ms",
    )


# --- model-graded --------------------------------------------------------------------------


async def check_sentiment(
    check: SentimentIs, transcript: Transcript, sentiment: SentimentFunction
) -> CheckResult:
    """The answer's sentiment label, with at least the confidence asked for."""
    spec = check.sentiment
    label = f"sentiment {spec.label}" + (f" (≥ {spec.min_score:g})" if spec.min_score else "")
    found, score = await sentiment(transcript.answer)
    if found == spec.label and score >= spec.min_score:
        return CheckResult("sentiment", label, True, f"the answer reads {found} ({score:.2f})")
    return CheckResult(
        "sentiment",
        label,
        False,
        f"expected a {spec.label} answer"
        + (f" with a score ≥ {spec.min_score:g}" if spec.min_score else "")
        + f"; it reads {found} ({score:.2f}): {_quote(transcript.answer)}",
    )


async def check_judge(
    check: Judge, case: Case, transcript: Transcript, judge: JudgeFunction
) -> CheckResult:
    """The judge model's verdict on the criteria."""
    spec = check.judge
    label = f"judge {_quote(spec.criteria)}"
    verdict = await judge(spec, case, transcript)
    said = f"judge {verdict.model} says {'pass' if verdict.passed else 'fail'}: {verdict.reason}"
    return CheckResult("judge", label, verdict.passed, said)


_PLAIN: dict[type[Any], Callable[[Any, Transcript], CheckResult]] = {
    ToolCalled: check_tool_called,
    NotToolCalled: check_not_tool_called,
    Contains: check_contains,
    NotContains: check_not_contains,
    Matches: check_matches,
    JsonSchema: check_json_schema,
    Cites: check_cites,
    SqlResult: check_sql_result,
    LatencyMs: check_latency,
}


async def run_check(
    check: Check, case: Case, transcript: Transcript, graders: Graders
) -> CheckResult:
    """Run one check of ``case`` on its transcript.

    A grader that fails (the judge model is down, say) fails the check with the reason:
    one broken check never stops the run.
    """
    plain = _PLAIN.get(type(check))
    if plain is not None:
        return plain(check, transcript)
    try:
        if isinstance(check, SentimentIs):
            assert graders.sentiment is not None, "the runner builds it for sentiment checks"
            return await check_sentiment(check, transcript, graders.sentiment)
        assert isinstance(check, Judge) and graders.judge is not None
        return await check_judge(check, case, transcript, graders.judge)
    except Exception as exc:  # a model-backed grader failed: the check fails, the run goes on
        kind = "sentiment" if isinstance(check, SentimentIs) else "judge"
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return CheckResult(kind, kind, False, f"the {kind} grader failed: {message}")
