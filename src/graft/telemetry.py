"""OpenTelemetry traces of turns, model calls and tool calls; off unless ``[telemetry]`` says.

One span per turn (``graft.turn``), a child span per model call (``chat {model}``, with the
``gen_ai.*`` semantic-convention attributes) and per server-side tool call
(``execute_tool {name}``). The HTTP request span, and the W3C ``traceparent`` of an incoming
request that makes graft's spans join the caller's trace, come from FastAPI's own
telemetry, which ``fastapi_config`` hands graft's tracer provider (``graft.server.app``).

Spans carry ids, names, counts and outcomes: never message text, tool arguments or results,
nor anything secret.

With ``traces = "off"`` (the default) ``setup_tracing`` returns at once, the hooks below
return after one ``None`` check, and neither the OpenTelemetry SDK nor an exporter is
imported (FastAPI itself imports ``opentelemetry-api``). The hooks take the turn's span
from ``ctx.state`` rather than from the current context: an async generator's code may run
in another task than the one that started it, and explicit parents cannot get lost there.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from graft.telemetry_settings import TelemetrySettings

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from graft.context import Context
    from graft.messages import Usage
    from graft.models.base import Model, ModelChunk, ModelRequest

__all__ = [
    "add_exporter",
    "current_ids",
    "end_turn",
    "fastapi_config",
    "record_tool",
    "setup_tracing",
    "shutdown_tracing",
    "start_turn",
    "traced_stream",
]

_SPAN_KEY = "graft.telemetry.span"
_INSTALL_HINT = 'tracing needs the observability extra: pip install "graft[observability]"'

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def setup_tracing(
    settings: TelemetrySettings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Start tracing as ``settings`` say; ``exporter`` (tests) replaces the configured one.

    Returns the tracer provider, or ``None`` when tracing is off. Raises ``ConfigError``
    when tracing is on but the ``observability`` extra is not installed.
    """
    global _tracer, _provider
    shutdown_tracing()
    if settings.traces == "off" and exporter is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        from graft.errors import ConfigError

        raise ConfigError(f"telemetry.traces = {settings.traces!r}: {_INSTALL_HINT}") from None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        # Spans leave in batches from a thread of their own, never on the request's path.
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    _provider, _tracer = provider, provider.get_tracer("graft")
    return provider


def check_tracing(settings: TelemetrySettings) -> None:
    """Raise ``ConfigError`` if tracing is on and its extra is missing.

    ``graft serve`` checks before it starts, rather than each worker failing on its own.
    """
    if settings.traces == "off":
        return
    import importlib.util

    wanted = ["opentelemetry.sdk"]
    if settings.traces == "otlp":
        wanted.append("opentelemetry.exporter.otlp.proto.http")
    for name in wanted:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            from graft.errors import ConfigError

            raise ConfigError(f"telemetry.traces = {settings.traces!r}: {_INSTALL_HINT}")


def _exporter(settings: TelemetrySettings) -> SpanExporter:
    if settings.traces == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=settings.service_name)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        from graft.errors import ConfigError

        raise ConfigError(f"telemetry.traces = 'otlp': {_INSTALL_HINT}") from None
    return OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=10)


def add_exporter(exporter: SpanExporter) -> None:
    """Also send every span to ``exporter``, synchronously (tests read spans back this way)."""
    if _provider is None:
        raise RuntimeError("tracing is off: there is no tracer provider to add an exporter to")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    _provider.add_span_processor(SimpleSpanProcessor(exporter))


def shutdown_tracing() -> None:
    """Send the spans still queued and stop tracing (the server's shutdown calls it)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def fastapi_config(provider: TracerProvider | None) -> TelemetryConfig:
    """``FastAPI(telemetry=...)``: HTTP request spans on graft's provider, or nothing.

    FastAPI's own metrics and logs stay off (graft has Prometheus metrics and its own
    logs; FastAPI's logs may quote request values), and so do its per-dependency spans.
    """
    if provider is None:
        return {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}
    return {
        "tracer_provider": provider,
        "tracing": True,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "auto_configure": False,
    }


def current_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex (for log lines), or ``None``."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def start_turn(ctx: Context, model_id: str) -> None:
    """Open the turn's span under the current one (the HTTP request's, if any)."""
    if _tracer is None:
        return
    provider, _, name = model_id.partition(":")
    attributes: dict[str, Any] = {
        "graft.assistant": ctx.assistant_name,
        "gen_ai.request.model": name or model_id,
        "gen_ai.system": provider,
        "graft.user.tenant": ctx.principal.tenant,
    }
    if ctx.conversation_id:
        attributes["gen_ai.conversation.id"] = ctx.conversation_id
    if ctx.turn_id:
        attributes["graft.turn.id"] = ctx.turn_id
    ctx.state[_SPAN_KEY] = _tracer.start_span("graft.turn", attributes=attributes)


def end_turn(ctx: Context, finish_reason: str | None, error: str | None, usage: Usage) -> None:
    """Close the turn's span with its outcome and token counts (never the error's text)."""
    span: Span | None = ctx.state.pop(_SPAN_KEY, None)
    if span is None:
        return
    from opentelemetry.trace import StatusCode

    span.set_attribute("graft.finish_reason", finish_reason or "error")
    span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if error is not None:
        span.set_attribute("error.type", "turn_failed")
        span.set_status(StatusCode.ERROR, "the turn failed")
    span.end()


def _child(ctx: Context, name: str, attributes: dict[str, Any], **kwargs: Any) -> Span | None:
    """A span under the turn's span (or the current one when there is no turn)."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    parent: Span | None = ctx.state.get(_SPAN_KEY)
    context = trace.set_span_in_context(parent) if parent is not None else None
    return _tracer.start_span(name, context=context, attributes=attributes, **kwargs)


def traced_stream(ctx: Context, model: Model, request: ModelRequest) -> AsyncIterator[ModelChunk]:
    """``model.stream(request)``, inside a ``chat {model}`` span when tracing is on."""
    if _tracer is None:
        return model.stream(request)
    return _traced_stream(ctx, model, request)


async def _traced_stream(
    ctx: Context, model: Model, request: ModelRequest
) -> AsyncIterator[ModelChunk]:
    from opentelemetry.trace import SpanKind, StatusCode

    from graft.models.base import FinishChunk, UsageChunk

    provider, _, name = model.id.partition(":")
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": provider,
        "gen_ai.request.model": name or model.id,
        "graft.tools.offered": len(request.tools),
    }
    span = _child(ctx, f"chat {name or model.id}", attributes, kind=SpanKind.CLIENT)
    assert span is not None
    input_tokens = output_tokens = 0
    try:
        async for chunk in model.stream(request):
            if isinstance(chunk, UsageChunk):
                input_tokens += chunk.usage.prompt_tokens
                output_tokens += chunk.usage.completion_tokens
            elif isinstance(chunk, FinishChunk):
                span.set_attribute("gen_ai.response.finish_reasons", [chunk.reason])
            yield chunk
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(StatusCode.ERROR)
        raise
    finally:
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        span.end()


def record_tool(ctx: Context, name: str, is_error: bool, duration_ms: float) -> None:
    """Record a finished server-side tool call as an ``execute_tool {name}`` span."""
    if _tracer is None:
        return
    from opentelemetry.trace import SpanKind, StatusCode

    end = time.time_ns()
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "graft.tool.outcome": "error" if is_error else "ok",
        "graft.tool.duration_ms": round(duration_ms, 3),
    }
    start = end - int(duration_ms * 1_000_000)
    span = _child(ctx, f"execute_tool {name}", attributes, kind=SpanKind.INTERNAL, start_time=start)
    assert span is not None
    if is_error:
        span.set_status(StatusCode.ERROR)
    span.end(end_time=end)
