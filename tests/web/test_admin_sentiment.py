"""The admin sentiment page in Chromium: the report's period ends on the "until" day."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect
from tests.web.conftest import Site, sign_in

Shot = Callable[[Page, str], None]


def test_until_asks_for_the_tags_before_the_end_of_that_day(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site, site.admin_key)
    page.goto(f"{site.url}/#/admin/sentiment")
    until = page.get_by_label("Until")
    expect(until).to_have_attribute("type", "date")
    with page.expect_response(re.compile(r"/v1/sentiment\?.*until=")) as caught:
        until.fill("2026-03-10")
    response = caught.value
    assert response.status == 200, response.text()
    asked = parse_qs(urlsplit(response.url).query)
    end = datetime.fromisoformat(asked["until"][0].replace("Z", "+00:00"))
    since = datetime.fromisoformat(asked["since"][0].replace("Z", "+00:00"))
    # The end of 10 March in the browser's zone (this machine's); the 30 days of the period
    # count back from it.
    assert end.astimezone().replace(tzinfo=None) == datetime(2026, 3, 11)
    assert end - since == timedelta(days=30)
    expect(page.get_by_text("No tagged messages in this period.")).to_be_visible()
    shot(page, "sentiment-until")
