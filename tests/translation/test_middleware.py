"""The translate middleware and tool end to end: graft's real run_turn, the fake translation
service on 127.0.0.1 (conftest.py), and a FakeModel or FunctionModel as the chat model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from graft.config import Settings
from graft.errors import ConfigError
from graft.events import ErrorEvent, Event, TextDelta, ToolResult, TurnDone
from graft.messages import Message
from graft.models.base import Model, ModelRequest
from graft.runtime import Graft
from graft.testing import FakeModel, FunctionModel, MemoryStore, call
from graft.translation.middleware import notice
from graft.translation.service import options
from graft.turn import TurnRequest

ANSWER = "Your order shipped yesterday. It will arrive on Friday. Anything else?"
ANSWER_ZH = ["您的订单昨天已发货。", "它将在周五到达。", "还有别的吗？"]


@pytest.fixture
async def start(settings_factory: Callable[..., Settings]) -> AsyncIterator[Any]:
    opened: list[Graft] = []

    async def make(model: Model, assistant: dict[str, Any] | None = None, **plugin: Any) -> Graft:
        settings = settings_factory(
            model=model.id,
            assistants={"default": assistant or {"middleware": ["translate"]}},
            plugins={"translate": plugin},
        )
        graft = Graft(
            settings,
            store=MemoryStore(),
            entry_points=False,
            models={model.id: model},
        )
        await graft.start()
        opened.append(graft)
        return graft

    yield make
    for graft in opened:
        await graft.aclose()


def service_settings(service: Any, **more: Any) -> dict[str, Any]:
    return {
        "backend": "libretranslate",
        "url": service.url,
        "allow_hosts": ["127.0.0.1"],
        **more,
    }


async def turn(graft: Graft, *messages: Message) -> list[Event]:
    request = TurnRequest("default", list(messages))
    return [event async for event in graft.run_turn(request, graft.principal_for())]


def deltas(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def test_a_chinese_user_talks_to_an_english_model(start: Any, service: Any) -> None:
    model = FakeModel(ANSWER)
    graft = await start(model, **service_settings(service))
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    sent = model.requests[0].messages
    assert sent[-1] == Message("user", "Where is my order?")
    assert "The user writes in Simplified Chinese" in (sent[0].content or "")
    # The answer comes back one translated sentence per delta, in order.
    assert deltas(events) == ANSWER_ZH
    assert isinstance(events[-1], TurnDone) and events[-1].finish_reason == "stop"
    # The store keeps what the user wrote and what the user saw.
    conversation = events[0].conversation_id  # type: ignore[union-attr]
    stored = await graft.store.load_history(conversation, graft.principal_for())
    assert [m.content for m in stored] == ["我的订单在哪里？", "".join(ANSWER_ZH)]


async def test_the_history_reaches_the_model_in_english_translated_once(
    start: Any, service: Any
) -> None:
    model = FakeModel("OK.", "OK.")
    graft = await start(model, **service_settings(service))
    history = [
        Message("user", "我的订单在哪里？"),
        Message("assistant", "它将在周五到达。"),
        Message("user", "谢谢你的帮助。"),
    ]
    await turn(graft, *history)
    assert [m.content for m in model.requests[0].messages[1:]] == [
        "Where is my order?",
        "<en>它将在周五到达。",
        "Thank you for your help.",
    ]
    asked = len(service.texts)
    await turn(graft, *history, Message("assistant", "好的。"), Message("user", "好的，明白了。"))
    assert model.requests[1].messages[-1].content == "OK, understood."
    assert len(service.texts) - asked <= 3  # the earlier messages came from the cache


async def test_an_english_user_is_left_alone(start: Any, service: Any) -> None:
    model = FakeModel(ANSWER)
    graft = await start(model, **service_settings(service))
    events = await turn(graft, Message("user", "Where is my order?"))
    assert model.requests[0].messages[-1].content == "Where is my order?"
    assert "".join(deltas(events)) == ANSWER
    assert service.requests == []


async def test_a_broken_service_shows_the_original_with_a_notice(start: Any, service: Any) -> None:
    service.status = 503
    model = FakeModel(ANSWER)
    graft = await start(model, **service_settings(service))
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    # The model got the user's own words: nothing was dropped.
    assert model.requests[0].messages[-1].content == "我的订单在哪里？"
    # A visible notice, once, without the service's address or its error text (logged).
    assert "".join(deltas(events)) == (
        "[翻译不可用，以下为原文 / translation unavailable: LibreTranslate answered HTTP 503]\n"
        + ANSWER
    )


async def test_a_failure_mid_answer_switches_to_the_original_once(start: Any, service: Any) -> None:
    service.broken = {"It will arrive on Friday."}
    model = FakeModel(ANSWER)
    graft = await start(model, **service_settings(service))
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    shown = deltas(events)
    assert shown[0] == ANSWER_ZH[0]
    assert "translation unavailable" in shown[1] and "HTTP 500" in shown[1]
    assert shown[1].startswith("\n[")  # on a line of its own
    assert "".join(shown[2:]) == "It will arrive on Friday. Anything else?"


async def test_a_slow_service_times_out_visibly(start: Any, service: Any) -> None:
    model = FakeModel(ANSWER)
    graft = await start(model, **service_settings(service, timeout=0.3))
    await turn(graft, Message("user", "我的订单在哪里？"))  # fills the cache for the input
    service.delay = 3.0
    started = time.perf_counter()
    model.add("Please wait a day. It is on its way.")  # not cached: the service is asked
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    assert time.perf_counter() - started < 2.5
    text = "".join(deltas(events))
    assert "did not answer within 0.3 s" in text
    assert text.endswith("]\nPlease wait a day. It is on its way.")
    assert text.count("translation unavailable") == 1


async def test_code_blocks_stay_as_they_are(start: Any, service: Any) -> None:
    answer = "Anything else?\n```\nprint('Hello')\n```\n"
    graft = await start(FakeModel(answer), **service_settings(service))
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    assert "".join(deltas(events)) == "还有别的吗？\n```\nprint('Hello')\n```\n"


async def test_the_model_answering_in_the_users_language_is_not_retranslated(
    start: Any, service: Any
) -> None:
    graft = await start(FakeModel("好的。Anything else?"), **service_settings(service))
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    assert "".join(deltas(events)) == "好的。还有别的吗？"
    assert "好的。" not in service.texts


async def test_the_tool_translates_for_the_model(start: Any, service: Any) -> None:
    model = FakeModel(call("translate", text="Hello", target_lang="Chinese"), "Done.")
    assistant = {"tools": ["translate"]}
    graft = await start(model, assistant, **service_settings(service))
    events = await turn(graft, Message("user", "Say hello in Chinese"))
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert not result.is_error
    assert '"text": "你好"' in result.content and '"target_lang": "zh"' in result.content
    bad = FakeModel(call("translate", text="Hello", target_lang="Klingon please"), "x")
    graft = await start(bad, assistant, **service_settings(service))
    (result,) = [e for e in await turn(graft, Message("user", "hi")) if isinstance(e, ToolResult)]
    assert result.is_error and "target_lang" in result.content


async def test_the_tool_is_offered_only_when_asked_for(start: Any, service: Any) -> None:
    graft = await start(FakeModel("x"), **service_settings(service))
    ctx = graft.context(graft.principal_for(), "default")
    assert "translate" not in [t.name for t in (await graft.toolbox(ctx)).definitions]
    graft = await start(FakeModel("x"), {"tools": ["translate"]}, **service_settings(service))
    ctx = graft.context(graft.principal_for(), "default")
    assert "translate" in [t.name for t in (await graft.toolbox(ctx)).definitions]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ({"colour": "red"}, "unknown setting plugins.translate.colour"),
        ({"backend": "libretranslate"}, "url is required"),
        ({"backend": "deepl"}, "api_key is required"),
        ({"backend": "bing"}, "backend must be one of"),
        ({"working_language": "elvish tongue"}, "working_language"),
        ({"timeout": 0}, "timeout must be"),
        ({"allow_hosts": "127.0.0.1"}, "allow_hosts must be a list"),
    ],
)
async def test_bad_settings_are_named_and_fail_the_turn(
    start: Any, plugin: dict[str, Any], message: str
) -> None:
    graft = await start(FakeModel("x"), **plugin)
    with pytest.raises(ConfigError, match=message):
        options(graft.context(graft.principal_for(), "default"))
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    assert [type(e) for e in events[-2:]] == [ErrorEvent, TurnDone]


def _translating_model(request: ModelRequest) -> str | list[str]:
    """A chat model that also serves as the translator (its translation prompt tells)."""
    system = request.messages[0].content or ""
    if "translation engine" in system:
        text = "\n".join((request.messages[1].content or "").splitlines()[1:-1])
        target = "zh" if "into Simplified Chinese" in system else "en"
        return f"<{target}>{text}"
    return "Your order shipped yesterday. Anything else?"


async def test_the_chat_model_itself_can_translate(start: Any) -> None:
    model = FunctionModel(_translating_model)
    graft = await start(model, backend="model")
    events = await turn(graft, Message("user", "我的订单在哪里？"))
    chat = [r for r in model.requests if "translation engine" not in (r.messages[0].content or "")]
    assert chat[0].messages[-1].content == "<en>我的订单在哪里？"
    assert deltas(events) == ["<zh>Your order shipped yesterday.", "<zh>Anything else?"]


async def test_a_chinese_assistant_serves_an_english_user(start: Any, service: Any) -> None:
    model = FakeModel("还有别的吗？")
    assistant = {
        "middleware": ["translate"],
        "plugins": {"translate": {"working_language": "zh-CN"}},  # over [plugins.translate]
    }
    graft = await start(model, assistant, **service_settings(service))
    events = await turn(graft, Message("user", "Hello"))
    assert model.requests[0].messages[-1].content == "你好"
    assert "answer in Simplified Chinese" in (model.requests[0].messages[0].content or "")
    assert deltas(events) == ["<en>还有别的吗？"]


def test_the_notice_is_english_for_other_users() -> None:
    assert notice("DeepL answered HTTP 456", "fr") == (
        "[translation unavailable: DeepL answered HTTP 456; showing the original text]\n"
    )
