"""The knowledge page in Chromium: an upload, and a citation followed to its passage."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from tests.web.conftest import STREAMING, Site, ask, last_answer, sign_in

Shot = Callable[[Page, str], None]


def test_a_builder_uploads_a_document_into_a_collection(
    page: Page, site: Site, shot: Shot, tmp_path: Path
) -> None:
    travel = tmp_path / "travel.md"
    travel.write_text("# Travel\n\nTrain tickets are refunded within a month.\n")
    sign_in(page, site)
    page.goto(f"{site.url}/#/knowledge")
    collection = page.get_by_test_id("collection")
    expect(collection).to_be_visible()
    if collection.evaluate("el => el.tagName") == "SELECT":
        collection.select_option("hb")
    else:
        collection.fill("hb")
    expect(page.get_by_test_id("document").filter(has_text="Leave")).to_have_count(1)
    shot(page, "knowledge")

    page.get_by_test_id("upload-input").set_input_files(str(travel))
    row = page.get_by_test_id("upload-row").filter(has_text="travel.md")
    expect(row).to_have_attribute("data-status", "added", timeout=60_000)
    expect(row.locator("progress")).to_have_count(1)
    expect(page.get_by_test_id("document").filter(has_text="Travel")).to_have_count(1)
    shot(page, "uploaded")

    listed = httpx.get(
        f"{site.url}/v1/knowledge/collections/hb/documents",
        headers={"authorization": f"Bearer {site.key}"},
    )
    assert listed.status_code == 200, listed.text
    assert sorted(d["title"] for d in listed.json()["data"]) == ["Leave", "Travel"]


def test_a_citation_opens_the_document_at_the_cited_passage(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site)
    ask(page, "how much sick leave do I get?")
    expect(page.locator(STREAMING)).to_have_count(0)
    answer = last_answer(page)
    expect(answer).to_contain_text("You get ten days of sick leave a year")
    citation = answer.get_by_test_id("citation").first
    expect(citation).to_have_text(re.compile(r"1"))
    citation.hover()
    preview = page.get_by_test_id("citation-preview")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("ten days a year")
    shot(page, "citation-preview")

    citation.click()
    page.wait_for_url(re.compile(rf"#/knowledge/doc/{site.handbook_id}\?chunk=\d+$"))
    chunk = page.url.rpartition("chunk=")[2]
    passage = page.locator(f"#chunk-{chunk}")
    expect(passage).to_have_attribute("data-highlighted", "true")
    expect(passage).to_contain_text("Sick leave: ten days a year")
    expect(passage).to_be_in_viewport()
    expect(page.locator('[data-highlighted="true"]')).to_have_count(1)
    shot(page, "cited-passage")


def test_after_a_reload_the_citation_still_opens_the_passage(
    page: Page, site: Site, shot: Shot
) -> None:
    sign_in(page, site)
    ask(page, "how much sick leave do I get?")
    expect(page.locator(STREAMING)).to_have_count(0)
    expect(last_answer(page).get_by_test_id("citation")).to_have_count(1)
    page.wait_for_url(re.compile(r"#/chat/conv_\w+"))

    page.reload()  # the conversation comes back from GET /v1/conversations/{id}
    answer = last_answer(page)
    expect(answer).to_contain_text("You get ten days of sick leave a year")
    citation = answer.get_by_test_id("citation")
    expect(citation).to_have_count(1)  # a link, not the plain text "[1]"
    expect(citation).to_have_text(re.compile(r"1"))
    expect(citation).to_have_attribute("href", re.compile(rf"#/knowledge/doc/{site.handbook_id}"))
    citation.focus()
    preview = page.get_by_test_id("citation-preview")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("ten days a year")
    shot(page, "reloaded-citation-preview")

    citation.click()
    page.wait_for_url(re.compile(rf"#/knowledge/doc/{site.handbook_id}\?chunk=\d+$"))
    chunk = page.url.rpartition("chunk=")[2]
    passage = page.locator(f"#chunk-{chunk}")
    expect(passage).to_have_attribute("data-highlighted", "true")
    expect(passage).to_contain_text("Sick leave: ten days a year")
