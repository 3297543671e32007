"""``load_backend``: one string (from settings or the CLI) to a ``SentimentBackend``.

The spec forms, which every error message lists:

- ``e5``: e5 embeddings with the head shipped in the package;
- ``e5:HEAD``: the same with another head: ``default``, a fine-tuned head by name (its latest
  version) or ``name-vN``, or the path of a ``.npz`` head file;
- ``transformers:MODEL``: a local Hugging Face model (a folder or a model id already in the
  local cache) through a ``transformers`` pipeline;
- ``lexicon``: the word-list fallback, for when no model can run.

Each backend's module is imported only when its spec is asked for, so a missing optional
dependency fails there, saying how to install it, and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from .base import SentimentBackend

__all__ = ["SPEC_FORMS", "load_backend"]

SPEC_FORMS: Final = (
    "'e5'",
    "'e5:<head name, name-vN or path.npz>'",
    "'transformers:<model path or id>'",
    "'lexicon'",
)


def load_backend(spec: str, *, heads_dir: Path | None = None) -> SentimentBackend:
    """Build the backend that ``spec`` names; ``heads_dir`` holds fine-tuned heads.

    Raises ``ValueError`` for a spec of no known form or an unknown head.
    """
    kind, sep, arg = spec.strip().partition(":")
    kind, arg = kind.strip().lower(), arg.strip()
    if kind == "e5":
        from .e5 import E5Backend
        from .finetune import resolve_head
        from .head import HeadSet

        if not sep:
            return E5Backend()
        if not arg:
            raise ValueError(f"sentiment backend {spec!r}: name a head after 'e5:'")
        return E5Backend(HeadSet.load(resolve_head(arg, heads_dir)), name=f"e5:{arg}")
    if kind == "transformers" and arg:
        # Hook: hf.py (TransformersBackend) imports transformers only when built.
        from .hf import TransformersBackend

        return TransformersBackend(arg)
    if kind == "lexicon" and not sep:
        # Hook: lexicon.py (LexiconBackend) has no dependencies.
        from .lexicon import LexiconBackend

        return LexiconBackend()
    raise ValueError(f"unknown sentiment backend {spec!r}: expected one of {', '.join(SPEC_FORMS)}")
