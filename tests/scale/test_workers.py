"""Two graft processes on one PostgreSQL and one Redis behave as one deployment.

Each test talks to process A and process B (``graft serve`` on two ports, started by the
``pair`` fixture with the scripted model of ``scripted_worker.py``): what one worker starts,
the other continues, answers, counts or stops. The last test starts ``graft serve
--workers 2`` itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.scale.conftest import Deployment

pytestmark = pytest.mark.integration


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


def graft_event(chunk: dict[str, Any]) -> str | None:
    """The graft event a chunk carries (``approval_required``, ``tool_call``...), if any."""
    extra = chunk.get("graft")
    return str(extra["event"]) if isinstance(extra, dict) and "event" in extra else None


def delta_text(chunk: dict[str, Any]) -> str:
    return "".join(c["delta"].get("content") or "" for c in chunk.get("choices", []))


def test_a_conversation_started_on_a_continues_on_b(pair: Deployment) -> None:
    a_url, b_url = pair.urls
    key = pair.keys["talk"]
    first = client(a_url, key).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "hello"}]
    )
    conversation = first.headers["x-graft-conversation-id"]
    assert first.parse().choices[0].message.content == "echo hello (1 user messages)"
    # Sent to B the moment A answered: B sees A's stored turn in the history.
    second = client(b_url, key).chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "again"}],
        extra_body={"conversation_id": conversation},
    )
    assert second.choices[0].message.content == "echo again (2 user messages)"
    stored = httpx.get(f"{a_url}/v1/conversations/{conversation}", headers=headers(key))
    texts = [m["content"] for m in stored.json()["messages"]]
    assert texts == [
        "hello",
        "echo hello (1 user messages)",
        "again",
        "echo again (2 user messages)",
    ]


async def test_an_approval_asked_on_a_is_granted_on_b(pair: Deployment) -> None:
    a_url, b_url = pair.urls
    auth = headers(pair.keys["approve"])
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "mail"}]}
    url = f"{a_url}/v1/chat/completions"
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", url, json=body, headers=auth) as response,
    ):
        assert response.status_code == 200
        events = sse_events(response)
        async for event in events:
            if graft_event(event) == "approval_required":
                break
        pending = (await http.get(f"{b_url}/v1/approvals", headers=auth)).json()["data"]
        assert [a["name"] for a in pending] == ["send_mail"]
        # Someone else's key does not see it, on either worker.
        other = headers(pair.keys["talk"])
        assert (await http.get(f"{b_url}/v1/approvals", headers=other)).json()["data"] == []
        answer = await http.post(
            f"{b_url}/v1/approvals/{pending[0]['id']}", json={"approve": True}, headers=auth
        )
        assert answer.status_code == 200, answer.text
        again = await http.post(
            f"{a_url}/v1/approvals/{pending[0]['id']}", json={"approve": False}, headers=auth
        )
        assert again.status_code == 404  # answered once, whichever worker asks
        text = ""
        async for event in events:
            text += delta_text(event)
    assert text == "mail sent"


def test_the_rate_limit_counts_requests_on_both_workers(pair: Deployment) -> None:
    workers = [client(url, pair.keys["rate"]) for url in pair.urls]
    for i in range(6):  # requests_per_minute = 6, alternately on A and B
        workers[i % 2].models.list()
    for worker in workers:  # one process alone would have seen 3
        with pytest.raises(openai.RateLimitError, match="6 requests per minute"):
            worker.models.list()


def test_the_days_budget_counts_tokens_on_both_workers(pair: Deployment) -> None:
    a, b = (client(url, pair.keys["budget"]) for url in pair.urls)
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    a.chat.completions.create(model="default", messages=ask)  # 20 tokens of 40
    b.chat.completions.create(model="default", messages=ask)  # 40 of 40
    for worker in (a, b):  # A alone spent 20: only the shared count refuses
        with pytest.raises(openai.RateLimitError) as caught:
            worker.chat.completions.create(model="default", messages=ask)
        assert caught.value.code == "budget_exceeded"


async def test_a_stream_on_a_is_cancelled_through_b(pair: Deployment) -> None:
    a_url, b_url = pair.urls
    auth = headers(pair.keys["cancel"])
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    async with httpx.AsyncClient(timeout=30) as http:
        started = time.monotonic()
        async with http.stream(
            "POST", f"{a_url}/v1/chat/completions", json=body, headers=auth
        ) as response:
            conversation = response.headers["x-graft-conversation-id"]
            ticks = 0
            last: dict[str, Any] = {}
            async for event in sse_events(response):
                last = event
                ticks += delta_text(event).count("tick")
                if ticks == 3 and "error" not in event:
                    cancel = await http.post(
                        f"{b_url}/v1/conversations/{conversation}/cancel", headers=auth
                    )
                    assert cancel.status_code == 200, cancel.text
            # The stream (600 ticks, 30 s) ended early, and said why.
            assert last == {
                "error": {
                    "message": "the answer was cancelled",
                    "type": "cancelled",
                    "code": "cancelled",
                }
            }
        assert time.monotonic() - started < 10
        assert ticks < 100
        again = await http.post(f"{b_url}/v1/conversations/{conversation}/cancel", headers=auth)
        assert again.status_code == 404  # nothing runs there any more
        stored = await http.get(f"{b_url}/v1/conversations/{conversation}", headers=auth)
        turn = stored.json()["messages"]
        assert turn[0]["content"] == "slow"


def test_serve_with_two_workers_answers(
    deployment: Deployment, start_graft: Callable[..., list[str]]
) -> None:
    (url,) = start_graft(["--workers", "2"])
    key = deployment.keys["smoke"]
    answers = {
        client(url, key)
        .chat.completions.create(model="default", messages=[{"role": "user", "content": f"n{i}"}])
        .choices[0]
        .message.content
        for i in range(2)
    }
    assert answers == {"echo n0 (1 user messages)", "echo n1 (1 user messages)"}
