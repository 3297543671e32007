from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from graft.config import AssistantSettings, Settings, load_settings
from graft.context import Context, Principal
from graft.default_plugins.redact_pii import RedactPII
from graft.errors import ConfigError
from graft.events import Event, TextDelta, ToolCallStarted, TurnDone
from graft.hookspecs import hookimpl
from graft.messages import Message
from graft.redaction import redact
from graft.runtime import Graft
from graft.testing import FakeModel, MemoryStore, call
from graft.tools.function import tool
from graft.turn import TurnRequest

Start = Callable[..., Awaitable[Graft]]

ID = "11010519491231002X"
USER_TEXT = (
    f"我的手机号是13800138000谢谢，邮箱ann@example.com，身份证{ID}，卡号4111 1111 1111 1111。"
)
USER_REDACTED = "我的手机号是[phone]谢谢，邮箱[email]，身份证[id number]，卡号[card number]。"


@tool
def find_customer(name: str, note: str = "") -> dict[str, str]:
    """Look a customer up by name.

    Args:
        name: The customer's name.
        note: Why.
    """
    return {"name": name, "phone": "+86 138 0013 8000", "email": "li.wei@example.cn"}


class CustomerPlugin:
    @hookimpl
    def register_tools(self, register: Callable[..., None]) -> None:
        register(find_customer)


@pytest.fixture
async def redacting(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Awaitable[Graft]]]:
    """Start a Graft whose default assistant runs ``redact_pii`` with the given settings.

    (The ``started`` fixture cannot pass ``plugins`` settings: its ``plugins`` are objects.)
    """
    opened: list[Graft] = []

    async def start(
        model: FakeModel,
        *,
        plugins: tuple[object, ...] = (),
        system_prompt: str = "You are a helpful assistant.",
        **plugin_config: Any,
    ) -> Graft:
        settings = settings_factory(
            model=model.id,
            assistants={"default": {"middleware": ["redact_pii"], "system_prompt": system_prompt}},
            plugins={"redact_pii": plugin_config},
        )
        graft = Graft(
            settings,
            store=MemoryStore(),
            plugins=plugins,
            entry_points=False,
            models={model.id: model},
        )
        await graft.start()
        opened.append(graft)
        return graft

    yield start
    for graft in opened:
        await graft.aclose()


async def collect(graft: Graft, text: str, conversation_id: str | None = None) -> list[Event]:
    request = TurnRequest("default", [Message("user", text)], conversation_id)
    return [event async for event in graft.run_turn(request, graft.principal_for())]


def shown(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def conversation_of(events: list[Event]) -> str:
    return events[0].conversation_id  # type: ignore[union-attr]


async def test_it_is_a_default_plugin(redacting: Start) -> None:
    graft = await redacting(FakeModel())
    middleware, plugin = graft.registry.middleware["redact_pii"]
    assert isinstance(middleware, RedactPII)
    assert plugin == "graft.default_plugins.redact_pii"


async def test_the_model_sees_redacted_text_and_the_store_keeps_the_original(
    redacting: Start,
) -> None:
    model = FakeModel("好的。")
    graft = await redacting(model)
    events = await collect(graft, USER_TEXT)
    assert model.requests[0].messages[-1].content == USER_REDACTED
    history = await graft.store.load_history(conversation_of(events), graft.principal_for())
    assert history[0].content == USER_TEXT


async def test_system_prompt_history_tool_calls_and_results_are_redacted(
    redacting: Start,
) -> None:
    model = FakeModel([call("find_customer", name="李伟", note="ask ann@example.com")], "Found.")
    model.add("Done.")
    graft = await redacting(
        model, plugins=(CustomerPlugin(),), system_prompt="Escalate to ops@acme.example.com."
    )
    first = await collect(graft, "Who is 李伟?")
    await collect(graft, "Thanks, and 13800138000 is mine.", conversation_of(first))
    messages = model.requests[-1].messages
    assert [m.role for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    system, _, calling, result, _, user = messages
    assert "[email]" in (system.content or "") and "acme" not in (system.content or "")
    assert user.content == "Thanks, and [phone] is mine."
    # The call keeps its id, name and JSON shape; only strings inside it are redacted.
    (redacted_call,) = calling.tool_calls
    assert redacted_call.name == "find_customer" and redacted_call.id == result.tool_call_id
    assert json.loads(redacted_call.arguments) == {"name": "李伟", "note": "ask [email]"}
    assert "[phone]" in (result.content or "") and "[email]" in (result.content or "")
    assert "138" not in (result.content or "") and "li.wei" not in (result.content or "")
    # The store still holds the call and the result as they were.
    history = await graft.store.load_history(conversation_of(first), graft.principal_for())
    assert "ann@example.com" in history[1].tool_calls[0].arguments
    assert "+86 138 0013 8000" in (history[2].content or "")


async def test_kinds_choose_what_is_redacted(redacting: Start) -> None:
    model = FakeModel("ok")
    graft = await redacting(model, kinds=["email", "cn_id"])
    await collect(graft, USER_TEXT)
    assert model.requests[0].messages[-1].content == (
        "我的手机号是13800138000谢谢，邮箱[email]，身份证[id number]，卡号4111 1111 1111 1111。"
    )


async def test_output_is_left_alone_unless_configured(redacting: Start) -> None:
    graft = await redacting(FakeModel("Call 13800138000."))
    assert shown(await collect(graft, "number?")) == "Call 13800138000."


async def test_output_redaction_joins_items_split_across_deltas(redacting: Start) -> None:
    # FakeModel streams each string word by word, so the phone number arrives as
    # "138 " "00" | "13 " "8000 " and the address as "ann@exa" | "mple.com ".
    model = FakeModel(["Call 138 00", "13 8000 or ann@exa", "mple.com now.", "谢谢"])
    graft = await redacting(model, output=True)
    events = await collect(graft, "How do I reach Ann?")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "Call [phone] or [email] now.谢谢"
    assert not any("138" in d or "exa" in d or "mple" in d for d in deltas)
    assert len(deltas) > 1, "text is streamed, not held back to the end"
    history = await graft.store.load_history(conversation_of(events), graft.principal_for())
    assert history[-1].content == "Call [phone] or [email] now.谢谢"  # stored as shown


async def test_held_text_is_flushed_before_the_next_event(redacting: Start) -> None:
    model = FakeModel(["My number is 13800138000", call("current_time")], "Done.")
    graft = await redacting(model, output=True)
    events = await collect(graft, "time?")
    tool_at = next(i for i, e in enumerate(events) if isinstance(e, ToolCallStarted))
    assert shown(events[:tool_at]) == "My number is [phone]"
    assert shown(events[tool_at:]) == "Done." and isinstance(events[-1], TurnDone)


@pytest.mark.parametrize(
    "config",
    [{"kinds": ["email", "passport"]}, {"kinds": "email"}, {"output": "yes"}, {"outputs": True}],
)
async def test_a_bad_setting_fails_the_turn_before_the_model_is_called(
    redacting: Start, config: dict[str, Any]
) -> None:
    model = FakeModel("should not be called")
    graft = await redacting(model, **config)
    # The store setting is read before the question is stored: nothing is.
    with pytest.raises(ConfigError):
        await collect(graft, USER_TEXT)
    assert model.requests == []
    assert await graft.store.list_conversations(graft.principal_for()) == []


# --- the output stream, property-style ------------------------------------------------

PIECES = (
    "13800138000",
    "+86 138 0013 8000",
    "010-12345678",
    "+1 (415) 555-2671",
    "ann@example.com",
    ID,
    "4111 1111 1111 1111",
    "6212260200000000006",
    "4111111111111112",
    "2024-01-15",
    "3.5",
    "v1.2.3",
    "hello ",
    "world",
    "谢谢",
    "电话：",
    "，",
    " ",
    "-",
    ".",
    "(",
    "+",
    "@",
    "7",
    "\n",
)


async def run_output(deltas: list[str], settings: Settings | None = None) -> list[Event]:
    settings = settings or load_settings(plugins={"redact_pii": {"output": True}})
    ctx = Context(Principal("ann"), settings, "default", AssistantSettings())

    async def events() -> AsyncIterator[Event]:
        for text in deltas:
            yield TextDelta(text)
        yield TurnDone("stop")

    return [event async for event in RedactPII().on_output(events(), ctx)]


async def test_settings_may_come_from_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAFT_PLUGINS__REDACT_PII__OUTPUT", "true")
    monkeypatch.setenv("GRAFT_PLUGINS__REDACT_PII__KINDS", '["phone"]')
    events = await run_output(["Call 13800138000 or ann@example.com."], load_settings())
    assert shown(events) == "Call [phone] or ann@example.com."


async def test_any_split_into_deltas_redacts_like_the_whole_text() -> None:
    rng = random.Random(11)
    for _ in range(500):
        text = "".join(rng.choices(PIECES, k=rng.randint(1, 10)))
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 8))))
        deltas = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        events = await run_output(deltas)
        assert shown(events) == redact(text).text, deltas
        assert isinstance(events[-1], TurnDone)
        assert all(e.text for e in events if isinstance(e, TextDelta)), "no empty deltas"


async def test_a_very_long_token_is_not_held_forever() -> None:
    events = await run_output(["x" * 400, "y" * 400, "z" * 400])
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) > 1 and max(len(t) for t in texts) <= 512
    assert "".join(texts) == "x" * 400 + "y" * 400 + "z" * 400


async def test_store_keeps_personal_data_out_of_the_database(
    redacting: Callable[..., Awaitable[Graft]],
) -> None:
    # store = true: the database never holds the number, neither the question's (which the
    # model gets redacted, as always) nor the answer's (shown as it is: output is off).
    model = FakeModel("Your number 13800138000 is noted.")
    graft = await redacting(model, store=True, kinds=["phone"])
    principal = graft.principal_for()
    request = TurnRequest("default", [Message("user", "call me on 13800138000")])
    events = [e async for e in graft.run_turn(request, principal)]
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "13800138000" in shown  # output redaction is off
    assert model.requests[0].messages[-1].content == "call me on [phone]"
    conversation = events[0].conversation_id  # type: ignore[union-attr]
    info, stored, _ = await graft.store.get_conversation(conversation, principal)
    assert [m.message.content for m in stored] == [
        "call me on [phone]",
        "Your number [phone] is noted.",
    ]
    assert info.title == "call me on [phone]"


async def test_a_bad_store_setting_fails_before_anything_is_stored(
    redacting: Callable[..., Awaitable[Graft]],
) -> None:
    graft = await redacting(FakeModel("x"), store="sometimes")
    request = TurnRequest("default", [Message("user", "13800138000")])
    with pytest.raises(ConfigError, match="store must be true or false"):
        [e async for e in graft.run_turn(request, graft.principal_for())]
    assert await graft.store.list_conversations(graft.principal_for()) == []
