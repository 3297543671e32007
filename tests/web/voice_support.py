"""What the web UI's voice tests (test_call.py, test_room.py) share.

Both launch their own Debian Chromium with a fake camera and a fake microphone playing a
WAV of words spoken by piper (the WAV is a launch argument), keep each RTCPeerConnection the
page makes in ``window.__peers`` (an init script, not the UI) to read the connection's own
state and statistics, and put 127.0.0.1 back among aioice's host candidates (it leaves it
out unless told) so the browser and the server meet there with no ICE server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Browser, Page
from tests.voice.rtc_support import RATE, spoken
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, Site, axe_violations, sign_in

Shot = Callable[[Page, str], None]
"""The ``shot`` fixture: a screenshot of the page under a name."""

HEARD = re.compile(r"what is (two|2) plus (three|3)", re.IGNORECASE)
"""How Whisper may write the question both tests ask the assistant."""
ANSWER = "Hello from the scripted model."
"""What the web tests' scripted model answers a question without its keywords."""
MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
KEEP_PEERS = """(() => {
    const Native = window.RTCPeerConnection;
    if (!Native) return;
    window.__peers = [];
    window.RTCPeerConnection = class extends Native {
        constructor(...args) { super(...args); window.__peers.push(this); }
    };
})();"""
PEER_STATE = "() => window.__peers[window.__peers.length - 1].connectionState"


def spoken_wav(folder: Path, line: str, before_s: float, after_s: float) -> Path:
    """``line`` spoken by piper: 48 kHz mono PCM16, with silence before and after."""
    from graft.voice.audio import wav_bytes

    speech = np.frombuffer(spoken(line)[line], "<i2")
    silence = [np.zeros(int(RATE * s), "<i2") for s in (before_s, after_s)]
    path = folder / f"{line.split()[0].lower()}.wav"
    path.write_bytes(wav_bytes(np.concatenate([silence[0], speech, silence[1]]).tobytes(), RATE))
    return path


def launch(browser: Browser, wav: Path, *, deny: bool = False) -> Browser:
    """Chromium whose fake microphone plays ``wav`` (looped); its permission prompts are
    answered yes, or no with ``deny``."""
    return browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        args=[
            *CHROMIUM_ARGS,
            *MEDIA_ARGS,
            f"--use-fake-ui-for-media-stream{'=deny' if deny else ''}",
            f"--use-file-for-fake-audio-capture={wav}",
        ],
    )


def peer_page(
    page_factory: Callable[..., Page], site: Site, key: str | None = None, **where: Any
) -> Page:
    """A page (``page_factory(**where)``) signed in with ``key`` (ann's by default), its peer
    connections kept in ``window.__peers``."""
    page = page_factory(**where)
    page.add_init_script(KEEP_PEERS)
    sign_in(page, site, key)
    return page


def listed(site: Site, path: str) -> list[dict[str, Any]]:
    """The ``data`` of the server's list at ``path`` (GET with ann's key)."""
    response = site.api("GET", path, key=site.key)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def no_axe_findings(page: Page, where: str) -> None:
    found = axe_violations(page)
    assert not found, f"axe found serious or critical violations on {where}:\n" + "\n".join(found)


def until(check: Callable[[], Any], what: str, timeout: float) -> Any:
    """``check()``'s first true value, polled every 0.2 s for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
