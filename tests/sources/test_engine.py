"""graft.sources.engine against real SQLite, PostgreSQL and MariaDB databases.

The guard is not in the way here: writes go straight to ``Database.query``, and each test
proves that the *database* refuses them and that the data is unchanged afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from graft.errors import ConfigError, QueryFailed
from graft.sources.demo import DEMO_TABLES, create_demo
from graft.sources.engine import READ_ONLY_ROLE_SQL, Database, QueryLimits, database_url

EXTRA = MetaData()
KINDS = Table(
    "kinds",
    EXTRA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("amount", Numeric(12, 2)),
    Column("big", Numeric(30, 2)),
    Column("day", Date),
    Column("moment", DateTime),
    Column("blob", LargeBinary),
    Column("note", String(50)),
    Column("label", String(100)),
    mysql_charset="utf8mb4",
)
ODD = Table("Odd Name", EXTRA, Column("Key", Integer, primary_key=True, autoincrement=False))
LABEL = "王芳 – naïve ☕"
KIND_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "amount": Decimal("19.99"),
        "big": Decimal("12345678901234567.89"),
        "day": date(2024, 2, 29),
        "moment": datetime(2024, 2, 29, 13, 45, 30),
        "blob": b"\x00\x01\x02",
        "note": None,
        "label": LABEL,
    },
    {
        "id": 2,
        "amount": Decimal("12.00"),
        "big": Decimal("1"),
        "day": date(1999, 12, 31),
        "moment": datetime(2000, 1, 1),
        "blob": b"",
        "note": "n",
        "label": "plain",
    },
]
EMPLOYEE_COLUMNS = [
    "id",
    "tenant_id",
    "name",
    "email",
    "title",
    "department_id",
    "manager_id",
    "salary",
    "hired_on",
]
EVIL = "'; DROP TABLE employees; --"
SLOW = {
    "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT COUNT(*) "
    "FROM c",
    "postgres": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
}
REFUSAL = {"sqlite": "not authorized", "postgres": "read-only", "mysql": "READ ONLY"}
"""What each database says when it refuses a write."""
WRITES = [
    "INSERT INTO departments (id, tenant_id, name) VALUES (99, 'acme', 'Spies')",
    "UPDATE employees SET salary = 0",
    "DELETE FROM order_items",
    "CREATE TABLE notes (id INTEGER)",
    "DROP TABLE order_items",
    "ALTER TABLE employees ADD COLUMN bonus INTEGER",
]


def on(dialect: str) -> pytest.MarkDecorator:
    """Run a test on one dialect only (the module's database fixture, narrowed)."""
    marks = [] if dialect == "sqlite" else [pytest.mark.integration]
    return pytest.mark.parametrize("empty_url", [pytest.param(dialect, marks=marks)], indirect=True)


def admin_engine(url: str, **options: Any) -> Engine:
    """A read-write engine (not graft's), to set up and check what the tests read."""
    return create_engine(database_url(url), **options)


@pytest.fixture(scope="module")
def source_url(demo_url: str) -> str:
    """The demo company, plus a table of value kinds and one with an awkward name."""
    engine = admin_engine(demo_url)
    try:
        with engine.begin() as conn:
            EXTRA.drop_all(conn)
            EXTRA.create_all(conn)
            conn.execute(KINDS.insert(), KIND_ROWS)
            conn.execute(ODD.insert(), [{"Key": 1}, {"Key": 2}])
    finally:
        engine.dispose()
    return demo_url


@pytest.fixture
async def db(source_url: str) -> AsyncIterator[Database]:
    database = Database("company", source_url, limits=QueryLimits(timeout=5))
    yield database
    await database.aclose()


def counts(url: str) -> dict[str, int]:
    """Rows per demo table, read with a read-write engine (it fails if a table is gone)."""
    engine = admin_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one()
                for t in DEMO_TABLES
            }
    finally:
        engine.dispose()


# --- results ------------------------------------------------------------------------------


async def test_values_are_json_safe(db: Database) -> None:
    found = await db.query("SELECT * FROM kinds ORDER BY id")
    assert found.columns == ["id", "amount", "big", "day", "moment", "blob", "note", "label"]
    assert found.truncated is None
    first, second = found.rows
    if db.dialect == "sqlite":  # no types: what SQLAlchemy stored, as SQLite keeps it
        assert first == [
            1,
            19.99,
            1.2345678901234568e16,
            "2024-02-29",
            "2024-02-29 13:45:30.000000",
            "<3 bytes>",
            None,
            LABEL,
        ]
    else:  # exact decimals stay exact
        assert first == [
            1,
            19.99,
            "12345678901234567.89",
            "2024-02-29",
            "2024-02-29T13:45:30",
            "<3 bytes>",
            None,
            LABEL,
        ]
    assert second[1:3] == [12, 1]  # integral decimals are ints
    assert second[5] == "<0 bytes>"
    json.dumps(found.rows, allow_nan=False)
    assert found.elapsed_ms > 0


@on("postgres")
async def test_postgres_types(db: Database) -> None:
    found = await db.query(
        "SELECT gen_random_uuid() AS u, interval '1 day 2 hours 3.5 seconds' AS i,"
        " '{\"a\": [1, 2.5]}'::jsonb AS j, 'NaN'::float8 AS f, ARRAY[1, 2] AS a,"
        " 0.0000001::numeric AS tiny, TIME '13:45' AS t, NULL::int AS n"
    )
    uuid, *rest = found.rows[0]
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", uuid)
    assert rest == ["P1DT2H3.5S", {"a": [1, 2.5]}, "NaN", [1, 2], 1e-07, "13:45:00", None]


@on("mysql")
async def test_mysql_types(db: Database) -> None:
    found = await db.query(
        "SELECT CAST('12:30:00' AS TIME) AS t, CAST('-25:00:00' AS TIME) AS back,"
        " CAST(-1.5 AS DECIMAL(5, 2)) AS d, CAST(x'CAFE' AS BINARY) AS b"
    )
    assert found.rows == [["PT12H30M", "-P1DT1H", -1.5, "<2 bytes>"]]


async def test_rows_are_truncated_after_max_rows(db: Database) -> None:
    found = await db.query("SELECT id FROM employees ORDER BY id", limits=QueryLimits(max_rows=5))
    assert (found.rows, found.truncated) == ([[1], [2], [3], [4], [5]], "rows")
    exact = await db.query(
        "SELECT id FROM employees WHERE id <= 5 ORDER BY id", limits=QueryLimits(max_rows=5)
    )
    assert (len(exact.rows), exact.truncated) == (5, None)
    many = await db.query("SELECT * FROM order_items", limits=QueryLimits(max_rows=150))
    assert (len(many.rows), many.truncated) == (150, "rows")  # across fetched chunks


async def test_rows_are_truncated_at_max_bytes(db: Database) -> None:
    found = await db.query(
        "SELECT id, name, email FROM employees ORDER BY id", limits=QueryLimits(max_bytes=1000)
    )
    assert found.truncated == "bytes"
    assert 0 < len(found.rows) < 60
    assert len(json.dumps(found.rows, ensure_ascii=False, separators=(",", ":")).encode()) <= 1000


async def test_truncated_queries_leave_clean_connections(db: Database) -> None:
    """More truncated reads than pooled connections, an explicit LIMIT among them."""
    for _ in range(6):
        found = await db.query(
            "SELECT * FROM order_items ORDER BY order_id LIMIT 900", limits=QueryLimits(max_rows=3)
        )
        assert (len(found.rows), found.truncated) == (3, "rows")
    assert (await db.query("SELECT COUNT(*) AS n FROM order_items")).rows == [[967]]
    assert len((await db.columns())["employees"]) == 9


async def test_concurrent_queries(db: Database) -> None:
    results = await asyncio.gather(*(db.query("SELECT COUNT(*) FROM orders") for _ in range(12)))
    assert {tuple(r.rows[0]) for r in results} == {(400,)}


async def test_bind_parameters(db: Database, source_url: str) -> None:
    before = counts(source_url)
    sql = "SELECT id FROM employees WHERE name = :name OR email = :name"
    assert (await db.query(sql, {"name": EVIL})).rows == []
    echoed = await db.query("SELECT :v AS v", {"v": EVIL + " 50% :x"})
    assert echoed.rows == [[EVIL + " 50% :x"]]
    likes = await db.query(
        "SELECT COUNT(*) FROM employees WHERE tenant_id = :tenant AND email LIKE '%a%'",
        {"tenant": "acme"},
    )
    assert 0 < likes.rows[0][0] <= 35
    chinese = await db.query("SELECT name FROM employees WHERE name LIKE :p", {"p": "王%"})
    assert all(row[0].startswith("王") for row in chinese.rows) and chinese.rows
    assert counts(source_url) == before


async def test_database_errors_are_query_failed(db: Database) -> None:
    with pytest.raises(QueryFailed, match="nope") as failed:
        await db.query("SELECT nope FROM employees")
    assert failed.value.message.startswith(("SQLite error", "PostgreSQL error", "MariaDB error"))
    with pytest.raises(QueryFailed):
        await db.query("SELECT id FROM employees WHERE id = :id")  # no value for :id


# --- writes -------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", WRITES)
async def test_writes_are_refused_by_the_database(db: Database, source_url: str, sql: str) -> None:
    before = counts(source_url)
    with pytest.raises(QueryFailed, match=REFUSAL[db.dialect]):
        await db.query(sql)
    assert counts(source_url) == before
    db.refresh()
    columns = await db.columns()
    assert "notes" not in columns and "bonus" not in columns["employees"]


@on("sqlite")
async def test_sqlite_refuses_attach_pragmas_and_transactions(
    db: Database, source_url: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    for sql in [
        f"ATTACH DATABASE '{other}' AS other",
        "PRAGMA writable_schema = ON",
        "PRAGMA query_only = OFF",
        "PRAGMA table_info(employees)",
        f"VACUUM INTO '{tmp_path / 'copy.db'}'",
        "BEGIN",
        "CREATE TEMP TABLE scratch (id INTEGER)",
    ]:
        with pytest.raises(QueryFailed, match="this data source only allows reading"):
            await db.query(sql)
    assert not other.exists() and not (tmp_path / "copy.db").exists()
    with pytest.raises(QueryFailed, match="one statement at a time"):
        await db.query("SELECT 1; DELETE FROM order_items")
    assert counts(source_url)["order_items"] == 967


@on("postgres")
async def test_postgres_refuses_what_is_not_a_query(db: Database, source_url: str) -> None:
    marker = anyio.Path(f"/tmp/graft_copy_{secrets.token_hex(4)}")
    with pytest.raises(QueryFailed, match="only read-only queries run here"):
        await db.query(f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'")
    assert not await marker.exists()
    with pytest.raises(QueryFailed, match="only read-only queries run here"):
        await db.query("WITH gone AS (DELETE FROM order_items RETURNING *) SELECT * FROM gone")
    with pytest.raises(QueryFailed, match="multiple commands"):
        await db.query("SELECT 1; DELETE FROM order_items")
    with pytest.raises(QueryFailed, match="read-only transaction"):
        await db.query("SELECT * FROM employees FOR UPDATE")
    assert counts(source_url)["order_items"] == 967


@on("postgres")
async def test_postgres_read_only_transaction_refuses_writes_inside_a_select(
    db: Database, source_url: str
) -> None:
    admin = admin_engine(source_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION graft_wipe() RETURNS bigint LANGUAGE sql AS"
            " $$ DELETE FROM order_items RETURNING 1 $$"
        )
    try:
        session = await db.query("SELECT set_config('default_transaction_read_only', 'off', false)")
        assert session.rows == [["off"]]  # runs, but only inside a transaction rolled back
        with pytest.raises(QueryFailed, match="cannot execute DELETE in a read-only transaction"):
            await db.query("SELECT graft_wipe()")
        assert counts(source_url)["order_items"] == 967
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP FUNCTION graft_wipe()")
        admin.dispose()


@on("mysql")
async def test_mysql_refuses_multiple_statements_and_session_changes(
    db: Database, source_url: str
) -> None:
    with pytest.raises(QueryFailed, match="syntax"):
        await db.query("SELECT 1; DELETE FROM order_items")
    with pytest.raises(QueryFailed, match="returned no rows"):
        await db.query("SET SESSION TRANSACTION READ WRITE")
    for _ in range(4):  # whichever pooled connection ran it, DDL is still refused
        with pytest.raises(QueryFailed, match="READ ONLY"):
            await db.query("CREATE TABLE notes (id INTEGER)")
    assert counts(source_url)["order_items"] == 967


# --- time limit ---------------------------------------------------------------------------


async def test_statement_timeout(db: Database) -> None:
    started = time.monotonic()
    with pytest.raises(QueryFailed, match=r"took longer than 0\.5 s"):
        await db.query(SLOW[db.dialect], limits=QueryLimits(timeout=0.5))
    assert time.monotonic() - started < 3
    assert (await db.query("SELECT 1 AS one")).rows == [[1]]  # the connection is fine


# --- the schema ---------------------------------------------------------------------------


async def test_tables_columns_and_describe(db: Database) -> None:
    tables = await db.tables()
    assert set(tables) == {*DEMO_TABLES, "order_totals", "kinds", "Odd Name"}
    assert tables == sorted(tables)
    columns = await db.columns()
    assert columns["employees"] == EMPLOYEE_COLUMNS
    assert columns["order_totals"] == ["order_id", "items", "total"]
    info = await db.describe("employees")
    by_name = {column.name: column for column in info.columns}
    assert [c.name for c in info.columns] == columns["employees"]
    assert by_name["id"].primary_key and not by_name["id"].nullable
    assert by_name["manager_id"].nullable and not by_name["name"].nullable
    assert re.fullmatch(r"(NUMERIC|DECIMAL)\(10, 2\)", by_name["salary"].type)
    assert {
        (tuple(fk.columns), fk.table, tuple(fk.referred_columns)) for fk in info.foreign_keys
    } == {
        (("department_id",), "departments", ("id",)),
        (("manager_id",), "employees", ("id",)),
    }
    items = await db.describe("order_items")
    assert [c.name for c in items.columns if c.primary_key] == ["order_id", "product_id"]
    assert len(items.foreign_keys) == 2
    if db.dialect == "sqlite":
        assert (info.comment, by_name["salary"].comment, info.row_estimate) == (None, None, None)
    else:
        assert info.comment == DEMO_TABLES["employees"]
        assert by_name["salary"].comment == "Yearly gross salary in USD."
        assert info.row_estimate is not None and info.row_estimate > 0
    view = await db.describe("order_totals")
    assert [c.name for c in view.columns] == ["order_id", "items", "total"]
    assert db.default_schema == {"sqlite": "main", "postgres": "public"}.get(
        db.dialect, make_url(db.url).database
    )
    with pytest.raises(QueryFailed, match="no table or view named 'nope'"):
        await db.describe("nope")


async def test_columns_are_cached_until_refresh(db: Database, source_url: str) -> None:
    assert "later" not in await db.columns()
    admin = admin_engine(source_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE later (id INTEGER)")
        assert "later" not in await db.tables()
        db.refresh()
        assert (await db.columns())["later"] == ["id"]
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP TABLE later")
        admin.dispose()


async def test_privileged_accounts_are_warned_about_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="graft.sources.engine")
    await db.query("SELECT 1 AS one")
    await db.query("SELECT 1 AS one")
    warned = [r for r in caplog.records if "read-only account" in r.getMessage()]
    assert len(warned) == (0 if db.dialect == "sqlite" else 1)  # the tests connect as admins


# --- read-only roles ----------------------------------------------------------------------


def role_statements(dialect: str, role: str, database: str) -> list[str]:
    """READ_ONLY_ROLE_SQL as written in the docs, with this test's names."""
    sql = re.sub(r"--[^\n]*", "", READ_ONLY_ROLE_SQL[dialect])  # type: ignore[index]
    sql = re.sub(r"\bgraft_reader\b", role, re.sub(r"\bcompany\b", database, sql))
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


@on("postgres")
async def test_postgres_read_only_role(source_url: str, caplog: pytest.LogCaptureFixture) -> None:
    role = f"graft_reader_{secrets.token_hex(4)}"
    admin = admin_engine(source_url, isolation_level="AUTOCOMMIT")
    role_url = make_url(source_url).set(username=role, password="change-me")
    reader = admin_engine(
        role_url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            for statement in role_statements("postgres", role, str(make_url(source_url).database)):
                conn.execute(text(statement))
            conn.exec_driver_sql("CREATE TABLE later (id INTEGER)")  # after the grants
        with reader.connect() as conn:  # a plain session of the role, outside graft
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM employees").scalar() == 60
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM later").scalar() == 0
            with pytest.raises(DBAPIError, match="read-only transaction"):
                conn.exec_driver_sql("DELETE FROM order_items")
            with pytest.raises(DBAPIError, match="read-only transaction"):
                conn.exec_driver_sql("CREATE TABLE mine (id INTEGER)")
            conn.exec_driver_sql("BEGIN READ WRITE")
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.exec_driver_sql("DELETE FROM order_items")
            conn.exec_driver_sql("ROLLBACK")
        caplog.set_level(logging.WARNING, logger="graft.sources.engine")
        database = Database("company", role_url.render_as_string(hide_password=False))
        try:
            assert (await database.query("SELECT COUNT(*) FROM orders")).rows == [[400]]
            assert "later" in await database.tables()
            with pytest.raises(QueryFailed):
                await database.query("SELECT graft_nothing FROM order_items FOR UPDATE")
        finally:
            await database.aclose()
        assert not [r for r in caplog.records if "read-only account" in r.getMessage()]
        assert counts(source_url)["order_items"] == 967
    finally:
        reader.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS later")
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


@on("mysql")
async def test_mysql_read_only_account(source_url: str, caplog: pytest.LogCaptureFixture) -> None:
    user = f"graft_reader_{secrets.token_hex(4)}"
    admin = admin_engine(source_url, isolation_level="AUTOCOMMIT")
    user_url = make_url(source_url).set(username=user, password="change-me")
    reader = admin_engine(
        user_url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            for statement in role_statements("mysql", user, str(make_url(source_url).database)):
                conn.execute(text(statement))  # text() escapes the % of '%' for PyMySQL
        with reader.connect() as conn:  # a plain session of the account, outside graft
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM employees").scalar() == 60
            for sql in ["DELETE FROM order_items", "CREATE TABLE mine (id INTEGER)"]:
                with pytest.raises(DBAPIError, match="command denied"):
                    conn.exec_driver_sql(sql)
            with pytest.raises(DBAPIError, match="Access denied"):
                conn.exec_driver_sql(f"SELECT 1 INTO OUTFILE '/tmp/{user}'")
        caplog.set_level(logging.WARNING, logger="graft.sources.engine")
        database = Database("company", user_url.render_as_string(hide_password=False))
        try:
            assert (await database.query("SELECT COUNT(*) FROM orders")).rows == [[400]]
            assert (await database.describe("order_totals")).columns  # SHOW VIEW
        finally:
            await database.aclose()
        assert not [r for r in caplog.records if "read-only account" in r.getMessage()]
        assert counts(source_url)["order_items"] == 967
    finally:
        reader.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


# --- URLs and configuration ---------------------------------------------------------------


def test_database_url_picks_the_sync_driver() -> None:
    assert str(database_url("sqlite:///data/company.db")) == "sqlite+pysqlite:///data/company.db"
    assert database_url("postgres://u@db/company").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg2://u@db/company").drivername == "postgresql+psycopg"
    mysql = database_url("mariadb://u@db/company")
    assert (mysql.drivername, mysql.query["charset"]) == ("mysql+pymysql", "utf8mb4")
    assert database_url("mysql://u@db/company?charset=latin1").query["charset"] == "latin1"
    assert database_url(str(database_url("mysql://u@db/c"))) == database_url("mysql://u@db/c")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://u@db/company", "not 'oracle'"),
        ("sqlite://", "is a file"),
        ("sqlite:///:memory:", "is a file"),
        ("postgresql+asyncpg://u@db/company", "not the 'asyncpg' driver"),
        ("not a url", "not a valid database URL"),
    ],
)
def test_database_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        database_url(url)


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        ("pymysql", "mysql://u@db/c", "graft[mysql]"),
        ("psycopg", "postgres://u@db/c", "graft[postgres]"),
    ],
)
def test_a_missing_driver_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, url: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=re.escape(f"pip install '{extra}'")):
        database_url(url)


def test_a_missing_sqlite_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ConfigError, match=re.escape(f"no SQLite database file at {missing}")):
        Database("company", f"sqlite:///{missing}")
    assert not missing.exists()


async def test_a_sqlite_file_removed_later_fails_the_query(tmp_path: Path) -> None:
    path = tmp_path / "company.db"
    await create_demo(f"sqlite:///{path}")
    database = Database("company", f"sqlite:///{path}")
    path.unlink()
    try:
        with pytest.raises(QueryFailed, match="no SQLite database file at"):
            await database.query("SELECT 1")
        assert not path.exists()
    finally:
        await database.aclose()


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_credentials_are_masked(scheme: str) -> None:
    password = "S3cret-Passw0rd-4-graft"
    database = Database("company", f"{scheme}://graft:{password}@127.0.0.1:1/company")
    try:
        with pytest.raises(QueryFailed) as failed:
            await database.query("SELECT 1")
        assert password not in failed.value.message
        assert password not in repr(database)
    finally:
        await database.aclose()
