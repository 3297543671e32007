"""The sentiment plugin end to end: middleware, stored tags, stream events, escalation, tool,
REST report, driven through the real server with the official openai client and the real e5
model (a FakeModel stands in for the chat model only)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from graft.default_plugins.sentiment.base import Sentiment
from graft.default_plugins.sentiment.plugin import analyzer_for, instruction_for
from graft.errors import ConfigError
from graft.events import ToolResult
from graft.messages import Message
from graft.testing import FakeModel, call
from graft.turn import TurnRequest
from graft.webhooks import verify_signature

ANGRY = "This is the third time your app lost my order. I am furious, fix it now!"
UPSET = "这已经是第三次了，你们的服务太差了，我非常失望。"
HAPPY = "Thank you so much, that worked perfectly!"


@pytest.fixture
def serve(graft_factory: Any, live_server: Any) -> Any:
    def start(model: FakeModel, **plugin: Any) -> tuple[Any, Any, openai.OpenAI]:
        assistants = {"support": {"middleware": ["sentiment"], "plugins": {"sentiment": plugin}}}
        graft = graft_factory(model, assistants=assistants)
        server = live_server(graft)
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        return graft, server, client

    return start


def _system(model: FakeModel) -> str:
    return model.requests[-1].messages[0].content or ""


def test_messages_are_tagged_shown_in_the_stream_and_stored(serve: Any) -> None:
    model = FakeModel("Sorry about that.", "Glad to help!")
    graft, server, client = serve(model)
    stream = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": ANGRY}], stream=True
    )
    chunks = list(stream)
    notes = [c.model_extra["graft"] for c in chunks if (c.model_extra or {}).get("graft")]
    assert notes[0]["event"] == "sentiment"
    assert notes[0]["label"] == "negative" and notes[0]["backend"] == "e5"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Sorry about that."
    )
    # The instruction reached the model's system prompt.
    assert "The user seems" in _system(model)
    conversation = chunks[0].model_extra["conversation_id"]
    # A happy message in the same conversation: no instruction, a positive tag.
    done = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": HAPPY}],
        extra_body={"conversation_id": conversation},
    )
    assert done.model_extra["graft"]["sentiment"]["label"] == "positive"
    assert "The user seems" not in _system(model)
    detail = httpx.get(f"{server.url}/v1/conversations/{conversation}").json()
    users = [m for m in detail["messages"] if m["role"] == "user"]
    assert [m["sentiment"]["label"] for m in users] == ["negative", "positive"]
    assistants = [m for m in detail["messages"] if m["role"] == "assistant"]
    assert all(m.get("sentiment") is None for m in assistants)


def test_instructions_can_be_turned_off_per_assistant(serve: Any) -> None:
    model = FakeModel("ok")
    _, _, client = serve(model, instructions=False)
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": UPSET}])
    assert "The user seems" not in _system(model)


def test_negative_messages_in_a_row_escalate_audited(serve: Any) -> None:
    model = FakeModel("a", "b", "c")
    graft, server, client = serve(model, escalate_after=2)
    first = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": ANGRY}]
    )
    assert "escalation" not in first.model_extra["graft"]
    conversation = first.model_extra["conversation_id"]
    second = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": UPSET}],
        extra_body={"conversation_id": conversation},
    )
    escalation = second.model_extra["graft"]["escalation"]
    assert escalation["negative_in_a_row"] == 2
    assert "hand the conversation over to a person" in _system(model)
    records = httpx.get(f"{server.url}/v1/admin/audit").json()["data"]
    escalations = [r for r in records if r["action"] == "sentiment.escalation"]
    assert escalations and escalations[-1]["target"] == f"conversation:{conversation}"
    # A happy message breaks the run.
    third = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": HAPPY}],
        extra_body={"conversation_id": conversation},
    )
    assert "escalation" not in third.model_extra["graft"]


def test_stateless_history_counts_for_the_rule(serve: Any) -> None:
    model = FakeModel("x")
    _, _, client = serve(model, escalate_after=2)
    history = [
        {"role": "user", "content": ANGRY},
        {"role": "assistant", "content": "Sorry."},
        {"role": "user", "content": UPSET},
    ]
    answer = client.chat.completions.create(model="support", messages=history)
    assert answer.model_extra["graft"]["escalation"]["negative_in_a_row"] == 2


def test_report_over_rest(serve: Any) -> None:
    model = FakeModel("a", "b")
    _, server, client = serve(model)
    for text in (ANGRY, HAPPY):
        client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": text}]
        )
    report = httpx.get(f"{server.url}/v1/sentiment", params={"bucket": "day"}).json()
    (point,) = report["data"]
    assert (point["assistant"], point["negative"], point["positive"]) == ("support", 1, 1)
    bad = httpx.get(f"{server.url}/v1/sentiment", params={"bucket": "year"})
    assert bad.status_code == 400 and "bucket" in bad.text
    later = httpx.get(f"{server.url}/v1/sentiment", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json()["data"] == []
    for since in ("0.5", "2026-11-01", "2026-13-01T00:00:00Z"):
        refused = httpx.get(f"{server.url}/v1/sentiment", params={"since": since})
        assert refused.status_code == 400, since
        assert refused.json()["error"]["param"] == "since"


async def test_the_tool_answers_for_the_model(graft_factory: Any) -> None:
    model = FakeModel(call("analyze_sentiment", text=UPSET), "noted")
    graft = graft_factory(model, assistants={"default": {"tools": ["analyze_sentiment"]}})
    await graft.start()
    try:
        request = TurnRequest("default", [Message("user", "how does this read?")])
        events = [e async for e in graft.run_turn(request, graft.principal_for())]
    finally:
        await graft.aclose()
    results = [e for e in events if isinstance(e, ToolResult)]
    assert json.loads(results[0].content)["label"] == "negative"


def test_a_bad_backend_is_a_clear_config_error(settings_factory: Any) -> None:
    with pytest.raises(ConfigError, match="e5:"):
        analyzer_for(settings_factory(), "word2vec")


def test_instructions_follow_emotion_label_and_rule() -> None:
    frustrated = Sentiment("negative", 0.9, "e5", emotion="frustrated")
    assert instruction_for(frustrated) == (
        "The user seems frustrated: acknowledge it and be concise."
    )
    assert "unhappy" in instruction_for(Sentiment("negative", 0.9, "e5"))
    assert instruction_for(Sentiment("positive", 0.9, "e5", emotion="happy")) == ""
    assert "3 messages in a row" in instruction_for(frustrated, 3, 3)


class _Hook:
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()
                hook.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()


@pytest.fixture
def hook() -> Any:
    receiver = _Hook()
    yield receiver
    receiver.httpd.shutdown()
    receiver.httpd.server_close()


def _escalate(graft_factory: Any, live_server: Any, hook: _Hook, **network: Any) -> Any:
    plugin = {
        "escalate_after": 1,
        "webhook": f"http://127.0.0.1:{hook.port}/escalations",
        "webhook_secret": "s3cret",
    }
    assistants = {"support": {"middleware": ["sentiment"], "plugins": {"sentiment": plugin}}}
    graft = graft_factory(FakeModel("sorry"), assistants=assistants, network=network)
    server = live_server(graft)
    answer = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "support", "messages": [{"role": "user", "content": ANGRY}]},
        timeout=10,
    )
    assert answer.status_code == 200  # the webhook never holds up or fails the answer
    return server


def _audit(server: Any, action: str) -> list[dict[str, Any]]:
    for _ in range(100):  # the delivery runs in the background
        records = httpx.get(f"{server.url}/v1/admin/audit").json()["data"]
        found = [r for r in records if r["action"] == action]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {action} record")


def test_escalations_reach_the_webhook_signed_and_audited(
    graft_factory: Any, live_server: Any, hook: _Hook
) -> None:
    server = _escalate(
        graft_factory, live_server, hook, allow_hosts=["127.0.0.1"], allow_ports=[hook.port]
    )
    assert hook.arrived.wait(10)
    [(headers, body)] = hook.received
    assert verify_signature(body, "s3cret", headers["X-Graft-Signature"])
    sent = json.loads(body)
    assert (sent["event"], sent["assistant"], sent["negative_in_a_row"]) == (
        "escalation",
        "support",
        1,
    )
    [delivered] = _audit(server, "webhook.deliver")
    assert delivered["outcome"] == "ok" and delivered["details"]["status"] == 204


def test_a_webhook_the_network_policy_forbids_is_refused_and_audited(
    graft_factory: Any, live_server: Any, hook: _Hook
) -> None:
    server = _escalate(graft_factory, live_server, hook)  # loopback is not allowed by default
    [blocked] = _audit(server, "network.blocked")
    assert "127.0.0.1" in json.dumps(blocked["details"])
    assert hook.received == []
