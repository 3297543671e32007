"""Voice calls in the web UI, end to end: Debian's Chromium calls a real graft over WebRTC.

The browser's microphone is Chromium's fake capture device playing a WAV of a question
spoken by piper (48 kHz, with silence after it; Chromium loops the file), so the server's
real CallSession hears it: VAD, Whisper, the chat turn (the scripted model of
tests/web/conftest.py answers it) and piper's voice back on the audio track. The browser and
the server meet on 127.0.0.1 with no ICE server (aioice leaves 127.0.0.1 out of its host
candidates unless told, so the test puts it back, as tests/voice/test_rtc.py does).

This module launches its own Chromium (the fake media flags and the WAV are launch
arguments), through the Playwright of the session's ``browser``; every other web test keeps
the usual one. An init script (not the UI) keeps each RTCPeerConnection the page makes in
``window.__peers``, so the test can read the connection's own statistics.
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

QUESTION = "What is two plus three?"
GREETING = "Hello! How can I help?"
"""``voice.greeting``'s default, said when the call starts."""
CALL_TIMEOUT = 90_000
"""ms for a spoken turn: the first call loads Whisper and piper, on a busy shared CPU."""
STATS = """async () => {
    const pc = window.__peers[window.__peers.length - 1];
    const out = {state: pc.connectionState, received: 0, energy: 0, sent: 0, video: 0};
    (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
            out.received += s.bytesReceived || 0;
            out.energy += s.totalAudioEnergy || 0;
        }
        if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent += s.bytesSent || 0;
        if (s.type === 'outbound-rtp' && s.kind === 'video') out.video += s.bytesSent || 0;
    });
    return out;
}"""


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's aiortc (in this process) offers 127.0.0.1, where Chromium is."""
    loopback(monkeypatch)


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUESTION spoken by piper: 48 kHz mono PCM16, half a second before, five seconds after.

    The silence after it is long enough for the answer to be heard before the loop asks
    again (which would barge in).
    """
    return spoken_wav(tmp_path_factory.mktemp("call"), QUESTION, 0.5, 5.0)


@pytest.fixture(scope="module")
def browser(
    request: pytest.FixtureRequest, browser: Browser, question_wav: Path
) -> Iterator[Browser]:
    """Chromium with a fake camera and a fake microphone that asks QUESTION, over and over.

    Its permission prompts are answered yes, or no when parametrized with ``"deny"``.
    """
    chromium = launch(browser, question_wav, deny=getattr(request, "param", "allow") == "deny")
    yield chromium
    chromium.close()


@pytest.fixture
def caller(page_factory: Callable[..., Page], site: Site) -> Page:
    """A page signed in as ann, its peer connections kept in ``window.__peers``."""
    return peer_page(page_factory, site)


def _calls(site: Site) -> list[dict[str, Any]]:
    """ann's calls running on the server."""
    return listed(site, "/v1/voice/calls")


_until = partial(until, timeout=20.0)


def test_a_call_hears_the_question_speaks_the_answer_and_keeps_the_conversation(
    caller: Page, site: Site, shot: Shot
) -> None:
    page = caller
    call = page.get_by_test_id("call")
    expect(call).to_be_enabled()
    expect(call).to_have_accessible_name("Start a voice call")
    call.click()

    panel = page.get_by_test_id("call-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_hidden()
    status = page.get_by_test_id("call-status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(page.get_by_test_id("call-hangup")).to_be_focused()

    # The greeting, then the question as Whisper heard it, then the scripted answer.
    expect(panel.get_by_test_id("call-answer").first).to_contain_text(
        GREETING, timeout=CALL_TIMEOUT
    )
    # (The microphone starts before the call connects: the first words heard may be the
    # end of the question; the loop asks it whole again.)
    asked = page.get_by_test_id("call-caller").filter(has_text=HEARD)
    question = panel.get_by_test_id("call-turn").filter(has=asked)
    expect(question.first.get_by_test_id("call-answer")).to_contain_text(
        ANSWER, timeout=CALL_TIMEOUT
    )
    [running] = _calls(site)
    assert running["assistant"] == "default"
    assert running["state"] == "connected"
    shot(page, "answered")

    # The answer was heard: Chromium decoded audio with energy in it (silence has none),
    # the remote track plays in the panel's <audio>, and the microphone went up.
    stats = _until(
        lambda: (s := page.evaluate(STATS))["energy"] > 0 and s,
        "audio with energy from the server",
    )
    assert stats["state"] == "connected", stats
    assert stats["received"] > 0 and stats["sent"] > 0, stats
    tracks = page.evaluate(
        """() => { const a = document.querySelector('[data-testid="call-audio"]');
                   return a.srcObject ? a.srcObject.getAudioTracks().length : 0; }"""
    )
    assert tracks == 1
    no_axe_findings(page, "the call panel")
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(400)  # the buttons' colour transitions
    no_axe_findings(page, "the call panel, dark")
    shot(page, "dark")
    page.emulate_media(color_scheme="light")

    # Mute and the camera are toggles with a pressed state.
    mute = page.get_by_test_id("call-mute")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    expect(status).to_contain_text("microphone muted")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "false")
    camera = page.get_by_test_id("call-camera")
    camera.click()
    expect(camera).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("call-preview")).to_be_visible()
    _until(lambda: page.evaluate(STATS)["video"] > 0, "the camera's video to go out")
    # The video slot offered without a track carries the camera once it is on (replaceTrack):
    # the server keeps its frames for the call's conversation (the `look` tool's).
    _until(lambda: len(site.graft.frames) > 0, "the server to keep a camera frame")
    shot(page, "camera-on")

    # Hang up: the panel goes, the server's call ends, the page's connection is closed.
    page.get_by_test_id("call-hangup").click()
    expect(panel).to_have_count(0)
    _until(lambda: _calls(site) == [], "the server to end the call")
    _until(lambda: page.evaluate(PEER_STATE) == "closed", "the page to close its connection")

    # The conversation is listed and open, with the spoken turn stored like a chat's.
    page.wait_for_url(re.compile(r"#/chat/[\w-]+$"))
    conversation_id = page.url.rsplit("/", 1)[-1]
    expect(
        page.locator(f'[data-testid="conversation"][data-id="{conversation_id}"]')
    ).to_have_count(1)
    messages = page.get_by_test_id("message")
    expect(messages.filter(has_text=HEARD).first).to_have_attribute("data-role", "user")
    expect(messages.filter(has_text=ANSWER).first).to_have_attribute("data-role", "assistant")
    expect(page.get_by_test_id("composer")).to_be_focused()
    shot(page, "conversation")

    # A second call goes on in the same conversation, and Esc hangs it up.
    page.get_by_test_id("call").click()
    expect(page.get_by_test_id("call-status")).to_have_text("Listening", timeout=CALL_TIMEOUT)
    [second] = _calls(site)
    assert second["conversation_id"] == conversation_id
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("call-panel")).to_have_count(0)
    _until(lambda: _calls(site) == [], "the server to end the second call")


@pytest.mark.parametrize("browser", ["deny"], indirect=True)
def test_a_refused_microphone_is_explained_and_esc_closes_the_panel(
    caller: Page, site: Site, shot: Shot
) -> None:
    page = caller
    page.get_by_test_id("call").click()
    panel = page.get_by_test_id("call-panel")
    expect(panel).to_have_attribute("data-status", "failed")
    expect(page.get_by_test_id("call-error")).to_contain_text("Microphone access was denied")
    expect(page.get_by_test_id("call-close")).to_be_focused()
    assert _calls(site) == []
    no_axe_findings(page, "a failed call")
    shot(page, "denied")
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0)
    expect(page.get_by_test_id("composer")).to_be_focused()


def test_the_servers_refusal_is_shown_with_its_message(
    caller: Page, site: Site, shot: Shot
) -> None:
    """A call into a conversation deleted meanwhile: the server's 404 message is shown."""
    page = caller
    page.get_by_test_id("composer").fill("hello there")
    page.get_by_test_id("composer").press("Enter")
    page.wait_for_url(re.compile(r"#/chat/[\w-]+$"))
    expect(page.locator('[data-testid="message"][data-role="assistant"]')).to_contain_text(ANSWER)
    conversation_id = page.url.rsplit("/", 1)[-1]
    gone = site.api("DELETE", f"/v1/conversations/{conversation_id}", key=site.key)
    assert gone.status_code in (200, 204), gone.text
    refused = site.api(
        "POST",
        "/v1/voice/calls",
        key=site.key,
        json={"sdp": "v=0", "type": "offer", "conversation_id": conversation_id},
    )
    assert refused.status_code == 404, refused.text
    message = refused.json()["error"]["message"]

    page.get_by_test_id("call").click()
    panel = page.get_by_test_id("call-panel")
    expect(panel).to_have_attribute("data-status", "failed")
    expect(page.get_by_test_id("call-error")).to_contain_text(message)
    assert page.evaluate(PEER_STATE) == "closed"
    shot(page, "refused")
    page.get_by_test_id("call-close").click()
    expect(panel).to_have_count(0)
