"""graft beside LiteLLM's proxy: the same fake upstream, the same load, the same run.

    python bench/bench_gateway_compare.py           # ~4 min; needs `wrk` (apt)
    python bench/bench_gateway_compare.py --quick   # 2-second runs, one round (< 1 min)

LiteLLM's proxy lives in its own virtualenv, ``bench/.venv-litellm`` (git-ignored); the
script makes it on first use (``pip install 'litellm[proxy]==LITELLM_VERSION'``, from the
configured package index), or run that by hand:

    python -m venv bench/.venv-litellm
    bench/.venv-litellm/bin/pip install 'litellm[proxy]==1.106.12'

Three targets in front of one fake upstream (``bench/fake_upstream.py``): the upstream
itself (``direct``), ``graft serve`` (one worker, the default SQLite store, as in
``bench_passthrough.py``) and ``litellm --config ... --num_workers 1`` (no database, no
master key, its access log off like graft's); and, for reference only, a second ``graft
serve`` that stores nothing (``memory://``, skipped with ``--no-memory``). Each is loaded
with wrk exactly as the pass-through benchmark does (``harness.Harness.measure``), every
cell in every round, the rounds interleaved, medians kept:

- non-streamed at 1 and 50 in flight: requests/s per worker and the added p50;
- streamed, 20 chunks, 1 in flight: added p50 to the last byte, CPU per chunk;
- streamed, 500 chunks, 1 in flight: with the 20-chunk cell, the marginal CPU of a chunk.

The issue's targets are judged as ratios of graft to LiteLLM from the same run: graft
serves >= 10x LiteLLM's requests/s per worker, adds <= 1 ms p50 at 1 in flight, and costs
<= 1/8 of LiteLLM's CPU per streamed chunk. Results: ``bench/results/gateway_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    RESULTS,
    Harness,
    Target,
    fmt,
    free_port,
    log,
    median_cells,
    request_body,
    run_meta,
    short,
    stop_on_sigterm,
    wait_http,
    write_result,
)

# The newest LiteLLM whose `proxy` extra installs from the package index here: later
# releases need `litellm-proxy` / newer `litellm-proxy-extras` packages that it lacks, and
# 1.107.0 was a compromised release (withdrawn). Pinned so that runs compare like with like.
LITELLM_VERSION = "1.106.12"
LITELLM_VENV = BENCH / ".venv-litellm"

TARGET_RPS_RATIO = 10.0
TARGET_ADDED_P50_MS = 1.0
TARGET_CPU_PER_CHUNK_RATIO = 1 / 8

LITELLM_CONFIG = """\
model_list:
  - model_name: fake
    litellm_params:
      model: openai/fake
      api_base: http://127.0.0.1:{port}/v1
      api_key: bench
litellm_settings:
  telemetry: false
"""
# uvicorn's access log off, as graft runs with --no-access-log.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"uvicorn.access": {"level": "WARNING"}},
}


def ensure_litellm(venv: Path) -> Path:
    """The ``litellm`` command of ``venv``; make the venv and install LiteLLM if missing."""
    command = venv / "bin" / "litellm"
    if command.exists():
        return command
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
    subprocess.run(pip, check=True)
    return command


def start_litellm(bench: Harness, upstream: Target, command: Path) -> Target:
    home = Path(tempfile.mkdtemp(prefix="litellm-", dir=bench.workdir))
    config = home / "config.yaml"
    config.write_text(LITELLM_CONFIG.format(port=upstream.port))
    (home / "log.json").write_text(json.dumps(LOG_CONFIG))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    env.update(
        # The model cost map is otherwise fetched from GitHub at start: everything is local.
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        # No master key: graft runs keyless too; LiteLLM refuses that unless told.
        LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
        PYTHONUNBUFFERED="1",
    )
    log_path = home / "litellm.log"
    cmd = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1", "--log_config", str(home / "log.json")]
    with open(log_path, "wb") as out:
        process = bench.spawn(cmd, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT)
    target = Target("litellm", port, "fake", process, None, log_path, home)
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=120)
    except OSError:
        raise RuntimeError(f"LiteLLM did not start:\n{log_path.read_text()}") from None
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    if children:
        # CPU is read from this one process: a worker in a child would go uncounted.
        raise RuntimeError(f"LiteLLM runs its worker in child processes {children}")
    return target


def measure_round(bench: Harness, targets: list[Target]) -> list[dict[str, Any]]:
    args = bench.args
    plan = [
        {"stream": False, "connections": 1, "chunks": args.chunks},
        {"stream": False, "connections": args.concurrency, "chunks": args.chunks},
        {"stream": True, "connections": 1, "chunks": args.chunks},
        {"stream": True, "connections": 1, "chunks": args.long_chunks},
    ]
    cells = []
    for options in plan:
        for target in targets:
            cell = bench.measure(target, probe=False, **options)
            cells.append(cell)
            log(short(cell))
    return cells


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    command = ensure_litellm(args.litellm_venv)
    with tempfile.TemporaryDirectory(prefix="graft-compare-") as tmp:
        bench = Harness(args, Path(tmp))
        try:
            upstream = bench.start_upstream("direct", "raw")
            targets = [upstream, bench.start_graft(upstream, "sqlite")]
            if args.memory:
                # For reference, not judged: the same graft storing nothing (what of its
                # cost is the storing of every turn, in the same run).
                targets.append(bench.start_graft(upstream, "memory://"))
            targets.append(start_litellm(bench, upstream, command))
            for target in targets:
                bench.sanity_check(target)
            for target in targets:  # warm-up: pools, lazy imports, caches
                for stream in (False, True):
                    body = request_body(target.model, stream=stream, chunks=args.chunks)
                    bench.wrk(target, body, args.concurrency, args.warmup)
            raw: list[dict[str, Any]] = []
            for number in range(args.rounds):
                raw += [cell | {"round": number} for cell in measure_round(bench, targets)]
        finally:
            bench.stop_all()
    cells = median_cells(raw)
    return {
        "benchmark": "gateway_compare",
        "meta": {
            **run_meta(started, load_before),
            "litellm": LITELLM_VERSION,
            "settings": {
                k: getattr(args, k)
                for k in ("duration", "warmup", "rounds", "chunks", "long_chunks", "concurrency")
            },
        },
        "cells": cells,
        "rounds": raw,
        "derived": derive(cells, args),
    }


def derive(cells: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Per gateway: added p50s, best requests/s, CPU per chunk; then the targets' ratios."""

    def cell(target: str, mode: str, connections: int, chunks: int) -> dict[str, Any]:
        for c in cells:
            if (c["target"], c["mode"], c["concurrency"], c["chunks"]) == (
                target,
                mode,
                connections,
                chunks,
            ):
                return c
        raise KeyError((target, mode, connections, chunks))

    gateways: dict[str, dict[str, Any]] = {}
    names = ["graft[sqlite]", "litellm"]
    if any(c["target"] == "graft[memory://]" for c in cells):
        names.append("graft[memory://]")
    for name in names:
        plain = cell(name, "plain", 1, args.chunks)
        loaded = cell(name, "plain", args.concurrency, args.chunks)
        stream = cell(name, "stream", 1, args.chunks)
        long = cell(name, "stream", 1, args.long_chunks)
        marginal = (long["cpu_ms_per_request"] - stream["cpu_ms_per_request"]) / (
            args.long_chunks - args.chunks
        )
        gateways[name] = {
            "rps": max(plain["rps"], loaded["rps"]),
            "added_p50_ms": round(
                plain["p50_ms"] - cell("direct", "plain", 1, args.chunks)["p50_ms"], 3
            ),
            "added_stream_p50_ms": round(
                stream["p50_ms"] - cell("direct", "stream", 1, args.chunks)["p50_ms"], 3
            ),
            "cpu_ms_per_chunk": stream["cpu_ms_per_chunk"],
            "marginal_cpu_ms_per_chunk": round(marginal, 4),
            # The cheaper of the two non-streamed cells: what a fully used core could serve.
            "cpu_ms_per_request": min(plain["cpu_ms_per_request"], loaded["cpu_ms_per_request"]),
        }
    g, lite = gateways["graft[sqlite]"], gateways["litellm"]
    verdicts = [
        _verdict(
            f"requests/s per worker >= {TARGET_RPS_RATIO:g}x LiteLLM's",
            g["rps"] / lite["rps"],
            f"{g['rps']:.0f} vs {lite['rps']:.0f} req/s (best non-streamed cell)",
            g["rps"] / lite["rps"] >= TARGET_RPS_RATIO,
        ),
        # The same target read from CPU time, which a busy machine moves less than wall time:
        # requests one fully used core serves, from each gateway's CPU per request.
        _verdict(
            f"requests per CPU-second >= {TARGET_RPS_RATIO:g}x LiteLLM's",
            lite["cpu_ms_per_request"] / g["cpu_ms_per_request"],
            f"{1000 / g['cpu_ms_per_request']:.0f} vs {1000 / lite['cpu_ms_per_request']:.0f} "
            f"per CPU-second (non-streamed, the cheaper of 1 and {args.concurrency} in flight)",
            lite["cpu_ms_per_request"] / g["cpu_ms_per_request"] >= TARGET_RPS_RATIO,
        ),
        _verdict(
            f"added p50 <= {TARGET_ADDED_P50_MS:g} ms at 1 in flight",
            g["added_p50_ms"],
            f"graft {g['added_p50_ms']:+.2f} ms, LiteLLM {lite['added_p50_ms']:+.2f} ms "
            f"(non-streamed)",
            g["added_p50_ms"] <= TARGET_ADDED_P50_MS,
        ),
    ]
    for key, what in (
        ("cpu_ms_per_chunk", f"a {args.chunks}-chunk stream's CPU / chunks"),
        ("marginal_cpu_ms_per_chunk", f"one more chunk: {args.chunks} -> {args.long_chunks}"),
    ):
        ratio = g[key] / lite[key] if lite[key] > 0 else None
        verdicts.append(
            _verdict(
                "CPU per streamed chunk <= 1/8 of LiteLLM's",
                ratio,
                f"{g[key]:.4f} vs {lite[key]:.4f} ms ({what})",
                ratio is not None and ratio <= TARGET_CPU_PER_CHUNK_RATIO,
            )
        )
    return {"gateways": gateways, "targets": verdicts}


def _verdict(target: str, value: float | None, measured: str, passed: bool) -> dict[str, Any]:
    shown = "-" if value is None else f"{value:.3g}"
    return {"target": target, "value": shown, "measured": measured, "pass": passed}


def report(result: dict[str, Any]) -> str:
    rows = [
        "| target | mode | conc | chunks | req/s | p50 ms | p99 ms | CPU ms/req | CPU ms/chunk |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in sorted(result["cells"], key=lambda c: (c["mode"], c["concurrency"], c["chunks"])):
        rows.append(
            f"| {c['target']} | {c['mode']} | {c['concurrency']} | {c['chunks']} "
            f"| {c['rps']:.0f} | {fmt(c['p50_ms'])} | {fmt(c['p99_ms'])} "
            f"| {fmt(c.get('cpu_ms_per_request'), 3)} | {fmt(c.get('cpu_ms_per_chunk'), 4)} |"
        )
        if c["errors"]:
            rows.append(f"ERRORS in the row above: {c['errors']}")
    rows.append("")
    for v in result["derived"]["targets"]:
        mark = "PASS" if v["pass"] else "FAIL"
        rows.append(f"{mark}  {v['target']}: ratio {v['value']}; {v['measured']}")
    memory = result["derived"]["gateways"].get("graft[memory://]")
    if memory is not None:
        rows.append(
            f"(not judged) graft storing nothing (memory://): added p50 "
            f"{memory['added_p50_ms']:+.2f} ms, {memory['rps']:.0f} req/s, "
            f"{memory['cpu_ms_per_request']:.3f} ms CPU per request"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per warm-up run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (3; 1 with --quick)")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--long-chunks", type=int, default=500, help="the long stream's chunks")
    parser.add_argument("--concurrency", type=int, default=50, help="the loaded cell's clients")
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--graft", default=None, help="the graft command (default: this venv's)")
    parser.add_argument("--wrk", default=shutil.which("wrk"), help="the wrk binary")
    parser.add_argument("--quick", action="store_true", help="2-second runs, one round")
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the reference graft that stores nothing (graft[memory://])",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "gateway_compare.json")
    args = parser.parse_args(argv)
    if not args.wrk:
        parser.error("wrk is not installed: apt-get install -y wrk")
    if args.graft is None:
        local = Path(sys.executable).with_name("graft")
        args.graft = str(local) if local.exists() else shutil.which("graft")
    if not args.graft:
        parser.error("no `graft` command: pip install -e . first")
    if args.quick:
        args.duration, args.warmup = 2.0, 1.0
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stop_on_sigterm()
    result = run(args)
    write_result(args.output, result, report(result))


if __name__ == "__main__":
    main()
