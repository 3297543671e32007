"""Writing a peft LoRA adapter as a llama.cpp GGUF adapter, so the GGUF base can serve it.

graft serves local models with llama.cpp, which applies a LoRA adapter on top of the
(quantized) base model when it is given one in GGUF form (``Llama(lora_path=...)``): the
format of llama.cpp's ``convert_lora_to_gguf.py``, written here with the ``gguf`` package:

- metadata ``general.architecture`` (the base's), ``general.type = adapter``,
  ``adapter.type = lora``, ``adapter.lora.alpha``;
- per adapted weight two F32 tensors ``<gguf name>.lora_a`` (rank x in) and
  ``<gguf name>.lora_b`` (out x rank), where ``<gguf name>`` comes from gguf's tensor name
  map (``model.layers.3.self_attn.q_proj.weight`` -> ``blk.3.attn_q.weight``).

llama.cpp scales the product by ``alpha / rank`` as peft does. One detail matters for
llama-architecture models: the GGUF converter permutes the rows of ``q_proj`` and ``k_proj``
(rotary embedding layout) and transformers undoes it when it loads a GGUF, so the adapter's
``lora_b`` of those two is permuted here the same way, or the served model would get a
scrambled update.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SUPPORTED", "write_adapter"]

SUPPORTED: Final = {"llama": "LLAMA", "mistral": "LLAMA", "qwen2": "QWEN2", "qwen3": "QWEN3"}
"""transformers ``model_type`` -> gguf ``MODEL_ARCH`` whose adapters this module can write."""

_PERMUTED: Final = frozenset({"llama", "mistral"})


def write_adapter(
    path: Path,
    lora: Mapping[str, Any],
    *,
    model_type: str,
    n_layers: int,
    n_head: int,
    n_head_kv: int,
    alpha: float,
    name: str = "",
) -> int:
    """Write ``lora`` (peft state dict: ``...q_proj.lora_A.weight`` -> tensor) as a GGUF adapter.

    Returns the number of adapted weights. Raises ``ValueError`` for an architecture or a
    tensor that llama.cpp's naming does not cover.
    """
    import gguf
    import numpy as np

    if model_type not in SUPPORTED:
        raise ValueError(
            f"cannot write a llama.cpp adapter for model type {model_type!r} "
            f"(supported: {', '.join(sorted(SUPPORTED))})"
        )
    arch = gguf.MODEL_ARCH[SUPPORTED[model_type]]
    names = gguf.get_tensor_name_map(arch, n_layers)
    pairs: dict[str, dict[str, npt.NDArray[np.float32]]] = {}
    for key, tensor in lora.items():
        base, part = _split_key(key)
        gguf_name = names.get_name(base + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise ValueError(f"no GGUF name for the adapted weight {base!r}")
        pairs.setdefault(gguf_name, {})[part] = np.ascontiguousarray(
            tensor.detach().float().cpu().numpy(), dtype=np.float32
        )
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for gguf_name, parts in sorted(pairs.items()):
        if set(parts) != {"a", "b"}:
            raise ValueError(f"{gguf_name}: the adapter has lora_A or lora_B alone")
        b = parts["b"]
        if model_type in _PERMUTED and ".attn_q." in gguf_name:
            b = _permute(b, n_head, n_head)
        elif model_type in _PERMUTED and ".attn_k." in gguf_name:
            b = _permute(b, n_head, n_head_kv)
        writer.add_tensor(f"{gguf_name}.lora_a", parts["a"])
        writer.add_tensor(f"{gguf_name}.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(pairs)


def _split_key(key: str) -> tuple[str, str]:
    """``base_model.model.model.layers.0.mlp.up_proj.lora_A.weight`` -> (``model...up_proj``, a)."""
    for marker, part in ((".lora_A.", "a"), (".lora_B.", "b")):
        if marker in key:
            base = key.split(marker)[0]
            return base.removeprefix("base_model.model."), part
    raise ValueError(f"not a LoRA tensor: {key!r}")


def _permute(
    weights: npt.NDArray[np.float32], n_head: int, n_head_kv: int
) -> npt.NDArray[np.float32]:
    """The row order llama.cpp's converter gives q/k projections (``LlamaModel.permute``)."""
    if n_head_kv != n_head:
        n_head = n_head_kv
    shape = weights.shape
    return (
        weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )
