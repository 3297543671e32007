"""How a query's rows reach the model (a compact text table) and the client (structured data).

The model reads a pipe-separated table with one header line: the fewest tokens that still
keep columns apart, with long cells cut and a last line that says whether rows were left
out and why. The client (the web UI) gets the same rows as JSON in the ``tool_result``
event's ``data``: columns, rows, the SQL that ran and whether it was truncated.
"""

from __future__ import annotations

from typing import Any, Final

from graft.sources.engine import QueryResult
from graft.tools.base import ToolOutput

__all__ = ["result_output", "text_table"]

_CELL_CHARS: Final = 200


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    if len(text) > _CELL_CHARS:
        text = f"{text[:_CELL_CHARS]}…"
    return text


def text_table(result: QueryResult, *, max_rows: int) -> str:
    """``result`` as a compact table, with a closing line on how many rows it holds."""
    lines = [" | ".join(_cell(c) for c in result.columns)]
    lines.extend(" | ".join(_cell(v) for v in row) for row in result.rows)
    count = len(result.rows)
    if result.truncated == "rows":
        lines.append(f"({count} rows shown; the query returned more: truncated at {max_rows})")
    elif result.truncated == "bytes":
        lines.append(f"({count} rows shown; truncated: the rows exceeded the size limit)")
    else:
        lines.append(f"({count} row{'s' if count != 1 else ''})")
    return "\n".join(lines)


def result_output(
    source: str, sql: str, result: QueryResult, *, max_rows: int, preface: str = ""
) -> ToolOutput:
    """The tool's output: the table for the model, the rows as data for the client."""
    text = text_table(result, max_rows=max_rows)
    data = {
        "type": "sql_result",
        "source": source,
        "sql": sql,
        "columns": result.columns,
        "rows": result.rows,
        "truncated": result.truncated,
        "elapsed_ms": round(result.elapsed_ms, 1),
    }
    return ToolOutput(f"{preface}{text}", data)
