"""Ids and the OpenAI shape of messages."""

from __future__ import annotations

import re
import time

from graft.messages import new_id


def test_ids_carry_their_prefix_and_sort_by_creation_time() -> None:
    earlier = new_id("conv")
    time.sleep(0.002)
    later = new_id("conv")
    assert re.fullmatch(r"conv_[0-9a-f]{28}", earlier)
    assert earlier < later
    # The first 12 hex digits are the Unix time in milliseconds.
    assert abs(int(later[5:17], 16) - time.time() * 1000) < 60_000
    assert len({new_id("call") for _ in range(10_000)}) == 10_000
