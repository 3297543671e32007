"""The SQL tools end to end on the demo database: grants, row filters, audit, the stream, the CLI.

The database is the real demo company in a SQLite file (``graft demo-data``); the model is
scripted, so each test decides which SQL it sends. The same paths against PostgreSQL and
MariaDB are in ``test_dialects.py``.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from graft.audit import tail
from graft.cli import cli
from graft.config import Settings
from graft.context import Principal
from graft.errors import ConfigError, QueryRefused
from graft.models.base import ModelRequest
from graft.runtime import Graft
from graft.sources.demo import create_demo
from graft.sources.toolset import SourcesToolset
from graft.testing import FakeModel, FunctionModel, MemoryStore, call


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    import asyncio

    asyncio.run(create_demo(f"sqlite:///{path}"))
    return path


def tenant_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT tenant_id, count(*) FROM employees GROUP BY tenant_id"))


def source(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "url": f"sqlite:///{path}",
        "description": "the demo company",
        "tables": ["employees", "departments", "products", "orders", "order_items", "customers"],
        "columns": {"employees": ["id", "name", "title", "department_id", "hired_on"]},
        "row_filters": {"employees": "tenant_id = :tenant", "orders": "tenant_id = :tenant"},
        "sample_rows": ["departments"],
        **extra,
    }


def make_graft(
    settings_factory: Callable[..., Settings], model: Any, path: Path, **extra: Any
) -> Graft:
    settings = settings_factory(model=model.id, sources={"demo": source(path, **extra)})
    return Graft(settings, store=MemoryStore(), entry_points=False, models={model.id: model})


def toolset_of(graft: Graft) -> SourcesToolset:
    [toolset] = [t for t in graft.tools.toolsets if isinstance(t, SourcesToolset)]
    return toolset


def principal(user: str, tenant: str, *roles: str) -> Principal:
    return Principal(user, frozenset(roles), tenant=tenant)


async def test_each_tenant_reads_only_its_rows_and_every_query_is_audited(
    settings_factory: Callable[..., Settings], demo_file: Path
) -> None:
    counts = tenant_counts(demo_file)
    assert set(counts) == {"acme", "globex"}
    async with make_graft(settings_factory, FakeModel(), demo_file) as graft:
        tools = toolset_of(graft)
        for tenant in ("acme", "globex"):
            ctx = graft.context(principal("ann", tenant, "user"), "default")
            output = await tools.run_query("demo", "SELECT count(*) AS n FROM employees", ctx)
            assert output.data is not None and output.data["rows"] == [[counts[tenant]]]
            # An OR cannot widen the filter: it is a derived table, not pasted text.
            sneaky = "SELECT count(*) FROM employees e WHERE 1 = 1 OR e.id > 0"
            output = await tools.run_query("demo", sneaky, ctx)
            assert output.data is not None and output.data["rows"] == [[counts[tenant]]]
            with pytest.raises(QueryRefused, match="column salary of table employees"):
                await tools.run_query("demo", "SELECT name, salary FROM employees", ctx)
        records = [r for r in await tail(graft.store, 50) if r.action == "sql.query"]
    assert [r.outcome for r in records] == ["ok", "ok", "denied"] * 2
    details = json.loads(records[-2].details)
    assert details["tables"] == ["employees"] and details["rows"] == 1
    assert "sql_sha256" in details and "SELECT" not in records[-2].details


async def test_hidden_columns_and_tables_are_refused_and_grants_widen_them(
    settings_factory: Callable[..., Settings], demo_file: Path
) -> None:
    grants = [{"roles": ["hr"], "tables": ["employees"], "columns": {"employees": ["*"]}}]
    async with make_graft(settings_factory, FakeModel(), demo_file, grants=grants) as graft:
        tools = toolset_of(graft)
        staff = graft.context(principal("bob", "acme", "user"), "default")
        hr = graft.context(principal("hana", "acme", "hr"), "default")
        # Without a matching grant bob reads no table at all; hana reads employees in full.
        with pytest.raises(QueryRefused, match="employees is not readable"):
            await tools.run_query("demo", "SELECT name FROM employees", staff)
        assert await tools.list_tables("demo", staff) == "you may read no table of 'demo'"
        listing = await tools.list_tables("demo", hr)
        assert listing.splitlines()[1:] == ["- employees"]
        output = await tools.run_query("demo", "SELECT max(salary) FROM employees", hr)
        assert output.data is not None and output.data["rows"][0][0] is not None
        with pytest.raises(QueryRefused, match="products"):
            await tools.run_query("demo", "SELECT * FROM products", hr)
        records = [r for r in await tail(graft.store, 50) if r.action == "sql.query"]
    assert [r.outcome for r in records] == ["denied", "ok", "denied"]


async def test_describe_shows_only_readable_columns_and_allowed_samples(
    settings_factory: Callable[..., Settings], demo_file: Path
) -> None:
    async with make_graft(settings_factory, FakeModel(), demo_file) as graft:
        tools = toolset_of(graft)
        ctx = graft.context(principal("ann", "acme", "user"), "default")
        employees = await tools.describe_table("demo", "employees", ctx)
        assert "- name " in employees and "salary" not in employees
        assert "tenant_id" not in employees and "Sample rows" not in employees
        departments = await tools.describe_table("demo", "DEPARTMENTS", ctx)
        assert "Sample rows:" in departments
        with pytest.raises(QueryRefused, match="not readable"):
            await tools.describe_table("demo", "sqlite_master", ctx)


def test_a_turn_streams_the_rows_as_data_and_the_model_reads_a_table(
    settings_factory: Callable[..., Settings],
    demo_file: Path,
    live_server: Callable[[Graft], Any],
) -> None:
    # The local user's tenant is "default": employees would come back empty (row filter).
    sql = "SELECT id, name FROM departments ORDER BY id LIMIT 3"
    model = FakeModel([call("query_database", source="demo", sql=sql)], "Here they are.")
    server = live_server(make_graft(settings_factory, model, demo_file))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "which departments?"}], stream=True
    )
    chunks = list(stream)
    extras = [c.model_extra.get("graft") for c in chunks if c.model_extra.get("graft")]
    [result] = [e for e in extras if e["event"] == "tool_result"]
    data = result["data"]
    assert data["type"] == "sql_result" and data["columns"] == ["id", "name"]
    assert len(data["rows"]) == 3 and data["sql"] == sql and data["truncated"] is None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Here they are."
    tool_message = model.requests[1].messages[-1].content or ""
    assert "id | name" in tool_message and "(3 rows)" in tool_message


async def test_ask_database_retries_once_with_the_error(
    settings_factory: Callable[..., Settings], demo_file: Path
) -> None:
    drafts = iter(
        [
            "```sql\nSELECT salary FROM employees\n```",
            "Sure:\n```sql\nSELECT count(*) AS n FROM products;\n```",
        ]
    )
    seen: list[ModelRequest] = []

    def draft(request: ModelRequest) -> str:
        seen.append(request)
        return next(drafts)

    model = FunctionModel(draft)
    async with make_graft(settings_factory, model, demo_file) as graft:
        tools = toolset_of(graft)
        ctx = graft.context(principal("ann", "acme", "user"), "default")
        output = await tools.call_tool(
            "ask_database", {"source": "demo", "question": "how many products?"}, ctx
        )
    assert output.text.startswith("SQL: SELECT count(*) AS n FROM products")
    assert output.data["question"] == "how many products?"
    system = seen[0].messages[0].content or ""
    assert "SQLite" in system and "employees" in system and "salary" not in system
    retry = seen[1].messages[-1].content or ""
    assert "That query failed" in retry and "salary" in retry


async def test_sources_an_assistant_does_not_list_or_a_rule_forbids_are_invisible(
    settings_factory: Callable[..., Settings], demo_file: Path
) -> None:
    settings = settings_factory(
        sources={"demo": source(demo_file)},
        assistants={"plain": {"sources": []}},
        access={"data_sources": {"demo": {"roles": ["analyst"]}}},
    )
    async with Graft(settings, store=MemoryStore(), entry_points=False) as graft:
        tools = toolset_of(graft)
        analyst = principal("ann", "acme", "analyst")
        other = principal("bob", "acme", "user")
        assert await tools.list_tools(graft.context(analyst, "plain")) == []
        assert await tools.list_tools(graft.context(other, "default")) == []
        [definition, *_] = await tools.list_tools(graft.context(analyst, "default"))
        assert definition.parameters["properties"]["source"]["enum"] == ["demo"]
        with pytest.raises(QueryRefused, match="no data source 'demo' is available"):
            await tools.run_query("demo", "SELECT 1", graft.context(other, "default"))


# --- settings and the command line ------------------------------------------------------


def test_passwords_never_sit_in_the_settings_file(tmp_path: Path) -> None:
    from graft.config import load_settings

    config = tmp_path / "graft.toml"
    config.write_text('[sources.hr]\nurl = "postgresql://reader:hunter2@db/hr"\n')
    with pytest.raises(ConfigError, match="passwords do not belong"):
        load_settings(config)
    config.write_text('[sources.hr]\nurl = "postgresql://reader@db/hr"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="as text"):
        load_settings(config)


def test_row_filters_may_bind_only_user_and_tenant(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    bad = source(tmp_path / "x.db", row_filters={"employees": "owner = :admin_override"})
    with pytest.raises(ConfigError, match="admin_override"):
        settings_factory(sources={"demo": bad})


def test_cli_add_seals_the_password_and_query_refuses_with_exit_2(
    tmp_path: Path, demo_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("GRAFT_HOME", str(home))
    config = tmp_path / "graft.toml"
    config.write_text("# my settings\n")
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "--config",
            str(config),
            "sources",
            "add",
            "hr",
            "postgresql://r:hunter2@db.corp/hr",
            "--no-check",
        ],
    )
    assert added.exit_code == 0, added.output
    text = config.read_text()
    assert text.startswith("# my settings\n") and "hunter2" not in text
    table = tomllib.loads(text)["sources"]["hr"]
    assert table["url"] == "postgresql://r@db.corp/hr" and table["password"].startswith("g1:")

    config.write_text(f'[sources.demo]\nurl = "sqlite:///{demo_file}"\n')
    refused = runner.invoke(
        cli, ["--config", str(config), "sources", "query", "demo", "DELETE FROM employees"]
    )
    assert refused.exit_code == 2, refused.output
    assert "refused:" in refused.output and "DELETE" in refused.output
    ok = runner.invoke(
        cli,
        [
            "--config",
            str(config),
            "sources",
            "query",
            "demo",
            "SELECT name FROM products WHERE name = 'x;DROP TABLE products' ",
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output) == {"columns": ["name"], "rows": [], "truncated": None}
