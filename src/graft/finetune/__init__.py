"""Fine-tuning graft's own models on a user's data: the shared machinery and the trainers.

- ``versions``: trained artifacts live in one folder as ``<name>-v<N>`` (a file or a
  folder), never overwritten; ``name`` selects the latest version, ``name-vN`` one of them.
- ``split``: the deterministic, hash-chosen held-out split, the same on every machine and
  whatever the order of the rows.
- ``sft``: OpenAI chat fine-tuning JSONL (with tool calls), checked line by line and rendered
  with the model's chat template, loss only on the assistant's tokens.
- ``llm``: LoRA training of a local Hugging Face-format chat model (``graft finetune llm``);
  ``gguf_adapter`` writes the adapter in llama.cpp's GGUF form, so that
  ``local:smollm2@<name>`` serves it.

The sentiment head's trainer (``graft.default_plugins.sentiment.finetune``) uses the same
``versions`` and ``split``. Only ``sft`` parsing, ``versions`` and ``split`` import without
the ``finetune`` extra (torch, transformers, peft, gguf).
"""

from __future__ import annotations

INSTALL = 'pip install "graft[finetune]"  (torch first, the CPU build: pip install torch==2.13.0)'
"""What to run when the ``finetune`` extra is missing."""

__all__ = ["INSTALL"]
