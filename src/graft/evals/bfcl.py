"""Run BFCL's tool-calling benchmark through graft's own chat turn, and score it.

Each case is one ``run_turn`` (``graft.turn``: the path every entry point takes) on an
assistant named ``bfcl`` that has no server-side tools: the case's functions are offered as
client tools (``TurnRequest.client_tools``), so the calls the model makes come back as a
``ClientToolCalls`` event instead of running. Those calls are scored by BFCL's rules
(``graft.evals.bfcl_checker``); a turn that ends without calls scores as BFCL scores a
text answer (an AST case fails, an irrelevance case passes).

The run uses the in-memory store (``memory://``), so nothing the benchmark asks lands in
the installation's database, and greedy decoding with a fixed seed, so runs repeat. Cases
are sampled evenly over each category's file (``graft.evals.bfcl_data.sample``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from graft.agent import ModelParams
from graft.config import AssistantSettings, Settings
from graft.context import Principal
from graft.errors import InvalidRequest
from graft.evals.bfcl_checker import score_calls
from graft.evals.bfcl_data import BfclCase, category_name, load_cases, sample
from graft.events import ClientToolCalls, ErrorEvent, TextDelta
from graft.messages import ToolCall
from graft.runtime import Graft
from graft.turn import TurnRequest

__all__ = [
    "ASSISTANT",
    "BfclReport",
    "CaseResult",
    "CategoryScore",
    "bfcl_settings",
    "parse_categories",
    "run_bfcl",
    "run_case",
]

ASSISTANT: Final = "bfcl"
"""The assistant the cases run on: the model under test, no server-side tools."""
_SEED: Final = 0


@dataclass(slots=True)
class CaseResult:
    """One case: what the model called, whether BFCL's rules accept it, how long it took."""

    id: str
    category: str
    valid: bool
    latency_s: float
    calls: list[dict[str, str]] = field(default_factory=list)
    """``{"name", "arguments"}`` of each call, arguments as the model wrote them."""
    answer: str = ""
    """The text the model answered with, when it made no call (cut to 200 characters)."""
    error_type: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CategoryScore:
    """A category's accuracy over the cases run."""

    category: str
    cases: int
    passed: int
    mean_latency_s: float

    @property
    def accuracy(self) -> float:
        """Passed over run; 0 when none ran."""
        return self.passed / self.cases if self.cases else 0.0


@dataclass(slots=True)
class BfclReport:
    """Every case's result, and the scores per category."""

    model: str
    limit: int | None
    results: list[CaseResult] = field(default_factory=list)

    def scores(self) -> list[CategoryScore]:
        """One score per category, in the order they ran."""
        by_category: dict[str, list[CaseResult]] = {}
        for result in self.results:
            by_category.setdefault(result.category, []).append(result)
        return [
            CategoryScore(
                category,
                len(results),
                sum(r.valid for r in results),
                sum(r.latency_s for r in results) / len(results),
            )
            for category, results in by_category.items()
        ]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data: scores, then every case."""
        return {
            "model": self.model,
            "limit": self.limit,
            "scores": [
                {**asdict(score), "accuracy": round(score.accuracy, 4)} for score in self.scores()
            ],
            "cases": [asdict(result) for result in self.results],
        }

    def table(self) -> str:
        """The scores as a plain-text table."""
        lines = [f"{'category':<24} {'cases':>5} {'passed':>6} {'accuracy':>8} {'latency':>8}"]
        for s in self.scores():
            lines.append(
                f"{s.category:<24} {s.cases:>5} {s.passed:>6} {s.accuracy:>8.1%} "
                f"{s.mean_latency_s:>7.2f}s"
            )
        return "\n".join(lines)


def bfcl_settings(settings: Settings, model: str | None = None) -> Settings:
    """``settings`` with the ``bfcl`` assistant on ``model`` and the in-memory store.

    Without ``model`` the assistant uses the settings' default model.
    """
    assistant = AssistantSettings(model=model or settings.model, tools=[])
    assistants = {**settings.assistants, ASSISTANT: assistant}
    return settings.model_copy(update={"assistants": assistants, "database_url": "memory://"})


async def run_bfcl(
    graft: Graft,
    categories: Iterable[str],
    limit: int | None,
    *,
    on_result: Callable[[CaseResult], None] | None = None,
) -> BfclReport:
    """Run ``limit`` cases of each category on the ``bfcl`` assistant of ``graft``."""
    names = [category_name(c) for c in categories]
    if not names:
        raise InvalidRequest("name at least one BFCL category")
    model = graft.model_for(graft.assistant(ASSISTANT))
    report = BfclReport(model.id, limit)
    principal = graft.principal_for()
    for category in names:
        for case in sample(load_cases(category), limit):
            result = await run_case(graft, case, principal)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    return report


async def run_case(graft: Graft, case: BfclCase, principal: Principal) -> CaseResult:
    """Run one case as a chat turn and score the calls it ends with."""
    request = TurnRequest(
        ASSISTANT,
        case.graft_messages(),
        client_tools=case.tools(),
        params=ModelParams(temperature=0.0, seed=_SEED),
        stream=False,
    )
    calls: list[ToolCall] = []
    text: list[str] = []
    started = time.perf_counter()
    try:
        async for event in graft.run_turn(request, principal):
            if isinstance(event, ClientToolCalls):
                calls.extend(event.calls)
            elif isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ErrorEvent):
                return _failed(case, started, f"turn_error:{event.type}", event.message)
    except InvalidRequest as exc:  # e.g. a question graft refuses (too long for the model)
        return _failed(case, started, "turn_error:invalid_request", exc.message)
    latency = time.perf_counter() - started
    verdict = score_calls(case.category, case.functions, calls, case.ground_truth)
    return CaseResult(
        case.id,
        case.category,
        verdict.valid,
        round(latency, 3),
        [{"name": c.name, "arguments": c.arguments} for c in calls],
        "" if calls else "".join(text)[:200],
        verdict.error_type,
        verdict.errors[:3],
    )


def _failed(case: BfclCase, started: float, error_type: str, message: str) -> CaseResult:
    latency = round(time.perf_counter() - started, 3)
    return CaseResult(
        case.id, case.category, False, latency, error_type=error_type, errors=[message]
    )


def parse_categories(value: str | Sequence[str]) -> list[str]:
    """Comma-separated category names (or aliases) as category names, checked."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [category_name(item) for item in items if item.strip()]
