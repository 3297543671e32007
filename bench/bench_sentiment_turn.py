"""What the ``sentiment`` middleware adds to a whole chat turn, in process.

Two assistants on one ``Graft`` (the in-memory store and a ``FakeModel``, as the tests build
it): ``plain`` and ``tone``, the same but with ``middleware = ["sentiment"]``. Each turn goes
through graft's real ``run_turn`` (authorization, store, middleware, the model stream, every
event consumed) and is timed from the call to its last event. The two are interleaved (ABBA)
in one run so that both see the same machine.

- uncached: every ``tone`` turn brings a message the analyzer has not seen (the authored dev
  and test sentences, then numbered variants), so each pays for one e5 embedding;
- cached: one message over and over, so the analyzer answers from its cache and only the
  middleware's own work (tag, store, instruction) is left.

The added cost is the difference of the two p50s. Writes bench/results/sentiment_turn.json.

    python bench/bench_sentiment_turn.py [--turns 300] [--output PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graft.config import load_settings
from graft.context import Principal
from graft.messages import Message
from graft.runtime import Graft
from graft.store.memory import MemoryStore
from graft.testing import FakeModel
from graft.turn import TurnRequest

ROOT = Path(__file__).resolve().parents[1]
AUTHORED = [ROOT / "bench/data/sentiment_dev.jsonl", ROOT / "bench/data/sentiment_test.jsonl"]
ANSWER = "Thanks for your message. Here is what I found: the settings page has that option."
ALICE = Principal("alice")
CACHED_TEXT = "My order arrived broken and support has not answered in a week."


def messages() -> Iterator[str]:
    """Distinct user messages: the authored sentences, then numbered variants of them."""
    texts = [
        json.loads(line)["text"]
        for path in AUTHORED
        for line in path.read_text("utf-8").splitlines()
        if line
    ]
    yield from texts
    for n in range(1, 1_000_000):
        for text in texts:
            yield f"{text} (ticket {n})"


def build(home: Path, turns: int) -> Graft:
    """A Graft with the two assistants and a model scripted for every turn."""
    model = FakeModel(*[ANSWER] * turns)
    assistants = {"plain": {}, "tone": {"middleware": ["sentiment"]}}
    settings = load_settings(home=home, model=model.id, assistants=assistants)
    return Graft(settings, store=MemoryStore(), entry_points=False, models={model.id: model})


async def turn(graft: Graft, assistant: str, text: str) -> float:
    """Seconds for one turn, from the call to its last event."""
    request = TurnRequest(assistant, [Message("user", text)])
    started = time.perf_counter()
    async for _ in graft.run_turn(request, ALICE):
        pass
    return time.perf_counter() - started


async def measure(graft: Graft, turns: int, cached: bool) -> dict[str, list[float]]:
    """``turns`` turns of each assistant, interleaved plain/tone, tone/plain, ..."""
    fresh = messages()
    times: dict[str, list[float]] = {"plain": [], "tone": []}
    for i in range(turns):
        text = CACHED_TEXT if cached else next(fresh)
        order = ("plain", "tone") if i % 2 == 0 else ("tone", "plain")
        for name in order:
            times[name].append(await turn(graft, name, text))
    return times


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def run(turns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        warmup = 20
        graft = build(Path(home), 2 * (warmup + 2 * turns))
        await graft.start()
        try:
            # Load the e5 model and warm both paths; these warm-up messages are not reused.
            for i in range(warmup):
                for name in ("plain", "tone"):
                    await turn(graft, name, f"Warm-up message number {i}, please ignore.")
            out: dict[str, Any] = {}
            for case in ("uncached", "cached"):
                times = await measure(graft, turns, cached=case == "cached")
                plain, tone = summary(times["plain"]), summary(times["tone"])
                paired = [t - p for p, t in zip(times["plain"], times["tone"], strict=True)]
                out[case] = {
                    "turns_each": turns,
                    "without_middleware": plain,
                    "with_sentiment": tone,
                    "added_p50_ms": round(tone["p50_ms"] - plain["p50_ms"], 3),
                    "added_p50_ms_paired": round(statistics.median(paired) * 1000, 3),
                }
            return out
        finally:
            await graft.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=300, help="turns per assistant and case")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/sentiment_turn.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = asyncio.run(run(args.turns))
    report = {
        "benchmark": "sentiment_turn",
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "model": "graft.testing.FakeModel (scripted answer, 15 words)",
            "store": "MemoryStore",
        },
        **results,
    }
    for case in ("uncached", "cached"):
        r = report[case]
        print(f"{case} ({r['turns_each']} turns each, interleaved)")
        for name in ("without_middleware", "with_sentiment"):
            s = r[name]
            print(f"  {name:<20} p50 {s['p50_ms']:8.3f} ms   p99 {s['p99_ms']:8.3f} ms")
        print(
            f"  added p50            {r['added_p50_ms']:8.3f} ms "
            f"(median of paired differences {r['added_p50_ms_paired']:.3f} ms)"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
