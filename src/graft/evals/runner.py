"""Running a suite: every case through ``run_turn``, the same path as a chat turn.

A case runs as its principal (``user:``, or an eval principal who is an admin of the default
tenant) on the suite's assistant, optionally with another model (``TurnRequest.model``),
in a conversation of its own that is deleted afterwards unless asked to keep it. Tool calls
that need the user's approval are denied: an eval run has no one to ask. The run collects
the events into a ``Transcript`` per case, then runs the checks on it.

Everything a run needs is checked before the first case: the assistant, the model, the judge
of ``judge:`` checks, the sentiment analyzer of ``sentiment:`` checks. A case whose turn
fails is a failed case with its error, never the end of the run. Cases run one at a time by
default (the local model is one engine); ``concurrency`` runs more at once, and results
keep the suite's order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from graft.context import Principal
from graft.errors import ConfigError, GraftError, NotFound, PermissionDenied
from graft.evals.checks import CheckResult, Graders, SentimentFunction, Verdict, run_check
from graft.evals.judge import ModelJudge
from graft.evals.suite import Case, Judge, JudgeSpec, SentimentIs, Suite
from graft.evals.transcript import Transcript
from graft.events import ApprovalRequired
from graft.identity import principal_of_user
from graft.model_settings import resolve_model_id
from graft.turn import TurnRequest

if TYPE_CHECKING:
    from graft.models.base import Model
    from graft.runtime import Graft

__all__ = ["EVAL_PRINCIPAL", "CaseResult", "SuiteRun", "run_suite", "select_cases"]

log = logging.getLogger(__name__)

EVAL_PRINCIPAL = Principal("eval", frozenset({"admin"}))
"""Who runs a case that names no ``user``: an admin of the default tenant."""


@dataclass(slots=True)
class CaseResult:
    """One case's transcript and check results; an error means the turn itself failed."""

    case: Case
    transcript: Transcript
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        """Why the turn failed, or None."""
        return self.transcript.error

    @property
    def passed(self) -> bool:
        """The turn ran and every check held."""
        return self.error is None and all(check.passed for check in self.checks)

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``error``."""
        return "error" if self.error is not None else "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON."""
        return {
            "id": self.case.id,
            "description": self.case.description,
            "tags": self.case.tags,
            "status": self.status,
            "passed": self.passed,
            "error": self.error,
            "checks": [check.to_json() for check in self.checks],
            "reference": self.case.reference,
            "transcript": self.transcript.to_json(),
        }


@dataclass(slots=True)
class SuiteRun:
    """The results of one suite on one assistant and model."""

    suite: Suite
    assistant: str
    model: str
    results: list[CaseResult]
    started_at: datetime
    duration_s: float

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(1 for result in self.results if result.passed)

    @property
    def pass_rate(self) -> float:
        """Passed cases over cases run (0 when none ran)."""
        return self.passed / len(self.results) if self.results else 0.0

    def to_json(self) -> dict[str, Any]:
        """The run as plain JSON (``graft eval --json``)."""
        return {
            "suite": self.suite.name,
            "assistant": self.assistant,
            "model": self.model,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "cases": len(self.results),
            "passed": self.passed,
            "pass_rate": round(self.pass_rate, 4),
            "results": [result.to_json() for result in self.results],
        }


def select_cases(suite: Suite, *, tags: Sequence[str] = (), ids: Sequence[str] = ()) -> list[Case]:
    """The cases with any of ``tags`` and, when given, one of ``ids`` (all when neither).

    Raises:
        ConfigError: An id names no case, or nothing is left to run.
    """
    known = {case.id for case in suite.cases}
    unknown = [case_id for case_id in ids if case_id not in known]
    if unknown:
        raise ConfigError(f"suite {suite.name!r} has no case {unknown[0]!r}")
    chosen = [
        case
        for case in suite.cases
        if (not tags or set(tags).intersection(case.tags)) and (not ids or case.id in ids)
    ]
    if not chosen:
        raise ConfigError(f"no case of suite {suite.name!r} has the tags {', '.join(tags)}")
    return chosen


async def run_suite(
    graft: Graft,
    suite: Suite,
    *,
    assistant: str | None = None,
    model: str | None = None,
    judge: str | None = None,
    cases: Sequence[Case] | None = None,
    concurrency: int = 1,
    keep_conversations: bool = False,
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteRun:
    """Run ``cases`` (default: all) of ``suite`` on ``graft``; ``graft`` must be started.

    ``assistant``, ``model`` and ``judge`` override the suite's. ``on_result`` hears of
    each case as it finishes (progress), in the order they finish.

    Raises:
        ConfigError: The run cannot start: no such assistant, a model or judge that cannot
            be called, or ``judge:`` checks with no judge model.
    """
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    name = assistant or suite.assistant or "default"
    chosen = list(suite.cases if cases is None else cases)
    wanted = model or suite.model
    model_id = await _model_id(graft, name, wanted)
    graders = _graders(graft, suite, chosen, judge)
    runner = _CaseRunner(graft, name, model_id if wanted else None, graders, keep_conversations)
    started_at, started = datetime.now(UTC), time.perf_counter()
    results: list[CaseResult | None] = [None] * len(chosen)
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int, case: Case) -> None:
        async with limiter:
            results[index] = result = await runner.run(case)
        if on_result is not None:
            on_result(result)

    async with anyio.create_task_group() as group:
        for index, case in enumerate(chosen):
            group.start_soon(one, index, case)
    done = [result for result in results if result is not None]
    return SuiteRun(suite, name, model_id, done, started_at, time.perf_counter() - started)


async def _model_id(graft: Graft, assistant: str, model: str | None) -> str:
    """The id of the model the run uses, once it is known to be callable.

    ``model`` may be a model id or an alias, the assistant's own or ``[models.aliases]``
    (``graft.model_settings``), as in the assistant's own ``model``.
    """
    try:
        settings = await graft.resolve_assistant(assistant, EVAL_PRINCIPAL)
    except NotFound as exc:
        raise ConfigError(f"assistant {assistant!r}: {exc.message}") from None
    if model is not None:
        resolved = resolve_model_id(model, settings.models, graft.settings.models.aliases)
        return _callable(graft, resolved, "model").id
    try:
        found = graft.model_for(settings)
    except GraftError as exc:
        raise ConfigError(f"assistant {assistant!r}: {exc.message}") from None
    return _usable(found, found.id, "model").id


def _callable(graft: Graft, model_id: str, what: str) -> Model:
    try:
        found = graft.get_model(model_id)
    except (GraftError, ValueError) as exc:
        raise ConfigError(f"{what} {model_id!r}: {getattr(exc, 'message', exc)}") from None
    return _usable(found, model_id, what)


def _usable(found: Model, model_id: str, what: str) -> Model:
    why = getattr(found, "unavailable", None)
    if why:
        raise ConfigError(f"{what} {model_id!r} cannot be called: {why}")
    return found


def _graders(graft: Graft, suite: Suite, cases: Sequence[Case], judge: str | None) -> Graders:
    """The judge and sentiment graders the cases need, each checked now."""
    checks = [check for case in cases for check in case.expect]
    judges: dict[str, ModelJudge] = {}
    default_judge = judge or suite.judge or graft.settings.evals.judge
    for check in checks:
        if not isinstance(check, Judge):
            continue
        judge_id = check.judge.model or default_judge
        if judge_id is None:
            raise ConfigError(
                f"suite {suite.name!r} has judge checks but no judge model: set `judge:` in "
                "the suite, `[evals] judge` in the settings, or pass --judge"
            )
        if judge_id not in judges:
            judges[judge_id] = ModelJudge(_callable(graft, judge_id, "judge model"))

    async def grade(spec: JudgeSpec, case: Case, transcript: Transcript) -> Verdict:
        judge_id = spec.model or default_judge
        assert judge_id is not None  # checked above
        return await judges[judge_id](spec, case, transcript)

    sentiment = _sentiment(graft) if any(isinstance(c, SentimentIs) for c in checks) else None
    return Graders(judge=grade if judges else None, sentiment=sentiment)


def _sentiment(graft: Graft) -> SentimentFunction:
    """The sentiment plugin's analyzer, with ``[plugins.sentiment] backend``, loaded now."""
    from graft.default_plugins.sentiment.plugin import DEFAULT_BACKEND, analyzer_for

    spec = str(graft.settings.plugin_config("sentiment").get("backend", DEFAULT_BACKEND))
    try:
        analyzer = analyzer_for(graft.settings, spec)
    except ImportError as exc:
        raise ConfigError(
            f'sentiment checks need the sentiment analyzer ({exc}): pip install "graft[sentiment]"'
        ) from None

    async def read(text: str) -> tuple[str, float]:
        result = await analyzer.aanalyze(text)
        return result.label, result.score

    return read


class _CaseRunner:
    """Runs one case: its turn through ``run_turn``, then its checks."""

    def __init__(
        self,
        graft: Graft,
        assistant: str,
        model: str | None,
        graders: Graders,
        keep_conversations: bool,
    ) -> None:
        self.graft = graft
        self.assistant = assistant
        self.model = model
        self.graders = graders
        self.keep = keep_conversations

    async def run(self, case: Case) -> CaseResult:
        transcript = Transcript(conversation=case.conversation())
        principal = EVAL_PRINCIPAL
        started = time.perf_counter()
        try:
            principal = await self._principal(case.user)
            await self._turn(case, principal, transcript)
        except GraftError as exc:
            transcript.fail(exc.message)
        except Exception as exc:  # a bug must not end the run: this case fails with it
            log.exception("eval case %s failed", case.id)
            transcript.fail(f"internal error ({type(exc).__name__}): {exc}")
        transcript.latency_ms = (time.perf_counter() - started) * 1000
        await self._forget(transcript, principal)
        result = CaseResult(case, transcript)
        if transcript.error is None:
            for check in case.expect:
                result.checks.append(await run_check(check, case, transcript, self.graders))
        return result

    async def _turn(self, case: Case, principal: Principal, transcript: Transcript) -> None:
        request = TurnRequest(self.assistant, case.conversation(), model=self.model)
        async for event in self.graft.run_turn(request, principal):
            if isinstance(event, ApprovalRequired):
                self.graft.approvals.decide(
                    event.approval_id, principal, False, "an eval run approves nothing"
                )
            transcript.add(event)

    async def _principal(self, user: str | None) -> Principal:
        """The case's user: a stored user of the default tenant, else as ``graft ask --user``."""
        if user is None:
            return EVAL_PRINCIPAL
        try:
            stored = await self.graft.store.get_user("default", user)
        except NotFound:
            return self.graft.principal_for(user)
        if not stored.active:
            raise PermissionDenied(f"user {user!r} is disabled")
        return principal_of_user(stored)

    async def _forget(self, transcript: Transcript, principal: Principal) -> None:
        """Delete the case's conversation (it was only a means to run the turn)."""
        if self.keep or transcript.conversation_id is None:
            return
        try:
            await self.graft.store.delete_conversation(transcript.conversation_id, principal)
        except GraftError as exc:
            log.warning("could not delete eval conversation: %s", exc.message)
