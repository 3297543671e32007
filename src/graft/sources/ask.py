"""``ask_database``: a question in words, answered with SQL the chat model drafts.

The model is shown the schema this principal may read as ``CREATE TABLE`` statements
(readable columns with their types and comments, foreign keys between readable tables), the
source's dialect and one worked example on that schema, and asked for one SELECT in a
```sql block. The draft goes through ``SourcesToolset.run_query``, the same guard and audit
as SQL the model writes itself; if the guard or the database refuses it, the model sees the
error once and drafts again.

Nothing here needs to trust the model or the question: the question is the principal's own,
the schema holds nothing hidden from it, and whatever SQL comes back meets the same guard as
a ``query_database`` call would.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from graft.errors import ModelError, QueryFailed, QueryRefused, ToolError
from graft.messages import Message
from graft.models.base import ModelRequest, TextChunk
from graft.sources.engine import TableInfo
from graft.tools.base import ToolOutput

if TYPE_CHECKING:
    from graft.context import Context
    from graft.sources.toolset import SourcesToolset

__all__ = ["ask_database", "extract_sql", "schema_text"]

_DIALECTS: Final = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MySQL/MariaDB"}
_FENCE = re.compile(r"```(?:sql|SQL)?\s*\n?(.*?)```", re.DOTALL)
_START = re.compile(r"\b(WITH|SELECT)\b", re.IGNORECASE)
_MAX_SCHEMA_CHARS: Final = 12_000


_PROMPT = """You translate questions into one SQL query for a {dialect} database.
Rules: write a single SELECT statement (WITH ... SELECT is fine) and nothing else; use only
the tables and columns below, named exactly as written; add LIMIT 50 unless the question
asks for a count or a total. Answer with the query alone, in a ```sql block.

{schema}"""


def extract_sql(text: str) -> str:
    """The query in a model's answer: a fenced block, or the text from SELECT/WITH on."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip().rstrip(";").strip()
    start = _START.search(text)
    return text[start.start() :].strip().rstrip(";").strip() if start else text.strip()


def schema_text(tables: list[TableInfo]) -> str:
    """The readable tables as ``CREATE TABLE`` statements, with comments and keys.

    The form models have read most schemas in; hidden columns are not in ``tables``.
    """
    parts = []
    for table in tables:
        lines = []
        for column in table.columns:
            key = " PRIMARY KEY" if column.primary_key else ""
            comment = f" -- {column.comment}" if column.comment else ""
            lines.append(f"  {column.name} {column.type}{key},{comment}")
        for fk in table.foreign_keys:
            lines.append(
                f"  FOREIGN KEY ({', '.join(fk.columns)}) REFERENCES "
                f"{fk.table}({', '.join(fk.referred_columns)}),"
            )
        if lines:
            last = lines[-1]
            cut = last.rfind(",")
            lines[-1] = last[:cut] + last[cut + 1 :]
        heading = f"-- {table.comment}\n" if table.comment else ""
        parts.append(f"{heading}CREATE TABLE {table.name} (\n" + "\n".join(lines) + "\n);")
        if sum(len(p) for p in parts) > _MAX_SCHEMA_CHARS:
            parts.append("-- (more tables not shown)")
            break
    return "\n\n".join(parts)


def _example(tables: list[TableInfo]) -> list[Message]:
    """One worked question and answer on the real schema: small models need to see one."""
    table = tables[0].name
    return [
        Message("user", f"How many rows does the table {table} have?"),
        Message("assistant", f"```sql\nSELECT count(*) FROM {table}\n```"),
    ]


async def _draft(ctx: Context, system: str, turns: list[Message]) -> str:
    get_model = ctx.get_model
    if get_model is None:
        raise ToolError("ask_database needs a model, and this context has none")
    model = get_model(ctx.assistant.model or ctx.settings.model)
    request = ModelRequest(
        [Message("system", system), *turns],
        tool_choice="none",
        temperature=0.0,
        max_tokens=400,
        stream=False,
    )
    pieces: list[str] = []
    try:
        async for chunk in model.stream(request):
            if isinstance(chunk, TextChunk):
                pieces.append(chunk.text)
    except ModelError as exc:
        raise ToolError(f"could not draft the SQL: {exc.message}") from exc
    return "".join(pieces)


async def ask_database(
    toolset: SourcesToolset, source: str, question: str, ctx: Context
) -> ToolOutput:
    """Draft SQL for ``question``, run it, retry once with the error; return SQL and rows."""
    if not question.strip():
        raise ToolError("ask_database needs a question")
    dialect, tables = await toolset.schema(source, ctx)
    if not tables:
        raise QueryRefused(f"you may read no table of {source!r}")
    system = _PROMPT.format(dialect=_DIALECTS.get(dialect, dialect), schema=schema_text(tables))
    turns = [*_example(tables), Message("user", question)]
    error: QueryRefused | QueryFailed | None = None
    for _attempt in range(2):
        answer = await _draft(ctx, system, turns)
        sql = extract_sql(answer)
        try:
            output = await toolset.run_query(source, sql, ctx)
        except (QueryRefused, QueryFailed) as exc:
            error = exc
            turns += [
                Message("assistant", answer),
                Message("user", f"That query failed: {exc.message}\nWrite a corrected query."),
            ]
            continue
        data = dict(output.data or {}, question=question)
        return ToolOutput(f"SQL: {sql}\n\n{output.text}", data)
    assert error is not None
    raise type(error)(f"the drafted SQL failed twice; last error: {error.message}")
