"""``GET /v1/sentiment`` on the real server: the ``since``/``until`` range and its checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from graft.context import Principal
from graft.messages import Message
from graft.store.base import SentimentTag

if TYPE_CHECKING:
    from tests.server.conftest import Team


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def tagged(team: Team) -> datetime:
    """One negative tag of ann's, dated now (when its turn began); returns about when."""
    before = datetime.now(UTC).replace(microsecond=0)
    _, turn_id = await team.graft.store.begin_turn(
        Principal("ann", tenant="acme"),
        assistant="support",
        model="fake:ok",
        conversation_id=None,
        new_messages=[Message("user", "this is awful")],
    )
    await team.graft.store.tag_sentiment(turn_id, SentimentTag("negative", 0.9, "e5"))
    return before


def negatives(team: Team, who: str = "ann", **params: str) -> int:
    response = team.call(who, "GET", "/v1/sentiment", params=params)
    assert response.status_code == 200, response.text
    return sum(point["negative"] for point in response.json()["data"])


def test_until_keeps_the_tags_dated_before_it(team: Team, tagged: datetime) -> None:
    hour = timedelta(hours=1)
    assert negatives(team) == 1
    assert negatives(team, until=stamp(tagged + hour)) == 1
    assert negatives(team, until=stamp(tagged - hour)) == 0
    assert negatives(team, since=stamp(tagged - hour), until=stamp(tagged + hour)) == 1
    assert negatives(team, since=stamp(tagged + hour), until=stamp(tagged + 2 * hour)) == 0
    assert negatives(team, since=stamp(tagged), until=stamp(tagged)) == 0  # empty, not refused
    # Any zone names the same moment; an admin narrows to ann with until too.
    assert negatives(team, until=(tagged + hour).isoformat(timespec="seconds")) == 1
    assert negatives(team, "root", user="ann", until=stamp(tagged + hour)) == 1
    assert negatives(team, "root", user="ann", until=stamp(tagged - hour)) == 0
    assert negatives(team, "bob", until=stamp(tagged + hour)) == 0  # not bob's


def test_until_before_since_is_refused_precisely(team: Team) -> None:
    refused = team.call(
        "ann",
        "GET",
        "/v1/sentiment",
        params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T23:59:59+01:00"},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == {
        "message": "until (2026-11-01T23:59:59+01:00) is before since (2026-11-02T00:00:00Z)",
        "type": "invalid_request_error",
        "param": "until",
        "code": None,
    }


@pytest.mark.parametrize("until", ["0.5", "2026-11-01", "2026-13-01T00:00:00Z", "tomorrow"])
def test_a_malformed_until_is_refused_like_since(team: Team, until: str) -> None:
    refused = team.call("ann", "GET", "/v1/sentiment", params={"until": until})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "until"
    assert error["message"] == (
        f"until must be a date-time with its zone, such as 2026-11-01T00:00:00Z, not {until!r}"
    )
    too_long = team.call("ann", "GET", "/v1/sentiment", params={"until": "x" * 41})
    assert too_long.status_code == 400
