"""CPU per stored turn, in process: ``begin_turn`` + ``finish_turn`` of a small turn in a loop.

Compares the SQL store without data keys (plaintext) and with them (encryption at rest),
alternating the two so that both see the same machine. A turn is one new conversation with
one user message and one assistant answer: three values sealed (title, question, answer).

    .venv/bin/python bench/bench_store_turn.py [--turns 3000] [--rounds 7] [--url sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from graft.context import Principal
from graft.crypto import DataKeys, generate_key
from graft.messages import Message, Usage
from graft.store.sql import SQLStore

ALICE = Principal("alice", tenant="acme")


async def cpu_per_turn(url: str, turns: int, keys: DataKeys | None) -> float:
    """Microseconds of process CPU per turn, after a warm-up."""
    store = SQLStore(url, data_keys=keys)
    await store.start()

    async def turn(i: int) -> None:
        _, tid = await store.begin_turn(
            ALICE,
            assistant="bench",
            model="fake:echo",
            conversation_id=None,
            new_messages=[Message("user", f"What is the capital of France? ({i})")],
        )
        await store.finish_turn(
            tid,
            messages=[Message("assistant", "Paris is the capital of France.")],
            tool_runs=[],
            usage=Usage(12, 7),
            finish_reason="stop",
            duration_ms=1.0,
        )

    try:
        for i in range(200):
            await turn(i)
        start = time.process_time()
        for i in range(turns):
            await turn(i)
        return (time.process_time() - start) / turns * 1e6
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--url", default="sqlite", help="'sqlite' (a temporary file) or a URL")
    args = parser.parse_args()
    found: dict[str, list[float]] = {"plaintext": [], "encrypted": []}
    for _ in range(args.rounds):
        for name, keys in (("plaintext", None), ("encrypted", DataKeys([generate_key()]))):
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{folder}/bench.db" if args.url == "sqlite" else args.url
                found[name].append(asyncio.run(cpu_per_turn(url, args.turns, keys)))
    for name, values in found.items():
        print(
            f"{name:<10} {statistics.median(values):7.1f} us CPU per turn "
            f"(min {min(values):.1f}, max {max(values):.1f}, {args.rounds} rounds)"
        )
    added = statistics.median(found["encrypted"]) - statistics.median(found["plaintext"])
    print(f"added      {added:7.1f} us CPU per turn")


if __name__ == "__main__":
    main()
