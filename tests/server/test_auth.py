"""Authentication runs once, before routing, for every route but the public ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from click.testing import CliRunner
from starlette.routing import Route

from graft.cli import cli as main_cli
from graft.default_plugins import api_key_auth
from graft.default_plugins.api_key_auth import hash_api_key
from graft.runtime import Graft
from graft.server.auth import FAILURE_RECORDS_PER_MINUTE, PUBLIC_PATHS, FailureThrottle
from graft.testing import FakeModel

KEYS = [{"sha256": hash_api_key("sk-good"), "user": "ann", "roles": ["staff"]}]


@pytest.fixture
def keyed(graft_factory: Any, live_server: Any) -> Any:
    graft = graft_factory(FakeModel(*["hi ann"] * 5), auth={"api_keys": KEYS})
    server = live_server(graft)
    return server, server.server.config.app


def _routes(routes: list[Any]) -> list[tuple[str, str]]:
    """Every (method, path) served, with sample values for path parameters."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            found += _routes(route.original_router.routes)
        elif isinstance(route, Route):
            path = re.sub(r"\{[^}]+\}", "conv_0", route.path)
            found += [(method, path) for method in sorted(route.methods or ())]
    return found


def test_every_non_public_route_refuses_requests_without_credentials(keyed: Any) -> None:
    server, app = keyed
    routes = _routes(app.routes)
    # Nothing escapes the walk: everything the OpenAPI document lists is in it.
    documented = {
        (method.upper(), re.sub(r"\{[^}]+\}", "conv_0", path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented <= set(routes) and ("POST", "/v1/chat/completions") in documented
    checked = 0
    for method, path in routes:
        if path in PUBLIC_PATHS:
            continue
        for headers in ({}, {"authorization": "Bearer sk-bad"}, {"x-api-key": "sk-bad"}):
            response = httpx.request(
                method, f"{server.url}{path}", headers=headers, json={"model": "default"}
            )
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            if method != "HEAD":  # a HEAD answer has no body
                assert response.json()["error"]["type"] == "authentication_error"
            checked += 1
    assert checked == 3 * len([r for r in routes if r[1] not in PUBLIC_PATHS])
    # A path no route matches says nothing about the API to a caller without a key.
    assert httpx.get(f"{server.url}/v1/secret-admin").status_code == 401


def test_public_paths_answer_without_credentials(keyed: Any) -> None:
    server, _ = keyed
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path


def test_a_valid_key_in_either_header_reaches_the_route(keyed: Any) -> None:
    server, _ = keyed
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}]}
    for headers in ({"authorization": "Bearer sk-good"}, {"x-api-key": "sk-good"}):
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "hi ann"
    unknown = httpx.get(f"{server.url}/v1/nothing", headers={"x-api-key": "sk-good"})
    assert unknown.status_code == 404


def test_the_openapi_document_describes_the_chat_body(keyed: Any) -> None:
    server, _ = keyed
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    assert ref == "#/components/schemas/ChatCompletionRequest"
    assert {"model", "messages", "stream"} <= set(schemas["ChatCompletionRequest"]["properties"])
    # Every reference in the document resolves.
    refs = set(_refs(spec))
    assert "#/components/schemas/ChatMessageIn" in refs
    assert {ref.rpartition("/")[2] for ref in refs} <= set(schemas)


def _refs(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_users_and_keys_from_the_cli_secure_a_running_server(
    settings_factory: Any, live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's flow: graft serve runs keyless on its SQLite file; `graft users add`
    # and `graft keys create`, in another process's place, close it and open it to ann.
    monkeypatch.setattr(api_key_auth, "KEYLESS_RECHECK_S", 0.0)
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))
    model = FakeModel(*["hi"] * 9)
    graft = Graft(settings_factory(model=model.id), entry_points=False, models={model.id: model})
    server = live_server(graft)
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}]}
    chat = f"{server.url}/v1/chat/completions"
    assert httpx.post(chat, json=body).status_code == 200  # keyless: the local user

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(main_cli, list(args))
        assert result.exit_code == 0, result.output
        return result

    cli("users", "add", "ann", "--role", "user", "--group", "sales")
    key = cli("keys", "create", "--user", "ann", "--name", "test").stdout.strip()
    refused = httpx.post(chat, json=body)
    assert refused.status_code == 401 and "missing API key" in refused.text
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(**body)
    conversation = completion.model_extra["conversation_id"]
    mine = httpx.get(f"{server.url}/v1/conversations", headers={"x-api-key": key}).json()
    assert [c["id"] for c in mine["data"]] == [conversation]
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [k["user"] for k in listed] == ["ann"] and key not in json.dumps(listed)
    cli("keys", "revoke", listed[0]["id"])
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**body)
    second = cli("keys", "create", "--user", "ann").stdout.strip()
    assert httpx.post(chat, json=body, headers={"x-api-key": second}).status_code == 200
    cli("users", "disable", "ann")
    assert httpx.post(chat, json=body, headers={"x-api-key": second}).status_code == 401


def test_a_flood_of_refused_requests_is_counted_not_written_row_by_row() -> None:
    throttle = FailureThrottle(per_minute=3)
    minute = 1_000_000 * 60.0
    assert [throttle.admit("10.0.0.9", minute) for _ in range(5)] == [0, 0, 0, None, None]
    assert throttle.admit("10.0.0.8", minute) == 0  # every address has its own allowance
    # The next minute's first record says how many were left out.
    assert throttle.admit("10.0.0.9", minute + 60) == 2
    assert throttle.admit("10.0.0.9", minute + 61) == 0


def test_refused_requests_over_the_server_are_audited_within_the_allowance(keyed: Any) -> None:
    server, app = keyed
    graft = app.state.graft
    sent = 2 * FAILURE_RECORDS_PER_MINUTE + 10  # more than two minutes' allowance
    for _ in range(sent):
        response = httpx.get(f"{server.url}/v1/models", headers={"x-api-key": "sk-wrong"})
        assert response.status_code == 401
    records = anyio.run(graft.store.list_audit, None, 1000)
    failures = [r for r in records if r.action == "auth.failure"]
    # At most one minute's allowance, or two if the test ran across a minute's end.
    assert 1 <= len(failures) <= 2 * FAILURE_RECORDS_PER_MINUTE < sent
    assert all("sk-wrong" not in r.details for r in failures)
