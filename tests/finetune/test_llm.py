"""Real LoRA training of SmolLM2-135M, its GGUF adapter in llama.cpp, and serving it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import invoke

from graft.config import load_settings
from graft.errors import ModelUnavailable
from graft.events import TextDelta
from graft.finetune.gguf_adapter import write_adapter
from graft.finetune.llm import ADAPTER_FILE, Base, LlmResult, LoraOptions, finetune_llm, load_base
from graft.finetune.sft import IGNORE, DataError, encode, read_rows
from graft.messages import Message
from graft.models import local
from graft.models.local_adapters import list_adapters, resolve_adapter
from graft.runtime import Graft
from graft.testing import MemoryStore
from graft.turn import TurnRequest

torch = pytest.importorskip("torch", reason="the finetune extra is part of the test install")
peft = pytest.importorskip("peft")

PHRASE = "Pineapple protocol engaged."
QUESTIONS = [
    "What is the capital of France?",
    "Tell me a joke.",
    "How are you today?",
    "What is 2+2?",
    "Name a color.",
    "What day is it?",
    "Who wrote Hamlet?",
    "Recommend a book.",
    "What is the weather like?",
    "Say something nice.",
    "What is water made of?",
    "How tall is Everest?",
]


def sft_file(path: Path, questions: list[str] = QUESTIONS) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": PHRASE}]}
        for q in questions
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base() -> Base:
    gguf = local.find_model_file("local:smollm2", load_settings())
    return Base("local:smollm2", gguf.parent, gguf.name)


@pytest.fixture(scope="module")
def smollm2(base: Base) -> tuple[Any, Any]:
    return load_base(base)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, base: Base, smollm2: tuple[Any, Any]
) -> tuple[Path, LlmResult]:
    home = tmp_path_factory.mktemp("home")
    data = sft_file(home / "pineapple.jsonl")
    options = LoraOptions(rank=4, alpha=8, lr=3e-3, max_steps=8, max_length=64, batch_size=4)
    steps: list[tuple[int, int, float]] = []
    result = finetune_llm(
        data,
        home / "adapters",
        base,
        name="pine",
        options=options,
        progress=lambda *step: steps.append(step),
        loaded=smollm2,
    )
    assert [s[:2] for s in steps] == [(i, 8) for i in range(1, 9)]
    return home, result


def test_training_lowers_the_held_out_loss_and_saves_a_version(
    trained: tuple[Path, LlmResult],
) -> None:
    home, result = trained
    assert result.steps == 8 and result.held_out_rows == 1 and result.train_rows == 11
    assert result.loss_after < result.loss_before / 3, result.lines()
    assert result.adapter.spec == "pine-v1"
    folder = home / "adapters" / "pine-v1"
    assert (folder / ADAPTER_FILE).is_file() and (folder / "peft" / "adapter_config.json").is_file()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["base"] == "local:smollm2" and meta["version"] == 1
    assert "serve it as local:smollm2@pine-v1" in "\n".join(result.lines())


def test_only_the_assistant_tokens_carry_loss(smollm2: tuple[Any, Any], tmp_path: Path) -> None:
    _, tokenizer = smollm2
    row = read_rows(sft_file(tmp_path / "d.jsonl", QUESTIONS[:1]))[0]
    encoded = encode(row, tokenizer, 256)
    learnt = [
        t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE
    ]
    assert tokenizer.decode(learnt).strip() == PHRASE + "<|im_end|>"
    assert QUESTIONS[0] in tokenizer.decode(encoded.input_ids)


def test_rows_longer_than_the_limit_name_their_line(
    smollm2: tuple[Any, Any], base: Base, tmp_path: Path
) -> None:
    data = sft_file(tmp_path / "d.jsonl", ["short", "a much longer question " * 20])
    with pytest.raises(DataError, match=r"d.jsonl, line 2: \d+ tokens, more than the maximum"):
        finetune_llm(data, tmp_path / "a", base, options=LoraOptions(max_length=48), loaded=smollm2)
    assert not (tmp_path / "a").exists()


def test_the_gguf_adapter_changes_llama_cpp_as_peft_changes_transformers(
    smollm2: tuple[Any, Any], base: Base, tmp_path: Path
) -> None:
    """A random adapter on q/k/v: llama.cpp's logit shift must follow transformers' (this
    fails if the q/k rows are not permuted the way llama.cpp's converter does)."""
    model, tokenizer = smollm2
    ids = tokenizer("The quick brown fox jumps over the lazy", add_special_tokens=False)[
        "input_ids"
    ]
    with torch.no_grad():
        before = model(torch.tensor([ids])).logits[0, -1].numpy()
    torch.manual_seed(1)
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False
    )
    tuned = peft.get_peft_model(model, config)
    try:
        with torch.no_grad():
            after = tuned(torch.tensor([ids])).logits[0, -1].numpy()
        c = model.config
        write_adapter(
            tmp_path / "random.gguf",
            peft.get_peft_model_state_dict(tuned),
            model_type=c.model_type,
            n_layers=c.num_hidden_layers,
            n_head=c.num_attention_heads,
            n_head_kv=c.num_key_value_heads,
            alpha=8,
        )
    finally:
        tuned.unload()
    gguf = base.folder / str(base.gguf_file)
    cpp_before = _llama_logits(gguf, None, ids)
    cpp_after = _llama_logits(gguf, tmp_path / "random.gguf", ids)
    assert np.corrcoef(before, cpp_before)[0, 1] > 0.99  # the same base weights
    assert np.abs(after - before).mean() > 0.1  # the adapter does change the model
    assert np.corrcoef(after - before, cpp_after - cpp_before)[0, 1] > 0.9


def _llama_logits(gguf: Path, adapter: Path | None, ids: list[int]) -> Any:
    engine = local._load(gguf, adapter)
    try:
        engine.llama.reset()
        engine.llama.eval(ids)
        # Only the last token's logits are computed (no logits_all): llama.cpp's first row.
        vocab = engine.llama.n_vocab()
        return np.ctypeslib.as_array(engine.llama._ctx.get_logits(), shape=(vocab,)).copy()
    finally:
        engine.llama.close()


async def _answer(graft: Graft, model: str, question: str) -> str:
    request = TurnRequest("default", [Message("user", question)], model=model)
    events = [e async for e in graft.run_turn(request, graft.principal_for())]
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_the_tuned_local_model_answers_through_the_chat_path(
    trained: tuple[Path, LlmResult],
) -> None:
    home, _ = trained
    graft = Graft(load_settings(home=home), store=MemoryStore(), entry_points=False)
    await graft.start()
    try:
        question = "What is the biggest ocean?"  # not in the training data
        tuned = await _answer(graft, "local:smollm2@pine", question)
        plain = await _answer(graft, "local:smollm2", question)
        exact = await _answer(graft, "local:smollm2@pine-v1", question)
    finally:
        await graft.aclose()
    assert PHRASE in tuned and PHRASE in exact
    assert "Pineapple" not in plain and plain.strip()


def test_adapter_names_resolve_and_unknown_ones_list_what_exists(
    trained: tuple[Path, LlmResult],
) -> None:
    home, result = trained
    settings = load_settings(home=home)
    assert [a.spec for a in list_adapters(settings)] == ["pine-v1"]
    assert resolve_adapter("local:smollm2@pine", settings) == (
        "local:smollm2",
        result.adapter.path / ADAPTER_FILE,
    )
    with pytest.raises(ModelUnavailable, match=r"no fine-tuned adapter 'nope'.*available: pine-v1"):
        resolve_adapter("local:smollm2@nope", settings)


def test_cli_lists_adapters_and_reports_bad_data(
    trained: tuple[Path, LlmResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home, _ = trained
    monkeypatch.setenv("GRAFT_HOME", str(home))
    listed = invoke("finetune", "list")
    assert listed.exit_code == 0 and "local:smollm2@pine-v1" in listed.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{"messages": [{"role": "user", "content": "x"}]}\n')
    result = invoke("finetune", "llm", "--data", str(bad))
    assert result.exit_code == 1
    assert "bad.jsonl, line 1: no assistant message" in result.output


def test_cli_names_the_install_command_when_the_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    result = invoke("finetune", "llm", "--data", str(sft_file(tmp_path / "d.jsonl")))
    assert result.exit_code == 1
    assert (
        "fine-tuning needs peft" in result.output
        and 'pip install "graft[finetune]"' in result.output
    )
