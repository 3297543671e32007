"""The whole query path (grants, guard, row filters, read-only database, audit) on each dialect.

The demo company is created in a fresh database on the real SQLite, PostgreSQL and MariaDB
servers (``conftest.py``), and read through ``SourcesToolset`` as users of two tenants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from tests.sources.conftest import admin_engine

from graft.audit import tail
from graft.config import Settings
from graft.context import Principal
from graft.errors import QueryRefused
from graft.runtime import Graft
from graft.sources.toolset import SourcesToolset
from graft.testing import MemoryStore


def employees_by_tenant(url: str) -> dict[str, int]:
    engine = admin_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT tenant_id, count(*) FROM employees GROUP BY tenant_id")
            )
            return {tenant: count for tenant, count in rows}
    finally:
        engine.dispose()


def graft_on(settings_factory: Callable[..., Settings], url: str, **extra: Any) -> Graft:
    source = {
        "url": url,
        "columns": {"employees": ["id", "name", "title", "department_id", "manager_id"]},
        "row_filters": {
            "employees": "tenant_id = :tenant",
            "orders": "tenant_id = :tenant",
            "customers": "tenant_id = :tenant",
        },
        **extra,
    }
    settings = settings_factory(sources={"company": source})
    return Graft(settings, store=MemoryStore(), entry_points=False)


def toolset_of(graft: Graft) -> SourcesToolset:
    [toolset] = [t for t in graft.tools.toolsets if isinstance(t, SourcesToolset)]
    return toolset


def as_user(graft: Graft, tenant: str) -> Any:
    return graft.context(Principal("ann", frozenset({"user"}), tenant=tenant), "default")


async def test_row_filters_hold_on_every_dialect(
    settings_factory: Callable[..., Settings], demo_url: str
) -> None:
    expected = employees_by_tenant(demo_url)
    assert set(expected) == {"acme", "globex"} and expected["acme"] != expected["globex"]
    attempts = [
        "SELECT count(*) FROM employees",
        "SELECT count(*) FROM employees WHERE 1 = 1 OR id > 0",
        "SELECT count(*) FROM (SELECT id FROM employees UNION ALL SELECT id FROM employees "
        "WHERE id < 0) AS u",
        "WITH e AS (SELECT * FROM employees) SELECT count(*) FROM e",
        "SELECT count(*) FROM employees a JOIN employees b ON a.id = b.id",
        "SELECT count(*) FROM employees WHERE id IN (SELECT id FROM employees)",
    ]
    async with graft_on(settings_factory, demo_url) as graft:
        tools = toolset_of(graft)
        for tenant in ("acme", "globex"):
            for sql in attempts:
                output = await tools.run_query("company", sql, as_user(graft, tenant))
                assert output.data is not None
                assert output.data["rows"] == [[expected[tenant]]], (tenant, sql)
        # A join across filtered tables keeps each side to the tenant's rows.
        joined = (
            "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
            "JOIN employees e ON e.id = o.employee_id"
        )
        acme = await tools.run_query("company", joined, as_user(graft, "acme"))
        nobody = await tools.run_query("company", joined, as_user(graft, "initech"))
        assert acme.data is not None and acme.data["rows"][0][0] > 0
        assert nobody.data is not None and nobody.data["rows"] == [[0]]
        records = [r for r in await tail(graft.store, 100) if r.action == "sql.query"]
    assert len(records) == 2 * len(attempts) + 2
    assert {r.outcome for r in records} == {"ok"} and {r.target for r in records} == {"company"}


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("DELETE FROM employees", "DELETE"),
        ("SELECT name, salary FROM employees", "salary"),
        ("SELECT 1; DROP TABLE employees", "one statement"),
        ("SELECT * FROM information_schema.tables", "information_schema"),
    ],
)
async def test_refusals_leave_the_data_as_it_was(
    settings_factory: Callable[..., Settings], demo_url: str, sql: str, says: str
) -> None:
    before = employees_by_tenant(demo_url)
    async with graft_on(settings_factory, demo_url) as graft:
        with pytest.raises(QueryRefused) as refused:
            await toolset_of(graft).run_query("company", sql, as_user(graft, "acme"))
    assert says.lower() in refused.value.message.lower()
    assert employees_by_tenant(demo_url) == before


async def test_a_literal_that_looks_like_sql_is_only_a_string(
    settings_factory: Callable[..., Settings], demo_url: str
) -> None:
    sql = "SELECT count(*) FROM products WHERE name = 'x''; DROP TABLE products; --'"
    async with graft_on(settings_factory, demo_url) as graft:
        output = await toolset_of(graft).run_query("company", sql, as_user(graft, "acme"))
    assert output.data is not None and output.data["rows"] == [[0]]
    engine = admin_engine(demo_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM products")).scalar_one() > 0
    finally:
        engine.dispose()


async def test_describe_shows_comments_and_hides_columns(
    settings_factory: Callable[..., Settings], demo_url: str
) -> None:
    async with graft_on(settings_factory, demo_url) as graft:
        shown = await toolset_of(graft).describe_table(
            "company", "employees", as_user(graft, "acme")
        )
    assert "- name " in shown and "salary" not in shown and "tenant_id" not in shown
    assert "foreign key (department_id) references departments(id)" in shown
    if not demo_url.startswith("sqlite"):  # SQLite keeps no comments
        assert " -- " in shown
