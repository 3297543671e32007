"""Spreadsheets (.xlsx) and CSV: rows as ``header: value`` records, grouped into blocks.

A row of bare values ("42 | 2024-03-01 | 张三") means nothing once it is cut away from its
header, and a search hit is exactly such a cut. So each row is written as one line naming
its columns, ``Name: 张三; Days: 5; Start: 2024-03-01``, empty cells left out, and lines are
grouped into ``table`` sections of about ``BLOCK_CHARS``. The first non-empty row is the
header when none of its cells is a number or a date; otherwise columns are named A, B, C.

.xlsx is read with openpyxl in read-only, values-only mode: it streams each sheet's XML
instead of building the workbook in memory, and gives the cached results of formulas, not
their source. Each sheet is a heading. At most ``Source.max_rows`` rows are read over all
sheets and ``MAX_COLUMNS`` columns per row; a file cut short says so in its metadata
(``truncated``, ``row_limit``), so a million-row export is read in bounded time.

CSV uses the standard library: the dialect (comma, semicolon, tab or bar) is sniffed from
the first 64 KB, the encoding detected as for any text file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from typing import Any, Final

from graft.knowledge.document import Section
from graft.knowledge.parsers import BLOCK_CHARS, Extracted, Source, as_utc, missing
from graft.knowledge.parsers.text import decode

__all__ = ["MAX_COLUMNS", "extract_csv", "extract_xlsx"]

MAX_COLUMNS: Final = 256
_SNIFF_BYTES: Final = 65_536


def extract_xlsx(data: bytes, source: Source) -> Extracted:
    """An .xlsx workbook, one heading per non-empty sheet."""
    try:
        from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise missing("openpyxl", "Excel (.xlsx)") from exc
    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sections: list[Section] = []
    rows_left = source.max_rows
    wide = False
    try:
        for sheet in workbook.worksheets:
            if rows_left <= 0:
                break
            rows: list[list[str]] = []
            # The declared width (the sheet's <dimension>) bounds each row; without one,
            # read-only rows are as wide as their last cell, so the cap still holds.
            width = min(sheet.max_column or MAX_COLUMNS, MAX_COLUMNS)
            wide = wide or (sheet.max_column or 0) > MAX_COLUMNS
            for values in sheet.iter_rows(max_col=width, values_only=True):
                rows_left -= 1
                rows.append([_cell(value) for value in values[:MAX_COLUMNS]])
                if rows_left <= 0:
                    break
            blocks = _records(rows)
            if blocks:
                path = (str(sheet.title),)
                sections.append(Section(path[0], path, kind="heading"))
                sections.extend(Section(block, path, kind="table") for block in blocks)
        properties = workbook.properties
        sheet_count = len(workbook.worksheets)
    finally:
        workbook.close()
    metadata: dict[str, Any] = {"sheets": sheet_count, "rows": source.max_rows - rows_left}
    if properties.creator:
        metadata["author"] = properties.creator
    if rows_left <= 0:
        metadata["truncated"] = True
        metadata["row_limit"] = source.max_rows
    if wide:
        metadata["column_limit"] = MAX_COLUMNS
    return Extracted(
        sections,
        title=(properties.title or "").strip() or None,
        modified=as_utc(properties.modified),
        metadata=metadata,
    )


def extract_csv(data: bytes, source: Source) -> Extracted:
    """A CSV (or TSV) file."""
    text, encoding = decode(data, source)
    sample = text[:_SNIFF_BYTES]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample[: sample.rfind("\n") + 1] or sample, delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    rows: list[list[str]] = []
    truncated = False
    for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), dialect)):
        if number >= source.max_rows:
            truncated = True
            break
        rows.append([" ".join(cell.split()) for cell in row[:MAX_COLUMNS]])
    sections = [Section(block, (), kind="table") for block in _records(rows)]
    metadata: dict[str, Any] = {"encoding": encoding, "rows": len(rows)}
    if truncated:
        metadata["truncated"] = True
        metadata["row_limit"] = source.max_rows
    return Extracted(sections, metadata=metadata)


def _cell(value: object) -> str:
    """A cell value as Excel would show it, on one line."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.15g}"
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    return " ".join(str(value).split())


def _column_name(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA"."""
    name = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        name = chr(65 + remainder) + name
    return name


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return text[:4].isdigit() and text[4:5] == "-"  # a date, 2024-03-01
    return True


def _records(rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows as ``header: value`` lines, grouped into blocks of about ``BLOCK_CHARS``."""
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    header: list[str] = []
    if not any(_is_number(cell) for cell in rows[0] if cell):
        header, rows = list(rows[0]), rows[1:]
        if not rows:  # a header alone is still what the sheet says
            return [" | ".join(cell for cell in header if cell)]
    blocks: list[str] = []
    lines: list[str] = []
    size = 0
    for row in rows:
        fields = [
            f"{header[i] if i < len(header) and header[i] else _column_name(i)}: {value}"
            for i, value in enumerate(row)
            if value
        ]
        line = "; ".join(fields)
        if lines and size + 1 + len(line) > BLOCK_CHARS:
            blocks.append("\n".join(lines))
            lines, size = [], 0
        lines.append(line)
        size += 1 + len(line)
    blocks.append("\n".join(lines))
    return blocks
