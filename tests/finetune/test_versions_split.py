from __future__ import annotations

from pathlib import Path

import pytest

from graft.finetune.split import is_held_out, rank, split
from graft.finetune.versions import (
    Version,
    check_name,
    list_versions,
    publish_folder,
    resolve_version,
    save_version,
)


def _write_file(path: Path, version: int) -> None:
    with path.open("x") as f:  # exclusive, as the trainers write
        f.write(str(version))


def test_versions_count_up_and_never_overwrite(tmp_path: Path) -> None:
    first = save_version(tmp_path, "shop", _write_file, ".npz")
    second = save_version(tmp_path, "shop", _write_file, ".npz")
    other = save_version(tmp_path, "bank", _write_file, ".npz")
    assert (first.spec, second.spec, other.spec) == ("shop-v1", "shop-v2", "bank-v1")
    assert first.path.read_text() == "1" and second.path.read_text() == "2"
    (tmp_path / "notes.txt").write_text("not a version")
    (tmp_path / ".shop-v9.npz").write_text("being written")
    assert [v.spec for v in list_versions(tmp_path, ".npz")] == ["bank-v1", "shop-v1", "shop-v2"]


def test_a_number_taken_meanwhile_is_skipped(tmp_path: Path) -> None:
    taken: list[int] = []

    def racing(path: Path, version: int) -> None:
        if not taken:  # another process creates v1 between listing and writing
            taken.append(version)
            (tmp_path / "shop-v1").mkdir()
        staging = tmp_path / ".staging"
        staging.mkdir(exist_ok=True)
        publish_folder(staging, path)

    saved = save_version(tmp_path, "shop", racing)
    assert taken == [1] and saved.spec == "shop-v2" and saved.path.is_dir()


def test_publish_folder_refuses_an_existing_target(tmp_path: Path) -> None:
    staging, target = tmp_path / ".s", tmp_path / "x-v1"
    staging.mkdir()
    target.mkdir()
    (target / "kept").write_text("old")
    with pytest.raises(FileExistsError):
        publish_folder(staging, target)
    assert (target / "kept").read_text() == "old"


def test_resolve_latest_or_exact(tmp_path: Path) -> None:
    versions = [Version("shop", n, tmp_path / f"shop-v{n}") for n in (1, 2, 10)]
    versions.append(Version("default", None, tmp_path / "d"))
    assert resolve_version("shop", versions) == versions[2]  # 10 > 2, not by text
    assert resolve_version("shop-v2", versions) == versions[1]
    assert resolve_version("default", versions) == versions[3]
    assert resolve_version("shop-v3", versions) is None
    assert resolve_version("bank", versions) is None


@pytest.mark.parametrize("bad", ["", "-x", "a b", "shop-v2", "default", "x" * 65, "a/b"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        check_name(bad, reserved=("default",))


def test_good_names_pass() -> None:
    for name in ("shop", "Shop_2.b-c", "v2", "x" * 64):
        check_name(name, reserved=("default",))


def test_split_is_stable_and_order_free() -> None:
    rows = [(f"row {i}", "ab"[i % 2], i) for i in range(40)]
    train, held = split(rows, 0.25, key=lambda r: r[0], group=lambda r: r[1])
    assert len(held) == 10 and len(train) == 30
    assert sorted(h[1] for h in held) == ["a"] * 5 + ["b"] * 5  # per group
    again = split(list(reversed(rows)), 0.25, key=lambda r: r[0], group=lambda r: r[1])
    assert again == (train, held)
    # the held-out rows are the lowest-ranked of each group
    for label in "ab":
        ranks = sorted(rank(r[0]) for r in rows if r[1] == label)
        assert {rank(h[0]) for h in held if h[1] == label} == set(ranks[:5])


def test_split_holds_out_at_least_one_unless_zero() -> None:
    rows = ["one", "two", "three"]
    assert len(split(rows, 0.01, key=str)[1]) == 1
    assert split(rows, 0, key=str) == (sorted(rows, key=rank), [])


def test_is_held_out_agrees_with_rank() -> None:
    texts = [f"text {i}" for i in range(200)]
    held = [t for t in texts if is_held_out(t, 0.2)]
    assert all(rank(t) < 0.2 for t in held)
    assert 20 <= len(held) <= 60  # a hash spreads evenly


def test_an_unrelated_file_exists_error_is_raised_not_retried(tmp_path: Path) -> None:
    def broken(path: Path, version: int) -> None:
        raise FileExistsError(tmp_path / "something-else")

    with pytest.raises(FileExistsError):
        save_version(tmp_path, "shop", broken)
