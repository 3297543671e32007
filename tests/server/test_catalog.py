"""``GET /v1/tools`` and ``GET /v1/sources`` over a real server, as users with their keys.

A plugin brings two tools, one of them for admins only (``[access.tools]``); two SQLite data
sources, one for the ``hr`` group only (``[access.data_sources]``), one with grants.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from graft.context import Principal
from graft.hookspecs import hookimpl
from graft.identity import issue_key
from graft.testing import FakeModel
from graft.tools.function import tool

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


class Office:
    """Two tools: the time of day for everyone, the payroll for admins."""

    @hookimpl
    def register_tools(self, register: Any) -> None:
        @tool
        def office_hours(day: str) -> str:
            """When the office is open on a day."""
            return "9-17"

        @tool
        def payroll(month: int) -> str:
            """Read the payroll of a month."""
            return "secret"

        register(office_hours)
        register(payroll)


@pytest.fixture
async def call(tmp_path: Path, graft_factory: Any, live_server: Any) -> Any:
    db = tmp_path / "company.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE employees (id INTEGER, name TEXT, salary INTEGER);"
            "CREATE TABLE orders (id INTEGER, total INTEGER);"
        )
    graft = graft_factory(
        FakeModel("ok"),
        plugins=(Office(),),
        sources={
            "company": {
                "url": f"sqlite:///{db}",
                "description": "Employees and orders",
                "tables": ["employees", "orders"],
                "grants": [
                    {"roles": ["user"], "tables": ["orders"]},
                    {"groups": ["hr"], "tables": ["employees", "orders"]},
                ],
            },
            "people": {"url": f"sqlite:///{db}"},
        },
        access={
            "tools": {"payroll": {"roles": ["admin"]}},
            "data_sources": {"people": {"groups": ["hr"]}},
        },
        assistants={"helpdesk": {"tools": ["office_hours"], "sources": ["company"]}},
    )
    keys = {}
    for name, roles, groups in (
        ("ann", ["user"], []),
        ("hana", ["user"], ["hr"]),
        ("root", ["admin", "user"], []),
    ):
        user = await graft.store.create_user(tenant="acme", name=name, roles=roles, groups=groups)
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="k")
    url = live_server(graft).url

    def get(who: str, path: str, **params: Any) -> Any:
        answer = httpx.get(
            f"{url}{path}", headers={"authorization": f"Bearer {keys[who]}"}, params=params
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    return get


def test_each_sees_the_tools_their_access_rules_let_in(call: Any) -> None:
    ann = {t["name"]: t for t in call("ann", "/v1/tools")}
    root = {t["name"]: t for t in call("root", "/v1/tools")}
    assert "office_hours" in ann and "payroll" not in ann
    assert {"office_hours", "payroll"} <= set(root)
    hours = ann["office_hours"]
    assert hours["description"] == "When the office is open on a day."
    assert hours["parameters"]["properties"]["day"]["type"] == "string"
    assert hours["plugin"] and hours["plugin"] == root["payroll"]["plugin"]
    assert root["calculator"]["plugin"] == "builtin_tools"
    assert {"query_database", "describe_table"} <= set(ann)  # the data sources' tools
    assert list(ann) == sorted(ann)
    # As an assistant offers them: only its own.
    helpdesk = call("root", "/v1/tools", assistant="helpdesk")
    assert [t["name"] for t in helpdesk] == ["office_hours"]


def test_each_sees_the_sources_and_tables_they_may_query(call: Any) -> None:
    assert call("ann", "/v1/sources") == [
        {
            "name": "company",
            "description": "Employees and orders",
            "dialect": "sqlite",
            "tables": ["orders"],
        }
    ]
    hana = call("hana", "/v1/sources")
    assert [(s["name"], s.get("tables")) for s in hana] == [
        ("company", ["employees", "orders"]),
        ("people", None),  # every table of the database: listed by describe_table, not here
    ]
    assert "url" not in hana[0] and "sqlite:" not in str(hana)
    assert [s["name"] for s in call("hana", "/v1/sources", assistant="helpdesk")] == ["company"]


def test_an_assistant_the_caller_may_not_use_is_refused(
    graft_factory: Any, live_server: Any
) -> None:
    url = live_server(graft_factory(FakeModel("ok"))).url
    answer = httpx.get(f"{url}/v1/tools", params={"assistant": "nobody"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "model_not_found"
