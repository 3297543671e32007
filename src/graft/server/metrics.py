"""Prometheus metrics: HTTP requests, turns, tokens, tool calls and voice-turn latencies.

Per model (``graft.model_routing``): turns by route and outcome, tokens, the time to a turn's
first event and to its end, and ratings, each labelled by assistant and model. Those labels
come from stored assistants and their models too, so each keeps at most ``MAX_LABEL_VALUES``
distinct values per process; later ones count as ``other`` (bounded cardinality).

Each app gets its own ``CollectorRegistry`` (several apps in one test process never share
counters). The HTTP middleware is pure ASGI and labels requests by route template, not raw
path, so ids in URLs cannot explode the label set. Every request updates five series, so the
children of each label combination are kept in a dict (``_Children``): prometheus_client's
``labels()`` validates and locks on every call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.events import Event, ToolResult, TurnDone

if TYPE_CHECKING:
    from graft.voice.pipeline import VoiceTimings

__all__ = ["MAX_LABEL_VALUES", "Metrics", "MetricsMiddleware"]

MAX_LABEL_VALUES = 100
"""Distinct assistants (and models) the per-model series keep before ``other``."""

F = TypeVar("F", bound=MetricWrapperBase)

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Children(Generic[F]):
    """The children of one labelled metric family, by label values."""

    def __init__(self, family: F) -> None:
        self.family = family
        self._children: dict[tuple[str, ...], F] = {}

    def __call__(self, *values: str) -> F:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.family.labels(*values)
        return child


class _Bounded:
    """Label values as given while fewer than ``limit`` are known; then ``other`` for new ones."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.known:
            return value
        if len(self.known) >= self.limit:
            return "other"
        self.known.add(value)
        return value


class Metrics:
    """The metric families of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = _Children(
            Counter(
                "graft_http_requests",
                "HTTP requests by route and status.",
                ["method", "route", "status"],
                registry=self.registry,
            )
        )
        self.latency = _Children(
            Histogram(
                "graft_http_request_duration_seconds",
                "Time to the end of the response.",
                ["route"],
                buckets=_SECONDS,
                registry=self.registry,
            )
        )
        self.turns = _Children(
            Counter(
                "graft_turns",
                "Chat turns by assistant and finish reason.",
                ["assistant", "finish_reason"],
                registry=self.registry,
            )
        )
        self.tokens = _Children(
            Counter(
                "graft_tokens",
                "Model tokens by assistant and kind.",
                ["assistant", "kind"],
                registry=self.registry,
            )
        )
        self.tool_calls = _Children(
            Counter(
                "graft_tool_calls",
                "Server-side tool calls by tool and outcome.",
                ["tool", "outcome"],
                registry=self.registry,
            )
        )

        self._assistant, self._model = _Bounded(), _Bounded()
        per_model = ["assistant", "model"]
        self.model_turns = _Children(
            Counter(
                "graft_model_turns",
                "Chat turns by assistant, the model that answered, route and outcome.",
                [*per_model, "route", "outcome"],
                registry=self.registry,
            )
        )
        self.model_tokens = _Children(
            Counter(
                "graft_model_tokens",
                "Model tokens by assistant, model and kind.",
                [*per_model, "kind"],
                registry=self.registry,
            )
        )
        self.model_first_event = _Children(
            Histogram(
                "graft_model_first_token_seconds",
                "From the agent loop's start to its first event, by assistant and model.",
                per_model,
                buckets=_SECONDS,
                registry=self.registry,
            )
        )
        self.model_duration = _Children(
            Histogram(
                "graft_model_turn_seconds",
                "From a turn's start to its end, by assistant and model.",
                per_model,
                buckets=_SECONDS,
                registry=self.registry,
            )
        )
        self.model_feedback = _Children(
            Counter(
                "graft_model_feedback",
                "Ratings given, by assistant, the model that answered, and rating.",
                [*per_model, "rating"],
                registry=self.registry,
            )
        )

        self.voice = {
            stage: Histogram(
                f"graft_voice_{stage}_seconds",
                f"Voice turns: end of the caller's speech to {what}.",
                buckets=_SECONDS,
                registry=self.registry,
            )
            for stage, what in (
                ("transcript", "the transcript"),
                ("first_token", "the model's first token"),
                ("first_audio", "the first audio byte"),
            )
        }

    def observe_voice(self, timings: VoiceTimings) -> None:
        """Record one voice turn's latencies (those it reached)."""
        for stage, value in (
            ("transcript", timings.transcript),
            ("first_token", timings.first_token),
            ("first_audio", timings.first_audio),
        ):
            if value is not None:
                self.voice[stage].observe(value)

    def observe(self, assistant: str, event: Event) -> None:
        """Count what a turn event says (tool results and the turn's end)."""
        if isinstance(event, ToolResult):
            self.tool_calls(event.name, "error" if event.is_error else "ok").inc()
        elif isinstance(event, TurnDone):
            self.turns(assistant, event.finish_reason).inc()
            if event.usage.prompt_tokens:
                self.tokens(assistant, "prompt").inc(event.usage.prompt_tokens)
            if event.usage.completion_tokens:
                self.tokens(assistant, "completion").inc(event.usage.completion_tokens)
            if event.model:
                self._observe_model(assistant, event)

    def _observe_model(self, assistant: str, done: TurnDone) -> None:
        """The per-model series of one finished turn."""
        labels = (self._assistant(assistant), self._model(done.model))
        outcome = "error" if done.finish_reason == "error" else "ok"
        self.model_turns(*labels, done.route or "primary", outcome).inc()
        for kind, count in (
            ("prompt", done.usage.prompt_tokens),
            ("completion", done.usage.completion_tokens),
        ):
            if count:
                self.model_tokens(*labels, kind).inc(count)
        if done.first_token_ms is not None:
            self.model_first_event(*labels).observe(done.first_token_ms / 1000)
        if done.duration_ms is not None:
            self.model_duration(*labels).observe(done.duration_ms / 1000)

    def observe_feedback(self, assistant: str, model: str, rating: str) -> None:
        """Count one rating of a turn that ``model`` answered for ``assistant``."""
        self.model_feedback(self._assistant(assistant), self._model(model), rating).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware counting requests and their duration."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests(scope["method"], path, str(status)).inc()
            self.metrics.latency(path).observe(time.perf_counter() - started)
