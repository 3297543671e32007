from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from graft.context import Context, Principal
from graft.errors import (
    ConfigError,
    ConversationNotFound,
    InvalidRequest,
    ModelError,
    PermissionDenied,
    UnknownAssistant,
)
from graft.events import Event, TextDelta, TurnDone
from graft.hookspecs import hookimpl
from graft.messages import Message
from graft.middleware import Middleware, TextMiddleware
from graft.models.base import ModelRequest
from graft.runtime import Graft
from graft.testing import FakeModel, FunctionModel, call
from graft.tools.base import ToolDef
from graft.turn import TurnRequest


async def collect(
    graft: Graft, request: TurnRequest, principal: Principal | None = None
) -> list[Event]:
    return [e async for e in graft.run_turn(request, principal or graft.principal_for())]


def ask(text: str, conversation_id: str | None = None, assistant: str = "default") -> TurnRequest:
    return TurnRequest(assistant, [Message("user", text)], conversation_id)


async def test_user_message_is_stored_before_the_model_is_called(started) -> None:
    seen: list[list[Message]] = []
    graft: Graft

    async def inspect_store(request: ModelRequest) -> str:
        infos = await graft.store.list_conversations(graft.principal_for())
        seen.append(await graft.store.load_history(infos[0].id, graft.principal_for()))
        return "ok"

    graft = await started(FunctionModel(inspect_store))
    await collect(graft, ask("remember me"))
    assert [(m.role, m.content) for m in seen[0]] == [("user", "remember me")]


async def test_failed_turn_is_stored_as_failed_with_its_error(started) -> None:
    graft = await started(FakeModel(ModelError("upstream said no")))
    events = await collect(graft, ask("hello"))
    conversation_id = events[0].conversation_id  # type: ignore[union-attr]
    _, messages, turns = await graft.store.get_conversation(conversation_id, graft.principal_for())
    assert [m.message.content for m in messages] == ["hello"]
    assert turns[0].status == "failed" and turns[0].error == "upstream said no"


async def test_conversation_continues_with_stored_history(started) -> None:
    model = FakeModel([call("calculator", expression="2+2")], "four", "you asked 2+2")
    graft = await started(model)
    first = await collect(graft, ask("what is 2+2"))
    conversation_id = first[0].conversation_id  # type: ignore[union-attr]
    await collect(graft, ask("what did I ask?", conversation_id))
    roles = [m.role for m in model.requests[-1].messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    _, messages, turns = await graft.store.get_conversation(conversation_id, graft.principal_for())
    assert len(messages) == 6 and [t.status for t in turns] == ["done", "done"]
    assert turns[0].tool_runs[0].name == "calculator" and turns[0].tool_runs[0].result


async def test_another_users_conversation_does_not_exist(started) -> None:
    graft = await started(FakeModel("a", "b"))
    first = await collect(graft, ask("mine"))
    conversation_id = first[0].conversation_id  # type: ignore[union-attr]
    with pytest.raises(ConversationNotFound):
        await collect(graft, ask("steal", conversation_id), Principal("mallory"))


async def test_request_errors_raise_before_any_event(started) -> None:
    graft = await started(FakeModel())
    with pytest.raises(UnknownAssistant):
        await collect(graft, ask("x", assistant="gpt-4"))
    with pytest.raises(InvalidRequest, match="at least one"):
        await collect(graft, TurnRequest("default", []))
    with pytest.raises(InvalidRequest, match="last message"):
        await collect(graft, TurnRequest("default", [Message("assistant", "hi")]))
    clash = TurnRequest("default", [Message("user", "x")], client_tools=[ToolDef("calculator", "")])
    with pytest.raises(InvalidRequest, match="clashes"):
        await collect(graft, clash)
    assert await graft.store.list_conversations(graft.principal_for()) == []


async def test_assistant_roles_and_allowed_tools(started) -> None:
    model = FakeModel("hi")
    graft = await started(
        model,
        assistants={"hr": {"roles": ["hr"], "tools": ["current_time"], "system_prompt": "HR bot"}},
    )
    with pytest.raises(PermissionDenied):
        await collect(graft, ask("x", assistant="hr"), Principal("bob", frozenset({"staff"})))
    await collect(graft, ask("x", assistant="hr"), Principal("ann", frozenset({"hr"})))
    request = model.requests[0]
    assert [t.name for t in request.tools] == ["current_time"]
    assert request.messages[0].content.startswith("HR bot")


class Shout(Middleware):
    name = "shout"

    async def on_input(self, messages: list[Message], ctx: Context) -> list[Message]:
        ctx.state["seen_user"] = ctx.principal.user_id
        return [*messages[:-1], Message("user", (messages[-1].content or "") + " (politely)")]

    async def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:  # type: ignore[override]
        async for event in events:
            yield TextDelta(event.text.upper()) if isinstance(event, TextDelta) else event


class MiddlewarePlugin:
    @hookimpl
    def register_middleware(self, register: Callable[..., None]) -> None:
        register(Shout())
        register(TextMiddleware("stars", lambda text, ctx: text.replace("E", "*")))


async def test_middleware_sees_input_and_the_output_stream_in_order(started) -> None:
    model = FakeModel("hello there")
    graft = await started(
        model,
        plugins=(MiddlewarePlugin(),),
        assistants={"default": {"middleware": ["shout", "stars"]}},
    )
    events = await collect(graft, ask("hi"))
    assert model.requests[0].messages[-1].content == "hi (politely)"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "H*LLO TH*R*"
    conversation_id = events[0].conversation_id  # type: ignore[union-attr]
    history = await graft.store.load_history(conversation_id, graft.principal_for())
    assert history[0].content == "hi"  # what the user typed is stored unchanged
    assert history[1].content == "H*LLO TH*R*"  # the answer is stored as the client saw it


class Redact(Middleware):
    """Buffers the whole answer and drops digits: it merges text runs across tool steps."""

    name = "redact"

    async def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:  # type: ignore[override]
        buffered = []
        async for event in events:
            if isinstance(event, TextDelta):
                buffered.append(event.text)
            elif isinstance(event, TurnDone):
                yield TextDelta("".join(ch for ch in "".join(buffered) if not ch.isdigit()))
                yield event
            else:
                yield event


class RedactPlugin:
    @hookimpl
    def register_middleware(self, register: Callable[..., None]) -> None:
        register(Redact())


async def test_redacted_text_never_reaches_the_store(started) -> None:
    model = FakeModel(["Call 555 0100, ", call("current_time")], "or 555 0199.")
    graft = await started(
        model, plugins=(RedactPlugin(),), assistants={"default": {"middleware": ["redact"]}}
    )
    events = await collect(graft, ask("phone?"))
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "Call  , or  ."
    conversation_id = events[0].conversation_id  # type: ignore[union-attr]
    history = await graft.store.load_history(conversation_id, graft.principal_for())
    stored = " ".join(m.content or "" for m in history if m.role == "assistant")
    assert not any(ch.isdigit() for ch in stored) and "Call" in stored
    assert history[1].tool_calls[0].name == "current_time"


async def test_unknown_middleware_or_provider_is_a_config_error(graft_factory) -> None:
    with pytest.raises(ConfigError, match="no middleware named 'nope'"):
        graft_factory(FakeModel(), assistants={"default": {"middleware": ["nope"]}}).check()
    with pytest.raises(ConfigError, match="no model provider 'acme'"):
        graft_factory(assistants={"x": {"model": "acme:big"}}).check()


async def test_client_going_away_marks_the_turn_failed(started) -> None:
    graft = await started(FakeModel("one two three four"))
    stream = graft.run_turn(ask("x"), graft.principal_for())
    started_event = await anext(stream)
    await anext(stream)
    await stream.aclose()
    _, _, turns = await graft.store.get_conversation(
        started_event.conversation_id,
        graft.principal_for(),  # type: ignore[union-attr]
    )
    assert turns[0].status == "interrupted" and "went away" in (turns[0].error or "")


async def test_usage_is_summed_over_steps(started) -> None:
    graft = await started(FakeModel([call("calculator", expression="1+1")], "two"))
    events = await collect(graft, ask("1+1"))
    done = events[-1]
    assert isinstance(done, TurnDone) and done.usage.prompt_tokens > 0
    conversation_id = events[0].conversation_id  # type: ignore[union-attr]
    _, _, turns = await graft.store.get_conversation(conversation_id, graft.principal_for())
    assert turns[0].usage.total_tokens == done.usage.total_tokens
