"""The chat page in Chromium: sign-in, a streamed markdown answer, an approval, no XSS."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, Route, expect
from tests.web.conftest import LONG_LINE, STREAMING, Site, ask, last_answer, sign_in

Shot = Callable[[Page, str], None]


def test_sign_in_with_a_key_then_a_streamed_answer_is_rendered_as_markdown(
    page: Page, site: Site, shot: Shot
) -> None:
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"#/login"))
    expect(page.get_by_label("API key")).to_be_visible()
    shot(page, "login")
    sign_in(page, site)
    shot(page, "signed-in")

    site.model.hold.set()  # the answer stops after its first word until released
    ask(page, "write some code")
    user = page.locator('[data-testid="message"][data-role="user"]').last
    expect(user).to_contain_text("write some code")
    streaming = page.locator(STREAMING)
    expect(streaming).to_have_count(1)
    expect(page.get_by_test_id("stop")).to_be_visible()
    shot(page, "streaming")
    site.model.release()

    expect(streaming).to_have_count(0)
    answer = last_answer(page)
    expect(answer).not_to_have_attribute("data-streaming", re.compile(".*"))
    expect(answer).to_contain_text("It returns a greeting.")
    expect(answer.locator("strong")).to_have_text("the function")
    code = answer.locator("pre code.hljs.language-python")
    expect(code).to_contain_text("def greet(name):")
    expect(code.locator("span.hljs-keyword").first).to_have_text("def")
    expect(page.get_by_test_id("send")).to_be_visible()
    # The conversation has a URL of its own, and comes back from it.
    page.wait_for_url(re.compile(r"#/chat/conv_\w+"))
    shot(page, "answered")
    page.reload()
    expect(last_answer(page).locator("pre code")).to_contain_text(LONG_LINE[:20])
    expect(page.get_by_test_id("conversation")).to_have_count(1)


def test_a_tool_call_waits_for_approval_and_the_card_shows_its_result(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site)
    ask(page, "please send a mail to my boss")
    calculator = page.locator('[data-testid="tool-card"][data-tool="calculator"]')
    mail = page.locator('[data-testid="tool-card"][data-tool="send_email"]')
    expect(calculator).to_have_attribute("data-state", "done")
    expect(mail).to_have_attribute("data-state", "awaiting-approval")
    expect(mail).to_contain_text("boss@example.com")  # the arguments are shown to decide on
    assert site.mailer.sent == []
    shot(page, "awaiting-approval")

    mail.get_by_test_id("approve").click()
    expect(mail).to_have_attribute("data-state", "done")
    expect(last_answer(page)).to_contain_text("Mail sent.")
    expect(page.locator(STREAMING)).to_have_count(0)
    assert site.mailer.sent == ["boss@example.com"]
    expect(mail.get_by_test_id("approve")).to_have_count(0)
    if "sent to boss@example.com" not in mail.inner_text():
        mail.locator("button").first.click()  # the card folds once decided: open it
    expect(mail).to_contain_text("sent to boss@example.com")
    shot(page, "approved")


def test_html_in_an_answer_or_a_question_never_runs(page: Page, site: Site, shot: Shot) -> None:
    # The page's CSP would block inline handlers anyway (and Chromium reports one even for
    # the sanitiser's inert parse): the page is served without it here, so only the
    # sanitiser stands between the model's HTML and the page.
    def without_csp(route: Route) -> None:
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k != "content-security-policy"}
        route.fulfill(response=response, headers=headers)

    page.route(f"{site.url}/", without_csp)
    sign_in(page, site)
    page.evaluate(
        """() => { const probe = document.createElement('button');
            probe.setAttribute('onclick', 'window.__probe = 1'); probe.click(); }"""
    )
    assert page.evaluate("window.__probe") == 1  # inline handlers do run on this page

    ask(page, 'xss <img src=x onerror="window.__xss = 3"><script>window.__xss = 4</script>')
    answer = last_answer(page)
    expect(answer).to_contain_text("done")
    expect(page.locator(STREAMING)).to_have_count(0)
    page.wait_for_timeout(300)  # time for a broken image's error event
    shot(page, "answer-with-html")
    assert page.evaluate("window.__xss") is None
    active = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="message"] *')]
            .filter(el => el.tagName === 'SCRIPT' || [...el.attributes].some(
                a => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value)))
            .map(el => el.outerHTML)"""
    )
    assert active == []
    # The question is shown as the text it was.
    user = page.locator('[data-testid="message"][data-role="user"]').last
    expect(user).to_contain_text('<img src=x onerror="window.__xss = 3">')
    assert page.evaluate("window.__xss") is None
