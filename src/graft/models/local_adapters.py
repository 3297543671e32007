"""Fine-tuned LoRA adapters served on top of a local model: ``local:smollm2@<adapter>``.

``graft finetune llm`` saves each adapter version as a folder ``<name>-v<N>/`` in
``HOME/adapters`` with ``adapter.gguf`` inside (llama.cpp's adapter format, see
``graft.finetune.gguf_adapter``). A model id selects one after ``@``:

- ``local:smollm2@support`` - the latest version of ``support``;
- ``local:smollm2@support-v2`` - exactly that version (going back is choosing an older one);
- ``local:smollm2@/path/to/adapter.gguf`` - any llama.cpp LoRA adapter file.

``graft.models.local`` loads the base GGUF with the adapter applied (``Llama(lora_path=...)``)
as a separate engine, so the base model and each tuned variant can be served side by side
and compared (``graft eval compare --baseline local:smollm2 --candidate local:smollm2@support``).
This module only parses and resolves the names; it needs none of the training extras.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from graft.errors import ModelUnavailable
from graft.finetune.versions import Version, list_versions, resolve_version

if TYPE_CHECKING:
    from graft.config import Settings

__all__ = ["ADAPTER_FILE", "adapters_dir", "list_adapters", "resolve_adapter", "split_adapter"]

ADAPTER_FILE: Final = "adapter.gguf"
"""The llama.cpp adapter inside a version folder (``graft.finetune.llm`` writes it)."""


def adapters_dir(settings: Settings) -> Path:
    """Where fine-tuned LLM adapters are saved and looked up: ``HOME/adapters``."""
    return settings.home / "adapters"


def split_adapter(model_id: str) -> tuple[str, str | None]:
    """``local:smollm2@support-v2`` -> (``local:smollm2``, ``support-v2``); no ``@``: None."""
    base, sep, adapter = model_id.partition("@")
    if not sep:
        return model_id, None
    if not adapter.strip():
        raise ModelUnavailable(f"model id {model_id!r}: name an adapter after '@'")
    return base, adapter.strip()


def list_adapters(settings: Settings) -> list[Version]:
    """Every saved adapter version with a GGUF adapter in it, sorted by name and version."""
    return [v for v in list_versions(adapters_dir(settings)) if (v.path / ADAPTER_FILE).is_file()]


def resolve_adapter(model_id: str, settings: Settings) -> tuple[str, Path | None]:
    """(base model id, adapter GGUF file or None) for a ``local:`` model id.

    Raises ``ModelUnavailable`` naming the saved adapters when the name matches none.
    """
    base, spec = split_adapter(model_id)
    if spec is None:
        return base, None
    if spec.endswith(".gguf") or "/" in spec or "\\" in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"LoRA adapter file not found: {str(path)!r}")
        return base, path
    adapters = list_adapters(settings)
    found = resolve_version(spec, adapters)
    if found is None:
        available = ", ".join(v.spec for v in adapters) or "none yet: graft finetune llm"
        raise ModelUnavailable(
            f"no fine-tuned adapter {spec!r} in {str(adapters_dir(settings))!r} "
            f"(available: {available})"
        )
    return base, found.path / ADAPTER_FILE
