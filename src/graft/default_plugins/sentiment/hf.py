"""``TransformersBackend``: sentiment from a Hugging Face classification model on this disk.

For users who already have a model of their own (fine-tuned, or downloaded by hand): graft
runs it through ``transformers``' ``sentiment-analysis`` pipeline and turns its labels into
graft's three (``map_labels``). graft never downloads one: the model must be a local directory
saved with ``save_pretrained``, it is loaded with ``local_files_only`` and ``HF_HUB_OFFLINE``,
and no code shipped with it is run (``trust_remote_code`` stays off).

``transformers`` and ``torch`` are an optional extra, imported only when a backend is made:
install ``torch==2.13.0`` first (a plain ``torch`` pulls the CUDA build, gigabytes), then
``graft[sentiment-hf]``.

Label rules, in order (case does not matter):

1. ``labels``, the caller's mapping from the model's label to a graft label or emotion.
2. Sentiment words: positive/pos, negative/neg, neutral/neu, and 正面/积极/正向, 负面/消极/负向,
   中性/中立.
3. Stars: ``1 star`` and ``2 stars`` are negative, ``3 stars`` neutral, ``4``-``5`` positive.
4. Emotions (anger, annoyance, sadness, confusion, joy, gratitude ... and 愤怒, 悲伤 ...): their
   label, and the graft emotion where one fits (annoyance is ``frustrated``). In a model with
   emotion labels, a label that none of these rules knows (``realization``) is neutral.
5. Bare indices (``LABEL_0``, ``0``): two labels are negative, positive (SST-2's order); three
   are negative, neutral, positive; five are one to five stars.

Any other label is an error that names it and asks for ``labels``. The probabilities of all
model labels that map to the same graft label are added up, and the largest sum wins. A model
with only a negative and a positive label cannot say "neutral": where the winner's probability
is below ``neutral_below`` (0.6), the text is neutral, with score ``1 - |p(pos) - p(neg)|``.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graft.default_plugins.sentiment.base import EMOTIONS, LABELS, Emotion, Label, Sentiment
from graft.errors import ConfigError, ModelUnavailable

__all__ = ["TransformersBackend", "local_model_dir", "map_labels"]

_INSTALL = "pip install torch==2.13.0, then pip install 'graft[sentiment-hf]'"
"""torch first, pinned: the extra's transformers would otherwise pull the CUDA build."""

Meaning = tuple[Label, Emotion | None]

_SENTIMENT_WORDS: dict[Meaning, str] = {
    ("positive", None): "positive pos 正面 积极 正向 正 好评",
    ("negative", None): "negative neg 负面 消极 负向 负 差评",
    ("neutral", None): "neutral neu 中性 中立 中评",
}
_EMOTION_WORDS: dict[Meaning, str] = {
    ("positive", None): "admiration approval caring desire optimism pride relief",
    ("negative", None): "disgust fear nervousness embarrassment disapproval 厌恶 恐惧",
    ("neutral", None): "surprise curiosity realization 惊讶",
    ("negative", "angry"): "anger angry rage 愤怒 生气",
    ("negative", "frustrated"): "annoyance annoyed frustration frustrated irritation 烦躁",
    ("negative", "sad"): "sadness sad grief disappointment remorse sorrow 悲伤 难过 伤心 失望",
    ("neutral", "confused"): "confusion confused 困惑",
    ("positive", "happy"): "joy happy happiness amusement excitement love 高兴 快乐 开心 喜悦",
    ("positive", "grateful"): "gratitude grateful thankful thanks 感谢 感激",
}
_EMOTION_MEANINGS = {w: m for m, words in _EMOTION_WORDS.items() for w in words.split()}
_MEANINGS = {w: m for m, words in _SENTIMENT_WORDS.items() for w in words.split()}
_MEANINGS |= _EMOTION_MEANINGS
_STARS = re.compile(r"([1-5])\s*stars?")
_INDEX = re.compile(r"(?:label_?)?(\d+)")
_BY_INDEX: dict[int, tuple[Label, ...]] = {
    2: ("negative", "positive"),
    3: LABELS,
    5: ("negative", "negative", "neutral", "positive", "positive"),
}
_EMOTION_LABEL: dict[Emotion, Label] = {
    "angry": "negative",
    "frustrated": "negative",
    "sad": "negative",
    "confused": "neutral",
    "happy": "positive",
    "grateful": "positive",
}
_TARGETS: dict[str, Meaning] = {label: (label, None) for label in LABELS} | {
    emotion: (_EMOTION_LABEL[emotion], emotion) for emotion in EMOTIONS
}
"""What the values of a ``labels`` mapping may be."""
_CHARS_PER_TOKEN = 2
"""``max_chars`` is this times the model's token limit: English runs about four characters a
token, Chinese about one, so a long Chinese text may still be cut (and says ``truncated``)."""
_DEFAULT_TOKENS = 512


def local_model_dir(model: str | os.PathLike[str]) -> Path:
    """The model's directory, or a ``ConfigError`` saying why ``model`` is not one."""
    path = Path(model).expanduser()
    where = f"sentiment model {str(model)!r}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{where} has no config.json: save the model with save_pretrained")
        return path.resolve()
    if path.exists():
        raise ConfigError(f"{where} is a file: give the directory that holds its config.json")
    raise ConfigError(
        f"{where} is not a directory on this machine; graft loads models only from a local "
        "directory and never downloads one (download it yourself, e.g. "
        "`hf download NAME --local-dir DIR`, and give DIR)"
    )


def _convention(label: str, count: int) -> Meaning | None:
    key = label.strip().lower()
    if key in _MEANINGS:
        return _MEANINGS[key]
    if stars := _STARS.fullmatch(key):
        return _BY_INDEX[5][int(stars[1]) - 1], None
    index = _INDEX.fullmatch(key)
    if index and count in _BY_INDEX and int(index[1]) < count:
        return _BY_INDEX[count][int(index[1])], None
    return None


def _explicit(label: str, target: str) -> Meaning:
    if target not in _TARGETS:
        raise ConfigError(f"labels[{label!r}] = {target!r}: give one of {', '.join(_TARGETS)}")
    return _TARGETS[target]


def map_labels(
    model_labels: Sequence[str], labels: Mapping[str, str] | None = None
) -> dict[str, Meaning]:
    """What each of a model's labels means to graft; the rules are in the module docstring."""
    given = {key.strip().lower(): value.strip().lower() for key, value in (labels or {}).items()}
    unused = set(given) - {label.strip().lower() for label in model_labels}
    if unused:
        raise ConfigError(
            f"labels names {sorted(unused)}, which the model does not have "
            f"(its labels: {list(model_labels)})"
        )
    meanings: dict[str, Meaning] = {}
    unknown: list[str] = []
    for label in model_labels:
        key = label.strip().lower()
        meaning = _explicit(label, given[key]) if key in given else None
        meaning = meaning or _convention(label, len(model_labels))
        if meaning is None:
            unknown.append(label)
        else:
            meanings[label] = meaning
    emotional = any(label.strip().lower() in _EMOTION_MEANINGS for label in model_labels)
    if unknown and not emotional:
        raise ConfigError(
            f"cannot tell what the model's labels {unknown} mean: pass labels={{...}} mapping "
            "each to negative, neutral, positive or an emotion"
        )
    return meanings | {label: ("neutral", None) for label in unknown}


def _import_transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return importlib.import_module("transformers")
    except ImportError as exc:
        raise ModelUnavailable(f"the transformers sentiment backend needs {_INSTALL}") from exc


def _max_tokens(tokenizer: Any, config: Any) -> int:
    """The model's input limit: the tokenizer's, else its position table's, else 512."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    positions = getattr(config, "max_position_embeddings", None)
    return min(positions, _DEFAULT_TOKENS) if isinstance(positions, int) else _DEFAULT_TOKENS


class TransformersBackend:
    """A text-classification model from a local directory, run in batches.

    ``model`` is the directory (``~`` allowed); ``labels`` maps model labels the rules do not
    know (``{"yes": "positive", "no": "negative"}``); ``neutral_below`` is the confidence under
    which a two-label model's answer becomes neutral; ``device`` is torch's (``"cuda:0"``),
    the CPU by default. Loading errors are ``ConfigError``; a missing extra is
    ``ModelUnavailable``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        labels: Mapping[str, str] | None = None,
        neutral_below: float = 0.6,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        path = local_model_dir(model)
        transformers = _import_transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                path, local_files_only=True, trust_remote_code=False
            )
            classifier = transformers.AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load the sentiment model in {str(path)!r}: {exc}") from exc
        id2label: dict[int, str] = classifier.config.id2label
        self._meanings = map_labels([id2label[i] for i in sorted(id2label)], labels)
        self._two_way = sorted(label for label, _ in self._meanings.values()) == [
            "negative",
            "positive",
        ]
        self._tokenizer = tokenizer
        self._max_tokens = _max_tokens(tokenizer, classifier.config)
        self._pipeline = transformers.pipeline(
            "sentiment-analysis", model=classifier, tokenizer=tokenizer, device=device
        )
        self._lock = threading.Lock()
        self._neutral_below = neutral_below
        self._batch_size = batch_size
        self.name = f"transformers:{path.name}"
        self.max_chars = self._max_tokens * _CHARS_PER_TOKEN

    def analyze_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """One result per text, in order; texts over the model's token limit are cut."""
        if not texts:
            return []
        texts = list(texts)
        lengths = self._tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        with self._lock:  # a pipeline call sets per-call parameters on the shared pipeline
            outputs = self._pipeline(
                texts,
                top_k=None,
                batch_size=self._batch_size,
                truncation=True,
                max_length=self._max_tokens,
            )
        return [
            self._judge(scores, truncated=len(ids) > self._max_tokens)
            for scores, ids in zip(outputs, lengths, strict=True)
        ]

    def _judge(self, scores: list[dict[str, Any]], *, truncated: bool) -> Sentiment:
        mass = dict.fromkeys(LABELS, 0.0)
        for item in scores:
            mass[self._meanings[item["label"]][0]] += float(item["score"])
        label = max(LABELS, key=mass.__getitem__)
        score = mass[label]
        if self._two_way and score < self._neutral_below:
            label, score = "neutral", 1.0 - abs(mass["positive"] - mass["negative"])
        top_label, top_emotion = self._meanings[max(scores, key=lambda i: i["score"])["label"]]
        return Sentiment(
            label=label,
            score=round(min(score, 1.0), 4),
            backend=self.name,
            emotion=top_emotion if top_label == label else None,
            truncated=truncated,
        )
