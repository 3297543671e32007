"""Per-model reports from the store: turns, failures, latency, tokens and ratings by model.

The model registry (``graft.model_routing``) records on each turn the model that answered,
the route it came by (``primary``, ``canary``, ``fallback``) and how soon the model's first
event came (``first_token_ms``); people rate turns (``graft.store.feedback_sql``). A report
groups a window of finished turns (``started_at`` in ``[since, until)``) by assistant,
model and route, so a canary's candidate reads beside its baseline: how many turns, how many
failed, how many were interrupted, mean and slowest duration, mean time to the first event,
tokens, and thumbs up and down. Running turns are left out. Turns stored before routes were
recorded have the route ``""``.

The SQL runs as one aggregate query (``model_stats``); the in-memory store sums the same
rows in Python (``summarize``), so both answer alike. ``ModelStatsMethods`` is the part of
``SQLStore`` that runs it, mixed in as ``FeedbackMethods`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.engine import Connection

from graft.errors import InvalidRequest
from graft.store.schema import t_conversations, t_feedback, t_turns

__all__ = [
    "ModelStats",
    "ModelStatsMethods",
    "TurnFacts",
    "check_window",
    "model_stats",
    "summarize",
    "turn_model",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One assistant's finished turns on one model by one route, in a window."""

    assistant: str
    model: str
    route: str
    """``primary``, ``canary``, ``fallback``, or ``""`` for turns stored before routes."""
    turns: int
    failed: int
    interrupted: int
    """Turns whose client went away, or whose worker died, before the answer was done."""
    prompt_tokens: int
    completion_tokens: int
    mean_ms: float | None
    """Mean duration of a turn, start to end."""
    max_ms: float | None
    mean_first_token_ms: float | None
    """Mean time from the agent loop's start to its first event."""
    feedback_up: int
    feedback_down: int

    @property
    def error_rate(self) -> float:
        """Failed turns over turns."""
        return self.failed / self.turns if self.turns else 0.0

    @property
    def up_rate(self) -> float | None:
        """Thumbs up over ratings; ``None`` without ratings."""
        rated = self.feedback_up + self.feedback_down
        return self.feedback_up / rated if rated else None

    def to_json(self) -> dict[str, Any]:
        """The row as ``GET /v1/admin/models/stats`` and ``graft models stats --json`` show it."""
        return {
            "assistant": self.assistant,
            "model": self.model,
            "route": self.route,
            "turns": self.turns,
            "failed": self.failed,
            "interrupted": self.interrupted,
            "error_rate": round(self.error_rate, 4),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "mean_ms": _round(self.mean_ms),
            "max_ms": _round(self.max_ms),
            "mean_first_token_ms": _round(self.mean_first_token_ms),
            "feedback_up": self.feedback_up,
            "feedback_down": self.feedback_down,
            "up_rate": None if self.up_rate is None else round(self.up_rate, 4),
        }


@dataclass(frozen=True, slots=True)
class TurnFacts:
    """What a report reads of one finished turn (the in-memory store's rows)."""

    assistant: str
    model: str
    route: str | None
    status: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: float | None
    first_token_ms: float | None
    up: int
    down: int


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Refuse a window whose end is not after its start, or naive times."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} must carry a time zone", param=name)
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("until must be after since", param="until")


def summarize(facts: Iterable[TurnFacts]) -> list[ModelStats]:
    """Group turns by assistant, model and route (the in-memory store's report)."""
    groups: dict[tuple[str, str, str], list[TurnFacts]] = {}
    for fact in facts:
        groups.setdefault((fact.assistant, fact.model, fact.route or ""), []).append(fact)
    return [
        ModelStats(
            *key,
            turns=len(rows),
            failed=sum(r.status == "failed" for r in rows),
            interrupted=sum(r.status == "interrupted" for r in rows),
            prompt_tokens=sum(r.prompt_tokens for r in rows),
            completion_tokens=sum(r.completion_tokens for r in rows),
            mean_ms=_mean([r.duration_ms for r in rows]),
            max_ms=max((r.duration_ms for r in rows if r.duration_ms is not None), default=None),
            mean_first_token_ms=_mean([r.first_token_ms for r in rows]),
            feedback_up=sum(r.up for r in rows),
            feedback_down=sum(r.down for r in rows),
        )
        for key, rows in sorted(groups.items())
    ]


# --- SQL ----------------------------------------------------------------------------------

_T, _C, _F = t_turns.c, t_conversations.c, t_feedback.c
_RATINGS = (
    select(
        _F.turn_id,
        func.sum(case((_F.rating == "up", 1), else_=0)).label("up"),
        func.sum(case((_F.rating == "down", 1), else_=0)).label("down"),
    )
    .group_by(_F.turn_id)
    .subquery()
)
_ROUTE = func.coalesce(_T.route, "")
_REPORT = (
    select(
        _C.assistant,
        _T.model,
        _ROUTE.label("route"),
        func.count().label("turns"),
        func.sum(case((_T.status == "failed", 1), else_=0)).label("failed"),
        func.sum(case((_T.status == "interrupted", 1), else_=0)).label("interrupted"),
        func.sum(_T.prompt_tokens).label("prompt_tokens"),
        func.sum(_T.completion_tokens).label("completion_tokens"),
        func.avg(_T.duration_ms).label("mean_ms"),
        func.max(_T.duration_ms).label("max_ms"),
        func.avg(_T.first_token_ms).label("mean_first_token_ms"),
        func.coalesce(func.sum(_RATINGS.c.up), 0).label("up"),
        func.coalesce(func.sum(_RATINGS.c.down), 0).label("down"),
    )
    .select_from(
        t_turns.join(t_conversations, _T.conversation_id == _C.id).outerjoin(
            _RATINGS, _RATINGS.c.turn_id == _T.id
        )
    )
    .where(_T.status != "running")
    .group_by(_C.assistant, _T.model, _ROUTE)
    .order_by(_C.assistant, _T.model, _ROUTE)
)
_TURN_MODEL = select(_C.assistant, _T.model).select_from(
    t_turns.join(t_conversations, _T.conversation_id == _C.id)
)


def model_stats(
    conn: Connection,
    *,
    tenant: str | None,
    since: datetime | None,
    until: datetime | None,
    assistant: str | None,
) -> list[ModelStats]:
    """The report of ``tenant``'s turns (every tenant's for ``None``), narrowed (read)."""
    query: Select[Any] = _REPORT
    wanted = [
        (_C.tenant == tenant) if tenant is not None else None,
        (_C.assistant == assistant) if assistant is not None else None,
        (_T.started_at >= since) if since is not None else None,
        (_T.started_at < until) if until is not None else None,
    ]
    conditions = [c for c in wanted if c is not None]
    if conditions:
        query = query.where(and_(*conditions))
    return [
        ModelStats(
            assistant=row.assistant,
            model=row.model,
            route=row.route,
            turns=int(row.turns),
            failed=int(row.failed or 0),
            interrupted=int(row.interrupted or 0),
            prompt_tokens=int(row.prompt_tokens or 0),
            completion_tokens=int(row.completion_tokens or 0),
            mean_ms=_float(row.mean_ms),
            max_ms=_float(row.max_ms),
            mean_first_token_ms=_float(row.mean_first_token_ms),
            feedback_up=int(row.up),
            feedback_down=int(row.down),
        )
        for row in conn.execute(query)
    ]


def turn_model(conn: Connection, *, turn_id: str) -> tuple[str, str] | None:
    """The assistant and the model of a turn, if it exists (read)."""
    row = conn.execute(_TURN_MODEL.where(_T.id == turn_id)).first()
    return None if row is None else (row.assistant, row.model)


class ModelStatsMethods:
    """The per-model report of ``SQLStore`` (``graft.store.sql``), mixed into it."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Connection], T]) -> T: ...

    async def model_stats(
        self,
        tenant: str | None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        assistant: str | None = None,
    ) -> list[ModelStats]:
        """Finished turns by assistant, model and route (see the module docstring).

        Raises:
            InvalidRequest: ``until`` is not after ``since``, or a time has no zone.
        """
        check_window(since, until)
        work = partial(model_stats, tenant=tenant, since=since, until=until, assistant=assistant)
        return await self._read(work)

    async def turn_model(self, turn_id: str) -> tuple[str, str] | None:
        """The assistant and the model of the turn ``turn_id``; ``None`` if there is none."""
        return await self._read(partial(turn_model, turn_id=turn_id))


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
