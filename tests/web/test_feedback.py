"""Feedback in Chromium: a thumbs down with a comment is stored, seen by admins, and kept."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect
from tests.web.conftest import Site, answered, ask, dump, last_answer, sign_in

Shot = Callable[[Page, str], None]


def test_a_thumbs_down_with_a_comment_is_stored_and_shown_after_a_reload(
    page_factory: Callable[..., Page], site: Site, shot: Shot
) -> None:
    page = page_factory()
    sign_in(page, site)
    ask(page, "hello there")
    answer = answered(page, "Hello from the scripted model.")
    conversation = page.url.rpartition("/")[2]

    answer.get_by_test_id("thumb-down").click()
    expect(answer.get_by_test_id("thumb-down")).to_have_attribute("aria-pressed", "true")
    comment = answer.get_by_test_id("feedback-comment")
    comment.fill("Too vague: say who you are.")
    shot(page, "commenting")
    answer.get_by_test_id("feedback-submit").click()
    expect(comment).to_have_count(0)
    shot(page, "sent")

    stored = site.api("GET", f"/v1/conversations/{conversation}", key=site.key).json()
    [turn] = stored["turns"]
    listed = site.api("GET", "/v1/admin/feedback")  # ada, the admin of ann's tenant
    assert listed.status_code == 200, listed.text
    [given] = listed.json()["data"]
    assert given["turn_id"] == turn["id"], dump(given)
    assert given["rating"] == "down" and given["comment"] == "Too vague: say who you are."
    assert given["user"] == "ann" and given["conversation_id"] == conversation, dump(given)
    assert turn["feedback"]["rating"] == "down", dump(turn)

    page.reload()
    answer = last_answer(page)
    expect(answer).to_contain_text("Hello from the scripted model.")
    expect(answer.get_by_test_id("thumb-down")).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_test_id("thumb-up")).to_have_attribute("aria-pressed", "false")
    shot(page, "after-reload")

    only_up = site.api("GET", "/v1/admin/feedback", params={"rating": "up"})
    assert only_up.json()["data"] == [], only_up.text

    # The admin reads it on the feedback page.
    admin = page_factory()
    sign_in(admin, site, site.admin_key)
    admin.goto(f"{site.url}/#/admin/feedback")
    row = admin.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Too vague: say who you are.")
    expect(row).to_contain_text("ann")
    expect(row.get_by_role("img", name="Thumbs down")).to_be_visible()
    shot(admin, "admin-feedback")
