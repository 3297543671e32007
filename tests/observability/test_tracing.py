"""Spans of a real HTTP chat turn: request ⟶ turn ⟶ model calls and tool calls, no text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from graft import telemetry
from graft.errors import ConfigError
from graft.testing import FakeModel, call

SECRET_TEXT = "my passport number is X1234567"


def chat(url: str, text: str, **headers: str) -> httpx.Response:
    body = {"model": "default", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def all_values(spans: tuple[ReadableSpan, ...]) -> str:
    return json.dumps([dict(span.attributes or {}) for span in spans], default=str)


def test_turn_model_and_tool_spans_nest_under_the_request(traced: Any) -> None:
    url, exporter = traced(FakeModel([call("calculator", expression="6*7")], "It is 42."))
    answer = chat(url, f"{SECRET_TEXT}. What is 6*7?")
    assert answer.json()["choices"][0]["message"]["content"] == "It is 42."

    spans = exporter.get_finished_spans()
    named = by_name(spans)
    turn = named["graft.turn"]
    model_calls = [s for s in spans if s.name == "chat fake"]
    tool = named["execute_tool calculator"]
    [request] = [s for s in spans if s.kind == SpanKind.SERVER]

    assert len(model_calls) == 2  # the tool call, then the answer
    assert turn.parent is not None and turn.parent.span_id == request.context.span_id
    for child in [*model_calls, tool]:
        assert child.parent is not None and child.parent.span_id == turn.context.span_id
        assert child.context.trace_id == request.context.trace_id

    assert turn.attributes is not None
    assert turn.attributes["graft.assistant"] == "default"
    assert turn.attributes["gen_ai.system"] == "test"
    assert turn.attributes["gen_ai.request.model"] == "fake"
    assert turn.attributes["gen_ai.conversation.id"] == answer.json()["conversation_id"]
    assert turn.attributes["graft.turn.id"] == answer.json()["turn_id"]
    assert turn.attributes["graft.finish_reason"] == "stop"

    first, second = sorted(model_calls, key=lambda s: s.start_time or 0)
    assert first.kind == SpanKind.CLIENT
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert first.attributes["gen_ai.usage.input_tokens"] > 0
    assert second.attributes["gen_ai.usage.output_tokens"] == 3  # "It is 42."
    usage = answer.json()["usage"]
    assert turn.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]

    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["graft.tool.outcome"] == "ok"
    assert tool.attributes["graft.tool.duration_ms"] >= 0
    assert tool.start_time is not None and first.end_time is not None
    assert first.end_time <= tool.start_time <= (second.start_time or 0)

    # Ids, names and counts only: neither the user's text nor the tool's arguments.
    values = all_values(spans)
    assert "passport" not in values and "X1234567" not in values and "6*7" not in values


def test_a_failing_tool_and_a_failing_turn_are_marked(traced: Any) -> None:
    url, exporter = traced(FakeModel([call("calculator", expression="1/0")], RuntimeError("x")))
    body = {"model": "default", "messages": [{"role": "user", "content": "1/0?"}]}
    httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    named = by_name(exporter.get_finished_spans())
    tool = named["execute_tool calculator"]
    assert tool.attributes is not None and tool.attributes["graft.tool.outcome"] == "error"
    assert tool.status.status_code == StatusCode.ERROR
    assert named["chat fake"].status.status_code == StatusCode.ERROR
    turn = named["graft.turn"]
    assert turn.status.status_code == StatusCode.ERROR
    assert turn.attributes is not None and turn.attributes["error.type"] == "turn_failed"


def test_an_incoming_traceparent_makes_graft_join_the_callers_trace(traced: Any) -> None:
    url, exporter = traced(FakeModel("hello"))
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    chat(url, "hi", traceparent=f"00-{trace_id}-{parent_id}-01")
    spans = exporter.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in spans} == {trace_id}
    [request] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert request.parent is not None and f"{request.parent.span_id:016x}" == parent_id
    assert request.parent.is_remote


def test_spans_reach_an_otlp_http_receiver_as_protobuf(traced: Any, otlp_receiver: Any) -> None:
    url, _ = traced(FakeModel("hello"))
    chat(url, "hi")
    telemetry.shutdown_tracing()  # flushes the batch
    assert otlp_receiver.posts, "the receiver got nothing"
    path, content_type, body = otlp_receiver.posts[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    export = ExportTraceServiceRequest.FromString(body)
    [resource] = export.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "graft"
    names = {span.name for scope in resource.scope_spans for span in scope.spans}
    assert {"graft.turn", "chat fake"} <= names


def test_tracing_is_off_by_default_and_loads_no_sdk() -> None:
    """A whole HTTP turn with default settings, in a fresh interpreter."""
    script = """
import sys
from fastapi.testclient import TestClient
from graft.runtime import Graft
from graft.config import load_settings
from graft.server import create_app
from graft.testing import FakeModel, MemoryStore
import graft.telemetry as telemetry

model = FakeModel("hello")
graft = Graft(load_settings(model=model.id, home=sys.argv[1]), store=MemoryStore(),
              entry_points=False, models={model.id: model})
with TestClient(create_app(graft)) as client:
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
assert telemetry._tracer is None
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk",
      "opentelemetry.exporter", "opentelemetry.proto"))))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, "home"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_bad_otlp_endpoint_is_refused(settings_factory: Any) -> None:
    with pytest.raises(ConfigError, match="telemetry.otlp_endpoint.*not an OTLP/HTTP URL"):
        settings_factory(telemetry={"traces": "otlp", "otlp_endpoint": "collector:4318"})


def test_serve_refuses_tracing_without_its_extra_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from click.testing import CliRunner

    from graft.cli import cli

    real = importlib.util.find_spec

    def missing_exporter(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.startswith("opentelemetry.exporter") else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", missing_exporter)
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path))
    monkeypatch.setenv("GRAFT_TELEMETRY__TRACES", "otlp")
    result = CliRunner().invoke(cli, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert 'pip install "graft[observability]"' in result.output
    assert "Traceback" not in result.output
