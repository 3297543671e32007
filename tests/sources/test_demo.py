"""The demo company: the same rows on SQLite, PostgreSQL and MariaDB, every time."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from graft.errors import ConfigError
from graft.sources.demo import DEMO_TABLES, DEMO_VIEWS, METADATA, create_demo
from graft.sources.engine import Database, QueryLimits

COUNTS = {
    "departments": 10,
    "employees": 60,
    "products": 40,
    "customers": 50,
    "orders": 400,
    "order_items": 967,
}
KEYS = {"order_items": "order_id, product_id"}
"""How each table's rows are ordered for a digest (default: ``id``)."""


async def digest(url: str) -> str:
    """A digest of every demo row, as graft reads them."""
    database = Database("demo", url, limits=QueryLimits(max_rows=2000, max_bytes=10**8))
    try:
        rows = {}
        for table in DEMO_TABLES:
            found = await database.query(f"SELECT * FROM {table} ORDER BY {KEYS.get(table, 'id')}")
            assert found.truncated is None
            rows[table] = found.rows
    finally:
        await database.aclose()
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


async def test_create_refuse_and_reset(empty_url: str) -> None:
    assert await create_demo(empty_url, reset=True) == COUNTS
    first = await digest(empty_url)
    with pytest.raises(ConfigError, match="exist already .*reset"):
        await create_demo(empty_url)
    assert await digest(empty_url) == first  # refused before touching anything
    assert await create_demo(empty_url, reset=True) == COUNTS
    assert await digest(empty_url) == first


async def test_the_same_rows_every_time(tmp_path: Path) -> None:
    one, two = (f"sqlite:///{tmp_path / name / 'demo.db'}" for name in ("one", "two"))
    assert await create_demo(one) == await create_demo(two) == COUNTS
    assert await digest(one) == await digest(two)


async def test_what_the_company_holds(demo_url: str) -> None:
    database = Database("demo", demo_url)
    try:

        async def scalar(sql: str) -> object:
            return (await database.query(sql)).rows[0][0]

        assert await database.tables() == sorted({*DEMO_TABLES, *DEMO_VIEWS})
        tenants = await database.query("SELECT DISTINCT tenant_id FROM employees ORDER BY 1")
        assert tenants.rows == [["acme"], ["globex"]]
        # Chinese names, and English ones, among the employees and the customers
        for table in ("employees", "customers"):
            names = [row[0] for row in (await database.query(f"SELECT name FROM {table}")).rows]
            assert any("\u4e00" <= name[0] <= "\u9fff" for name in names)
            assert any(name.isascii() for name in names)
        # every order's customer and seller belong to the order's tenant
        assert (
            await scalar(
                "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id"
                " JOIN employees e ON e.id = o.employee_id"
                " WHERE c.tenant_id <> o.tenant_id OR e.tenant_id <> o.tenant_id"
            )
            == 0
        )
        assert await scalar("SELECT COUNT(*) FROM employees WHERE manager_id IS NULL") == 2
        assert await scalar("SELECT COUNT(DISTINCT email) FROM employees") == 60
        assert await scalar("SELECT MIN(ordered_at) FROM orders") == await scalar(
            "SELECT ordered_at FROM orders WHERE id = 1"
        )
        totals = await database.query(
            "SELECT t.total, SUM(i.quantity * i.unit_price) FROM order_totals t"
            " JOIN order_items i ON i.order_id = t.order_id WHERE t.order_id = 7 GROUP BY t.total"
        )
        total, computed = totals.rows[0]
        assert total == pytest.approx(computed)
        if database.dialect != "sqlite":
            info = await database.describe("employees")
            salary = next(c for c in info.columns if c.name == "salary")
            assert salary.comment == "Yearly gross salary in USD."
    finally:
        await database.aclose()


async def test_a_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not 'oracle'"):
        await create_demo("oracle://u@db/company")
    password = "S3cret-Passw0rd-4-graft"
    with pytest.raises(ConfigError, match="could not create the demo database") as failed:
        await create_demo(f"postgresql://graft:{password}@127.0.0.1:1/company")
    assert password not in failed.value.message


def test_every_table_and_column_is_documented() -> None:
    assert {table.name for table in METADATA.sorted_tables} == set(DEMO_TABLES)
    for table in METADATA.sorted_tables:
        assert table.comment == DEMO_TABLES[table.name]
        assert all(column.comment for column in table.columns)
