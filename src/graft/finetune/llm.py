"""LoRA fine-tuning of a local chat model on a CPU (``graft finetune llm``).

``finetune_llm`` loads a Hugging Face-format model (a local folder, or the GGUF file of a
``local:`` model, which transformers dequantizes through the ``gguf`` package), reads the
SFT data (``graft.finetune.sft``), holds out a hash-chosen part of it
(``graft.finetune.split``), trains a LoRA adapter with peft (small rank, a few epochs, AdamW),
measures the loss on the held-out rows before and after, and saves a new version
``<name>-v<N>/`` in the adapters folder (``graft.finetune.versions``) holding:

- ``adapter.gguf``: the adapter in llama.cpp's form, which ``local:<base>@<name>`` serves;
- ``peft/``: the adapter as peft saves it, for transformers or another converter;
- ``meta.json``: base, data hash, settings, row counts and losses.

This is meant for small models (SmolLM2-135M trains at a few steps a second on two cores);
a 7B model needs a GPU and other tooling. Nothing is downloaded: models load with
``local_files_only``. torch, transformers, peft and gguf are the ``finetune`` extra, imported
only here and only when training runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from graft.finetune import INSTALL
from graft.finetune.gguf_adapter import write_adapter
from graft.finetune.sft import DataError, Encoded, Row, encode, read_rows, row_key
from graft.finetune.split import split
from graft.finetune.versions import Version, check_name, publish_folder, save_version

__all__ = [
    "ADAPTER_FILE",
    "Base",
    "FinetuneUnavailable",
    "LlmResult",
    "LoraOptions",
    "finetune_llm",
    "load_base",
    "mean_loss",
]

ADAPTER_FILE: Final = "adapter.gguf"
META_FILE: Final = "meta.json"

Progress = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)`` after each optimizer step."""


class FinetuneUnavailable(RuntimeError):
    """The ``finetune`` extra is missing, or the base model cannot be loaded; says what to do."""


@dataclass(frozen=True)
class LoraOptions:
    """Training settings; the defaults suit a 135M model and a few hundred rows on a CPU."""

    epochs: int = 3
    rank: int = 8
    alpha: float = 16.0
    lr: float = 2e-4
    max_steps: int | None = None
    max_length: int = 1024
    batch_size: int = 4
    held_out: float = 0.1
    seed: int = 0
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class Base:
    """Where the base model comes from: a folder, or a GGUF file in a folder."""

    spec: str
    """How the user named it: ``local:smollm2`` or a folder."""
    folder: Path
    gguf_file: str | None = None


@dataclass(frozen=True)
class LlmResult:
    """What ``finetune_llm`` did; ``lines()`` is the CLI's report."""

    adapter: Version
    base: str
    train_rows: int
    held_out_rows: int
    steps: int
    loss_before: float
    loss_after: float
    seconds: float
    evaluated_on: str = "held-out rows"
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A short human-readable report."""
        return [
            f"trained on {self.train_rows} rows for {self.steps} steps "
            f"({self.seconds:.0f} s), starting from {self.base}",
            f"loss on {self.held_out_rows} {self.evaluated_on}: "
            f"{self.loss_before:.3f} before, {self.loss_after:.3f} after",
            f"saved {self.adapter.path}",
            f"serve it as {self.base}@{self.adapter.spec} (or @{self.adapter.name} for the latest)"
            if self.base.startswith("local:")
            else f"adapter for llama.cpp: {self.adapter.path / ADAPTER_FILE}",
        ]


def _import() -> tuple[Any, Any, Any]:
    try:
        import gguf  # noqa: F401  (transformers needs it for GGUF files; the adapter writer too)
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise FinetuneUnavailable(f"fine-tuning needs {exc.name}: {INSTALL}") from None
    return torch, transformers, peft


def load_base(base: Base) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on the CPU, from local files only."""
    _, transformers, _ = _import()
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if base.gguf_file:
        kwargs["gguf_file"] = base.gguf_file
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(base.folder), **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(base.folder), dtype="float32", **kwargs
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise FinetuneUnavailable(f"cannot load the base model {base.spec!r}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise FinetuneUnavailable(f"the base model {base.spec!r} has no chat template")
    return model, tokenizer


def finetune_llm(
    data: Path,
    adapters_dir: Path,
    base: Base,
    *,
    name: str = "custom",
    options: LoraOptions | None = None,
    progress: Progress | None = None,
    loaded: tuple[Any, Any] | None = None,
) -> LlmResult:
    """Train ``<name>-v<N>/`` in ``adapters_dir`` on ``data``; see the module docstring.

    ``loaded`` passes an already loaded (model, tokenizer) of ``base``; the model is then
    wrapped, not copied. Raises ``DataError`` for unusable data, ``ValueError`` for a bad name,
    ``FinetuneUnavailable`` for a missing extra or base.
    """
    opts = options or LoraOptions()
    check_name(name, what="adapter name")
    started = time.monotonic()
    rows = read_rows(data)
    torch, _, peft = _import()
    model, tokenizer = loaded or load_base(base)
    encoded = _encode_all(rows, tokenizer, opts.max_length, data)
    train, held = split(encoded, opts.held_out if len(encoded) > 1 else 0, key=lambda e: e[0])
    evaluated_on = "held-out rows"
    if not held:
        held, evaluated_on = train, "training rows (too few rows to hold some out)"

    torch.manual_seed(opts.seed)
    config = peft.LoraConfig(
        r=opts.rank,
        lora_alpha=opts.alpha,
        lora_dropout=0.0,
        target_modules=list(opts.targets),
        task_type="CAUSAL_LM",
    )
    tuned = peft.get_peft_model(model, config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    held_rows = [e for _, e in held]
    before = mean_loss(tuned, held_rows, pad)
    steps = _train(tuned, [e for _, e in train], pad, opts, progress)
    after = mean_loss(tuned, held_rows, pad)

    meta = {
        "name": name,
        "base": base.spec,
        "base_file": base.gguf_file or str(base.folder),
        "data": {"file": data.name, "sha256": hashlib.sha256(data.read_bytes()).hexdigest()},
        "options": asdict(opts),
        "rows": {"train": len(train), "held_out": len(held)},
        "loss_before": before,
        "loss_after": after,
        "steps": steps,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    saved = _save(tuned, model.config, adapters_dir, name, meta, opts)
    tuned.unload()  # the caller's model is left as it was loaded
    return LlmResult(
        adapter=saved,
        base=base.spec,
        train_rows=len(train),
        held_out_rows=len(held),
        steps=steps,
        loss_before=before,
        loss_after=after,
        seconds=time.monotonic() - started,
        evaluated_on=evaluated_on,
    )


def _encode_all(
    rows: Sequence[Row], tokenizer: Any, max_length: int, data: Path
) -> list[tuple[str, Encoded]]:
    out = []
    for row in rows:
        try:
            encoded = encode(row, tokenizer, max_length)
        except ValueError as exc:
            raise DataError(f"{data}, line {row.line}: {exc}") from None
        if not encoded.trained_tokens:
            raise DataError(f"{data}, line {row.line}: no assistant tokens left to learn")
        out.append((row_key(row), encoded))
    return out


def _batch(rows: Sequence[Encoded], pad: int) -> dict[str, Any]:
    import torch

    width = max(len(r.input_ids) for r in rows)

    def padded(values: list[int], fill: int) -> list[int]:
        return values + [fill] * (width - len(values))

    return {
        "input_ids": torch.tensor([padded(r.input_ids, pad) for r in rows]),
        "attention_mask": torch.tensor([padded([1] * len(r.input_ids), 0) for r in rows]),
        "labels": torch.tensor([padded(r.labels, -100) for r in rows]),
    }


def mean_loss(model: Any, rows: Sequence[Encoded], pad: int) -> float:
    """The mean cross-entropy per trained token over ``rows`` (each row evaluated alone)."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for row in rows:
            loss = model(**_batch([row], pad)).loss
            n = row.trained_tokens - (1 if row.labels[0] != -100 else 0)
            total += float(loss) * n
            tokens += n
    return total / max(tokens, 1)


def _train(
    model: Any, rows: Sequence[Encoded], pad: int, opts: LoraOptions, progress: Progress | None
) -> int:
    import torch

    per_epoch = math.ceil(len(rows) / opts.batch_size)
    total = opts.epochs * per_epoch
    if opts.max_steps is not None:
        total = min(total, opts.max_steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.lr)
    order = random.Random(opts.seed)
    model.train()
    step = 0
    while step < total:
        shuffled = list(rows)
        order.shuffle(shuffled)
        for i in range(0, len(shuffled), opts.batch_size):
            loss = model(**_batch(shuffled[i : i + opts.batch_size], pad)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if progress:
                progress(step, total, float(loss.detach()))
            if step >= total:
                break
    return step


def _save(
    tuned: Any, config: Any, adapters_dir: Path, name: str, meta: dict[str, Any], opts: LoraOptions
) -> Version:
    import peft

    adapters_dir.mkdir(parents=True, exist_ok=True)
    staging = adapters_dir / f".{name}-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir()
    try:
        tuned.save_pretrained(str(staging / "peft"), save_embedding_layers=False)
        lora = peft.get_peft_model_state_dict(tuned, save_embedding_layers=False)
        write_adapter(
            staging / ADAPTER_FILE,
            lora,
            model_type=config.model_type,
            n_layers=config.num_hidden_layers,
            n_head=config.num_attention_heads,
            n_head_kv=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
            alpha=opts.alpha,
            name=name,
        )

        def write(path: Path, version: int) -> None:
            (staging / META_FILE).write_text(
                json.dumps({**meta, "version": version}, indent=2), encoding="utf-8"
            )
            publish_folder(staging, path)

        return save_version(adapters_dir, name, write)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
