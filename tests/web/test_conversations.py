"""Conversations in Chromium: the list (search, rename, delete), branches, and stopping.

Edit-and-resend and regenerate start a new conversation (a branch) with the history up to
there; the scripted model tells a regenerated joke apart (``Joke number 2``). A slow
answer (a word every 50 ms) is stopped by the stop button and by Escape: what came stays
on the page, and the turn is stored with it, as a cancelled turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect
from tests.web.conftest import (
    SLOW_WORDS,
    STREAMING,
    Site,
    answered,
    ask,
    dump,
    last_answer,
    sign_in,
)

Shot = Callable[[Page, str], None]
CONVERSATION_URL = re.compile(r"#/chat/(conv_\w+)$")


def _conversation_id(page: Page) -> str:
    """The id of the conversation the page shows (from its URL)."""
    page.wait_for_url(CONVERSATION_URL)
    found = CONVERSATION_URL.search(page.url)
    assert found, page.url
    return found.group(1)


def _stored(site: Site, conversation: str) -> Any:
    """The conversation as ann reads it through the API."""
    response = site.api("GET", f"/v1/conversations/{conversation}", key=site.key)
    assert response.status_code == 200, response.text
    return response.json()


def _new_chat(page: Page) -> None:
    page.get_by_test_id("new-chat").click()
    expect(page.locator('[data-testid="message"]')).to_have_count(0)


def test_the_list_searches_renames_and_deletes(page: Page, site: Site, shot: Shot) -> None:
    sign_in(page, site)
    for question, reply in [
        ("write some code", "It returns a greeting."),
        ("how much sick leave do I get?", "ten days"),
        ("hello there", "Hello from the scripted model."),
    ]:
        _new_chat(page)
        ask(page, question)
        answered(page, reply)
    items = page.get_by_test_id("conversation")
    expect(items).to_have_count(3)
    shot(page, "three-conversations")

    search = page.get_by_test_id("conversation-search")
    search.fill("LEAVE")  # the title, case-insensitively
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("sick leave")
    shot(page, "searched")
    search.fill("nothing like this")
    expect(items).to_have_count(0)
    search.fill("")
    expect(items).to_have_count(3)

    leave = items.filter(has_text="sick leave")
    leave_id = leave.get_attribute("data-id")
    leave.get_by_test_id("rename").click()
    box = page.get_by_test_id("rename-input")
    expect(box).to_be_focused()
    box.fill("Leave questions")
    box.press("Enter")
    expect(items.filter(has_text="Leave questions")).to_have_count(1)
    shot(page, "renamed")
    page.reload()
    expect(items.filter(has_text="Leave questions")).to_have_count(1)
    listed = site.api("GET", "/v1/conversations", params={"q": "questions"}, key=site.key)
    assert [c["id"] for c in listed.json()["data"]] == [leave_id], listed.text

    code = items.filter(has_text="write some code")
    code_id = code.get_attribute("data-id")
    code.get_by_test_id("delete").click()
    expect(items).to_have_count(2)
    expect(items.filter(has_text="write some code")).to_have_count(0)
    shot(page, "deleted")
    page.reload()
    expect(items).to_have_count(2)
    gone = site.api("GET", f"/v1/conversations/{code_id}", key=site.key)
    assert gone.status_code == 404, gone.text


def test_edit_and_regenerate_start_new_branches(page: Page, site: Site, shot: Shot) -> None:
    sign_in(page, site)
    ask(page, "tell me a joke")
    answered(page, "Joke number 1.")
    first = _conversation_id(page)
    shot(page, "first-answer")

    last_answer(page).get_by_test_id("regenerate").click()
    answered(page, "Joke number 2.")
    second = _conversation_id(page)
    assert second != first
    expect(page.locator('[data-testid="message"]')).to_have_count(2)
    shot(page, "regenerated")
    # The first branch is as it was; the new one holds the question and the new answer.
    assert [m["content"] for m in _stored(site, first)["messages"]] == [
        "tell me a joke",
        "Joke number 1.",
    ]
    assert [m["content"] for m in _stored(site, second)["messages"]] == [
        "tell me a joke",
        "Joke number 2.",
    ]

    ask(page, "write some code")
    answered(page, "It returns a greeting.")
    user = page.locator('[data-testid="message"][data-role="user"]').last
    user.hover()
    user.get_by_test_id("edit").click()
    box = user.get_by_test_id("edit-input")
    expect(box).to_be_focused()
    box.fill("how much sick leave do I get?")
    shot(page, "editing")
    box.press("Enter")
    answered(page, "ten days")
    third = _conversation_id(page)
    assert third not in (first, second)
    messages = page.locator('[data-testid="message"]')
    expect(messages).to_have_count(4)  # the joke, its answer, the edited question, its answer
    expect(messages.nth(2)).to_contain_text("how much sick leave do I get?")
    shot(page, "edited")
    stored = [m["content"] for m in _stored(site, third)["messages"]]
    assert stored[:2] == ["tell me a joke", "Joke number 2."], dump(stored)
    assert stored[2] == "how much sick leave do I get?" and "ten days" in stored[3], dump(stored)
    # The branch before the edit keeps its code answer.
    assert "write some code" in [m["content"] for m in _stored(site, second)["messages"]]
    expect(page.get_by_test_id("conversation")).to_have_count(3)


def _stop_and_check(
    page: Page, site: Site, shot: Shot, name: str, stop: Callable[[], None]
) -> None:
    """Ask for a slow answer, stop it with ``stop``; the page and the store keep what came."""
    ask(page, f"count slowly ({name})")
    answer = last_answer(page)
    expect(answer).to_contain_text("w3")
    expect(page.locator(STREAMING)).to_have_count(1)
    stop()
    expect(page.locator(STREAMING)).to_have_count(0)
    expect(answer).to_contain_text("Stopped.")
    expect(page.get_by_test_id("send")).to_be_visible()
    shown = answer.locator(".msg-body").inner_text().split()
    page.wait_for_timeout(300)  # nothing more arrives
    assert answer.locator(".msg-body").inner_text().split() == shown
    assert "w3" in shown and f"w{SLOW_WORDS}" not in shown, shown
    shot(page, f"stopped-by-{name}")

    conversation = _stored(site, _conversation_id(page))
    turn = conversation["turns"][-1]
    assert turn["status"] != "done" and turn["finish_reason"] is None, dump(turn)
    saved = conversation["messages"][-1]
    assert saved["role"] == "assistant" and saved["turn_id"] == turn["id"], dump(saved)
    words = saved["content"].split()
    assert words[: len(shown)] == shown and f"w{SLOW_WORDS}" not in words, dump(saved)


def test_stop_and_escape_stop_a_slow_answer_and_keep_what_came(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site)
    _stop_and_check(page, site, shot, "button", lambda: page.get_by_test_id("stop").click())
    _stop_and_check(page, site, shot, "escape", lambda: page.keyboard.press("Escape"))
    assert len(_stored(site, _conversation_id(page))["turns"]) == 2
    # The conversation goes on after a stopped answer.
    ask(page, "hello")
    answered(page, "Hello from the scripted model.")
