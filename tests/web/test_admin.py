"""The admin pages in Chromium: an assistant made and chatted with, users and keys, access.

ada (an admin) makes an assistant with a prompt, one tool and the handbook, then picks it in
the chat: the scripted model answers like a pirate when that prompt reaches it. She creates
carl, gives him a key (shown once; it works), and disables him (the key stops working).
bob, a plain user, sees no admin navigation and gets nothing from the admin routes; ann, a
builder, sees the assistants tab alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect
from tests.web.conftest import PIRATE, Site, answered, ask, dump, sign_in

Shot = Callable[[Page, str], None]
ADMIN_ROUTES = ("users", "plugins", "audit", "feedback")


def test_an_assistant_made_in_the_editor_is_picked_and_chatted_with(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site, site.admin_key)
    page.goto(f"{site.url}/#/admin/assistants")
    page.get_by_role("button", name="New assistant").click()
    editor = page.locator("form.editor")
    editor.get_by_label("Name", exact=True).fill("pirate")
    editor.get_by_label("Description").fill("Answers like a pirate")
    editor.get_by_label("Instructions (system prompt)").fill(PIRATE)
    editor.get_by_label("All tools the user may use").uncheck()
    editor.get_by_role("checkbox", name=re.compile(r"^calculator")).check()
    editor.get_by_role("checkbox", name=re.compile(r"^hb")).check()
    shot(page, "editor")
    editor.get_by_role("button", name="Save").click()
    expect(page.locator(".pick-list")).to_contain_text("pirate")
    shot(page, "saved")

    stored = site.api("GET", "/v1/assistants/pirate")
    assert stored.status_code == 200, stored.text
    definition = stored.json()["definition"]
    assert definition["system_prompt"] == PIRATE, dump(definition)
    assert definition["tools"] == ["calculator"] and definition["collections"] == ["hb"]

    page.get_by_role("link", name="Chat").click()
    picker = page.get_by_test_id("assistant-picker")
    expect(picker.locator("option", has_text="pirate")).to_have_count(1)
    picker.select_option("pirate")
    ask(page, "who are you?")
    answered(page, "Arr, you asked: who are you?")
    shot(page, "pirate-chat")
    request = site.model.requests[-1]
    system = [m.content for m in request.messages if m.role == "system"]
    assert any(PIRATE in (text or "") for text in system), system
    offered = {tool.name for tool in request.tools}
    assert "calculator" in offered and "send_email" not in offered, offered
    conversation = page.url.rpartition("/")[2]
    header = site.api("GET", f"/v1/conversations/{conversation}").json()
    assert header["assistant"] == "pirate", dump(header)


def test_an_admin_creates_a_user_gives_them_a_key_and_disables_them(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site, site.admin_key)
    page.goto(f"{site.url}/#/admin/users")
    rows = page.get_by_test_id("user-row")
    expect(rows).to_have_count(3)  # ann, ada, bob

    new_user = page.locator("form").filter(has=page.get_by_role("heading", name="New user"))
    new_user.get_by_label("Name").fill("carl")
    new_user.get_by_role("button", name="Create user").click()
    carl = rows.filter(has_text="carl")
    expect(carl).to_have_count(1)
    expect(carl).to_contain_text("Active")
    shot(page, "user-created")

    new_key = page.locator("form").filter(has=page.get_by_role("heading", name="New API key"))
    new_key.get_by_label("User").select_option("carl")
    new_key.get_by_label("Label").fill("carl's laptop")
    new_key.get_by_role("button", name="Create key").click()
    secret = new_key.locator(".secret code")
    expect(secret).to_have_text(re.compile(r"^gk_"))
    key = secret.inner_text().strip()
    shot(page, "key-shown-once")
    me = site.api("GET", "/v1/me", key=key)
    assert me.status_code == 200 and me.json()["user"] == "carl", me.text
    listed = site.api("GET", "/v1/keys", params={"user": "carl"}).json()["data"]
    assert [k["name"] for k in listed] == ["carl's laptop"], dump(listed)

    disable = carl.get_by_role("button", name="Disable")
    disable.click()
    carl.get_by_role("button", name="Sure?").click()
    expect(carl).to_contain_text("Disabled")
    shot(page, "user-disabled")
    users = {u["name"]: u for u in site.api("GET", "/v1/admin/users").json()["data"]}
    assert users["carl"]["disabled"] is True, dump(users)
    refused = site.api("GET", "/v1/me", key=key)
    assert refused.status_code in (401, 403), refused.text


def test_people_who_are_not_admins_get_no_admin_pages(
    page_factory: Callable[..., Page], site: Site, shot: Shot
) -> None:
    page = page_factory()
    sign_in(page, site, site.user_key)  # bob, a plain user
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Chat", "Knowledge"])
    page.goto(f"{site.url}/#/admin/users")
    expect(page.get_by_text("This page does not exist.")).to_be_visible()
    expect(page.locator(".tabs")).to_have_count(0)
    shot(page, "bob-admin-url")
    for route in ADMIN_ROUTES:
        # With his key, and with the page's own session cookie.
        by_key = site.api("GET", f"/v1/admin/{route}", key=site.user_key)
        by_cookie = page.request.get(f"{site.url}/v1/admin/{route}")
        assert by_key.status_code == 404 and by_cookie.status == 404, (route, by_key.text)
    denied = site.api("PUT", "/v1/assistants/sneaky", key=site.user_key, json={})
    assert denied.status_code in (403, 404), denied.text

    builder = page_factory()
    sign_in(builder, site)  # ann, a builder: the assistants tab, nothing else
    nav = builder.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Chat", "Knowledge", "Admin"])
    builder.goto(f"{site.url}/#/admin/users")
    expect(builder.locator(".tabs").get_by_role("link")).to_have_text(["Assistants"])
    expect(builder.get_by_test_id("user-row")).to_have_count(0)
    shot(builder, "ann-admin")
    for route in ADMIN_ROUTES:
        assert site.api("GET", f"/v1/admin/{route}", key=site.key).status_code == 404
