"""Execution accuracy of ``ask_database`` on the demo company (graft.sources.ask).

Data: ``bench/data/ask_database.json``, 30 questions (20 English, 10 Chinese) written for
graft's demo database (``graft demo-data``), each with a reference query. Every question is
asked as a user of tenant ``acme``, through the real tool: the schema prompt, the model's
draft, the SQL guard with the tenant's row filters, the read-only SQLite database, one retry
with the error. The reference query takes the same guarded path, so both see the same rows.

An answer is correct when its rows equal the reference's: as lists when the reference has
ORDER BY, as multisets otherwise; numbers compared to 2 decimals, and a one-column answer
may carry extra columns if one of them equals the reference's column (a model that returns
``name, salary`` for "names only" still found the right rows).

    python bench/bench_ask_database.py [--model local:smollm2] [--model openai:gpt-4o-mini]

Each ``--model`` is measured in turn (default: the offline ``local:smollm2``); a hosted
model needs its key in the environment, as for ``graft serve``. Prints a table and writes
``bench/results/ask_database.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from graft.config import load_settings
from graft.context import Principal
from graft.errors import GraftError, QueryFailed, QueryRefused
from graft.runtime import Graft
from graft.sources.demo import create_demo
from graft.sources.toolset import SourcesToolset
from graft.testing import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "ask_database.json"
RESULTS = ROOT / "bench" / "results" / "ask_database.json"
TENANT_TABLES = ("departments", "employees", "products", "customers", "orders")


def _value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, str):
        try:
            return round(float(value), 2)
        except ValueError:
            return value.strip()
    return value


def _rows(rows: list[list[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(_value(v) for v in row) for row in rows]


def matches(got: list[list[Any]], want: list[list[Any]], *, ordered: bool) -> bool:
    """Whether ``got`` holds the reference's rows (see the module docstring)."""
    mine, reference = _rows(got), _rows(want)
    if reference and len(reference[0]) == 1 and mine and len(mine[0]) > 1:
        for column in range(len(mine[0])):
            if matches([[row[column]] for row in mine], want, ordered=ordered):
                return True
        return False
    if ordered:
        return mine == reference
    return Counter(mine) == Counter(reference)


async def measure(model_id: str, folder: Path, questions: list[dict[str, str]]) -> dict[str, Any]:
    database = folder / "demo.db"
    if not database.exists():
        await create_demo(f"sqlite:///{database}")
    source = {
        "url": f"sqlite:///{database}",
        "description": "a small company: departments, employees, products, customers, orders",
        "row_filters": {table: "tenant_id = :tenant" for table in TENANT_TABLES},
    }
    settings = load_settings(home=folder / "home", model=model_id, sources={"demo": source})
    outcomes: list[dict[str, Any]] = []
    async with Graft(settings, store=MemoryStore(), entry_points=False) as graft:
        [tools] = [t for t in graft.tools.toolsets if isinstance(t, SourcesToolset)]
        ctx = graft.context(Principal("bench", frozenset({"user"}), tenant="acme"), "default")
        for case in questions:
            reference = await tools.run_query("demo", case["sql"], ctx)
            assert reference.data is not None
            started = time.perf_counter()
            try:
                answer = await tools.call_tool(
                    "ask_database", {"source": "demo", "question": case["question"]}, ctx
                )
                data = answer.data or {}
                ordered = "order by" in case["sql"].lower()
                right = matches(data.get("rows", []), reference.data["rows"], ordered=ordered)
                outcome, sql = ("correct" if right else "wrong rows"), data.get("sql", "")
            except QueryRefused as exc:
                outcome, sql = "refused by the guard", exc.message
            except QueryFailed as exc:
                outcome, sql = "database error", exc.message
            except GraftError as exc:
                outcome, sql = f"error: {type(exc).__name__}", exc.message
            elapsed = time.perf_counter() - started
            outcomes.append(
                {"id": case["id"], "outcome": outcome, "seconds": round(elapsed, 2), "sql": sql}
            )
            print(f"  {case['id']}  {outcome:<22} {elapsed:5.1f} s  {sql[:70]!r}", flush=True)
    counts = Counter(o["outcome"] for o in outcomes)
    by_language = {
        language: sum(o["outcome"] == "correct" for o in outcomes if o["id"].startswith(language))
        / max(1, sum(o["id"].startswith(language) for o in outcomes))
        for language in ("en", "zh")
    }
    return {
        "model": model_id,
        "questions": len(outcomes),
        "accuracy": counts["correct"] / len(outcomes),
        "accuracy_en": by_language["en"],
        "accuracy_zh": by_language["zh"],
        "outcomes": dict(counts),
        "median_seconds": statistics.median(o["seconds"] for o in outcomes),
        "cases": outcomes,
    }


async def check_references(folder: Path, questions: list[dict[str, str]]) -> int:
    """Every reference query passes the guard (no false refusals); returns how many did."""
    database = folder / "demo.db"
    await create_demo(f"sqlite:///{database}")
    source = {"url": f"sqlite:///{database}"}
    settings = load_settings(home=folder / "home", sources={"demo": source})
    async with Graft(settings, store=MemoryStore(), entry_points=False) as graft:
        [tools] = [t for t in graft.tools.toolsets if isinstance(t, SourcesToolset)]
        ctx = graft.context(Principal("bench", frozenset({"user"}), tenant="acme"), "default")
        passed = 0
        for case in questions:
            try:
                await tools.run_query("demo", case["sql"], ctx)
                passed += 1
            except GraftError as exc:
                print(f"  reference {case['id']} refused: {exc.message}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="model id (repeatable)")
    args = parser.parse_args()
    questions = json.loads(DATA.read_text(encoding="utf-8"))["questions"]
    results = []
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        accepted = asyncio.run(check_references(folder, questions))
        print(f"reference queries accepted by the guard: {accepted}/{len(questions)}")
        for model_id in args.model or ["local:smollm2"]:
            print(f"{model_id}:")
            results.append(asyncio.run(measure(model_id, folder, questions)))
    print()
    print(f"{'model':<28} {'accuracy':>9} {'en':>6} {'zh':>6} {'median s':>9}  outcomes")
    for r in results:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        print(
            f"{r['model']:<28} {r['accuracy']:>9.1%} {r['accuracy_en']:>6.0%} "
            f"{r['accuracy_zh']:>6.0%} {r['median_seconds']:>9.1f}  {outcomes}"
        )
    RESULTS.write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {platform.python_version()}",
                "references_accepted": accepted,
                "results": results,
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
