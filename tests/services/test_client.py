"""Calls through ``OpenAPIToolset`` reaching the real demo API on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest
from tests.services.conftest import API_KEY, BEARER, CLIENT_ID, CLIENT_SECRET, SPEC, DemoAPI

from graft.context import Context
from graft.errors import NetworkBlocked, ToolArgumentError, ToolError
from graft.services import client as client_module
from graft.services.body import human_size
from graft.services.client import prepare
from graft.services.manifest import Manifest
from graft.services.openapi import parse_document
from graft.services.toolset import OpenAPIToolset


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF", 0.01)


async def test_path_query_header_and_body_reach_the_server(api: DemoAPI, ctx: Context) -> None:
    tools = api.toolset()
    got = await tools.call_tool("demo_getItem", {"item_id": "a b?ü", "X-Trace": "t-1"}, ctx)
    assert json.loads(got) == {"id": "a b?ü", "name": "item a b?ü", "trace": "t-1"}
    assert api.seen[-1]["raw_path"] == "/api/items/a%20b%3F%C3%BC"
    got = await tools.call_tool("demo_list_items", {"limit": 5, "tag": ["red", "green"]}, ctx)
    assert json.loads(got) == {"limit": "5", "tags": ["red", "green"]}
    body = {"name": "cup", "category": {"name": "kitchen", "children": []}}
    got = await tools.call_tool("demo_createItem", {"body": body}, ctx)
    assert json.loads(got) == {"created": body}
    assert api.seen[-1]["headers"]["content-type"] == "application/json"


async def test_arguments_are_checked_before_anything_is_sent(api: DemoAPI, ctx: Context) -> None:
    tools = api.toolset()
    with pytest.raises(ToolArgumentError, match="missing arguments"):
        await tools.call_tool("demo_getItem", {}, ctx)
    with pytest.raises(ToolArgumentError, match="unknown arguments"):
        await tools.call_tool("demo_getItem", {"item_id": "1", "admin": True}, ctx)
    with pytest.raises(ToolArgumentError, match="line breaks"):
        await tools.call_tool("demo_getItem", {"item_id": "1", "X-Trace": "a\r\nX-Evil: 1"}, ctx)
    assert not api.seen


def test_a_slash_in_a_path_parameter_is_encoded(api: DemoAPI) -> None:
    operation = api.toolset().operations[0]
    prepared = prepare(operation, {"item_id": "a/b"}, "http://h/api")
    assert prepared.url.raw_path == b"/api/items/a%2Fb"


@pytest.mark.parametrize(
    "item_id",
    ["..", "../admin", "..%2Fadmin", "%2e%2e", "%2E%2E/admin", "%252e%252e", ".", "a/../.."],
)
async def test_path_parameters_cannot_leave_the_base_path(
    api: DemoAPI, ctx: Context, item_id: str
) -> None:
    with pytest.raises(ToolArgumentError, match="may not be"):
        await api.toolset().call_tool("demo_getItem", {"item_id": item_id}, ctx)
    assert api.hits["/admin"] == 0 and api.hits["/api/admin"] == 0 and not api.seen


async def test_a_huge_answer_is_cut_for_the_model_with_a_note(api: DemoAPI, ctx: Context) -> None:
    tools = api.toolset(max_result_chars=1000, max_response_bytes=4_000_000)
    got = await tools.call_tool("demo_huge", {}, ctx)
    text, note = got.rsplit("\n", 1)
    assert len(text) == 1000 and text.startswith('{"data":"xxx')
    assert note == f"[truncated: 1.0 kB of {human_size(3_000_000 + 11)} shown]"  # compact JSON
    capped = await api.toolset(max_response_bytes=100_000).call_tool("demo_huge", {}, ctx)
    assert capped.endswith("the answer is larger than the 100 kB graft reads from this service]")


async def test_a_gzip_bomb_is_capped_after_decompression(api: DemoAPI, ctx: Context) -> None:
    started = time.perf_counter()
    got = await api.toolset(max_response_bytes=1_000_000).call_tool("demo_bomb", {}, ctx)
    assert got.startswith("0000") and "larger than the 1.0 MB graft reads" in got
    assert time.perf_counter() - started < 5
    with pytest.raises(ToolError, match="'gzip, gzip', which graft did not ask for"):
        await api.toolset().call_tool("demo_bombTwice", {}, ctx)


async def test_idempotent_calls_are_retried_but_a_post_is_sent_once(
    api: DemoAPI, ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    tools = api.toolset()
    caplog.set_level(logging.WARNING, "graft.services.client")
    assert json.loads(await tools.call_tool("demo_flakyRead", {}, ctx))["ok"] is True
    assert api.hits["/api/flaky"] == 2
    assert "GET /flaky, attempt 1 of 3: HTTP 503" in caplog.text
    with pytest.raises(ToolError, match="HTTP 503 Service Unavailable: .*try later"):
        await tools.call_tool("demo_flakyWrite", {}, ctx)
    assert api.hits["/api/flaky"] == 3  # the POST went once


async def test_an_error_status_is_a_short_message_the_model_reads(
    api: DemoAPI, ctx: Context
) -> None:
    key = {"type": "api_key", "key": API_KEY}
    with pytest.raises(ToolError) as caught:
        await api.toolset(auth=key).call_tool("demo_fail", {}, ctx)
    message = caught.value.message
    assert message.startswith("service 'demo' answered HTTP 500 Internal Server Error: ")
    assert '"error":"boom"' in message and API_KEY not in message  # the echoed key is masked
    assert "Traceback" not in message


async def test_bearer_auth_and_the_token_never_reaches_the_model(
    api: DemoAPI, ctx: Context
) -> None:
    with pytest.raises(ToolError, match="HTTP 401"):
        await api.toolset().call_tool("demo_bearer", {}, ctx)
    got = await api.toolset(auth={"type": "bearer", "token": BEARER}).call_tool(
        "demo_bearer", {}, ctx
    )
    assert json.loads(got)["ok"] is True and BEARER not in got and "…cdef" in got


async def test_api_key_in_a_header_or_in_the_query(api: DemoAPI, ctx: Context) -> None:
    header = {"type": "api_key", "in": "header", "name": "X-API-Key", "key": API_KEY}
    assert json.loads(await api.toolset(auth=header).call_tool("demo_apiKey", {}, ctx))["ok"]
    query = {"type": "api_key", "in": "query", "name": "api_key", "key": API_KEY}
    got = await api.toolset(auth=query).call_tool("demo_apiKey", {}, ctx)
    assert json.loads(got)["ok"] and API_KEY not in got  # the server echoed its URL
    assert ("api_key", API_KEY) in api.seen[-1]["query"]


async def test_oauth2_tokens_are_fetched_once_cached_and_renewed_on_401(
    api: DemoAPI, ctx: Context
) -> None:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": f"{api.url}/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "read",
    }
    tools = api.toolset(auth=auth)
    for _ in range(3):
        got = await tools.call_tool("demo_oauth", {}, ctx)
        assert json.loads(got)["ok"] and "at-1-" not in got
    assert api.hits["/oauth/token"] == 1
    token_request = next(s for s in api.seen if s["path"] == "/oauth/token")
    assert "grant_type=client_credentials" in token_request["body"]
    assert CLIENT_SECRET not in token_request["body"]  # sent as HTTP Basic
    async with httpx.AsyncClient() as plain:  # the server forgets its tokens
        await plain.post(f"{api.url}/oauth/revoke")
    assert json.loads(await tools.call_tool("demo_oauth", {}, ctx))["ok"]
    assert api.hits["/oauth/token"] == 2
    wrong = api.toolset(auth={**auth, "client_secret": "cs-wrong-0123456789"})
    with pytest.raises(ToolError, match=r"token endpoint answered HTTP 401 \(invalid_client\)"):
        await wrong.call_tool("demo_oauth", {}, ctx)


async def test_loopback_without_allow_hosts_is_refused_and_audited(
    api: DemoAPI, ctx: Context
) -> None:
    tools = api.toolset(allow_hosts=[])  # the port is allowed, the host is not
    with pytest.raises(NetworkBlocked, match="loopback"):
        await tools.call_tool("demo_getItem", {"item_id": "1"}, ctx)
    assert sum(api.hits.values()) == 0  # the canary server saw nothing
    [record] = await ctx.store.list_audit(None, 10)  # type: ignore[union-attr]
    details = json.loads(record.details)
    assert (record.action, record.actor, record.target) == ("network.blocked", "ann", "127.0.0.1")
    assert details["service"] == "demo" and details["rule"] == "address"


async def test_the_total_timeout_bounds_a_call_and_its_retries(ctx: Context) -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        manifest = Manifest(
            name="slow",
            base_url=f"http://127.0.0.1:{port}/api",
            allow_hosts=["127.0.0.1"],
            allow_ports=[port],
            timeout=0.3,
            retries=5,
        )
        tools = OpenAPIToolset(manifest, document=parse_document(json.dumps(SPEC), "d.json"))
        started = time.perf_counter()
        with pytest.raises(ToolError, match="did not answer within 0.3 s"):
            await tools.call_tool("slow_getItem", {"item_id": "1"}, ctx)
        assert time.perf_counter() - started < 2
