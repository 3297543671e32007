"""Pass-through benchmark: what graft adds in front of an OpenAI-compatible upstream.

    python bench/bench_passthrough.py            # about 7 minutes; needs `wrk` (apt)
    python bench/bench_passthrough.py --quick    # 2-second runs, one store, one round
    python bench/bench_passthrough.py --profile  # then py-spy samples (pip install py-spy)

It starts a fake upstream (``bench/fake_upstream.py``) and one ``graft serve`` process per
store (one worker each, the default assistant on model ``vllm:fake`` pointed at the fake
upstream, ``GRAFT_HOME`` in a fresh temporary folder). By default two stores are measured:
the default SQLite file and ``memory://``, so the cost of storing every turn is visible;
``--database-url URL`` measures only that one.

For each of {non-streaming, streaming} × {concurrency 1, 50}, every target is loaded back to
back with the same load generator, so the comparison is fair on a noisy shared machine: the
upstream directly; ``uvicorn-bare``, the same answers from a bare ASGI app on uvicorn on
graft's interpreter (the floor of graft's server stack; ``--no-baseline`` skips it); then
graft with each store.

- ``wrk`` gives requests/s and latency p50/p99 (for streams: to the last byte);
- ``bench/stream_probe.py`` gives, for streams, the time to the first content chunk;
- the server's CPU time (``/proc/PID/stat`` utime+stime, all threads) is read before and
  after each wrk run, and divided by the requests and by the content chunks relayed;
- a second streaming run at 1 in flight with ``--long-chunks`` content chunks per answer
  separates the marginal cost of one chunk from the fixed cost of a stream (the slope).

Every cell is measured three times (``--rounds``), the rounds interleaved, and each figure
is the median of its rounds: the machine is shared, and a neighbour's burst of work then
moves one round, not the result. Graft's ADDED latency is graft p50 − direct p50 from the
same cell of the same run.
The table is printed and everything goes to ``bench/results/passthrough.json``.
``--profile`` then samples graft with py-spy (``pip install py-spy``) during extra runs,
which are not used for the table, and writes the hottest functions.

Load generator: wrk (Debian's ``wrk``, 4.1), pinned to one thread (``-t1``). It is written in
C on epoll and costs a few microseconds per request, while any Python client costs tens, and
on two shared cores every microsecond the client burns is taken from the server under test.
wrk measures latency from the request's send to its response's end, without correcting for
coordinated omission (there is no fixed request rate here: each connection sends its next
request when the previous one is answered, i.e. a closed loop of 1 or 50 clients).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    RESULTS,
    Harness,
    Target,
    display_path,
    fmt,
    graft_python,
    log,
    median_cells,
    request_body,
    short,
    stop_on_sigterm,
    write_result,
)

# The targets, and LiteLLM's proxy measured on the same kind of 2-core machine.
TARGET_ADDED_P50_MS = 1.0
TARGET_RPS = 1000.0
TARGET_CPU_PER_CHUNK_MS = 0.05
LITELLM = {"added_p50_ms": 9.5, "rps_per_core": 140, "cpu_ms_per_chunk": 0.44}


@dataclass
class Bench(Harness):
    """The run's processes, and the cells measured so far."""

    cells: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)


# -- the run ---------------------------------------------------------------------------------


def measure_round(bench: Bench, targets: list[Target]) -> list[dict[str, Any]]:
    """One round: every cell of every target once, in a fixed order."""
    args = bench.args
    one = min(args.concurrency)
    # (targets, measure() keywords) per cell, in the order they are measured.
    plan: list[tuple[list[Target], dict[str, Any]]] = [
        (targets, {"stream": stream, "connections": connections, "probe": stream})
        for stream in (False, True)
        for connections in args.concurrency
    ]
    # Streams from an upstream that takes its time per chunk, as a real engine does: what
    # graft adds to the last byte of such a stream. (uvicorn-bare's upstream does not pace.)
    paced = [targets[0], *targets[1 + args.baseline :]]
    if args.pace_us:
        plan.append((paced, {"stream": True, "connections": one, "pace_us": args.pace_us}))
    # One client that waits a moment between answer and next question, as people and most
    # programs do: what graft adds to a request that does not queue behind the previous
    # turn's bookkeeping (storing it).
    if args.gap_ms:
        plan += [
            (paced, {"stream": stream, "connections": one, "gap_ms": args.gap_ms})
            for stream in (False, True)
        ]
    # The same streams with longer answers: the slope is the cost of one chunk. One in
    # flight, where the per-request costs are steadiest.
    if args.long_chunks:
        plan.append((targets[1:], {"stream": True, "connections": one, "chunks": args.long_chunks}))
    cells: list[dict[str, Any]] = []
    for chosen, options in plan:
        for target in chosen:
            cell = bench.measure(target, **{"chunks": args.chunks, "probe": False, **options})
            cells.append(cell)
            log(short(cell))
    return cells


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()  # the machine is shared: note how busy it was
    with tempfile.TemporaryDirectory(prefix="graft-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        targets: list[Target] = []
        try:
            upstream = bench.start_upstream("direct", args.upstream_impl)
            targets.append(upstream)
            if args.baseline:
                # The same fake answers from a bare ASGI app on uvicorn, with whatever uvicorn
                # picks in this environment (h11 or httptools, asyncio or uvloop): the floor
                # of any app that graft's server stack serves.
                targets.append(bench.start_upstream("uvicorn-bare", "uvicorn"))
            targets += [bench.start_graft(upstream, store) for store in args.stores]
            if args.compare:
                # Another graft (an earlier commit, say) on the same upstream in the same run:
                # an A/B that the machine's drift between runs cannot blur.
                targets += [
                    bench.start_graft(upstream, store, args.compare, "compare")
                    for store in args.stores
                ]
            for target in targets:
                bench.sanity_check(target)
            log(f"upstream :{upstream.port}; " + ", ".join(f"{t.name} :{t.port}" for t in targets))
            # Warm-up: connection pools, lazy imports, SQLite pages, CPU frequency.
            for target in targets:
                for stream in (False, True):
                    body = request_body(target.model, stream=stream, chunks=args.chunks)
                    bench.wrk(target, body, max(args.concurrency), args.warmup)
            # Every cell is measured `rounds` times, the rounds interleaved, and the median
            # of each figure kept: the machine is shared, and a neighbour's burst of work
            # then moves one round of a cell, not the result.
            raw: list[dict[str, Any]] = []
            for round_ in range(args.rounds):
                raw.extend(cell | {"round": round_} for cell in measure_round(bench, targets))
            bench.cells = median_cells(raw)
            bench.rounds = raw
            grafts = [target for target in targets if target.store is not None]
            profiles = profile(bench, grafts) if args.profile else {}
        finally:
            bench.stop_all()
            # Errors that graft logged (an upstream failure, a storage error) make the run
            # suspect even when every HTTP answer was a 200.
            logged = {
                target.name: sum(
                    ("Traceback" in line or "ERROR" in line)
                    for line in target.log.read_text(errors="replace").splitlines()
                )
                for target in targets
                if target.log is not None and target.log.exists()
            }
    return {
        "benchmark": "passthrough",
        "meta": meta(args, time.monotonic() - started, load_before),
        "cells": bench.cells,
        "rounds": bench.rounds,
        "derived": derive(bench.cells, args),
        "graft_logged_errors": logged,
        "profiles": profiles,
    }


def profile(bench: Bench, grafts: list[Target]) -> dict[str, Any]:
    """Sample each graft with py-spy in each cell; these runs are not used for the table."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log("--profile: py-spy not found (pip install py-spy); skipped")
        return {}
    found: dict[str, Any] = {}
    for target, stream, connections in itertools.product(
        grafts, (False, True), bench.args.concurrency
    ):
        name = f"{target.store}-{'stream' if stream else 'plain'}-c{connections}"
        name = name.replace(":", "").replace("/", "")
        out = RESULTS / "profiles" / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = bench.args.duration
        # Every thread is sampled (not --gil: SQLite runs with the GIL released); samples of
        # idle threads are dropped when summarizing. Not --nonblocking either: reading a
        # running process gives torn stacks that would be attributed to the wrong callers.
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(target.pid), "--rate", "200"]
            + ["--duration", f"{seconds + 1:g}", "--format", "raw"]
            + ["--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bench.processes.append(spy)
        time.sleep(0.5)
        body = request_body(target.model, stream=stream, chunks=bench.args.chunks)
        run = bench.wrk(target, body, connections, seconds)
        spy.wait(timeout=60)
        found[name] = {"rps_while_profiled": round(run["requests"] / seconds, 1)}
        if out.exists():
            found[name] |= summarize_profile(out)
            log(f"profile {name}: {out.relative_to(BENCH.parent)}")
    return found


# Leaf frames of a thread with nothing to do: the event loop waiting in epoll, worker
# threads waiting for work. py-spy cannot always tell idle threads apart in a container.
IDLE_LEAVES = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "Condition.wait (threading.py)",
        "Thread._wait_for_tstate_lock (threading.py)",
    }
)


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of busy samples per function, from py-spy's raw output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        # "function (path/file.py:LINE)" -> "function (path/file.py)": a function's lines merge.
        frames = [
            frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame for frame in stack.split(";")
        ]
        if frames[-1] in IDLE_LEAVES:
            idle += samples
            continue
        total += samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples

    def top_of(counts: dict[str, int], limit: int = top) -> list[list[Any]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [[round(100 * n / max(total, 1), 1), frame] for frame, n in ranked]

    # Self time by package of the leaf frame ("sqlalchemy", "asyncio", "h11", "graft", ...).
    packages: dict[str, int] = {}
    for frame, samples in own.items():
        source = frame.rpartition(" (")[2].rstrip(")")
        package = source.split("/", 1)[0].removesuffix(".py") or "?"
        packages[package] = packages.get(package, 0) + samples
    return {
        "busy_samples": total,
        "idle_samples": idle,
        "self_pct": top_of(own),
        "self_pct_by_package": top_of(packages, 15),
        # graft's own functions, with everything they call: what each step of a turn costs.
        "graft_inclusive_pct": top_of(
            {frame: n for frame, n in inclusive.items() if "(graft/" in frame}, 20
        ),
        "inclusive_pct": top_of(inclusive, 60),
    }


def derive(cells: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """graft − direct per cell, the per-chunk slope, and the targets' verdicts."""
    by_key = {(c["target"], c["mode"], c["concurrency"], c["chunks"]): c for c in cells}
    added = []
    for cell in cells:
        if cell["target"] == "direct" or cell["chunks"] != args.chunks:
            continue
        direct = by_key.get(("direct", cell["mode"], cell["concurrency"], cell["chunks"]))
        if direct is None:
            continue
        entry = {
            "target": cell["target"],
            "mode": cell["mode"],
            "concurrency": cell["concurrency"],
            "added_p50_ms": round(cell["p50_ms"] - direct["p50_ms"], 3),
            "p50_ratio": round(cell["p50_ms"] / direct["p50_ms"], 1) if direct["p50_ms"] else None,
            "added_p99_ms": round(cell["p99_ms"] - direct["p99_ms"], 3),
            "rps_ratio": round(cell["rps"] / direct["rps"], 3) if direct["rps"] else None,
        }
        if "probe" in cell and "probe" in direct:
            gp, dp = cell["probe"], direct["probe"]
            if gp["ttfc_p50_ms"] is not None and dp["ttfc_p50_ms"] is not None:
                entry["added_ttfc_p50_ms"] = round(gp["ttfc_p50_ms"] - dp["ttfc_p50_ms"], 3)
        added.append(entry)

    slopes = {}
    low = min(args.concurrency)
    for cell in cells:
        if cell["target"] == "direct" or cell["chunks"] != args.long_chunks:
            continue
        short_cell = by_key.get((cell["target"], "stream", low, args.chunks))
        if short_cell and "cpu_ms_per_request" in cell and "cpu_ms_per_request" in short_cell:
            delta = cell["cpu_ms_per_request"] - short_cell["cpu_ms_per_request"]
            per_chunk = delta / (args.long_chunks - args.chunks)
            slopes[cell["target"]] = {
                "marginal_cpu_ms_per_chunk": round(per_chunk, 4),
                "fixed_cpu_ms_per_stream": round(
                    short_cell["cpu_ms_per_request"] - per_chunk * args.chunks, 3
                ),
            }
    return {
        "added": added,
        "per_chunk_slope": slopes,
        "targets": verdicts(cells, added, slopes, args),
    }


def verdicts(
    cells: list[dict[str, Any]],
    added: list[dict[str, Any]],
    slopes: dict[str, dict[str, float]],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """The issue's three targets, judged on the default store (the first one measured).

    How each target is read (``bench/README.md`` says why):

    - "added p50 <= 1 ms at 1 in flight": the whole response when not streamed; for a
      stream, its first content chunk and its last byte, both with chunks sent back to back
      and with chunks paced as an engine sends them (``--pace-us``);
    - "<= 0.05 ms of graft CPU per streamed chunk": what one more chunk costs (the slope
      between ``--chunks`` and ``--long-chunks`` answers).

    CPU per chunk computed as a whole request's CPU divided by its chunks, or as what a
    stream costs more than a non-streamed answer, is reported as ``info``: the first counts
    the per-request costs again (which the latency and throughput targets judge).
    """
    store = args.stores[0]
    name = f"graft[{store}]"
    low, high = min(args.concurrency), max(args.concurrency)
    out: list[dict[str, Any]] = []

    def judge(target: str, measured: str, passed: bool | None) -> None:
        out.append({"target": target, "measured": measured, "pass": passed})

    latency = f"added p50 <= {TARGET_ADDED_P50_MS} ms at {low} in flight"
    mine = {a["mode"]: a for a in added if a["target"] == name and a["concurrency"] == low}
    for what, value in (
        ("non-streamed, whole response", mine.get("plain", {}).get("added_p50_ms")),
        ("streamed, first content chunk", mine.get("stream", {}).get("added_ttfc_p50_ms")),
        (
            f"streamed, last byte, {args.chunks} chunks back to back",
            mine.get("stream", {}).get("added_p50_ms"),
        ),
        (
            f"streamed, last byte, chunks {args.pace_us} µs apart",
            mine.get("paced", {}).get("added_p50_ms"),
        ),
        (
            f"non-streamed, whole response, {args.gap_ms} ms between requests",
            mine.get("plain-gap", {}).get("added_p50_ms"),
        ),
        (
            f"streamed, last byte, {args.gap_ms} ms between requests",
            mine.get("stream-gap", {}).get("added_p50_ms"),
        ),
    ):
        if value is not None:
            judge(latency, f"{value:.2f} ms ({what})", value <= TARGET_ADDED_P50_MS)
    plain = [
        c["rps"]
        for c in cells
        if c["target"] == name and c["mode"] == "plain" and c["chunks"] == args.chunks
    ]
    if plain:
        judge(
            f">= {TARGET_RPS:.0f} requests/s on one worker",
            f"{max(plain):.0f} requests/s (best non-streaming cell)",
            max(plain) >= TARGET_RPS,
        )
    per_chunk = f"<= {TARGET_CPU_PER_CHUNK_MS} ms graft CPU per streamed chunk"
    if name in slopes:
        marginal = slopes[name]["marginal_cpu_ms_per_chunk"]
        judge(
            per_chunk,
            f"{marginal:.3f} ms (one more chunk: slope {args.chunks} -> {args.long_chunks} "
            f"chunks; fixed {slopes[name]['fixed_cpu_ms_per_stream']:.2f} ms per stream)",
            marginal <= TARGET_CPU_PER_CHUNK_MS,
        )
    by_key = {(c["target"], c["mode"], c["concurrency"], c["chunks"]): c for c in cells}
    stream = by_key.get((name, "stream", low, args.chunks), {})
    plain_cell = by_key.get((name, "plain", low, args.chunks), {})
    if "cpu_ms_per_request" in stream and "cpu_ms_per_request" in plain_cell:
        extra = (stream["cpu_ms_per_request"] - plain_cell["cpu_ms_per_request"]) / args.chunks
        judge(
            per_chunk,
            f"{extra:.3f} ms (what streaming adds: (stream - non-stream CPU per request) / "
            f"{args.chunks} chunks, c={low})",
            None,
        )
    whole = [
        c["cpu_ms_per_chunk"]
        for c in cells
        if c["target"] == name and c["mode"] == "stream" and "cpu_ms_per_chunk" in c
        if c["chunks"] == args.chunks and c["concurrency"] in (low, high)
    ]
    if whole:
        judge(
            per_chunk,
            f"{max(whole):.3f} ms (whole request's CPU / {args.chunks} chunks, worse of "
            f"c={low} and c={high})",
            None,
        )
    for verdict in out:
        verdict["store"] = store
    return out


def fast_paths(graft: str) -> dict[str, bool] | None:
    """Whether graft's interpreter has uvloop and httptools, which uvicorn picks up."""
    python = graft_python(graft)
    code = (
        "import importlib.util, json; "
        "print(json.dumps({n: importlib.util.find_spec(n) is not None "
        "for n in ('uvloop', 'httptools')}))"
    )
    found = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(found.stdout) if found.returncode == 0 else None


def meta(
    args: argparse.Namespace, elapsed: float, load_before: tuple[float, float, float]
) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    wrk_version = subprocess.run([args.wrk, "-v"], capture_output=True, text=True).stdout
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        None,
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in ("graft", "uvicorn", "fastapi", "starlette", "httpx", "httpcore", "h11")
        },
        # uvicorn uses these when they are installed; graft's dependencies do not ask for them.
        "uvicorn_fast_paths": fast_paths(args.graft),
        # Relative to the repository when it is inside it: no machine's paths in results.
        "graft_command": display_path(args.graft),
        "load_generator": wrk_version.splitlines()[0] if wrk_version else "wrk",
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "probe_duration_s": args.probe_duration,
            "chunks": args.chunks,
            "long_chunks": args.long_chunks,
            "concurrency": args.concurrency,
            "stores": args.stores,
            "upstream": args.upstream_impl,
            "baseline": args.baseline,
            "pace_us": args.pace_us,
            "gap_ms": args.gap_ms,
        },
        "elapsed_s": round(elapsed, 1),
    }


# -- output ----------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    """The results as a Markdown table (also what bench/README.md shows)."""
    chunks = result["meta"]["settings"]["chunks"]
    gap = result["meta"]["settings"].get("gap_ms")
    added = {(a["target"], a["mode"], a["concurrency"]): a for a in result["derived"]["added"]}
    rows = [
        "| target | mode | conc | req/s | p50 ms | p99 ms | TTFC p50 ms | added p50 ms "
        "| CPU ms/req | CPU ms/chunk |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cells = sorted(
        (c for c in result["cells"] if c["chunks"] == chunks),
        key=lambda c: (c["mode"], c["concurrency"]),
    )
    for c in cells:
        a = added.get((c["target"], c["mode"], c["concurrency"]))
        probe = c.get("probe") or {}
        added_text = "-"
        if a:
            added_text = f"{a['added_p50_ms']:+.2f} (×{a['p50_ratio']})"
        mode = {
            "plain": "non-stream",
            "paced": "stream, paced",
            "plain-gap": f"non-stream, {gap} ms gaps",
            "stream-gap": f"stream, {gap} ms gaps",
        }.get(c["mode"], c["mode"])
        rows.append(
            f"| {c['target']} | {mode} | {c['concurrency']} | {c['rps']:.0f} "
            f"| {fmt(c['p50_ms'])} | {fmt(c['p99_ms'])} | {fmt(probe.get('ttfc_p50_ms'))} "
            f"| {added_text} | {fmt(c.get('cpu_ms_per_request'), 3)} "
            f"| {fmt(c.get('cpu_ms_per_chunk'), 4)} |"
        )
    return "\n".join(rows)


def report(result: dict[str, Any]) -> str:
    lines = [table(result), ""]
    for target, slope in result["derived"]["per_chunk_slope"].items():
        lines.append(
            f"{target}: marginal CPU per chunk {slope['marginal_cpu_ms_per_chunk']:.4f} ms, "
            f"fixed CPU per stream {slope['fixed_cpu_ms_per_stream']:.3f} ms"
        )
    for name, count in result["graft_logged_errors"].items():
        if count:
            lines.append(f"WARNING: {name} logged {count} error lines")
    for cell in result["cells"]:
        if cell["errors"]:
            lines.append(f"ERRORS in {short(cell).strip()}: {cell['errors']}")
    lines.append("")
    for verdict in result["derived"]["targets"]:
        mark = {True: "PASS", False: "FAIL", None: "info"}[verdict["pass"]]
        lines.append(f"{mark}  {verdict['target']}: {verdict['measured']} [{verdict['store']}]")
    lines.append(
        f"(LiteLLM proxy, same kind of machine: +{LITELLM['added_p50_ms']} ms p50, "
        f"~{LITELLM['rps_per_core']} req/s per core, {LITELLM['cpu_ms_per_chunk']} ms CPU/chunk)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per warm-up run")
    parser.add_argument("--probe-duration", type=float, default=2.0, help="seconds per probe")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument(
        "--long-chunks",
        type=int,
        default=500,
        help="content chunks of the second streaming run (0: skip the per-chunk slope)",
    )
    parser.add_argument(
        "--gap-ms",
        type=int,
        default=1,
        help="ms a client waits between answer and next request in the gap cells (0: skip)",
    )
    parser.add_argument(
        "--pace-us",
        type=int,
        default=1000,
        help="microseconds between the chunks of the paced stream run (0: skip it)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="measure every cell this many times, interleaved, and keep the median "
        "(default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--database-url",
        help="measure graft with only this store (e.g. memory://, sqlite:///x.db); "
        "default: the SQLite file in a fresh GRAFT_HOME, then memory://",
    )
    parser.add_argument("--upstream-impl", choices=("raw", "uvicorn"), default="raw")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the bare-ASGI-on-uvicorn reference target",
    )
    parser.add_argument("--graft", default=None, help="the graft command (default: this venv's)")
    parser.add_argument(
        "--compare",
        default=None,
        metavar="COMMAND",
        help="a second graft command measured in the same run as `compare[STORE]`",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk"), help="the wrk binary")
    parser.add_argument("--profile", action="store_true", help="then sample graft with py-spy")
    parser.add_argument("--quick", action="store_true", help="short runs, SQLite only")
    parser.add_argument("--output", type=Path, default=RESULTS / "passthrough.json")
    args = parser.parse_args(argv)
    if not args.wrk:
        parser.error("wrk is not installed: apt-get install -y wrk")
    if args.graft is None:
        local = Path(sys.executable).with_name("graft")
        args.graft = str(local) if local.exists() else shutil.which("graft")
    if not args.graft:
        parser.error("no `graft` command: pip install -e . first")
    args.stores = [args.database_url] if args.database_url else ["sqlite", "memory://"]
    if args.quick:
        args.duration, args.warmup, args.probe_duration = 2.0, 1.0, 1.0
        args.rounds = args.rounds or 1
        args.stores = args.stores[:1]
        args.baseline = False
    args.rounds = args.rounds or 3
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stop_on_sigterm()
    result = run(args)
    write_result(args.output, result, report(result))


if __name__ == "__main__":
    main()
