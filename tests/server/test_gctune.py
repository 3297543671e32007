"""``graft serve``'s garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from graft.server.gctune import YOUNG_THRESHOLD, tune_for_serving


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_tuning_freezes_what_is_alive_and_collects_less_often() -> None:
    _, middle, old = gc.get_threshold()
    tune_for_serving()
    assert gc.get_freeze_count() > 1000  # the imported modules, at least
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
