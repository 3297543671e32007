"""Load benchmark: 1,000 concurrent streaming conversations through one graft worker.

    python bench/bench_load.py            # 3 waves of 1,000 streams, 50 chunks 100 ms apart
    python bench/bench_load.py --quick    # 2 waves of 1,000 streams of 20 chunks (< 1 min)
    python bench/bench_load.py --pace-ms 20   # engines at 50 tokens/s: more than one worker relays
    python bench/bench_load.py --database-url memory://   # another store

It starts the fake upstream (``bench/fake_upstream.py``) and ``graft serve`` (one worker,
the default SQLite store in a fresh ``GRAFT_HOME``, every turn stored), then sends waves of
``--streams`` streamed chat completions (started over ``--ramp`` seconds), alternately
straight to the upstream (``direct``, the baseline) and through graft, from a separate
process (this script with ``--client``: raw asyncio sockets on its own event loop, so the
load generator never shares graft's; see bench/README.md for why not httpx).
The upstream paces every stream (``--chunks`` content chunks ``--pace-ms`` apart, as an
engine generating tokens), so the whole wave is in flight at once.

Reported: errors (a non-200 answer, a broken stream, or one whose text is not the
upstream's whole answer; must be 0), the peak of streams open at once, graft's RSS sampled
through the run (and after each wave: flat means the last wave ends within a few % of the
first), its open file descriptors, its CPU per stream and per chunk, and the latency that
graft adds: time to the first content chunk (TTFC) and to the last byte (TTLB), p50 and
p99, graft minus direct, from the same run. Everything goes to ``bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    RESULTS,
    Harness,
    Target,
    cpu_seconds,
    log,
    open_fds,
    raise_nofile,
    request_body,
    rss_bytes,
    run_meta,
    stop_on_sigterm,
    write_result,
)
from stream_probe import percentile, read_response

_DONE = b"data: [DONE]"
_TOKEN = b"tok "  # the fake upstream's text per chunk (fake_upstream.CONTENT_TEXT)


# -- the load generator (its own process: python bench/bench_load.py --client ...) ----------


async def _one_stream(request: bytes, port: int, chunks: int, wave: dict[str, Any]) -> None:
    """Send one streamed request; record its TTFC and TTLB, or the error that ended it."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        _count(wave["errors"], f"connect: {type(exc).__name__}")
        return
    wave["open"] += 1
    wave["peak_open"] = max(wave["peak_open"], wave["open"])
    try:
        writer.write(request)
        # read_response raises on anything but a 200 and on a connection closed mid-answer.
        first, ended, received = await read_response(reader)
    except Exception as exc:  # every failure is counted by kind, none may pass unseen
        _count(wave["errors"], f"{type(exc).__name__}: {str(exc)[:60]}")
        return
    finally:
        wave["open"] -= 1
        writer.close()
    if first is None or received.count(_TOKEN) != chunks or _DONE not in received[-64:]:
        _count(wave["errors"], "incomplete stream")
        return
    wave["ttfc_ms"].append(round((first - started) * 1000, 3))
    wave["ttlb_ms"].append(round((ended - started) * 1000, 3))


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


async def _wave(port: int, streams: int, body: bytes, chunks: int, ramp: float) -> dict[str, Any]:
    wave: dict[str, Any] = {"errors": {}, "open": 0, "peak_open": 0, "ttfc_ms": [], "ttlb_ms": []}
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def later(delay: float) -> None:
        await asyncio.sleep(delay)
        await _one_stream(request, port, chunks, wave)

    started = time.perf_counter()
    # Streams start evenly over `ramp` seconds: 1,000 connects in one instant would queue
    # in the generator's own event loop and be timed as the server's latency.
    await asyncio.gather(*(later(ramp * i / streams) for i in range(streams)))
    wave["seconds"] = round(time.perf_counter() - started, 3)
    del wave["open"]
    return wave


def client_main(args: argparse.Namespace) -> None:
    """One wave of ``--streams`` streams at once; print the result as one JSON line."""
    wave = asyncio.run(_wave(args.port, args.streams, args.body.encode(), args.chunks, args.ramp))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wave["client_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
    print(json.dumps(wave))


# -- the run -------------------------------------------------------------------------------


def run_wave(bench: Harness, target: Target, graft: Target, streams: int) -> dict[str, Any]:
    """One wave against ``target``, sampling graft's memory and descriptors meanwhile."""
    args = bench.args
    body = request_body(target.model, stream=True, chunks=args.chunks, pace_us=args.pace_ms * 1000)
    cmd = [sys.executable, __file__, "--client", "--port", str(target.port)]
    cmd += ["--streams", str(streams), "--chunks", str(args.chunks), "--body", body]
    cmd += ["--ramp", str(args.ramp)]
    assert graft.pid is not None
    cpu_before = cpu_seconds(graft.pid)
    rss: list[int] = []
    fds: list[int] = []
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    cpu: list[tuple[float, float]] = []
    while client.poll() is None:
        rss.append(rss_bytes(graft.pid))
        fds.append(open_fds(graft.pid))
        cpu.append((time.monotonic(), cpu_seconds(graft.pid)))
        time.sleep(0.1)
    output = client.communicate()[0]
    if client.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {client.returncode})")
    wave: dict[str, Any] = json.loads(output)
    # Settle: graft stores each turn after its answer went out; then read its memory.
    time.sleep(args.settle)
    wave.update(
        target=target.name,
        streams=streams,
        graft_cpu_s=round(cpu_seconds(graft.pid) - cpu_before, 3),
        graft_rss_peak_mb=round(max(rss, default=0) / 2**20, 1),
        graft_rss_after_mb=round(rss_bytes(graft.pid) / 2**20, 1),
        graft_fds_peak=max(fds, default=0),
        graft_cpu_peak_cores=busiest_second(cpu),
    )
    return wave


def busiest_second(samples: list[tuple[float, float]]) -> float | None:
    """graft's CPU cores in use over its busiest second: 1.0 is one core saturated."""
    best = None
    for i, (t0, c0) in enumerate(samples):
        later = [(t, c) for t, c in samples[i + 1 :] if t - t0 >= 1.0]
        if later:
            t1, c1 = later[0]
            best = max(best or 0.0, (c1 - c0) / (t1 - t0))
    return None if best is None else round(best, 2)


def summarize(waves: list[dict[str, Any]], name: str) -> dict[str, Any]:
    mine = [w for w in waves if w["target"] == name]
    ttfc = [x for w in mine for x in w["ttfc_ms"]]
    ttlb = [x for w in mine for x in w["ttlb_ms"]]
    errors: dict[str, int] = {}
    for wave in mine:
        for kind, n in wave["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    return {
        "name": name,
        "waves": len(mine),
        "streams": sum(w["streams"] for w in mine),
        "completed": len(ttlb),
        "errors": errors,
        "peak_open": max(w["peak_open"] for w in mine),
        "ttfc_p50_ms": percentile(ttfc, 50),
        "ttfc_p99_ms": percentile(ttfc, 99),
        "ttlb_p50_ms": percentile(ttlb, 50),
        "ttlb_p99_ms": percentile(ttlb, 99),
        "wave_seconds": [w["seconds"] for w in mine],
        "client_cpu_s": [w["client_cpu_s"] for w in mine],
    }


def settings(args: argparse.Namespace) -> str:
    """The bench's graft.toml: what one worker needs to relay ``--streams`` streams at once.

    The harness also lifts the per-user request rate and stream limits (environment, as
    for every gateway benchmark): all streams come from the one keyless local user.
    """
    return (
        "# One upstream connection per stream in flight (default 256 per worker).\n"
        f"[providers.vllm]\nmax_connections = {args.streams + 64}\n"
    )


def stored_conversations(graft: Target) -> int | None:
    """Conversations in graft's SQLite file (None for another store)."""
    database = graft.home / "graft.db" if graft.home else None
    if database is None or not database.exists():
        return None
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM conversations").fetchone()[0])


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    # A socket per stream in the client, two in graft, one in the upstream, plus slack.
    nofile = raise_nofile(args.streams + 2 * args.streams + 1024)
    with tempfile.TemporaryDirectory(prefix="graft-load-") as tmp:
        bench = Harness(args, Path(tmp))
        waves: list[dict[str, Any]] = []
        try:
            upstream = bench.start_upstream("direct", "raw")
            graft = bench.start_graft(upstream, args.store, settings=settings(args))
            bench.sanity_check(graft)
            assert graft.pid is not None
            rss_start = rss_bytes(graft.pid)
            # Warm-up: the connection pools, lazy imports, the store's first pages.
            for target in (upstream, graft):
                run_wave(bench, target, graft, min(50, args.streams))
            rss_warm = rss_bytes(graft.pid)
            for number in range(args.waves):
                for target in (upstream, graft):
                    wave = run_wave(bench, target, graft, args.streams)
                    waves.append(wave | {"wave": number})
                    log(short(wave))
            conversations = stored_conversations(graft)
        finally:
            bench.stop_all()
            logged = graft_log_errors(bench)
    return {
        "benchmark": "load",
        "meta": {
            **run_meta(started, load_before),
            "rlimit_nofile": nofile,
            "settings": {
                k: getattr(args, k)
                for k in ("streams", "waves", "chunks", "pace_ms", "ramp", "store")
            },
            "graft_toml": settings(args),
        },
        "direct": summarize(waves, "direct"),
        "graft": summarize(waves, graft.name),
        "memory": memory(waves, graft.name, rss_start, rss_warm),
        "graft_cpu": graft_cpu(waves, graft.name, args.chunks),
        "stored_conversations": conversations,
        "graft_logged_errors": logged,
        # The samples themselves stay out of the JSON (thousands per wave); their summaries
        # per wave stay in.
        "waves": [{k: v for k, v in w.items() if not k.endswith("_ms")} for w in waves],
    }


def graft_log_errors(bench: Harness) -> int:
    count = 0
    for path in Path(bench.workdir).glob("graft-*/graft.log"):
        text = path.read_text(errors="replace")
        count += sum(("Traceback" in line or "ERROR" in line) for line in text.splitlines())
    return count


def memory(waves: list[dict[str, Any]], name: str, start: int, warm: int) -> dict[str, Any]:
    after = [w["graft_rss_after_mb"] for w in waves if w["target"] == name]
    return {
        "rss_start_mb": round(start / 2**20, 1),
        "rss_after_warmup_mb": round(warm / 2**20, 1),
        "rss_after_each_wave_mb": after,
        "rss_peak_mb": max(w["graft_rss_peak_mb"] for w in waves),
        # The last wave against the first: what a second (third...) 1,000 streams kept.
        "growth_first_to_last_pct": round(100 * (after[-1] - after[0]) / after[0], 1),
        "fds_peak": max(w["graft_fds_peak"] for w in waves if w["target"] == name),
    }


def graft_cpu(waves: list[dict[str, Any]], name: str, chunks: int) -> dict[str, Any]:
    mine = [w for w in waves if w["target"] == name]
    cpu = sum(w["graft_cpu_s"] for w in mine)
    streams = sum(w["streams"] for w in mine)
    return {
        "cpu_s": round(cpu, 2),
        "ms_per_stream": round(1000 * cpu / streams, 3),
        "ms_per_chunk": round(1000 * cpu / (streams * chunks), 4),
    }


# -- output --------------------------------------------------------------------------------


def short(wave: dict[str, Any]) -> str:
    ttlb = wave["ttlb_ms"]
    return (
        f"  {wave['target']:<14} {wave['streams']} streams in {wave['seconds']:.1f} s, "
        f"peak open {wave['peak_open']}, errors {wave['errors'] or 0}, "
        f"TTLB p50 {percentile(ttlb, 50) or 0:.0f} ms, graft RSS {wave['graft_rss_after_mb']} MB, "
        f"graft CPU {wave['graft_cpu_s']} s (busiest second {wave['graft_cpu_peak_cores']} cores)"
    )


def report(result: dict[str, Any]) -> str:
    direct, graft = result["direct"], result["graft"]
    lines = [
        "| target | streams | errors | peak open | TTFC p50 | TTFC p99 | TTLB p50 | TTLB p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in (("direct", direct), (graft["name"], graft)):
        lines.append(
            f"| {name} | {s['streams']} | {sum(s['errors'].values())} | {s['peak_open']} "
            f"| {s['ttfc_p50_ms']:.1f} | {s['ttfc_p99_ms']:.1f} | {s['ttlb_p50_ms']:.1f} "
            f"| {s['ttlb_p99_ms']:.1f} |"
        )
    added = {
        key: round(graft[key] - direct[key], 1)
        for key in ("ttfc_p50_ms", "ttfc_p99_ms", "ttlb_p50_ms", "ttlb_p99_ms")
    }
    result["added_ms"] = added
    mem, cpu = result["memory"], result["graft_cpu"]
    lines += [
        "",
        "added by graft (ms): " + ", ".join(f"{k[:-3]} {v:+.1f}" for k, v in added.items()),
        f"graft RSS: {mem['rss_start_mb']} MB at start, {mem['rss_after_warmup_mb']} after "
        f"warm-up, after each wave {mem['rss_after_each_wave_mb']} (first to last "
        f"{mem['growth_first_to_last_pct']:+.1f} %), peak {mem['rss_peak_mb']} MB; "
        f"peak open fds {mem['fds_peak']}",
        f"graft CPU: {cpu['ms_per_stream']} ms per stream, {cpu['ms_per_chunk']} ms per chunk",
        f"stored conversations: {result['stored_conversations']}",
    ]
    errors = sum(direct["errors"].values()) + sum(graft["errors"].values())
    flat = abs(mem["growth_first_to_last_pct"]) <= result["meta"]["flat_pct"]
    lines += [
        f"{'PASS' if errors == 0 else 'FAIL'}  no errors: {errors} "
        f"({direct['errors'] or ''} {graft['errors'] or ''}".rstrip()
        + ")",
        f"{'PASS' if flat else 'FAIL'}  flat memory: RSS first to last wave "
        f"{mem['growth_first_to_last_pct']:+.1f} % (limit ±{result['meta']['flat_pct']} %)",
    ]
    if result["graft_logged_errors"]:
        lines.append(f"WARNING: graft logged {result['graft_logged_errors']} error lines")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams at once per wave")
    parser.add_argument("--waves", type=int, default=None, help="waves per target (3; quick 2)")
    parser.add_argument("--chunks", type=int, default=None, help="chunks per stream (50; quick 20)")
    parser.add_argument("--pace-ms", type=int, default=100, help="ms between content chunks")
    parser.add_argument("--ramp", type=float, default=1.0, help="s over which a wave starts")
    parser.add_argument("--settle", type=float, default=2.0, help="s after a wave before RSS")
    parser.add_argument("--flat-pct", type=float, default=5.0, help="RSS growth called flat")
    parser.add_argument("--database-url", dest="store", default="sqlite", help="graft's store")
    parser.add_argument("--graft", default=None, help="the graft command (default: this venv's)")
    parser.add_argument("--quick", action="store_true", help="2 waves of 20-chunk streams")
    parser.add_argument("--output", type=Path, default=RESULTS / "load.json")
    # The load generator's own mode (run by this script in a separate process).
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.waves = args.waves or (2 if args.quick else 3)
    args.chunks = args.chunks or (20 if args.quick else 50)
    if args.graft is None:
        local = Path(sys.executable).with_name("graft")
        args.graft = str(local) if local.exists() else shutil.which("graft")
    if not args.graft and not args.client:
        parser.error("no `graft` command: pip install -e . first")
    args.wrk = shutil.which("wrk")  # unused here; the shared harness expects the attribute
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.client:
        client_main(args)
        return
    stop_on_sigterm()
    result = run(args)
    result["meta"]["flat_pct"] = args.flat_pct
    text = report(result)  # also adds result["added_ms"]
    write_result(args.output, result, text)


if __name__ == "__main__":
    main()
