"""TransformersBackend against the real transformers library and a tiny model made here.

The model is a one-layer BERT whose weights are set by hand so that its answers are known:
every word's embedding points one way, ``good`` and ``bad`` point two opposite others, and
``huh`` a fourth. Attention is uniform (query and key are zero), so the [CLS] vector is the
average of the text, and the classifier reads how far it leans towards ``good`` or ``bad``
(or ``huh``). More ``good`` than ``bad`` means positive, none of either means a coin toss.

transformers and torch are imported at module level on purpose: without the
``sentiment-hf`` extra this file fails, it does not skip.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from graft.default_plugins.sentiment.base import SentimentBackend
from graft.default_plugins.sentiment.hf import TransformersBackend, map_labels
from graft.errors import ConfigError, ModelUnavailable

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "huh", "the", "film"]
MAX_TOKENS = 16
# Directions in the 4-d hidden space, each with mean 0 so LayerNorm keeps them apart.
FILLER = [0.0, 0.0, 1.0, -1.0]
LEAN = [1.0, -1.0, 0.0, 0.0]  # good: +LEAN, bad: -LEAN
PUZZLED = [1.0, 1.0, -1.0, -1.0]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError(f"the backend tried to reach the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    made = transformers.BertTokenizer(vocab=str(vocab), model_max_length=MAX_TOKENS)
    assert made("good huh")["input_ids"] == [2, 5, 7, 3]  # words are in the vocabulary
    return made


def make_model(
    where: Path,
    tokenizer: Any,
    labels: Sequence[str],
    reads: Sequence[Sequence[float]],
    bias: Sequence[float] | None = None,
) -> Path:
    """Save a model whose label ``i`` has the logit ``20 * reads[i] . cls + bias[i]``."""
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        max_position_embeddings=MAX_TOKENS,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = transformers.BertForSequenceClassification(config).eval()
    words = torch.tensor([FILLER] * len(VOCAB))
    words[VOCAB.index("good")] = torch.tensor(LEAN)
    words[VOCAB.index("bad")] = -torch.tensor(LEAN)
    words[VOCAB.index("huh")] = torch.tensor(PUZZLED)
    eye = torch.eye(4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for name, parameter in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                parameter.fill_(1.0)
        bert = model.bert
        bert.embeddings.word_embeddings.weight.copy_(words)
        layer = bert.encoder.layer[0]
        layer.attention.self.value.weight.copy_(eye)
        layer.attention.output.dense.weight.copy_(eye)
        bert.pooler.dense.weight.copy_(eye)
        model.classifier.weight.copy_(20 * torch.tensor(reads))
        model.classifier.bias.copy_(torch.tensor(bias or [0.0] * len(labels)))
    model.save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


@pytest.fixture(scope="module")
def sst2(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny-sst2"
    return make_model(path, tokenizer, ["NEGATIVE", "POSITIVE"], [[-x for x in LEAN], LEAN])


@pytest.fixture(scope="module")
def backend(sst2: Path) -> TransformersBackend:
    return TransformersBackend(str(sst2), batch_size=2)


def test_two_labels_with_a_neutral_band(backend: TransformersBackend) -> None:
    assert isinstance(backend, SentimentBackend)
    assert backend.name == "transformers:tiny-sst2"
    good, bad, even, none = backend.analyze_batch(["good film", "the bad film", "good bad", "film"])
    assert (good.label, bad.label) == ("positive", "negative")
    assert good.score > 0.9 and bad.score > 0.9
    # As much "good" as "bad", or neither: the model is at 50/50, under 0.6, so neutral.
    assert (even.label, none.label) == ("neutral", "neutral")
    assert none.score == pytest.approx(1.0, abs=1e-3)
    assert good.backend == "transformers:tiny-sst2" and good.emotion is None
    assert not any(result.truncated for result in (good, bad, even, none))


def test_a_stricter_neutral_band(sst2: Path) -> None:
    lenient = TransformersBackend(sst2, neutral_below=0.0).analyze_batch(["good bad"])[0]
    assert lenient.label in ("negative", "positive")  # never neutral: it has no such label


def test_batches_keep_order_and_padding_does_not_change_answers(
    backend: TransformersBackend, sst2: Path
) -> None:
    calls: list[int] = []

    def count(module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if isinstance(module, transformers.BertForSequenceClassification):
            calls.append(len(kwargs["input_ids"]))

    texts = ["good", "bad bad the film", "the film", "good good bad the film", "bad"]
    handle = torch.nn.modules.module.register_module_forward_hook(count, with_kwargs=True)
    try:
        batched = backend.analyze_batch(texts)
    finally:
        handle.remove()
    assert calls == [2, 2, 1]  # batch_size=2
    one_by_one = TransformersBackend(sst2, batch_size=1).analyze_batch(texts)
    assert [r.label for r in batched] == ["positive", "negative", "neutral", "positive", "negative"]
    assert [r.score for r in batched] == pytest.approx([r.score for r in one_by_one], abs=1e-4)
    assert backend.analyze_batch([]) == []


def test_long_text_is_truncated_to_the_model_limit(backend: TransformersBackend) -> None:
    assert backend.max_chars == 2 * MAX_TOKENS
    # Whole, the text leans "good" (3 to 1); its first 16 tokens hold only "bad". Without
    # truncation the 16-position model could not read it at all.
    text = "bad " + "the " * 20 + "good good good"
    [result] = backend.analyze_batch([text])
    assert result.truncated
    assert result.label == "negative"


def test_three_index_labels(tmp_path: Path, tokenizer: Any) -> None:
    labels = ["LABEL_0", "LABEL_1", "LABEL_2"]
    reads = [[-x for x in LEAN], [0.0] * 4, LEAN]
    model = make_model(tmp_path / "m", tokenizer, labels, reads, bias=[0.0, 1.0, 0.0])
    results = TransformersBackend(model).analyze_batch(["bad", "the film", "good"])
    assert [r.label for r in results] == ["negative", "neutral", "positive"]
    assert results[1].score == pytest.approx(1 / (1 + 2 / 2.718281828), abs=1e-3)


def test_stars_add_up(tmp_path: Path, tokenizer: Any) -> None:
    labels = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    reads = [[k * x for x in LEAN] for k in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    model = make_model(tmp_path / "m", tokenizer, labels, reads, bias=[0, 0, 3.0, 0, 0])
    good, neutral, bad = TransformersBackend(model).analyze_batch(["good film", "film", "bad"])
    assert (good.label, neutral.label, bad.label) == ("positive", "neutral", "negative")
    assert good.score > 0.99  # 4 and 5 stars together


def test_emotion_labels(tmp_path: Path, tokenizer: Any) -> None:
    labels = ["anger", "joy", "confusion", "realization"]
    reads = [[-x for x in LEAN], LEAN, PUZZLED, [0.0] * 4]
    model = make_model(tmp_path / "m", tokenizer, labels, reads, bias=[0, 0, 0, 1.0])
    results = TransformersBackend(model).analyze_batch(["bad", "good", "huh", "the film"])
    assert [(r.label, r.emotion) for r in results] == [
        ("negative", "angry"),
        ("positive", "happy"),
        ("neutral", "confused"),
        ("neutral", None),  # "realization" is no rule's: neutral in an emotion model
    ]


def test_unknown_labels_need_a_mapping(tmp_path: Path, tokenizer: Any) -> None:
    reads = [LEAN, [-x for x in LEAN]]
    model = make_model(tmp_path / "m", tokenizer, ["Yes", "No"], reads)
    with pytest.raises(ConfigError, match=r"\['Yes', 'No'\].*labels="):
        TransformersBackend(model)
    mapped = TransformersBackend(model, labels={"yes": "grateful", "NO": "negative"})
    good, bad = mapped.analyze_batch(["good", "bad"])
    assert (good.label, good.emotion, bad.label) == ("positive", "grateful", "negative")
    with pytest.raises(ConfigError, match="does not have"):
        TransformersBackend(model, labels={"maybe": "neutral"})
    with pytest.raises(ConfigError, match="give one of"):
        TransformersBackend(model, labels={"yes": "great"})


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["POSITIVE", "NEGATIVE"], ["positive", "negative"]),
        (["Negative", "Neutral", "Positive"], ["negative", "neutral", "positive"]),
        (["neg", "neu", "pos"], ["negative", "neutral", "positive"]),
        (["负面", "中性", "正面"], ["negative", "neutral", "positive"]),
        (["LABEL_0", "LABEL_1"], ["negative", "positive"]),
        (["0", "1", "2"], ["negative", "neutral", "positive"]),
        (
            ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"],
            ["negative"] * 2 + ["neutral"] + ["positive"] * 2,
        ),
        (
            ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3", "LABEL_4"],
            ["negative"] * 2 + ["neutral"] + ["positive"] * 2,
        ),
        (
            ["sadness", "annoyance", "gratitude", "愤怒"],
            ["negative", "negative", "positive", "negative"],
        ),
    ],
)
def test_label_conventions(labels: list[str], expected: list[str]) -> None:
    assert [map_labels(labels)[label][0] for label in labels] == expected


def test_label_indices_need_a_known_count() -> None:
    with pytest.raises(ConfigError, match="LABEL_3"):
        map_labels(["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"])


@pytest.mark.parametrize(
    "model", ["distilbert/distilbert-base-uncased-finetuned-sst-2-english", "no-such-dir"]
)
def test_hub_ids_and_missing_directories_are_refused(model: str) -> None:
    with pytest.raises(ConfigError, match="not a directory on this machine.*never downloads"):
        TransformersBackend(model)


def test_files_and_bare_directories_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file"):
        TransformersBackend(tmp_path / "model.bin")
    with pytest.raises(ConfigError, match="no config.json"):
        TransformersBackend(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="cannot load"):
        TransformersBackend(tmp_path)


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch, sst2: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelUnavailable, match=r"torch==2\.13\.0.*graft\[sentiment-hf\]"):
        TransformersBackend(sst2)
