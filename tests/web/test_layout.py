"""The UI in Chromium: Chinese throughout when chosen, and a phone-width layout."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect
from tests.web.conftest import STREAMING, Site, ask, last_answer, sign_in

Shot = Callable[[Page, str], None]
# No hook in the contract (ui.md) for the conversation drawer's toggle: this is how the
# frontend marks it (the button controlling the list), or a data-testid if it gets one.
DRAWER_TOGGLE = '[data-testid="drawer-toggle"], button[aria-controls="conversations"]'


def _switch_language(page: Page, to: str) -> None:
    """Click the language switch; pick ``to`` if it opens a menu rather than toggling."""
    page.get_by_test_id("lang").click()
    if not (page.locator("html").get_attribute("lang") or "").startswith(to[:2]):
        page.get_by_role("menuitemradio", name=re.compile("中文|Chinese")).or_(
            page.get_by_role("option", name=re.compile("中文|Chinese"))
        ).or_(page.get_by_role("menuitem", name=re.compile("中文|Chinese"))).first.click()


def test_switching_to_chinese_changes_the_ui_strings_and_sticks(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site)
    expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^en"))
    lang = page.get_by_test_id("lang")
    # "Language", with the language it switches to when that is shown (WCAG 2.5.3).
    expect(lang).to_have_attribute("aria-label", re.compile(r"^Language\b"))
    call = page.get_by_test_id("call")
    expect(call).to_be_enabled()
    expect(call).to_have_attribute("title", "Start a voice call")
    english = page.get_by_test_id("composer").get_attribute("placeholder")
    shot(page, "english")

    _switch_language(page, "zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(lang).to_have_attribute("aria-label", re.compile(r"^语言"))
    expect(call).to_have_attribute("title", "开始语音通话")
    chinese = page.get_by_test_id("composer").get_attribute("placeholder")
    assert chinese and chinese != english and re.search(r"[\u4e00-\u9fff]", chinese)
    assert page.evaluate("localStorage.getItem('graft.lang')") == "zh-CN"
    shot(page, "chinese")

    page.reload()  # the choice is kept
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("call")).to_have_attribute("title", "开始语音通话")


def test_a_chinese_browser_gets_a_chinese_login_page(
    page_factory: Callable[..., Page], site: Site, shot: Shot
) -> None:
    page = page_factory(locale="zh-CN")
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"#/login"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_label("API 密钥")).to_be_visible()
    expect(page.get_by_test_id("login-key")).to_be_visible()
    shot(page, "login-zh")


def _no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    body = page.evaluate("document.body.scrollWidth")
    assert width <= 390 and body <= 390, (width, body)


def test_a_phone_gets_a_drawer_and_no_horizontal_scroll(
    page_factory: Callable[..., Page], site: Site, shot: Shot
) -> None:
    page = page_factory(width=390, height=844)
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"#/login"))
    _no_horizontal_scroll(page)
    shot(page, "phone-login")
    sign_in(page, site)
    toggle = page.locator(DRAWER_TOGGLE).first
    expect(toggle).to_be_visible()
    expect(page.get_by_test_id("new-chat")).not_to_be_in_viewport()
    _no_horizontal_scroll(page)

    ask(page, "write some code")  # an answer with a 250-character line of code
    expect(last_answer(page)).to_contain_text("It returns a greeting.")
    expect(page.locator(STREAMING)).to_have_count(0)
    _no_horizontal_scroll(page)
    shot(page, "phone-chat")

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_test_id("new-chat")).to_be_in_viewport(ratio=1)  # slid fully in
    expect(page.get_by_test_id("conversation")).to_have_count(1)
    _no_horizontal_scroll(page)
    shot(page, "phone-drawer")
    page.get_by_test_id("conversation").first.click()
    expect(page.get_by_test_id("new-chat")).not_to_be_in_viewport()

    page.goto(f"{site.url}/#/knowledge")
    expect(page.get_by_test_id("collection")).to_be_visible()
    _no_horizontal_scroll(page)
    shot(page, "phone-knowledge")
