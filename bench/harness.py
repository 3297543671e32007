"""What the gateway benchmarks share: processes under test, wrk, CPU and memory readings.

``bench_passthrough.py`` (graft against the upstream directly), ``bench_gateway_compare.py``
(graft beside LiteLLM's proxy) and ``bench_load.py`` (1,000 concurrent streams) start the
same fake upstream (``fake_upstream.py``) and the same ``graft serve``, load them with the
same wrk script and read the same ``/proc`` counters; this module is that one copy.
Scripts in ``bench/`` import it by name: ``python bench/X.py`` puts ``bench/`` on
``sys.path``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PATH = "/v1/chat/completions"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's script: POST the body, print the summary as one JSON line (latencies in µs).
# No `response()` callback: defining one makes wrk hand every response to Lua, which slows it.
WRK_LUA = """\
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(delay)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect_errors":%%d,' ..
    '"read_errors":%%d,"write_errors":%%d,"status_errors":%%d,"timeouts":%%d,' ..
    '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"mean_us":%%.1f,"max_us":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def display_path(path: str) -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        return str(Path(path).resolve().relative_to(repo))
    except ValueError:
        return Path(path).name


def request_body(model: str, *, stream: bool, chunks: int | None = None, pace_us: int = 0) -> str:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
        "stream": stream,
    }
    if chunks is not None:
        # The fake upstream answers max_tokens content chunks (graft passes it through).
        body["max_tokens"] = chunks
    if pace_us:
        # ...and waits `seed` microseconds before each content chunk.
        body["seed"] = pace_us
    return json.dumps(body, separators=(",", ":"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a whole process (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        # The command name (field 2) may hold spaces; the fields after ")" are fixed.
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def post(port: int, body: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


@dataclass
class Target:
    """Something under load: the upstream itself, or a graft process in front of it."""

    name: str
    port: int
    model: str
    process: subprocess.Popen[bytes] | None = None
    store: str | None = None
    log: Path | None = None
    home: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class Harness:
    """The processes of one benchmark run and the measurements every benchmark shares.

    ``args`` needs ``graft`` (the command), ``chunks`` (the upstream's default stream
    length), ``wrk`` (the binary), ``duration`` (seconds per wrk run) and, for ``probe``,
    ``probe_duration``.
    """

    args: argparse.Namespace
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # -- processes -------------------------------------------------------------------------

    def spawn(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # A new session, so that stopping it reaches its children too.
        process = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def start_upstream(self, name: str, impl: str) -> Target:
        # The uvicorn reference runs on graft's interpreter, so that uvicorn picks the same
        # HTTP parser and event loop there as in graft; the raw upstream runs on this one.
        python = graft_python(self.args.graft) if impl == "uvicorn" else sys.executable
        process = self.spawn(
            [
                python,
                str(BENCH / "fake_upstream.py"),
                "--chunks",
                str(self.args.chunks),
                "--impl",
                impl,
            ],
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake upstream did not start: {line!r}")
        return Target(name, int(line.split()[1]), "fake", process)

    def start_graft(
        self,
        upstream: Target,
        store: str,
        command: str | None = None,
        name: str = "graft",
        settings: str | None = None,
    ) -> Target:
        """``graft serve`` (one worker) on a fresh ``GRAFT_HOME`` in front of ``upstream``.

        ``settings``: the text of a ``graft.toml`` written into that home (graft's working
        directory, where it looks for one); the environment below still wins over it.
        """
        label = "".join(ch for ch in store if ch.isalnum())
        home = Path(tempfile.mkdtemp(prefix=f"graft-{label}-", dir=self.workdir))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
        env.update(
            GRAFT_HOME=str(home),
            GRAFT_MODEL="vllm:fake",
            GRAFT_PROVIDERS__VLLM__BASE_URL=f"http://127.0.0.1:{upstream.port}/v1",
            # Every request comes from the one keyless user: a limit no run can reach keeps
            # the rate limiter in the measured path without refusing anything.
            GRAFT_LIMITS__REQUESTS_PER_MINUTE="1000000000",
            GRAFT_LIMITS__MAX_STREAMS_PER_USER="1000000",
            PYTHONUNBUFFERED="1",
        )
        # The vllm preset names VLLM_API_KEY and graft refuses to call a provider whose key
        # variable is unset; the fake upstream ignores the key, so any value will do.
        env.setdefault("VLLM_API_KEY", "bench")
        if store != "sqlite":
            env["GRAFT_DATABASE_URL"] = store
        if settings is not None:
            (home / "graft.toml").write_text(settings)
        log = home / "graft.log"
        with open(log, "wb") as out:
            process = self.spawn(
                [command or self.args.graft, "serve", "--no-access-log", "--port", str(port)],
                env=env,
                cwd=home,  # no stray ./graft.toml is picked up, only `settings`
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        target = Target(f"{name}[{store}]", port, "default", process, store, log, home)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        except OSError:
            raise RuntimeError(f"graft did not start:\n{log.read_text()}") from None
        return target

    # -- checks and measurements -----------------------------------------------------------

    def sanity_check(self, target: Target) -> None:
        """One answer of each kind must be what the fake upstream sent, relayed."""
        chunks = self.args.chunks
        plain = json.loads(post(target.port, request_body(target.model, stream=False)))
        if plain["choices"][0]["message"]["content"] != "tok " * chunks:
            raise RuntimeError(f"{target.name} answered {plain}")
        raw = post(target.port, request_body(target.model, stream=True))
        events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
        if events[-1] != "[DONE]":
            raise RuntimeError(f"{target.name}'s stream ended with {events[-1]!r}")
        relayed = []
        for event in map(json.loads, events[:-1]):
            for choice in event.get("choices") or []:
                if text := choice["delta"].get("content"):
                    relayed.append(text)
        # graft may pass chunks that reached it together on as one: the text must be whole.
        if "".join(relayed) != "tok " * chunks:
            raise RuntimeError(f"{target.name} relayed {relayed}, not {chunks} chunks")

    def wrk(
        self, target: Target, body: str, connections: int, seconds: float, gap_ms: int = 0
    ) -> dict[str, Any]:
        script = self.workdir / f"wrk-{abs(hash(body))}-{gap_ms}.lua"
        if not script.exists():
            # wrk waits delay() ms after each answer before the connection's next request.
            delay = f"delay = function() return {gap_ms} end" if gap_ms else ""
            script.write_text(WRK_LUA % {"body": body, "delay": delay})
        cmd = [
            self.args.wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "30s",  # a slow answer is a latency to report, not an error to drop
            "-s",
            str(script),
            f"http://127.0.0.1:{target.port}{PATH}",
        ]
        output = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
        line = next(x for x in output.splitlines() if x.startswith("WRKJSON "))
        return dict(json.loads(line[8:]))

    def probe(self, target: Target, body: str, connections: int) -> dict[str, Any]:
        cmd = [
            sys.executable,
            str(BENCH / "stream_probe.py"),
            "--port",
            str(target.port),
            "--concurrency",
            str(connections),
            "--duration",
            f"{self.args.probe_duration:g}",
            "--body",
            body,
        ]
        output = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
        return dict(json.loads(output))

    def measure(
        self,
        target: Target,
        *,
        stream: bool,
        connections: int,
        chunks: int,
        probe: bool,
        pace_us: int = 0,
        gap_ms: int = 0,
    ) -> dict[str, Any]:
        body = request_body(target.model, stream=stream, chunks=chunks, pace_us=pace_us)
        pid = target.pid
        before = cpu_seconds(pid) if pid else None
        run = self.wrk(target, body, connections, self.args.duration, gap_ms)
        after = cpu_seconds(pid) if pid else None
        requests = run["requests"]
        seconds = run["duration_us"] / 1e6
        cell: dict[str, Any] = {
            "target": target.name,
            "store": target.store,
            "mode": (("paced" if pace_us else "stream") if stream else "plain")
            + ("-gap" if gap_ms else ""),
            "concurrency": connections,
            "chunks": chunks,
            "requests": requests,
            "seconds": round(seconds, 3),
            "rps": round(requests / seconds, 1),
            "p50_ms": run["p50_us"] / 1000,
            "p90_ms": run["p90_us"] / 1000,
            "p99_ms": run["p99_us"] / 1000,
            "mean_ms": round(run["mean_us"] / 1000, 3),
            "max_ms": run["max_us"] / 1000,
            "errors": {
                k: run[k]
                for k in ("connect_errors", "read_errors", "write_errors", "status_errors")
                if run[k]
            }
            | ({"timeouts": run["timeouts"]} if run["timeouts"] else {}),
        }
        if before is not None and after is not None and requests:
            # The server's own CPU: graft's, or for direct/uvicorn-bare the upstream's.
            cpu = after - before
            cell["server_cpu_s"] = round(cpu, 3)
            cell["server_cpu_cores"] = round(cpu / seconds, 2)
            cell["cpu_ms_per_request"] = round(cpu * 1000 / requests, 4)
            if stream:
                cell["cpu_ms_per_chunk"] = round(cpu * 1000 / (requests * chunks), 4)
        if probe:
            cell["probe"] = self.probe(target, body, connections)
        return cell


def median_cells(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One cell per (target, mode, concurrency, chunks): the median of its rounds' figures."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for cell in raw:
        key = (cell["target"], cell["mode"], cell["concurrency"], cell["chunks"])
        groups.setdefault(key, []).append(cell)

    def merge(cells: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in cells[0].items():
            values = [c[name] for c in cells if name in c]
            if name == "round":
                continue
            numbers = [v for v in values if isinstance(v, int | float)]
            if isinstance(value, dict):
                out[name] = merge(values) if name == "probe" else _sum_counts(values)
            elif isinstance(value, bool) or not numbers:
                out[name] = value
            else:
                out[name] = round(statistics.median(numbers), 4)
        out["rounds"] = len(cells)
        return out

    return [merge(cells) for cells in groups.values()]


def _sum_counts(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def graft_python(graft: str) -> str:
    """The interpreter of the ``graft`` console script (its ``#!`` line)."""
    with open(graft, "rb") as script:
        first = script.readline()
    return first[2:].decode().strip() if first.startswith(b"#!") else sys.executable


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def short(cell: dict[str, Any]) -> str:
    text = (
        f"  {cell['target']:<16} {cell['mode']:<6} c={cell['concurrency']:<3} "
        f"chunks={cell['chunks']:<4} {cell['rps']:>9.1f} req/s  p50 {cell['p50_ms']:.3f} ms"
    )
    if "cpu_ms_per_request" in cell:
        text += f"  cpu {cell['cpu_ms_per_request']:.3f} ms/req"
    return text


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (``VmRSS`` in /proc/PID/status)."""
    with open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    """File descriptors a process has open now (sockets included)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it); return (soft, hard).

    Each stream holds a socket in the client, two in graft (client side and upstream side)
    and one in the upstream; a soft limit of 1,024 (a common default) is not enough for
    1,000 streams. The hard limit is the ceiling an unprivileged process can reach.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise SystemExit(f"RLIMIT_NOFILE: need {needed} file descriptors, the hard limit is {hard}")
    return soft, hard


def cpu_model() -> str | None:
    """The machine's CPU (the VM's cores differ from day to day: compare runs on one)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def run_meta(started: float, load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What every result's ``meta`` starts with: when, on which CPUs, how loaded, how long."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run()'s finally: subprocesses stop


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so a benchmark's ``finally`` stops its processes."""
    signal.signal(signal.SIGTERM, _terminate)


def write_result(output: Path, result: dict[str, Any], text: str) -> None:
    """Write ``result`` as JSON to ``output``; print the report ``text`` and where it went."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    print(f"\nwrote {output} ({result['meta']['elapsed_s']} s)")
