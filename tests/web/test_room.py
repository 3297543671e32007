"""Voice rooms in the web UI, end to end: two people in Debian's Chromium meet in a room.

Ann and Bob each run their own Chromium (the fake microphone's WAV is a launch argument):
Ann's microphone asks the assistant a question by name, Bob's says a line to the room, both
spoken by piper (48 kHz, with silence after; Chromium loops the file), and both fake
cameras show Chromium's moving test pattern. They sign in with their own keys (two users
of acme), join the room "standup" from the chat page's room button, and the server runs the
real room: a session per participant (VAD, Whisper), the mix, the relayed cameras, the
assistant answering Ann (the scripted model of tests/web/conftest.py). The browsers and the
server meet on 127.0.0.1 with no ICE server (aioice leaves 127.0.0.1 out of its host
candidates unless told, so the test puts it back, as tests/web/test_call.py does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.voice.rtc_support import loopback
from tests.web.conftest import Site
from tests.web.voice_support import (
    ANSWER,
    HEARD,
    PEER_STATE,
    Shot,
    launch,
    listed,
    no_axe_findings,
    peer_page,
    spoken_wav,
    until,
)

QUESTION = "Tell me, assistant, what is two plus three?"
"""Ann's words: the assistant is named mid-sentence, where Whisper hears it reliably."""
CHAT = "I think the meeting went well."
"""Bob's words to the room: no name of the assistant, so it does not answer."""
CHAT_HEARD = re.compile(r"\bmeeting\b", re.IGNORECASE)
"""piper's voice varies from run to run; Whisper has heard "went well" as "won't walk"."""
ROOM = "standup"
ROOM_TIMEOUT = 90_000
"""ms for a spoken turn: the first one loads Whisper and piper, on a busy shared CPU."""
HEARD_ENERGY = """async () => {
    let energy = 0;
    (await window.__peers[window.__peers.length - 1].getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') energy += s.totalAudioEnergy || 0;
    });
    return energy;
}"""
VIDEO_WIDTH = "(video) => video.videoWidth"


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's aiortc (in this process) offers 127.0.0.1, where Chromium is."""
    loopback(monkeypatch)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ann's question (the answer is heard before the loop asks again) and Bob's line."""
    folder = tmp_path_factory.mktemp("room")
    return {
        "ann": spoken_wav(folder, QUESTION, 0.5, 6.0),
        "bob": spoken_wav(folder, CHAT, 1.0, 9.0),
    }


@pytest.fixture(scope="module")
def ann_browser(browser: Browser, wavs: dict[str, Path]) -> Iterator[Browser]:
    """Chromium whose microphone asks QUESTION, over and over."""
    chromium = launch(browser, wavs["ann"])
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def bob_browser(browser: Browser, wavs: dict[str, Path]) -> Iterator[Browser]:
    """Chromium whose microphone says CHAT, over and over."""
    chromium = launch(browser, wavs["bob"])
    yield chromium
    chromium.close()


def _person(page_factory: Callable[..., Page], site: Site, on: Browser, key: str) -> Page:
    return peer_page(page_factory, site, key, on=on)


def _rooms(site: Site) -> list[dict[str, Any]]:
    """The rooms of acme on the server."""
    return listed(site, "/v1/voice/rooms")


_until = partial(until, timeout=30.0)


def _join(page: Page, name: str) -> None:
    """Open the room form, join ROOM as ``name``, wait until the room is ready."""
    page.get_by_test_id("room").click()
    page.get_by_test_id("room-name").fill(ROOM)
    page.get_by_test_id("room-display-name").fill(name)
    page.get_by_test_id("room-join").click()
    expect(page.get_by_test_id("room-status")).to_have_text("In the room", timeout=ROOM_TIMEOUT)


def _said(page: Page, who: str, words: re.Pattern[str]) -> Any:
    return page.locator(f'[data-testid="room-said"][data-who="{who}"]').filter(has_text=words)


def _tile(page: Page, who: str) -> Any:
    return page.locator(f'[data-testid="room-tile"][data-who="{who}"] video')


def test_two_people_meet_see_and_hear_each_other_and_the_assistant_answers_by_name(
    page_factory: Callable[..., Page],
    site: Site,
    ann_browser: Browser,
    bob_browser: Browser,
    shot: Shot,
) -> None:
    ann = _person(page_factory, site, ann_browser, site.key)
    bob = _person(page_factory, site, bob_browser, site.user_key)

    # The form checks the room's name as the server does, and says why.
    room_button = ann.get_by_test_id("room")
    expect(room_button).to_have_accessible_name("Join a voice room")
    room_button.click()
    expect(ann.get_by_test_id("room-name")).to_be_focused()
    expect(ann.get_by_test_id("composer")).to_be_hidden()
    ann.get_by_test_id("room-name").fill("Stand Up")
    ann.get_by_test_id("room-join").click()
    expect(ann.get_by_test_id("room-name-error")).to_contain_text("1 to 64 lower-case letters")
    expect(ann.get_by_test_id("room-name")).to_have_attribute("aria-invalid", "true")
    no_axe_findings(ann, "the room form")
    shot(ann, "form-invalid")
    ann.keyboard.press("Escape")  # cancels the form
    expect(ann.get_by_test_id("room-form")).to_have_count(0)
    assert _rooms(site) == []

    _join(ann, "Ann")
    expect(ann.get_by_test_id("room-hint")).to_contain_text('say "assistant"')
    _join(bob, "Bob")
    [room] = _rooms(site)
    assert room["name"] == ROOM
    assert [p["name"] for p in room["participants"]] == ["Ann", "Bob"]

    # Each lists the other (and themself).
    expect(ann.locator('[data-testid="room-person"][data-name="Bob"]')).to_have_count(1)
    expect(bob.locator('[data-testid="room-person"][data-name="Ann"]')).to_have_count(1)
    expect(ann.locator('[data-testid="room-notice"][data-notice="joined"]')).to_have_text(
        "Bob joined"
    )

    # Cameras on: each sees their own preview and the other's camera in a video slot.
    for page in (ann, bob):
        camera = page.get_by_test_id("room-camera")
        camera.click()
        expect(camera).to_have_attribute("aria-pressed", "true")
        expect(page.get_by_test_id("room-preview")).to_be_visible()
    _until(lambda: _tile(ann, "Bob").evaluate(VIDEO_WIDTH) > 0, "Bob's camera on Ann's page")
    _until(lambda: _tile(bob, "Ann").evaluate(VIDEO_WIDTH) > 0, "Ann's camera on Bob's page")
    expect(ann.get_by_test_id("room-tile")).to_have_count(1)  # empty slots are not shown

    # Everyone's words with their names, on both pages; the assistant answers Ann, who named it.
    for page in (ann, bob):
        expect(_said(page, "Ann", HEARD).first).to_be_visible(timeout=ROOM_TIMEOUT)
        expect(_said(page, "Bob", CHAT_HEARD).first).to_be_visible(timeout=ROOM_TIMEOUT)
        answer = page.locator('[data-testid="room-answer"][data-who="Ann"]').filter(has_text=ANSWER)
        expect(answer.first).to_be_visible(timeout=ROOM_TIMEOUT)
    expect(bob.locator('[data-testid="room-answer"][data-who="Bob"]')).to_have_count(0)
    # Bob hears the room: the mix (Ann's voice, the assistant) has energy in it.
    _until(lambda: bob.evaluate(HEARD_ENERGY) > 0, "sound in Bob's mix")
    shot(ann, "ann")
    shot(bob, "bob")
    no_axe_findings(ann, "the room panel")
    ann.emulate_media(color_scheme="dark")
    ann.wait_for_timeout(400)  # the buttons' colour transitions
    no_axe_findings(ann, "the room panel, dark")
    shot(ann, "dark")
    ann.emulate_media(color_scheme="light")

    # Bob leaves with Esc: his page is back to the chat, Ann's says he left.
    bob.keyboard.press("Escape")
    expect(bob.get_by_test_id("room-panel")).to_have_count(0)
    expect(bob.get_by_test_id("composer")).to_be_visible()
    _until(lambda: bob.evaluate(PEER_STATE) == "closed", "Bob's page to close its connection")
    expect(
        ann.locator('[data-testid="room-notice"][data-notice="left"][data-who="Bob"]')
    ).to_have_text("Bob left")
    expect(ann.locator('[data-testid="room-person"][data-name="Bob"]')).to_have_count(0)
    expect(ann.get_by_test_id("room-tile")).to_have_count(0)
    [room] = _rooms(site)
    assert [p["name"] for p in room["participants"]] == ["Ann"]
    shot(ann, "bob-left")

    # Ann leaves with the button: the room closes.
    ann.get_by_test_id("room-leave").click()
    expect(ann.get_by_test_id("room-panel")).to_have_count(0)
    _until(lambda: _rooms(site) == [], "the room to close")
