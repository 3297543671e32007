r"""The SQL guard: whether a query the model wrote may run against a data source, and in what form.

An assistant that queries company databases writes its own SQL, so the SQL is untrusted input.
This module decides, by construction, what may run: it parses the text with sqlglot in the
source's dialect, checks the syntax tree against a ``SQLPolicy`` and renders a new statement
from the checked tree. Nothing the model wrote reaches the database except through that tree:
comments (MySQL runs ``/*! ... */``), trailing statements and anything the parser did not
understand are gone. A regex over SQL text cannot tell a ``;`` in a string from one between
statements; the parser can. Whatever the guard cannot prove safe it refuses (fail closed),
raising ``graft.errors.QueryRefused`` with a message that names what was refused and what is
allowed, so the model can fix its query.

What each rule defends against:

- **One read-only statement**: SELECT, a set operation of SELECTs, ``WITH ... SELECT``. No
  writes, DDL, settings, ``PRAGMA``/``ATTACH``, ``SELECT ... INTO`` (a table, a file or a
  variable), locking reads (``FOR UPDATE`` holds locks others wait on), nor data-modifying
  CTEs: the whole tree is walked, not only its root.
- **Tables** on an allowlist, wherever they appear (joins, subqueries, CTE bodies, set
  branches, laterals); a CTE is a name, not a table, so its body is checked like any query.
  System catalogs are never readable (they describe every table and user), other databases
  only when the policy names them, and table functions (``generate_series``, ``read_csv``,
  ``dblink``...) are refused: they read files, other servers or the catalog by another door.
- **Columns** on a per-table allowlist: every column a query touches, resolved to its table by
  sqlglot's optimizer (``qualify``); ``*`` over such a table is expanded to the allowed
  columns. A column the guard cannot place in a table is refused when any table is
  restricted, and so is an output alias that shadows a hidden column (``GROUP BY secret``).
- **Functions** on a denylist: sleeping (a denial of service), files and programs, extension
  loading, remote links, settings, sessions and locks, and functions that run SQL from a string
  (``query_to_xml``, ``ts_stat``), which would bypass every check here. Variables (``@x``,
  ``@@x``, ``$1``) and bind parameters are refused: they carry state between queries and users.
- **Row filters**: each read of a filtered table becomes ``(SELECT * FROM t WHERE <filter>)``
  under the same alias, so no OR, UNION, subquery, CTE or self-join can reach other rows. The
  filter's values are bound parameters, never text pasted into SQL.

The rendered SQL is meant for SQLAlchemy's ``text()``, which reads ``:name`` as a bind
parameter anywhere, even inside a string: every other such colon is escaped as ``\:``, as
``text()`` documents, so ``'10:30'`` or ``':x'`` in a literal stays what it was.

What it does not do: stop a user-defined function from writing (run the query in a
read-only transaction), cap the time and rows a query costs (a statement timeout and a row
limit on the source), or hide whether a table exists (``'t'::regclass``). It assumes postgres
reads ``'a\'`` as the string ``a\`` (``standard_conforming_strings``, on since 9.1;
``graft.sources.engine`` sets it on every connection).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Literal, get_args

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from graft.errors import ConfigError, QueryRefused

__all__ = ["Dialect", "GuardedQuery", "SQLPolicy", "guard_query"]

Dialect = Literal["sqlite", "postgres", "mysql"]

_DEFAULT_SCHEMA: Final[Mapping[str, str]] = {"sqlite": "main", "postgres": "public"}
_SYSTEM_SCHEMAS: Final = frozenset(
    {"pg_catalog", "information_schema", "pg_toast", "mysql", "performance_schema", "sys"}
)
# SQLite reserves every sqlite_* name for itself (sqlite_master, sqlite_schema, sqlite_stat1...).
_SYSTEM_TABLE_PREFIXES: Final = ("sqlite_", "pg_")

# One list for every dialect: a name that is dangerous on one server is no builtin anyone
# needs on another, and a data source may have a UDF of that name whatever its dialect.
_DENIED_FUNCTIONS: Final = frozenset({
    # sleeping and busy loops; files, programs and extensions
    "sleep", "benchmark", "load_file", "readfile", "writefile", "edit", "load_extension",
    "fts3_tokenizer", "sys_exec", "sys_eval", "sys_get", "sys_set",
    # settings and sessions: set_config could change what a row-level security policy reads,
    # current_setting reads settings that may hold secrets
    "set_config", "current_setting", "inet_server_addr", "inet_server_port",
    # locks and replication waits (mysql)
    "get_lock", "release_lock", "release_all_locks", "is_free_lock", "is_used_lock",
    "master_pos_wait", "source_pos_wait", "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
    # SQL from a string runs unchecked; sequences are written even by a read
    "ts_stat", "ts_rewrite", "eval", "nextval", "setval",
})  # fmt: skip
_DENIED_PREFIXES: Final = (
    "pg_",  # server internals: files, backends, advisory locks, sleeps, the catalog
    "lo_",  # large objects: lo_import and lo_export read and write server files
    "dblink", "postgres_fdw", "pragma_", "binary_upgrade_",
    "query_to_xml", "table_to_xml", "schema_to_xml", "database_to_xml", "cursor_to_xml",
)  # fmt: skip
# Pure functions of their argument: the type, a byte count and its pretty form.
_ALLOWED_PG_FUNCTIONS: Final = frozenset({"pg_typeof", "pg_size_pretty", "pg_column_size"})

# Statements, or parts of one, that write, lock or change state; refused wherever they are.
_REFUSED_NODES: Final[tuple[type[exp.Expr], ...]] = (
    exp.DML, exp.DDL, exp.Command, exp.Pragma, exp.Set, exp.Grant, exp.Revoke, exp.Use,
    exp.Describe, exp.Show, exp.Attach, exp.Detach, exp.TruncateTable, exp.Transaction,
    exp.Commit, exp.Rollback, exp.Drop, exp.Alter, exp.Cache, exp.Uncache, exp.LoadData,
    exp.Analyze, exp.Kill, exp.Execute, exp.Refresh, exp.Declare, exp.Comment,
)  # fmt: skip

# SQLAlchemy's text(): a colon and a name is a bind parameter unless a backslash escapes it,
# and it then drops that backslash (sqlalchemy.sql.elements.TextClause, compiler.BIND_PARAMS_ESC).
# Group 1 is a name text() would bind; an empty match before a backslash is one it would drop.
_TEXT_COLON: Final = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])|(?=\\:\w*(?![:\w]))")
_PLAIN_NAME: Final = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class SQLPolicy:
    """What one principal may read from one data source."""

    dialect: Dialect
    tables: Mapping[str, Collection[str] | None]
    """Readable tables -> readable columns (None: every column). Names as the database has them
    (case-insensitive match); a key may be schema-qualified ("hr.employees"); unqualified keys
    match the default schema (sqlite main, postgres public, mysql the connected database)."""
    row_filters: Mapping[str, str] = field(default_factory=dict)
    """Table -> a boolean SQL expression in the source's dialect with named parameters, e.g.
    "tenant_id = :tenant" or "owner = :user OR public". Applied to every read of that table."""
    schema: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Table -> its columns in order (from introspection), for expanding * and resolving
    unqualified columns. May be empty for tests that do not need it."""

    def __post_init__(self) -> None:
        if self.dialect not in get_args(Dialect):
            raise ConfigError(
                f"unknown SQL dialect {self.dialect!r}; use one of {get_args(Dialect)}"
            )
        for table, condition in self.row_filters.items():
            _parse_filter(condition, self.dialect, table)


@dataclass(frozen=True, slots=True)
class GuardedQuery:
    """A query the guard passed, rewritten to obey the policy."""

    sql: str
    """The rewritten query, rendered in the dialect, with :name bind parameters (for text())."""
    params: dict[str, Any]
    """Bound values for those parameters."""
    tables: tuple[str, ...]
    """The tables it reads (normalised names), for the audit log."""


def guard_query(sql: str, policy: SQLPolicy, *, values: Mapping[str, Any] = {}) -> GuardedQuery:
    """Check ``sql`` against ``policy`` and return it rewritten, or raise ``QueryRefused``.

    ``values`` are what the row filters' parameters are bound to (e.g. ``{"tenant": "acme"}``);
    a filter naming a parameter missing from ``values`` refuses the query (fail closed).
    """
    return _Guard(policy, values, sql).run(sql)


class _Guard:
    """One query's check and rewrite; the policy's names normalised once."""

    def __init__(self, policy: SQLPolicy, values: Mapping[str, Any], sql: str) -> None:
        self.dialect = policy.dialect
        self.values = values
        self.tables = {
            self.key(name): None if cols is None else frozenset(c.casefold() for c in cols)
            for name, cols in policy.tables.items()
        }
        self.filters = {self.key(name): text for name, text in policy.row_filters.items()}
        self.schema = {self.key(name): tuple(cols) for name, cols in policy.schema.items()}
        # A prefix for our parameter and table names that nothing in the input contains.
        seen = " ".join([sql, *self.filters.values()]).casefold()
        self.prefix = "_graft_"
        while self.prefix in seen:
            self.prefix += "_"
        self.params: dict[str, Any] = {}
        self.bound: dict[str, str] = {}  # a filter's parameter -> its name in params

    def key(self, name: str) -> str:
        """A policy key in normal form: lowercase parts, the default schema dropped."""
        return self.normal([part.strip('"`[]') for part in name.split(".")])

    def normal(self, parts: Sequence[str]) -> str:
        parts = [part.casefold() for part in parts if part]
        if len(parts) == 2 and parts[0] == _DEFAULT_SCHEMA.get(self.dialect):
            parts = parts[1:]
        return ".".join(parts)

    def run(self, sql: str) -> GuardedQuery:
        tree = self.parse(sql)
        self.check_nodes(tree)
        # The database's rules for names (postgres folds unquoted ones to lowercase, sqlite
        # ignores case), so that sqlglot's exact matching of CTE names agrees with the server's.
        normalize_identifiers(tree, dialect=self.dialect)
        real = self.resolve_tables(tree)
        if any(self.tables[key] is not None for _, key in real):
            self.expand_stars(tree, real)
            self.check_columns(tree, real)
        for table, key in real:
            if key in self.filters:
                self.apply_filter(table, key)
        return GuardedQuery(
            sql=self.render(tree), params=self.params, tables=tuple(sorted({k for _, k in real}))
        )

    # -- statement -------------------------------------------------------------------------

    def parse(self, sql: str) -> exp.Expr:
        try:
            statements = [s for s in sqlglot.parse(sql, read=self.dialect) if s is not None]
        except SqlglotError as error:
            summary = " ".join(str(error).split())[:300]
            raise QueryRefused(
                f"the query does not parse as {self.dialect} SQL: {summary}"
            ) from None
        if len(statements) != 1:
            raise QueryRefused(
                "the query is empty" if not statements else
                f"send one statement at a time, not {len(statements)}"
            )  # fmt: skip
        root = statements[0]
        inner = root.unnest() if isinstance(root, exp.Subquery) else root
        if not isinstance(inner, exp.Select | exp.SetOperation):
            raise QueryRefused(
                "only SELECT queries may run (UNION/INTERSECT/EXCEPT of SELECTs and WITH ... "
                f"SELECT included), not {_statement_name(inner, self.dialect)}"
            )
        return root

    def check_nodes(self, tree: exp.Expr) -> None:
        for node in tree.walk():
            if isinstance(node, _REFUSED_NODES):
                name = _statement_name(node, self.dialect)
                raise QueryRefused(f"{name} is not allowed inside a query: it may only read")
            if isinstance(node, exp.Into):
                raise QueryRefused("SELECT ... INTO is not allowed: the query may only read")
            if isinstance(node, exp.Lock):
                raise QueryRefused(
                    "locking clauses (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) are not allowed"
                )
            if isinstance(node, exp.PropertyEQ) and isinstance(node.this, exp.Parameter):
                raise QueryRefused(
                    f"assigning a variable ({node.sql(self.dialect)}) is not allowed"
                )
            if isinstance(node, exp.Parameter | exp.SessionParameter | exp.Placeholder) or (
                isinstance(node, exp.Identifier)  # sqlglot reads sqlite's $name as a name
                and self.dialect == "sqlite" and not node.quoted and node.name.startswith("$")
            ):  # fmt: skip
                raise QueryRefused(
                    f"variables and bind parameters ({node.sql(self.dialect)}) are not allowed: "
                    "write the values into the query"
                )
            if isinstance(node, exp.Func):
                self.check_function(node)
            function = node.this if isinstance(node, exp.Lateral) else None
            if isinstance(function, exp.Func) and not isinstance(function, exp.Unnest):
                raise QueryRefused(
                    f"table function {_function_name(function, self.dialect)}() is not allowed "
                    "in FROM: read from the listed tables"
                )

    def check_function(self, node: exp.Func) -> None:
        names = {node.name} if isinstance(node, exp.Anonymous) else set(node.sql_names())
        for name in (n.casefold() for n in names):
            if name in _ALLOWED_PG_FUNCTIONS:
                continue
            if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
                raise QueryRefused(
                    f"function {name}() is not allowed: it sleeps, reaches files, other servers "
                    "or server state, or runs SQL from a string"
                )

    # -- tables ------------------------------------------------------------------------------

    def resolve_tables(self, tree: exp.Expr) -> list[tuple[exp.Table, str]]:
        """Every table the query reads, checked against the policy, with its policy key."""
        ctes = _cte_references(tree)
        real: list[tuple[exp.Table, str]] = []
        for table in list(tree.find_all(exp.Table)):
            if id(table) in ctes:
                continue
            if not isinstance(table.this, exp.Identifier):
                name = _function_name(table.this or exp.var("ROWS FROM"), self.dialect)
                raise QueryRefused(
                    f"table function {name}() is not allowed in FROM: read from the listed tables"
                )
            if self.dialect == "mysql" and _is_dual(table):
                table.parent.pop()  # type: ignore[union-attr]  # FROM DUAL means no table
                continue
            key = self.normal([table.catalog, table.db, table.name])
            parts = key.split(".")
            if parts[-1].startswith(_SYSTEM_TABLE_PREFIXES) or any(
                p in _SYSTEM_SCHEMAS or p.startswith("pg_") for p in parts[:-1]
            ):
                raise QueryRefused(f"{key} is a system catalog; system catalogs are not readable")
            if key not in self.tables:
                raise QueryRefused(
                    f"table {key} is not readable here; readable tables: "
                    f"{', '.join(sorted(self.tables)) or 'none'}"
                )
            alias = table.args.get("alias")
            if self.tables[key] is not None and alias and alias.columns:
                raise QueryRefused(
                    f"renaming the columns of table {key} (AS {alias.sql(self.dialect)}) is not "
                    "allowed: it has hidden columns; alias columns in the select list instead"
                )
            real.append((table, key))
        return real

    # -- columns -----------------------------------------------------------------------------

    def expand_stars(self, tree: exp.Expr, real: list[tuple[exp.Table, str]]) -> None:
        """Replace ``*`` and ``t.*`` over a restricted table with its allowed columns."""
        keys = {id(table): key for table, key in real}
        for scope in _scopes(tree):
            select = scope.expression
            if not isinstance(select, exp.Select):
                continue
            sources = {
                name: (node, keys.get(id(node)))
                for name, (node, _) in _selected_sources(scope).items()
            }
            projections: list[exp.Expr] = []
            for projection in select.expressions:
                if isinstance(projection, exp.Star):
                    covered = list(sources.values())
                elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    covered = [
                        s for n, s in sources.items() if n.casefold() == projection.table.casefold()
                    ]
                else:
                    covered = []
                if not any(key and self.tables[key] is not None for _, key in covered):
                    projections.append(projection)
                    continue
                for node, key in covered:
                    projections.extend(self.expansion(node, key))
            select.set("expressions", projections)

    def expansion(self, node: exp.Expr, key: str | None) -> list[exp.Expr]:
        alias = node.args.get("alias")
        name = alias.this if alias and alias.this else node.this
        if not isinstance(name, exp.Identifier):
            raise QueryRefused("give every source in FROM an alias to select * from it")
        allowed = self.tables[key] if key else None
        if key is None or allowed is None:
            return [exp.Column(this=exp.Star(), table=name.copy())]
        if key not in self.schema:
            raise QueryRefused(
                f"table {key} has hidden columns, so * cannot be used on it here; name the "
                f"columns: {', '.join(sorted(allowed))}"
            )
        columns = [c for c in self.schema[key] if c.casefold() in allowed]
        if not columns:
            raise QueryRefused(f"table {key} has no readable columns")
        return [
            exp.Column(
                this=exp.to_identifier(c, quoted=not _PLAIN_NAME.fullmatch(c)), table=name.copy()
            )
            for c in columns
        ]

    def check_columns(self, tree: exp.Expr, real: list[tuple[exp.Table, str]]) -> None:
        """Resolve every column to its table on a copy, and refuse the hidden ones."""
        self.check_names(tree)
        mangled: dict[str, str] = {}
        for i, (table, key) in enumerate(real):
            table.meta["graft_table"] = mangled.setdefault(key, f"{self.prefix}t{i}")
        copy = tree.copy()
        for table, _ in real:
            table.meta.pop("graft_table")
        keys = {name: key for key, name in mangled.items()}
        for table in copy.find_all(exp.Table):
            if mangled_name := table.meta.get("graft_table"):
                if not table.alias:
                    table.set("alias", exp.TableAlias(this=table.this.copy()))
                table.set("this", exp.to_identifier(mangled_name, quoted=True))
                table.set("db", None)
                table.set("catalog", None)
        for identifier in copy.find_all(exp.Identifier):
            identifier.set("this", identifier.this.casefold())
        for literal in list(copy.find_all(exp.Literal)):
            # GROUP BY 2 names an output, checked in the select list; qualify trips on some.
            if literal.is_int and isinstance(literal.parent, exp.Group | exp.Ordered):
                literal.replace(exp.null())
        self.check_aliases(copy, keys)
        schema: dict[str, object] = {
            mangled[k]: {c.casefold(): "text" for c in self.schema[k]}
            for k in mangled
            if k in self.schema
        }
        try:
            copy = qualify(
                copy, dialect=self.dialect, schema=schema, expand_stars=False, identify=False,
                quote_identifiers=False, validate_qualify_columns=False,
            )  # fmt: skip
        except Exception as error:  # sqlglot's own asserts too: what it cannot read is refused
            raise QueryRefused(
                f"cannot tell which table each column belongs to ({error}); prefix columns "
                "with their table's name or alias"
            ) from None
        scopes = {id(scope.expression): scope for scope in _scopes(copy)}
        for column in list(copy.find_all(exp.Column, exp.TableColumn)):
            assert isinstance(column, exp.Column | exp.TableColumn)
            self.check_column(column, scopes, keys)

    def check_names(self, tree: exp.Expr) -> None:
        """Refuse NATURAL joins, and names that differ only in case (servers differ on those)."""
        for join in tree.find_all(exp.Join):
            if str(join.args.get("method") or "").upper() == "NATURAL":
                raise QueryRefused("NATURAL JOIN is not allowed here: join ON named columns")
        spellings: dict[str, set[str]] = {}
        for node in tree.find_all(exp.TableAlias, exp.Table):
            if isinstance(node, exp.TableAlias) or not node.alias:
                spellings.setdefault(node.name.casefold(), set()).add(node.name)
        for group in spellings.values():
            if len(group) > 1:
                raise QueryRefused(
                    f"the names {' and '.join(sorted(group))} differ only in case; spell them alike"
                )

    def check_aliases(self, copy: exp.Expr, keys: Mapping[str, str]) -> None:
        """Refuse names the database and the guard (which ignores case) could read apart."""
        for scope in _scopes(copy):
            _selected_sources(scope)  # refuses two sources of one name (now that case is gone)
        hidden: set[str] = set()
        unknown: list[frozenset[str]] = []  # the allowed columns of tables with no schema
        for key in keys.values():
            allowed = self.tables[key]
            if allowed is not None and key in self.schema:
                hidden |= {c.casefold() for c in self.schema[key]} - allowed
            elif allowed is not None:
                unknown.append(allowed)
        for select in copy.find_all(exp.Select):
            aliases = {e.alias for e in select.expressions if isinstance(e, exp.Alias)}
            for column in select.find_all(exp.Column):
                if column.table or column.name not in aliases or column.parent_select is not select:
                    continue
                if column.name in hidden or any(column.name not in a for a in unknown):
                    raise QueryRefused(
                        f"the alias {column.name} may name a hidden column; choose another alias"
                    )

    def check_column(
        self,
        column: exp.Column | exp.TableColumn,
        scopes: Mapping[int, Scope],
        keys: Mapping[str, str],
    ) -> None:
        """Refuse ``column`` unless it is readable, or belongs to a derived table or CTE."""
        if isinstance(column, exp.TableColumn):  # postgres: a table's name as a value, its row
            qualifier, name = column.name, "*"
        else:
            qualifier = column.table
            name = "*" if isinstance(column.this, exp.Star) else column.name
        query: exp.Expr | None = column.parent
        while query is not None and not isinstance(query, exp.Select | exp.SetOperation):
            query = query.parent
        home = scope = scopes.get(id(query))
        source: object = None
        while scope is not None and qualifier and source is None:
            source = scope.sources.get(qualifier)
            scope = scope.parent
        if isinstance(column, exp.Column) and query is not None and _names_output(column, query):
            return  # ORDER BY total, for SELECT ... AS total; check_aliases vetted the name
        if not qualifier and home and query and not query.find_ancestor(exp.Select):
            # A table without a schema: an unqualified name in an outermost query of one table
            # can only be that table's (a nested query could mean an outer table's column).
            sources = list(_selected_sources(home).values())
            source = sources[0][1] if len(sources) == 1 else None
        if isinstance(source, Scope):
            return  # a derived table or CTE: its own columns were checked where it is defined
        if isinstance(source, exp.Table) and source.name in keys:
            key = keys[source.name]
            allowed = self.tables[key]
            if allowed is None or name in allowed:
                return
            readable = ", ".join(sorted(allowed)) or "none"
            if name == "*":
                raise QueryRefused(
                    f"every column of table {key} (t.*, or the table as a value) is not "
                    f"readable; name the columns: {readable}"
                )
            raise QueryRefused(
                f"column {name} of table {key} is not readable; readable columns: {readable}"
            )
        readable = "; ".join(
            f"{key}: {', '.join(sorted(self.tables[key] or ())) or 'none'}"
            for key in sorted(set(keys.values()))
            if self.tables[key] is not None
        )
        raise QueryRefused(
            f"column {column.sql(self.dialect)}: cannot tell which table it belongs to, or it is "
            f"not readable (readable columns: {readable}); prefix it with its table's alias"
        )

    # -- row filters -------------------------------------------------------------------------

    def apply_filter(self, table: exp.Table, key: str) -> None:
        """Replace ``table`` with ``(SELECT * FROM table WHERE filter) AS alias``."""
        condition = _parse_filter(self.filters[key], self.dialect, key).copy()
        for placeholder in list(condition.find_all(exp.Placeholder)):
            if placeholder.name not in self.values:
                raise QueryRefused(
                    f"table {key} is filtered by {placeholder.name}, which this request has no "
                    "value for"
                )
            if placeholder.name not in self.bound:
                self.bound[placeholder.name] = f"{self.prefix}p{len(self.params)}"
                self.params[self.bound[placeholder.name]] = self.values[placeholder.name]
            placeholder.replace(exp.Placeholder(this=self.bound[placeholder.name]))
        alias = table.args.get("alias") or exp.TableAlias(this=table.this.copy())
        outer = {k: table.args.get(k) for k in ("joins", "laterals", "pivots")}
        inner = table.copy()
        for arg in ("alias", *outer):
            inner.set(arg, None)
        derived = exp.Subquery(
            this=exp.select("*").from_(inner).where(condition), alias=alias.copy()
        )
        for arg, value in outer.items():
            derived.set(arg, value)
        table.replace(derived)

    # -- output ------------------------------------------------------------------------------

    def render(self, tree: exp.Expr) -> str:
        options: dict[str, Any] = {"comments": False, "unsupported_level": ErrorLevel.RAISE}
        try:
            if self.dialect == "postgres":
                sql = _PostgresGenerator(dialect="postgres", **options).generate(tree)
            else:
                sql = tree.sql(dialect=self.dialect, **options)
        except SqlglotError as error:
            raise QueryRefused(
                f"the query cannot be rendered faithfully in {self.dialect}: {error}"
            ) from None
        kept: list[str] = []

        def escape(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return "\\"  # text() drops one backslash before ":name": give it one to drop
            if match.group(1) in self.params:
                kept.append(match.group(1))
                return match.group(0)
            return "\\" + match.group(0)

        sql = _TEXT_COLON.sub(escape, sql)
        if set(kept) != set(self.params):  # cannot happen: nothing in the input has the prefix
            raise QueryRefused("the query cannot be bound safely")
        return sql


class _PostgresGenerator(PostgresGenerator):
    """Postgres, with ``:name`` placeholders (for text()) instead of psycopg's ``%(name)s``."""

    def placeholder_sql(self, expression: exp.Placeholder) -> str:
        return f":{expression.name}"


@lru_cache(maxsize=256)
def _parse_filter(condition: str, dialect: Dialect, table: str) -> exp.Expr:
    """A row filter's syntax tree; cached, so callers copy it before changing it."""
    try:
        parsed = [s for s in sqlglot.parse(condition, read=dialect) if s is not None]
    except SqlglotError as error:
        raise ConfigError(f"the row filter of {table} does not parse: {error}") from None
    if (
        len(parsed) != 1
        or not isinstance(parsed[0], exp.Condition)
        or isinstance(parsed[0], exp.Query)
    ):
        raise ConfigError(
            f"the row filter of {table} must be one boolean expression: {condition!r}"
        )
    for node in parsed[0].walk():
        if isinstance(node, (*_REFUSED_NODES, exp.Into)):
            raise ConfigError(f"the row filter of {table} must only read: {condition!r}")
        if isinstance(node, exp.Placeholder) and not node.this:
            raise ConfigError(f"the row filter of {table} must name its parameters (:name)")
    return parsed[0]


def _scopes(tree: exp.Expr) -> Iterable[Scope]:
    try:
        return traverse_scope(tree)
    except SqlglotError as error:
        raise QueryRefused(f"the query's structure cannot be analysed: {error}") from None


def _selected_sources(scope: Scope) -> dict[str, tuple[exp.Expr, object]]:
    try:
        return dict(scope.selected_sources)
    except SqlglotError as error:  # "Alias already used"
        raise QueryRefused(f"{error}: give each source in FROM its own alias") from None


def _cte_references(tree: exp.Expr) -> set[int]:
    """The ids of Table nodes that name a CTE in scope rather than a table."""
    refs: set[int] = set()
    for scope in _scopes(tree):
        for table in scope.tables:
            source = scope.sources.get(table.alias_or_name)
            if not isinstance(source, Scope) or table.db or table.catalog:
                continue
            node = source.expression  # a recursive CTE's own name leads to its first branch
            while isinstance(node.parent, exp.SetOperation):
                node = node.parent
            if isinstance(node.parent, exp.CTE) and node.parent.alias == table.name:
                refs.add(id(table))
    return refs


def _names_output(column: exp.Column, query: exp.Expr) -> bool:
    """Whether ``column`` is a reference, outside the select list, to an output of ``query``."""
    if column.table:
        return False
    if isinstance(query, exp.SetOperation):
        return column.name in query.named_selects
    node: exp.Expr = column
    while node.parent is not None and node.parent is not query:
        node = node.parent
    aliases = {e.alias for e in query.expressions if isinstance(e, exp.Alias)}
    return node.arg_key != "expressions" and column.name in aliases


def _function_name(function: exp.Expr, dialect: Dialect) -> str:
    return function.sql(dialect).split("(")[0].lower()


def _is_dual(table: exp.Table) -> bool:
    return (
        table.name.upper() == "DUAL"
        and not table.this.quoted
        and not table.db
        and isinstance(table.parent, exp.From)
    )


def _statement_name(node: exp.Expr, dialect: Dialect) -> str:
    """The statement's first keyword: INSERT, PRAGMA, EXPLAIN..."""
    text = str(node.this) if isinstance(node, exp.Command) else node.sql(dialect)
    word = re.match(r"\w+", text)
    return word.group(0).upper() if word else node.key.upper()
