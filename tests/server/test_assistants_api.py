"""``/v1/assistants`` over the real server: builders make assistants that users then chat with.

Two tenants: in acme ann (user), bea (builder) and root (admin); in globex gil (builder).
The model answers with the first line of the system prompt it was sent, so a chat shows
which assistant answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from graft.context import Principal
from graft.identity import issue_key
from graft.models.base import ModelRequest
from graft.runtime import Graft
from graft.testing import FunctionModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))
PEOPLE = (
    ("acme", "ann", ["user"]),
    ("acme", "bea", ["builder", "user"]),
    ("acme", "root", ["admin", "user"]),
    ("globex", "gil", ["builder", "user"]),
)
HELPDESK = {
    "description": "Answers IT questions",
    "system_prompt": "I am the helpdesk.\nAnswer briefly.",
    "tools": ["calculator"],
    "temperature": 0.3,
}


def first_line_of_the_prompt(request: ModelRequest) -> str:
    return (request.messages[0].content or "").splitlines()[0]


@dataclass
class Site:
    graft: Graft
    model: FunctionModel
    keys: dict[str, str]
    url: str

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        return httpx.request(method, f"{self.url}/v1{path}", headers=headers, **kwargs)

    def client(self, who: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[who], max_retries=0)

    def chat(self, who: str, assistant: str, text: str = "hello") -> str | None:
        completion = self.client(who).chat.completions.create(
            model=assistant, messages=[{"role": "user", "content": text}]
        )
        return completion.choices[0].message.content


@pytest.fixture
async def site(graft_factory: Any, live_server: Any, tmp_path: Path) -> Site:
    model = FunctionModel(first_line_of_the_prompt)
    graft = graft_factory(
        model,
        assistants={"hr": {"system_prompt": "I am HR."}},
        sources={
            "sales": {
                "url": f"sqlite:///{tmp_path / 'sales.db'}",
                "grants": [{"tables": ["*"], "assistants": ["sales-desk"]}],
            },
            "vault": {"url": f"sqlite:///{tmp_path / 'vault.db'}"},
        },
        access={"data_sources": {"vault": {"roles": ["finance"]}}},
    )
    keys: dict[str, str] = {}
    for tenant, name, roles in PEOPLE:
        user = await graft.store.create_user(tenant=tenant, name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="first")
    return Site(graft, model, keys, live_server(graft).url)


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_builder_makes_an_assistant_that_users_chat_with(site: Site) -> None:
    created = site.call("bea", "PUT", "/assistants/helpdesk", json=HELPDESK)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["object"] == "assistant" and body["id"] == "helpdesk"
    assert body["source"] == "stored" and body["model"] == "test:function"
    assert body["definition"]["system_prompt"] == HELPDESK["system_prompt"]
    assert body["definition"]["tools"] == ["calculator"]
    assert body["definition"]["temperature"] == 0.3

    assert site.chat("ann", "helpdesk") == "I am the helpdesk."
    request = site.model.requests[-1]
    assert [tool.name for tool in request.tools] == ["calculator"]
    assert request.temperature == 0.3
    assert site.chat("ann", "default") != "I am the helpdesk."

    models = [m.id for m in site.client("ann").models.list()]
    assert models == ["default", "hr", "helpdesk"]
    [listed] = [m for m in site.client("ann").models.list() if m.id == "helpdesk"]
    assert listed.created > 0 and listed.model_extra["description"] == "Answers IT questions"

    conversations = site.call("ann", "GET", "/conversations").json()["data"]
    assert {c["assistant"] for c in conversations} == {"helpdesk", "default"}


def test_replacing_changes_the_next_turn_at_once_and_deleting_ends_it(site: Site) -> None:
    assert site.call("bea", "PUT", "/assistants/helpdesk", json=HELPDESK).status_code == 201
    assert site.chat("ann", "helpdesk") == "I am the helpdesk."

    replaced = site.call(
        "root", "PUT", "/assistants/helpdesk", json={"system_prompt": "I was replaced."}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["definition"]["tools"] is None  # a replacement, not a patch
    assert site.chat("ann", "helpdesk") == "I was replaced."

    deleted = site.call("bea", "DELETE", "/assistants/helpdesk")
    assert deleted.status_code == 200
    assert deleted.json() == {"object": "assistant.deleted", "id": "helpdesk", "deleted": True}
    with pytest.raises(openai.NotFoundError) as gone:
        site.chat("ann", "helpdesk")
    assert gone.value.code == "model_not_found"
    again = site.call("bea", "DELETE", "/assistants/helpdesk")
    assert again.status_code == 404 and error(again)["code"] == "assistant_not_found"


def test_only_builders_and_admins_change_assistants(site: Site) -> None:
    refused = site.call("ann", "PUT", "/assistants/mine", json=HELPDESK)
    assert refused.status_code == 403 and error(refused)["code"] == "permission_denied"
    assert "builder or an admin" in error(refused)["message"]
    assert site.call("bea", "PUT", "/assistants/helpdesk", json=HELPDESK).status_code == 201
    assert site.call("ann", "DELETE", "/assistants/helpdesk").status_code == 403
    assert site.chat("ann", "helpdesk") == "I am the helpdesk."


def test_another_tenant_neither_sees_nor_deletes_an_assistant(site: Site) -> None:
    assert site.call("bea", "PUT", "/assistants/helpdesk", json=HELPDESK).status_code == 201

    assert site.call("gil", "GET", "/assistants/helpdesk").status_code == 404
    assert site.call("gil", "DELETE", "/assistants/helpdesk").status_code == 404
    listed = site.call("gil", "GET", "/assistants").json()["data"]
    assert [a["id"] for a in listed] == ["default", "hr"]
    assert "helpdesk" not in [m.id for m in site.client("gil").models.list()]
    with pytest.raises(openai.NotFoundError):
        site.chat("gil", "helpdesk")

    # globex may have its own helpdesk: the names are per tenant.
    own = {"system_prompt": "I am globex's helpdesk."}
    assert site.call("gil", "PUT", "/assistants/helpdesk", json=own).status_code == 201
    assert site.chat("gil", "helpdesk") == "I am globex's helpdesk."
    assert site.chat("ann", "helpdesk") == "I am the helpdesk."


def test_who_may_use_it_and_who_sees_its_definition(site: Site) -> None:
    restricted = {"system_prompt": "Sales figures.", "roles": ["admin"]}
    assert site.call("bea", "PUT", "/assistants/figures", json=restricted).status_code == 201
    assert site.call("bea", "PUT", "/assistants/helpdesk", json=HELPDESK).status_code == 201

    for_ann = {a["id"]: a for a in site.call("ann", "GET", "/assistants").json()["data"]}
    assert list(for_ann) == ["default", "hr", "helpdesk"]
    assert for_ann["helpdesk"]["definition"] is None  # a user does not read the prompt
    assert site.call("ann", "GET", "/assistants/figures").status_code == 404
    with pytest.raises(openai.PermissionDeniedError):
        site.chat("ann", "figures")

    for_bea = {a["id"]: a for a in site.call("bea", "GET", "/assistants").json()["data"]}
    assert list(for_bea) == ["default", "hr", "figures", "helpdesk"]  # she manages them
    assert for_bea["figures"]["definition"]["roles"] == ["admin"]
    assert for_bea["hr"]["definition"] is None  # the settings file's: never shown
    one = site.call("bea", "GET", "/assistants/helpdesk").json()
    assert one["definition"]["system_prompt"] == HELPDESK["system_prompt"]
    assert "figures" not in [m.id for m in site.client("bea").models.list()]
    assert site.chat("root", "figures") == "Sales figures."


@pytest.mark.parametrize(
    ("definition", "param", "words"),
    [
        ({"temperature": 5}, "temperature", "less than or equal to 2"),
        ({"temperature": "hot"}, "temperature", "valid number"),
        ({"tools": "calculator"}, "tools", "valid array"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
        ({"model": "gpt-4"}, "model", "provider:name"),
        ({"model": "nowhere:big"}, "model", "no model provider 'nowhere'"),
        ({"middleware": ["shout"]}, "middleware", "no middleware named 'shout'"),
        ({"tools": ["calculator", "teleport"]}, "tools", "no tool named 'teleport'"),
        ({"tools": ["search_knowledge"]}, "tools", "no tool named 'search_knowledge'"),
        ({"sources": ["crm"]}, "sources", "no data source named 'crm'"),
        ({"retention_days": 30}, "retention_days", "settings file"),
        ({"tenants": ["globex"]}, "tenants", "'acme' alone"),
        ({"plugins": {"webhook": {"key": {"$env": "HOME"}}}}, "plugins", "secret references"),
        ({"collections": [" "]}, "collections", "not a collection name"),
    ],
)
def test_invalid_definitions_are_refused_naming_the_field(
    site: Site, definition: dict[str, Any], param: str, words: str
) -> None:
    refused = site.call("bea", "PUT", "/assistants/helpdesk", json=definition)
    assert refused.status_code == 400, refused.text
    assert error(refused)["param"] == param
    assert words in error(refused)["message"]
    assert site.call("bea", "GET", "/assistants/helpdesk").status_code == 404


def test_what_a_definition_may_name_when_it_is_valid(site: Site) -> None:
    fine = {
        "system_prompt": "Search first.",
        "collections": ["handbook"],
        "tools": ["search_knowledge", "calc*"],
        "sources": ["sales"],
        "tenants": ["acme"],
        "middleware": ["redact_pii"],
        "plugins": {"sentiment": {"negative_in_a_row": 2}},
    }
    stored = site.call("bea", "PUT", "/assistants/reader", json=fine)
    assert stored.status_code == 201, stored.text
    assert stored.json()["definition"]["collections"] == ["handbook"]


def test_sources_the_builder_may_not_use_are_refused(site: Site) -> None:
    refused = site.call("bea", "PUT", "/assistants/vaulted", json={"sources": ["vault"]})
    assert refused.status_code == 403 and "data source 'vault'" in error(refused)["message"]
    assert site.call("root", "PUT", "/assistants/vaulted", json={"sources": ["vault"]}).is_success


@pytest.mark.parametrize("name", ["default", "hr", "sales-desk"])
def test_a_stored_assistant_may_not_take_a_name_the_settings_use(site: Site, name: str) -> None:
    refused = site.call("bea", "PUT", f"/assistants/{name}", json=HELPDESK)
    assert refused.status_code == 409, refused.text
    assert error(refused)["code"] == "assistant_in_settings" and error(refused)["param"] == "name"
    assert "taken by the settings" in error(refused)["message"]
    assert site.call("root", "DELETE", "/assistants/hr").status_code == 409


def test_malformed_names_and_bodies_are_refused(site: Site) -> None:
    assert site.call("bea", "PUT", "/assistants/-dash", json=HELPDESK).status_code == 400
    assert site.call("bea", "PUT", f"/assistants/{'a' * 65}", json=HELPDESK).status_code == 400
    not_json = site.call("bea", "PUT", "/assistants/x", content=b"{oops")
    assert not_json.status_code == 400 and error(not_json)["code"] == "invalid_json"
    deep = site.call("bea", "PUT", "/assistants/x", content=b'{"plugins":' + b"[" * 64)
    assert deep.status_code == 400 and error(deep)["code"] == "json_too_deep"


async def test_every_change_and_refusal_is_audited(site: Site) -> None:
    site.call("bea", "PUT", "/assistants/helpdesk", json=HELPDESK)
    site.call("root", "PUT", "/assistants/helpdesk", json={"system_prompt": "v2"})
    site.call("ann", "DELETE", "/assistants/helpdesk")
    site.call("bea", "DELETE", "/assistants/helpdesk")

    records = await site.graft.store.list_audit(None, 100, "acme")
    mine = [r for r in records if "assistant" in r.action or r.action == "access.denied"]
    assert [(r.action, r.actor, r.target, r.outcome) for r in mine] == [
        ("assistant.put", "bea", "helpdesk", "ok"),
        ("assistant.put", "root", "helpdesk", "ok"),
        ("access.denied", "ann", "assistant:helpdesk", "denied"),
        ("assistant.delete", "bea", "helpdesk", "ok"),
    ]
    first, second = (r.details for r in mine[:2])
    assert '"created":true' in first and '"created":false' in second
    assert '"tools":["calculator"]' in first and "definition_sha256" in first


def test_the_openapi_document_describes_the_routes(site: Site) -> None:
    spec = httpx.get(f"{site.url}/openapi.json").json()
    put = spec["paths"]["/v1/assistants/{name}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AssistantBody"
    )
    assert {"200", "201", "400", "403", "409"} <= set(put["responses"])
    assert "system_prompt" in spec["components"]["schemas"]["AssistantBody"]["properties"]
