"""The database layer of a data source: read-only queries with caps, and the schema.

``graft.sqlguard`` has already refused anything but one read-only query before SQL gets here;
this module refuses writes *again*, through the database itself, so that a gap in the guard
is not a write. Per dialect:

- **SQLite**: the file is opened read-only (``file:PATH?mode=ro``, which also never creates a
  missing file), ``PRAGMA query_only`` is on, and an authorizer (``set_authorizer``) allows
  only reading: ``SELECT``, reading columns, calling functions, recursive CTEs. Writes,
  ``ATTACH``, ``PRAGMA`` and transactions are denied while the statement is prepared. The
  time limit is a progress handler that aborts the statement past its deadline.
- **PostgreSQL**: every session's default is ``READ ONLY``, and every query runs in a
  transaction set ``READ ONLY`` with ``SET LOCAL statement_timeout``, rolled back after.
  Rows are read through a server-side cursor, so only the rows fetched cross the wire, and
  ``DECLARE … CURSOR FOR`` accepts nothing but a query (no ``COPY … TO PROGRAM``, no DDL,
  no data-modifying ``WITH``).
- **MySQL / MariaDB**: ``START TRANSACTION READ ONLY`` per query, after ``SET SESSION
  TRANSACTION READ ONLY`` (DDL commits the transaction it runs in; the session default
  refuses it too), ``max_statement_time`` (MariaDB) or ``max_execution_time`` (MySQL), and
  ``sql_select_limit = max_rows + 1``; rolled back after. Multi-statement packets are off.

None of this stops a *privileged account* from what a read-only transaction allows: a
PostgreSQL superuser can read server files, an account with MySQL's ``FILE`` privilege can
``SELECT … INTO OUTFILE``. Connect as a read-only role (``READ_ONLY_ROLE_SQL``); graft logs a
warning, once per source, when the account it connects as has those powers.

Results are capped in rows (``max_rows``; ``max_rows + 1`` are fetched to know there were
more, never all of them) and in bytes (the JSON size of the converted rows). Every value is
made JSON-safe: a ``Decimal`` stays exact (an ``int`` when integral, a ``float`` when the
float prints as the same number, else a ``str``), dates and times become ISO 8601 text (a
``timedelta`` an ISO 8601 duration), bytes ``"<N bytes>"``, anything else ``str()``.

Why sync drivers in a worker thread rather than asyncio drivers: one code path for three
databases; stdlib ``sqlite3`` is the only SQLite binding with an authorizer and a progress
handler; and no asyncio driver dependencies. Each call checks out one pooled connection
(``_POOL_SIZE``, with pre-ping and recycling) in a thread; a limiter keeps threads from
queueing on the pool.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.reflection import ObjectKind
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from graft.errors import ConfigError, QueryFailed
from graft.secrets import mask_secrets, register_secret

__all__ = [
    "READ_ONLY_ROLE_SQL",
    "Column",
    "Database",
    "Dialect",
    "ForeignKey",
    "QueryLimits",
    "QueryResult",
    "TableInfo",
    "database_url",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

Dialect = Literal["sqlite", "postgres", "mysql"]

READ_ONLY_ROLE_SQL: Final[dict[Dialect, str]] = {
    "postgres": """\
-- Run as the owner of the tables, connected to the database graft reads (here: company).
CREATE ROLE graft_reader LOGIN PASSWORD 'change-me';
GRANT CONNECT ON DATABASE company TO graft_reader;
GRANT USAGE ON SCHEMA public TO graft_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO graft_reader;
-- Tables the owner creates later are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO graft_reader;
-- Every transaction of the role is read-only, also outside graft.
ALTER ROLE graft_reader SET default_transaction_read_only = on;
""",
    "mysql": """\
-- Run as an administrator. SELECT on one database (here: company), and SHOW VIEW to describe
-- its views; no FILE privilege, so no SELECT ... INTO OUTFILE.
CREATE USER 'graft_reader'@'%' IDENTIFIED BY 'change-me';
GRANT SELECT, SHOW VIEW ON company.* TO 'graft_reader'@'%';
""",
}
"""SQL that creates a read-only account for graft, per dialect; change the names and password."""

_POOL_SIZE: Final = 4
_POOL_RECYCLE_S: Final = 1800
_CONNECT_TIMEOUT_S: Final = 10
_FETCH_CHUNK: Final = 100
_MULTI_STATEMENTS: Final = 1 << 16
"""MySQL's CLIENT_MULTI_STATEMENTS capability flag, masked out of every connection."""
_BACKENDS: Final[dict[str, tuple[Dialect, str, str, str]]] = {
    # URL backend: (dialect, SQLAlchemy driver name, module, extra that installs it)
    "sqlite": ("sqlite", "sqlite+pysqlite", "sqlite3", ""),
    "postgresql": ("postgres", "postgresql+psycopg", "psycopg", "postgres"),
    "postgres": ("postgres", "postgresql+psycopg", "psycopg", "postgres"),
    "mysql": ("mysql", "mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mysql", "mysql+pymysql", "pymysql", "mysql"),
}
_ACCEPTED_DRIVERS: Final = {"", "pysqlite", "psycopg", "psycopg2", "pymysql"}
"""Drivers a URL may name: they take the same parameters as the one graft uses."""


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """What one query may cost."""

    max_rows: int = 200
    """Rows returned; ``max_rows + 1`` are fetched to know whether there were more."""
    max_bytes: int = 262_144
    """JSON-encoded size of the rows; the rows past it are left out."""
    timeout: float = 10.0
    """Seconds per statement, enforced by the database itself."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The rows of one query, JSON-safe (see the module docstring for the conversions)."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: Literal["rows", "bytes"] | None
    """Why rows were left out, if any were."""
    elapsed_ms: float
    """Running the statement and fetching its rows."""


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table or view."""

    name: str
    type: str
    nullable: bool
    primary_key: bool
    default: str | None
    comment: str | None


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """``columns`` refer to ``referred_columns`` of ``table``."""

    columns: list[str]
    table: str
    referred_columns: list[str]


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table or view of the default schema."""

    name: str
    comment: str | None
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    row_estimate: int | None = None
    """The planner's row count (PostgreSQL, MySQL); ``None`` where unknown, and on SQLite."""


def database_url(url: str) -> URL:
    """``url`` with the sync driver graft uses, checked.

    ``sqlite:///path`` (relative to the working directory, or ``sqlite:////absolute``),
    ``postgresql://`` or ``postgres://`` (psycopg 3), ``mysql://`` or ``mariadb://``
    (PyMySQL, ``utf8mb4`` unless the URL names a charset). Raises ``ConfigError`` for
    anything else, an in-memory SQLite database, or a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError("a data source URL is not a valid database URL") from None
    backend = parsed.get_backend_name()
    if backend not in _BACKENDS:
        raise ConfigError(
            f"data sources are SQLite, PostgreSQL or MySQL/MariaDB, not {backend!r}: use a "
            "sqlite:///, postgresql:// or mysql:// URL"
        )
    dialect, drivername, module, extra = _BACKENDS[backend]
    driver = parsed.drivername.partition("+")[2]
    if driver not in _ACCEPTED_DRIVERS:
        raise ConfigError(f"{backend} data sources use {drivername!r}, not the {driver!r} driver")
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{backend} data sources need {module}: pip install 'graft[{extra}]'")
    parsed = parsed.set(drivername=drivername)
    if dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("a SQLite data source is a file: sqlite:///path/to/file.db")
    if dialect == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


class Database:
    """One data source, queried read-only.

    A sync SQLAlchemy engine (sqlite3 / psycopg / PyMySQL drivers), used from async code
    through ``anyio.to_thread.run_sync``, one connection checkout per call. ``tables()``
    and ``columns()`` are read once and cached; ``refresh()`` forgets them.
    """

    def __init__(self, name: str, url: str, *, limits: QueryLimits = QueryLimits()) -> None:
        self.name = name
        self.limits = limits
        self.url = database_url(url)
        self.dialect: Dialect = _BACKENDS[self.url.get_backend_name()][0]
        if self.url.password:
            register_secret(str(self.url.password))
        self._engine = self._create_engine()
        self._limiter = anyio.CapacityLimiter(_POOL_SIZE)
        self._columns: dict[str, list[str]] | None = None
        self._privileges_checked = False

    def __repr__(self) -> str:
        return f"Database({self.name!r}, {self.url.render_as_string(hide_password=True)!r})"

    @property
    def default_schema(self) -> str | None:
        """The schema that unqualified names resolve to.

        ``main`` on SQLite, the database on MySQL, ``current_schema()`` on PostgreSQL
        (``None`` until a first call has connected).
        """
        if self.dialect == "mysql":
            return self.url.database
        return self._engine.dialect.default_schema_name

    # --- the API ---------------------------------------------------------------------------

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limits: QueryLimits | None = None,
    ) -> QueryResult:
        """Run one query in a read-only transaction, ``:name`` parameters bound from ``params``.

        Raises ``QueryFailed`` for a timeout or the database's own error (a refused write).
        """
        limits = limits or self.limits
        read = partial(_read_rows, text(sql), dict(params or {}), limits)
        return await self._call(read, limits, sql=sql)

    async def tables(self) -> list[str]:
        """The tables and views of the default schema, sorted (never system catalogs)."""
        return sorted(await self.columns())

    async def columns(self) -> dict[str, list[str]]:
        """Every table and view of the default schema -> its column names, in order."""
        if self._columns is None:
            self._columns = await self._call(_column_names, self.limits, schema=True)
        return self._columns

    def refresh(self) -> None:
        """Forget the cached tables and columns (after the schema changed)."""
        self._columns = None

    async def describe(self, table: str) -> TableInfo:
        """Columns, keys, foreign keys and comments of ``table`` (a table or view)."""
        return await self._call(partial(_describe, table=table), self.limits, schema=True)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await anyio.to_thread.run_sync(self._engine.dispose)

    # --- in a worker thread -----------------------------------------------------------------

    async def _call(
        self,
        work: Callable[[Connection], T],
        limits: QueryLimits,
        *,
        sql: str = "",
        schema: bool = False,
    ) -> T:
        """``work`` in a worker thread, on a connection in a read-only transaction."""

        def run() -> T:
            try:
                with self._engine.connect() as conn:
                    raw: Any = conn.connection.driver_connection
                    try:
                        self._begin(conn, raw, limits, schema)
                        return work(conn)
                    finally:
                        if self.dialect == "sqlite":
                            raw.set_progress_handler(None, 0)
                            raw.set_authorizer(_authorize_query)
                        conn.rollback()
            except SQLAlchemyError as exc:
                raise QueryFailed(self._explain(exc, sql, limits)) from exc

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    def _begin(self, conn: Connection, raw: Any, limits: QueryLimits, schema: bool) -> None:
        """Start the read-only transaction and its time limit (see the module docstring)."""
        if self.dialect == "sqlite":
            raw.set_progress_handler(partial(_past, time.monotonic() + limits.timeout), 1000)
            if schema:
                raw.set_authorizer(_authorize_schema)
        elif self.dialect == "postgres":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            ms = max(1, round(limits.timeout * 1000))
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
        else:
            if getattr(conn.dialect, "is_mariadb", False):
                timeout = f"max_statement_time = {limits.timeout:.3f}"
            else:
                timeout = f"max_execution_time = {max(1, round(limits.timeout * 1000))}"
            # The server sends at most this many rows of a SELECT, however few are read.
            cap = "DEFAULT" if schema else str(limits.max_rows + 1)
            conn.exec_driver_sql(f"SET SESSION {timeout}, SESSION sql_select_limit = {cap}")
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
        if not self._privileges_checked:
            self._privileges_checked = True
            self._warn_if_privileged(conn)

    def _warn_if_privileged(self, conn: Connection) -> None:
        """Log once if the account can do what a read-only transaction does not stop."""
        if self.dialect == "postgres":
            found = conn.exec_driver_sql(
                "SELECT current_setting('is_superuser') = 'on'"
                " OR pg_has_role('pg_execute_server_program', 'MEMBER')"
                " OR pg_has_role('pg_write_server_files', 'MEMBER')"
            ).scalar()
            power = "a superuser (or a role that may run programs and write files on the server)"
        elif self.dialect == "mysql":
            found = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES"
                " WHERE PRIVILEGE_TYPE = 'FILE'"
                " AND GRANTEE = CONCAT('''', REPLACE(CURRENT_USER(), '@', '''@'''), '''')"
            ).scalar()
            power = "an account with the FILE privilege (SELECT ... INTO OUTFILE writes files)"
        else:
            return
        if found:
            log.warning(
                "data source %r connects as %s, which a read-only transaction does not "
                "restrain; connect as a read-only account (READ_ONLY_ROLE_SQL in %s)",
                self.name,
                power,
                __name__,
            )

    def _explain(self, exc: SQLAlchemyError, sql: str, limits: QueryLimits) -> str:
        """The database's error for the model: its own text, credentials masked."""
        orig = getattr(exc, "orig", None) or exc
        if _timed_out(self.dialect, orig):
            return (
                f"the query took longer than {limits.timeout:g} s, the time limit of this "
                "data source, and was cancelled; filter, aggregate or limit it"
            )
        label, message = _error_text(self.dialect, orig, sql)
        if label == "MySQL" and getattr(self._engine.dialect, "is_mariadb", False):
            label = "MariaDB"
        url = self.url.render_as_string(hide_password=False)
        hidden = self.url.render_as_string(hide_password=True)
        return mask_secrets(f"{label} error: {message}".replace(url, hidden))

    def _create_engine(self) -> Engine:
        options: dict[str, Any] = {
            "pool_size": _POOL_SIZE,
            "max_overflow": 0,
            "pool_pre_ping": True,
            "pool_recycle": _POOL_RECYCLE_S,
        }
        if self.dialect == "sqlite":
            path = Path(self.url.database or "").expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"data source {self.name!r}: no SQLite database file at {path}")
            url = self.url.set(database=str(path), query={})
            return create_engine(url, creator=partial(_sqlite_connect, path), **options)
        if self.dialect == "postgres":
            defaults = {"connect_timeout": _CONNECT_TIMEOUT_S, "application_name": "graft"}
            connect_args = {k: v for k, v in defaults.items() if k not in self.url.query}
            engine = create_engine(self.url, connect_args=connect_args, **options)
            event.listen(engine, "connect", _postgres_session)
            return engine
        engine = create_engine(self.url, **options)
        event.listen(engine, "do_connect", _mysql_connect_args)
        event.listen(engine, "connect", _mysql_session)
        return engine


# --- reading rows ---------------------------------------------------------------------------


def _read_rows(
    statement: Executable, params: dict[str, Any], limits: QueryLimits, conn: Connection
) -> QueryResult:
    started = time.perf_counter()
    if conn.dialect.name != "sqlite":
        # A server-side cursor (PostgreSQL) or an unbuffered one (MySQL): rows cross the
        # wire as they are fetched, not all at once.
        conn = conn.execution_options(yield_per=min(_FETCH_CHUNK, limits.max_rows + 1))
    result = conn.execute(statement, params)
    if not result.returns_rows:
        raise QueryFailed("the statement returned no rows: only queries run here")
    columns = list(result.keys())
    rows: list[list[Any]] = []
    truncated: Literal["rows", "bytes"] | None = None
    size = 2  # the brackets of the list
    while truncated is None:
        chunk = result.fetchmany(min(_FETCH_CHUNK, limits.max_rows + 1 - len(rows)))
        if not chunk:
            break
        for values in chunk:
            if len(rows) == limits.max_rows:
                truncated = "rows"
                break
            row = [_json_value(value) for value in values]
            size += len(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()) + 1
            if size > limits.max_bytes:
                truncated = "bytes"
                break
            rows.append(row)
    result.close()
    return QueryResult(columns, rows, truncated, (time.perf_counter() - started) * 1000)


def _json_value(value: Any) -> Any:
    """``value`` as a JSON-safe value (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _iso_duration(value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, memoryview):
        return f"<{value.nbytes} bytes>"
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return str(value)


_NON_FINITE: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _iso_duration(value: timedelta) -> str:
    """``P1DT2H3M4.5S``, ``PT0S`` for nothing; a negative duration gets a leading ``-``."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
    clock = [f"{amount}{unit}" for amount, unit in ((hours, "H"), (minutes, "M")) if amount]
    if seconds or fraction or not (value.days or clock):
        clock.append(f"{seconds}{fraction}S")
    days = f"{value.days}D" if value.days else ""
    return f"{sign}P{days}" + (f"T{''.join(clock)}" if clock else "")


# --- errors ---------------------------------------------------------------------------------

_LEADING_NOISE: Final = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
_QUERY_STARTS: Final = ("select", "with", "values", "table", "(")


def _timed_out(dialect: Dialect, orig: BaseException) -> bool:
    if dialect == "sqlite":
        return str(orig) == "interrupted"  # by the progress handler
    if dialect == "postgres":
        return getattr(orig, "sqlstate", None) == "57014"  # query_canceled
    # MariaDB's max_statement_time, MySQL's max_execution_time
    return bool(orig.args) and orig.args[0] in (1969, 3024)


def _error_text(dialect: Dialect, orig: BaseException, sql: str) -> tuple[str, str]:
    """The database's name and its message, without context lines that show graft's SQL."""
    if dialect == "postgres":
        diag = getattr(orig, "diag", None)
        message = getattr(diag, "message_primary", None) or str(orig)
        if hint := getattr(diag, "message_hint", None):
            message = f"{message} (hint: {hint})"
        syntax = getattr(orig, "sqlstate", None) == "42601"
        # What DECLARE ... CURSOR FOR refused: a statement that is not a query.
        if "DECLARE CURSOR" in message or (syntax and sql and not _is_query(sql)):
            message = f"only read-only queries run here ({message})"
        return "PostgreSQL", message
    if dialect == "mysql":
        return "MySQL", str(orig.args[1]) if len(orig.args) > 1 else str(orig)
    message = str(orig)
    if message in ("not authorized", "authorization denied"):  # by the authorizer
        message = f"{message}: this data source only allows reading"
    return "SQLite", message


def _is_query(sql: str) -> bool:
    """Whether ``sql`` starts (after comments) like a query; only to word error messages."""
    return _LEADING_NOISE.sub("", sql, count=1).lower().startswith(_QUERY_STARTS)


# --- the schema -----------------------------------------------------------------------------


def _column_names(conn: Connection) -> dict[str, list[str]]:
    found = inspect(conn).get_multi_columns(kind=ObjectKind.ANY)
    return {name: [column["name"] for column in columns] for (_, name), columns in found.items()}


def _describe(conn: Connection, *, table: str) -> TableInfo:
    inspector = inspect(conn)
    try:
        found = inspector.get_columns(table)
    except NoSuchTableError:
        raise QueryFailed(f"there is no table or view named {table!r}") from None
    keys = set(inspector.get_pk_constraint(table).get("constrained_columns") or ())
    columns = []
    for column in found:
        try:
            type_name = column["type"].compile(dialect=conn.dialect)
        except SQLAlchemyError:
            type_name = str(column["type"])
        default = column.get("default")
        columns.append(
            Column(
                name=column["name"],
                type=type_name,
                nullable=bool(column.get("nullable", True)) and column["name"] not in keys,
                primary_key=column["name"] in keys,
                default=None if default is None else str(default),
                comment=column.get("comment") or None,
            )
        )
    foreign_keys = [
        ForeignKey(list(fk["constrained_columns"]), fk["referred_table"], fk["referred_columns"])
        for fk in inspector.get_foreign_keys(table)
    ]
    comment = None
    if conn.dialect.supports_comments:
        comment = inspector.get_table_comment(table).get("text") or None
    return TableInfo(table, comment, columns, foreign_keys, _row_estimate(conn, table))


def _row_estimate(conn: Connection, table: str) -> int | None:
    """The planner's count: PostgreSQL's ``reltuples``, MySQL's ``TABLE_ROWS``."""
    if conn.dialect.name == "postgresql":
        sql = (
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relname = :t"
            " AND c.relkind IN ('r', 'p', 'm')"
        )
    elif conn.dialect.name in ("mysql", "mariadb"):
        sql = (
            "SELECT TABLE_ROWS FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND TABLE_TYPE = 'BASE TABLE'"
        )
    else:
        return None
    found = conn.execute(text(sql), {"t": table}).scalar()
    return None if found is None or found < 0 else int(found)


# --- connections ----------------------------------------------------------------------------

_SQLITE_READS: Final = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_SQLITE_SCHEMA_PRAGMAS: Final = frozenset(
    {"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info", "index_xinfo"}
)
"""Pragmas that only read the schema, allowed while ``describe`` and ``columns`` run."""


def _authorize_query(
    action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
) -> int:
    """SQLite's authorizer, but while the schema is read: reading only."""
    if action in _SQLITE_READS:
        return sqlite3.SQLITE_OK
    # SQLAlchemy reads this setting (never sets it) when it first connects.
    if action == sqlite3.SQLITE_PRAGMA and arg1 == "read_uncommitted" and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _authorize_schema(
    action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
) -> int:
    """SQLite's authorizer while the schema is read: also the schema pragmas."""
    if action == sqlite3.SQLITE_PRAGMA and arg1 in _SQLITE_SCHEMA_PRAGMAS:
        return sqlite3.SQLITE_OK
    return _authorize_query(action, arg1, arg2, db, trigger)


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise sqlite3.OperationalError(f"no SQLite database file at {path}")
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(_authorize_query)
    return conn


def _past(deadline: float) -> int:
    """SQLite's progress handler: non-zero aborts the statement."""
    return 1 if time.monotonic() > deadline else 0


def _postgres_session(dbapi_connection: Any, record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        # The SQL guard renders strings as the standard reads them ('a\' is a\).
        cursor.execute("SET standard_conforming_strings = on")
    dbapi_connection.commit()


def _mysql_connect_args(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    cparams["client_flag"] = int(cparams.get("client_flag", 0)) & ~_MULTI_STATEMENTS


def _mysql_session(dbapi_connection: Any, record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
