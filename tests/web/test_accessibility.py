"""Accessibility in Chromium: axe-core on every page, and the chat by keyboard alone.

axe (web/node_modules/axe-core) checks each page as a user sees it — the login page, a
chat with a code block, tool cards and a citation, a cited document, the knowledge page and
every admin tab — in English and Chinese, light and dark; any serious or critical finding
(WCAG A/AA: names, labels, roles, contrast...) fails the test, listed with the pages it is
on. The chat is checked at phone width too, with its conversation drawer open.

The keyboard test signs in, sends a message, approves a tool call, opens a citation and
switches the language with Tab, Shift+Tab, Enter, Space and Escape only, and checks that
whatever has the focus shows a ring.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect
from tests.web.conftest import STREAMING, Site, answered, ask, axe_violations, sign_in

Shot = Callable[[Page, str], None]
ADMIN_TABS = ("users", "assistants", "plugins", "audit", "sentiment", "feedback")


def _settled(page: Page) -> None:
    """Wait for the page's loading placeholders to go (and a moment for the last paint)."""
    expect(
        page.locator('[aria-busy="true"]:not([data-testid="message"]), .skeleton')
    ).to_have_count(0)
    page.wait_for_timeout(150)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_axe_finds_nothing_serious_on_any_page(
    page_factory: Callable[..., Page], site: Site, shot: Shot, locale: str, scheme: str
) -> None:
    page = page_factory(locale=locale)
    page.emulate_media(color_scheme=scheme)
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        _settled(page)
        shot(page, name)
        found[name] = axe_violations(page)

    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"#/login"))
    expect(page.locator("html")).to_have_attribute("lang", re.compile(f"^{locale[:2]}"))
    check("login")

    sign_in(page, site, site.admin_key)
    check("new-chat")
    ask(page, "write some code")
    answered(page, "def greet")
    ask(page, "how much sick leave do I get?")
    answer = answered(page, "ten days")
    answer.get_by_test_id("thumb-down").click()
    expect(answer.get_by_test_id("feedback-comment")).to_be_visible()
    ask(page, "please send a mail to my boss")
    mail = page.locator('[data-testid="tool-card"][data-tool="send_email"]')
    expect(mail).to_have_attribute("data-state", "awaiting-approval")
    check("chat-awaiting-approval")
    mail.get_by_test_id("approve").click()
    answered(page, "Mail sent.")
    page.locator('[data-testid="tool-card"][data-tool="calculator"] button').first.click()
    citation = page.get_by_test_id("citation").first
    citation.focus()
    expect(page.get_by_test_id("citation-preview")).to_be_visible()
    check("chat-answered")

    citation.click()
    expect(page.locator('[data-highlighted="true"]')).to_have_count(1)
    check("document")

    page.goto(f"{site.url}/#/knowledge")
    expect(page.get_by_test_id("document").first).to_be_visible()
    check("knowledge")

    for tab in ADMIN_TABS:
        page.goto(f"{site.url}/#/admin/{tab}")
        expect(page.locator(".tabs [aria-current='page']")).to_have_count(1)
        check(f"admin-{tab}")
    page.goto(f"{site.url}/#/admin/assistants")
    page.locator(".list-pane button.primary").click()
    expect(page.locator("form.editor")).to_be_visible()
    check("admin-assistant-editor")

    # At phone width: the chat, and its conversation drawer.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{site.url}/#/chat")
    page.get_by_test_id("drawer-toggle").click()
    expect(page.get_by_test_id("new-chat")).to_be_in_viewport(ratio=1)
    check("phone-drawer")
    page.get_by_test_id("conversation").first.click()
    answered(page, "Mail sent.")
    check("phone-chat")

    pages: dict[str, list[str]] = {}
    for name, lines in found.items():
        for line in lines:
            pages.setdefault(line, []).append(name)
    assert not pages, "axe found serious or critical violations:\n" + "\n".join(
        f"- {line}\n  on: {', '.join(names)}" for line, names in pages.items()
    )


_RING = """el => {
    const outline = (node) => { const s = getComputedStyle(node);
        return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
            ? `outline ${s.outlineWidth} ${s.outlineStyle} ${s.outlineColor}` : ''; };
    const shadow = getComputedStyle(el).boxShadow;
    const own = outline(el) || (shadow !== 'none' ? `box-shadow ${shadow}` : '');
    if (own) return own;
    for (let up = el.parentElement, n = 0; up && n < 3; up = up.parentElement, n++)
        if (up.matches(':focus-within') && outline(up)) return `around: ${outline(up)}`;
    return ''; }"""
"""The focused element's visible ring, '' if none: an outline or box-shadow of its own, or
the outline of the box around it that marks the focus within (the composer's form draws
the ring for its borderless textarea)."""


def _tab_to(page: Page, target: Locator, *, back: bool = False, limit: int = 80) -> None:
    """Press Tab (Shift+Tab) until ``target`` has the focus.

    Everything the keys move the focus to on the way, and the target, must show a ring.
    """
    key = "Shift+Tab" if back else "Tab"
    unringed: list[str] = []
    for pressed in range(limit):
        reached = bool(target.evaluate("el => el === document.activeElement"))
        if pressed or reached:
            focused = page.evaluate_handle("document.activeElement")
            html = page.evaluate(
                "el => el === document.body ? '' : el.outerHTML.slice(0, 160)", focused
            )
            if html and not page.evaluate(_RING, focused):
                unringed.append(html)
        if reached:
            assert not unringed, f"focused without a visible ring: {unringed}"
            return
        page.keyboard.press(key)
    focused_html = page.evaluate("document.activeElement && document.activeElement.outerHTML")
    raise AssertionError(f"{key} never reached {target}; the focus is on {focused_html[:200]}")


def test_the_chat_works_by_keyboard_alone_with_a_visible_focus(
    page: Page, site: Site, shot: Shot
) -> None:
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"#/login"))
    _tab_to(page, page.get_by_test_id("login-key"))
    page.keyboard.type(site.key)
    _tab_to(page, page.get_by_test_id("login-submit"))
    shot(page, "login-focused")
    page.keyboard.press("Enter")
    composer = page.get_by_test_id("composer")
    expect(composer).to_be_visible()

    # The composer has the focus after sign-in, or is reached with Tab.
    _tab_to(page, composer)
    page.keyboard.type("please send a mail to my boss")
    page.keyboard.press("Enter")
    mail = page.locator('[data-testid="tool-card"][data-tool="send_email"]')
    expect(mail).to_have_attribute("data-state", "awaiting-approval")
    # Back from the composer to the approve button: Shift+Tab walks up the page.
    approve = mail.get_by_test_id("approve")
    _tab_to(page, approve, back=True)
    shot(page, "approve-focused")
    page.keyboard.press("Space")
    expect(mail).to_have_attribute("data-state", "done")
    answered(page, "Mail sent.")
    assert site.mailer.sent == ["boss@example.com"]

    # A question with a citation; Escape during another answer stops it.
    _tab_to(page, composer)
    page.keyboard.type("how much sick leave do I get?")
    page.keyboard.press("Enter")
    answered(page, "ten days")
    site.model.hold.set()
    page.keyboard.type("write some code")
    page.keyboard.press("Enter")
    expect(page.locator(STREAMING)).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator(STREAMING)).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_visible()
    site.model.release()

    citation = page.locator('[data-role="assistant"]').nth(1).get_by_test_id("citation").first
    _tab_to(page, citation, back=True)
    preview = page.get_by_test_id("citation-preview")
    expect(preview).to_be_visible()  # focus shows it, as hovering does
    shot(page, "citation-focused")
    page.keyboard.press("Escape")  # and Escape hides it, the focus staying (WCAG 1.4.13)
    expect(preview).to_have_count(0)
    expect(citation).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"#/knowledge/doc/{site.handbook_id}\?chunk=\d+$"))
    expect(page.locator('[data-highlighted="true"]')).to_have_count(1)

    lang = page.get_by_test_id("lang")
    _tab_to(page, lang, back=True)
    shot(page, "lang-focused")
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(lang).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("html")).to_have_attribute("lang", re.compile("^en"))
    shot(page, "by-keyboard")
