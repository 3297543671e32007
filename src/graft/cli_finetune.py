"""``graft finetune``: train graft's own models on the user's data, and list what was trained.

- ``graft finetune sentiment --data labelled.csv`` retrains the e5 sentiment head
  (``graft.default_plugins.sentiment.finetune``) and saves ``<name>-v<N>.npz``;
- ``graft finetune llm --data sft.jsonl`` trains a LoRA adapter for a local chat model
  (``graft.finetune.llm``) and saves ``<name>-v<N>/``, served as ``local:smollm2@<name>``;
- ``graft finetune list`` shows both kinds with the names that select them.

Both keep every version (nothing is overwritten) and measure on a hash-chosen held-out split
(``graft.finetune.versions``, ``graft.finetune.split``). The trainers and their heavy imports
load only when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from graft.cli_common import settings_of

__all__ = ["finetune"]


@click.group()
def finetune() -> None:
    """Train graft's own models on your data (sentiment head, local chat model)."""


@finetune.command("sentiment")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV with a header row and columns text,label (negative, neutral, positive).",
)
@click.option("--name", default="custom", show_default=True, help="Name of the new head.")
@click.option("--base", default="default", show_default=True, help="Head to start from.")
@click.option("--held-out", default=0.2, show_default=True, type=click.FloatRange(0.05, 0.5))
@click.pass_context
def finetune_sentiment(
    ctx: click.Context, data: Path, name: str, base: str, held_out: float
) -> None:
    """Retrain the sentiment head on DATA; report accuracy before and after; save it."""
    from graft.default_plugins.sentiment.finetune import DataError
    from graft.default_plugins.sentiment.finetune import finetune as train
    from graft.default_plugins.sentiment.plugin import heads_dir

    directory = heads_dir(settings_of(ctx))
    directory.mkdir(parents=True, exist_ok=True)
    with click.progressbar(length=1, label="embedding", file=sys.stderr) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            bar.length = total
            bar.label = stage
            bar.update(done - bar.pos)

        try:
            result = train(
                data, directory, name=name, base=base, held_out=held_out, progress=progress
            )
        except (DataError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    for line in result.lines():
        click.echo(line)


@finetune.command("llm")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='OpenAI chat fine-tuning JSONL: one {"messages": [...], "tools": [...]} per line.',
)
@click.option(
    "--base",
    default="local:smollm2",
    show_default=True,
    help="The local: model to tune (its GGUF file is loaded into transformers).",
)
@click.option(
    "--base-path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A Hugging Face model folder to tune instead of --base.",
)
@click.option("--name", default="custom", show_default=True, help="Name of the new adapter.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1, 100))
@click.option("--rank", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option("--lr", default=2e-4, show_default=True, type=click.FloatRange(1e-7, 1.0))
@click.option("--held-out", default=0.1, show_default=True, type=click.FloatRange(0.0, 0.5))
@click.option("--max-steps", default=None, type=click.IntRange(1), help="Stop after N steps.")
@click.option(
    "--max-length", default=1024, show_default=True, type=click.IntRange(16), help="Tokens a row."
)
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1, 256))
@click.pass_context
def finetune_llm(
    ctx: click.Context,
    data: Path,
    base: str,
    base_path: Path | None,
    name: str,
    epochs: int,
    rank: int,
    lr: float,
    held_out: float,
    max_steps: int | None,
    max_length: int,
    batch_size: int,
) -> None:
    """Train a LoRA adapter on DATA; report held-out loss before and after; save it."""
    from graft.errors import ModelUnavailable
    from graft.finetune.llm import Base, FinetuneUnavailable, LoraOptions
    from graft.finetune.llm import finetune_llm as train
    from graft.finetune.sft import DataError
    from graft.models.local import find_model_file
    from graft.models.local_adapters import adapters_dir, split_adapter

    settings = settings_of(ctx)
    if base_path is not None:
        source = Base(str(base_path), base_path)
    else:
        if not base.startswith("local:") or split_adapter(base)[1] is not None:
            raise click.BadParameter(
                f"{base!r}: name a local: model without an adapter, or use --base-path",
                param_hint="--base",
            )
        try:
            gguf = find_model_file(base, settings)
        except ModelUnavailable as exc:
            raise click.ClickException(exc.message) from None
        source = Base(base, gguf.parent, gguf.name)
    options = LoraOptions(
        epochs=epochs,
        rank=rank,
        alpha=2.0 * rank,
        lr=lr,
        max_steps=max_steps,
        max_length=max_length,
        batch_size=batch_size,
        held_out=held_out,
    )
    click.echo(f"loading {source.spec} ...", err=True)
    with click.progressbar(
        length=1, label="training", file=sys.stderr, item_show_func=lambda s: s
    ) as bar:

        def progress(step: int, total: int, loss: float) -> None:
            bar.length = total
            bar.update(step - bar.pos, f"loss {loss:.3f}")

        try:
            result = train(
                data,
                adapters_dir(settings),
                source,
                name=name,
                options=options,
                progress=progress,
            )
        except (DataError, ValueError, FinetuneUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
    for line in result.lines():
        click.echo(line)


@finetune.command("list")
@click.pass_context
def finetune_list(ctx: click.Context) -> None:
    """List fine-tuned sentiment heads and LLM adapters, with the names that select them."""
    from graft.default_plugins.sentiment.plugin import heads_dir
    from graft.finetune.versions import list_versions
    from graft.models.local_adapters import list_adapters

    settings = settings_of(ctx)
    rows = [(f"e5:{h.spec}", h.path) for h in list_versions(heads_dir(settings), ".npz")]
    rows += [(f"{_adapter_base(a.path)}@{a.spec}", a.path) for a in list_adapters(settings)]
    if not rows:
        click.echo("nothing fine-tuned yet (graft finetune sentiment | llm)", err=True)
    for spec, path in rows:
        click.echo(f"{spec:<40} {path}")


def _adapter_base(folder: Path) -> str:
    """The base model an adapter was trained on, from its ``meta.json``."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "local:?"
    base = meta.get("base") if isinstance(meta, dict) else None
    return base if isinstance(base, str) and base.startswith("local:") else "local:?"
