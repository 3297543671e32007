"""``SourcesToolset``: the SQL tools over the data sources of ``[sources.NAME]``.

Four tools, all read-only, each taking the source by name:

- ``list_tables(source)`` and ``describe_table(source, table)``: the schema this principal
  may read (hidden tables and columns are not shown; sample rows only where an admin allows
  them, and read through the guard like any query);
- ``query_database(source, sql)``: SQL the model wrote;
- ``ask_database(source, question)``: SQL drafted from the schema by the chat model
  (``graft.sources.ask``), retried once with the error when it fails.

Every query takes one path, ``run_query``, which the CLI (``graft sources query``) uses too:
the guard (``graft.sqlguard``) with this principal's policy, then the database in a
read-only transaction with the source's caps, then one ``sql.query`` audit record (who,
which source, which tables, how many rows; a digest of the SQL, not its text, as with tool
arguments). A refusal is audited as ``denied`` and raised as ``QueryRefused``, which the
model reads and can act on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio
from sqlglot import exp

from graft.audit import AuditEvent, Outcome, record
from graft.crypto import is_sealed
from graft.errors import ConfigError, GraftError, PermissionDenied, QueryRefused, ToolNotFound
from graft.secrets import register_secret
from graft.sources.access import filter_values, readable_tables, sql_policy, visible_sources
from graft.sources.engine import Database, QueryLimits, QueryResult, TableInfo, database_url
from graft.sources.results import result_output
from graft.sources.settings import SourceSettings
from graft.sqlguard import guard_query
from graft.tools.base import ToolDef, ToolOutput

if TYPE_CHECKING:
    from graft.context import Context

__all__ = ["TOOL_NAMES", "SourcesToolset"]

TOOL_NAMES: Final = ("list_tables", "describe_table", "query_database", "ask_database")
_SAMPLE_ROWS: Final = 3
_SQL_CHARS: Final = 20_000


def _digest(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


class SourcesToolset:
    """The SQL tools over a set of data sources (see the module docstring)."""

    name = "sources"

    def __init__(self, sources: Mapping[str, SourceSettings]) -> None:
        self.sources = dict(sources)
        self._databases: dict[str, Database] = {}
        self._lock = anyio.Lock()

    # --- the toolset protocol -------------------------------------------------------------

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """The four tools, with the sources this context may query named in their schema."""
        names = visible_sources(ctx)
        if not names:
            return []
        described = "; ".join(
            f"{n} ({self.sources[n].description})" if self.sources[n].description else n
            for n in names
        )
        source = {"type": "string", "enum": names, "description": f"The database: {described}"}

        def schema(**properties: dict[str, Any]) -> dict[str, Any]:
            fields = {"source": source, **properties}
            return {"type": "object", "properties": fields, "required": list(fields)}

        return [
            ToolDef(
                "list_tables",
                "List the tables of a database that you may read.",
                schema(),
                read_only=True,
            ),
            ToolDef(
                "describe_table",
                "Describe one table: its columns, types, keys and comments.",
                schema(table={"type": "string", "maxLength": 128}),
                read_only=True,
            ),
            ToolDef(
                "query_database",
                "Run one read-only SQL query (a SELECT) and return its rows. Use the "
                "database's SQL dialect and only tables and columns that list_tables and "
                "describe_table show.",
                schema(sql={"type": "string", "maxLength": _SQL_CHARS}),
                read_only=True,
            ),
            ToolDef(
                "ask_database",
                "Answer a question from a database: the SQL is written for you, run, and "
                "returned with its rows.",
                schema(question={"type": "string", "maxLength": 2000}),
                read_only=True,
            ),
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> Any:
        """Run one of the four tools."""
        source = str(arguments.get("source", ""))
        if name == "list_tables":
            return await self.list_tables(source, ctx)
        if name == "describe_table":
            return await self.describe_table(source, str(arguments.get("table", "")), ctx)
        if name == "query_database":
            return await self.query_tool(source, str(arguments.get("sql", "")), ctx)
        if name == "ask_database":
            from graft.sources.ask import ask_database

            return await ask_database(self, source, str(arguments.get("question", "")), ctx)
        raise ToolNotFound(f"no tool named {name!r} is available")

    async def aclose(self) -> None:
        """Close every database's connections."""
        databases, self._databases = self._databases, {}
        for database in databases.values():
            await database.aclose()

    # --- the tools ------------------------------------------------------------------------

    async def list_tables(self, source: str, ctx: Context) -> str:
        """The tables this context may read, with their readable column counts."""
        settings, database = await self.open(source, ctx)
        readable = await self._readable(settings, database, ctx)
        if not readable:
            return f"you may read no table of {source!r}"
        heading = f"Tables of {source} ({database.dialect}) that you may read:"
        return "\n".join([heading, *(f"- {table}" for table in sorted(readable))])

    async def describe_table(self, source: str, table: str, ctx: Context) -> str:
        """Columns, keys and comments of one readable table (and sample rows if allowed)."""
        settings, database = await self.open(source, ctx)
        readable = await self._readable(settings, database, ctx)
        info = await self._readable_info(source, database, readable, table)
        lines = [f"Table {info.name}" + (f": {info.comment}" if info.comment else "")]
        for column in info.columns:
            traits = [column.type, "" if column.nullable else "NOT NULL"]
            if column.primary_key:
                traits.append("PRIMARY KEY")
            text = " ".join(t for t in traits if t)
            comment = f" -- {column.comment}" if column.comment else ""
            lines.append(f"- {column.name} {text}{comment}")
        for fk in info.foreign_keys:
            lines.append(
                f"- foreign key ({', '.join(fk.columns)}) references "
                f"{fk.table}({', '.join(fk.referred_columns)})"
            )
        key = info.name.lower()
        if key in {t.lower() for t in settings.sample_rows} and info.columns:
            columns = (exp.column(c.name, quoted=True) for c in info.columns)
            sample_sql = exp.select(*columns).from_(exp.table_(info.name, quoted=True))
            sql = sample_sql.limit(_SAMPLE_ROWS).sql(dialect=database.dialect)
            sample = await self.run_query(source, sql, ctx, audit_action="sql.sample")
            lines.append(f"Sample rows:\n{sample.text}")
        return "\n".join(lines)

    async def schema(self, source: str, ctx: Context) -> tuple[str, list[TableInfo]]:
        """The dialect and the readable tables of ``source``, hidden columns left out."""
        settings, database = await self.open(source, ctx)
        readable = await self._readable(settings, database, ctx)
        tables = [
            await self._readable_info(source, database, readable, table)
            for table in sorted(readable)
        ]
        return database.dialect, tables

    async def _readable_info(
        self,
        source: str,
        database: Database,
        readable: Mapping[str, frozenset[str] | None],
        table: str,
    ) -> TableInfo:
        """``database.describe(table)`` without what this principal may not read."""
        key = table.lower()
        if key not in readable:
            raise QueryRefused(
                f"table {table!r} of {source!r} is not readable; readable tables: "
                f"{', '.join(sorted(readable)) or 'none'}"
            )
        info = await database.describe(_actual_name(key, await database.tables()))
        allowed = readable[key]
        columns = [c for c in info.columns if allowed is None or c.name.lower() in allowed]
        shown = {c.name.lower() for c in columns}
        keys = [
            fk
            for fk in info.foreign_keys
            if fk.table.lower() in readable and {c.lower() for c in fk.columns} <= shown
        ]
        return TableInfo(info.name, info.comment, columns, keys)

    async def query_tool(self, source: str, sql: str, ctx: Context) -> ToolOutput:
        """``query_database``: the rows as a table for the model and as data for the client."""
        return await self.run_query(source, sql, ctx)

    # --- the one path of a query ----------------------------------------------------------

    async def run_query(
        self, source: str, sql: str, ctx: Context, *, audit_action: str = "sql.query"
    ) -> ToolOutput:
        """Guard, run and audit one query (see the module docstring)."""
        settings, database = await self.open(source, ctx)
        started = time.perf_counter()
        outcome: Outcome = "error"
        details: dict[str, Any] = {"sql_sha256": _digest(sql), "assistant": ctx.assistant_name}
        try:
            readable = await self._readable(settings, database, ctx)
            policy = sql_policy(settings, database.dialect, readable, await database.columns())
            guarded = guard_query(sql, policy, values=filter_values(ctx))
            details["tables"] = list(guarded.tables)
            result: QueryResult = await database.query(guarded.sql, guarded.params)
            details["rows"] = len(result.rows)
            details["truncated"] = result.truncated
            outcome = "ok"
        except PermissionDenied as exc:
            outcome = "denied"
            details["reason"] = exc.message
            raise
        except GraftError as exc:
            details["reason"] = exc.message
            raise
        finally:
            details["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            if ctx.store is not None:
                principal = ctx.principal
                event = AuditEvent(
                    audit_action, principal.user_id, principal.tenant, source, outcome, details
                )
                with anyio.CancelScope(shield=True):
                    await record(ctx.store, event)
        return result_output(source, sql, result, max_rows=settings.max_rows)

    async def open(self, source: str, ctx: Context) -> tuple[SourceSettings, Database]:
        """The settings and database of ``source``, if this context may query it."""
        if source not in visible_sources(ctx):
            names = ", ".join(visible_sources(ctx)) or "none"
            raise QueryRefused(f"no data source {source!r} is available here (available: {names})")
        settings = self.sources[source]
        async with self._lock:
            database = self._databases.get(source)
            if database is None:
                limits = QueryLimits(settings.max_rows, settings.max_bytes, settings.timeout)
                database = Database(source, _url(source, settings, ctx), limits=limits)
                self._databases[source] = database
        return settings, database

    async def _readable(
        self, settings: SourceSettings, database: Database, ctx: Context
    ) -> dict[str, frozenset[str] | None]:
        return readable_tables(settings, ctx, await database.tables())


def _url(name: str, settings: SourceSettings, ctx: Context) -> str:
    """The source's URL with its password (unsealed with the data keys if it is sealed)."""
    url = database_url(settings.url)
    if settings.password is None:
        return url.render_as_string(hide_password=False)
    password = settings.password.get_secret_value()
    if is_sealed(password):
        keys = getattr(ctx.store, "data_keys", None)
        if keys is None:
            raise ConfigError(
                f"sources.{name}.password is sealed with the data keys, which this store "
                "does not have (GRAFT_DATA_KEY or the key file of the installation)"
            )
        password = keys.decrypt(password, f"sources.{name}.password")
        register_secret(password)
    return url.set(password=password).render_as_string(hide_password=False)


def _actual_name(key: str, tables: list[str]) -> str:
    for table in tables:
        if table.lower() == key:
            return table
    return key
