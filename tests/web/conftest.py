"""The web UI end to end: a real graft on a real server, driven in Debian's Chromium.

``site`` is a graft on a SQLite file (knowledge needs SQL) with a scripted model
(``script``), a tool that needs approval (``send_email``), a handbook in the ``hb``
collection, and three people of tenant acme with API keys, so the UI shows its login page:
ann (a builder), ada (an admin) and bob (a plain user). The browser is ``/usr/bin/chromium``
driven by Playwright's Python package, started once per session; it never downloads a
browser. Without Chromium, or without a built UI, the tests fail and say what to do.

``axe_violations`` runs axe-core (web/node_modules/axe-core, a devDependency of the UI) in
a page, under the page's own CSP, and answers its serious and critical findings.

Every test leaves screenshots in ``build/test-artifacts/web/`` (git-ignored), passed or
failed: ``shot(page, name)`` for the steps, and one of the last screen when the page closes,
with the browser console's messages beside it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from graft.config import Settings
from graft.context import Principal
from graft.embeddings import embedder_for
from graft.hookspecs import hookimpl
from graft.identity import issue_key
from graft.knowledge.index import Readers, open_index
from graft.knowledge.ingest import Ingestion
from graft.models.base import ModelChunk, ModelRequest, TextChunk
from graft.runtime import Graft
from graft.testing import FunctionModel, Response, call
from graft.tools.function import tool

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
BUILT_UI = REPO / "src" / "graft" / "server" / "static" / "index.html"
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO / "build" / "test-artifacts" / "web"
STREAMING = '[data-testid="message"][data-role="assistant"][data-streaming="true"]'
"""An answer still streaming."""
OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))

LONG_LINE = "banner = '" + "=" * 240 + "'"
CODE_ANSWER = (
    "Here is **the function**:\n\n```python\ndef greet(name):\n    return f'hi {name}'\n"
    f"{LONG_LINE}\n```\n\nIt returns a greeting."
)
XSS = '<img src=x onerror="window.__xss = 1"> and <script>window.__xss = 2</script> done'
HANDBOOK = "# Leave\n\nSick leave: ten days a year, paid in full.\n"
PIRATE = "Talk like a pirate."
"""A system prompt the script recognises: its answers then start with ``Arr``."""
SLOW_WORDS = 150
"""How many words the answer to a question with ``slowly`` has, one every ``SLOW_DELAY`` s."""
SLOW_DELAY = 0.05


def last_question(request: ModelRequest) -> str:
    """The text of the request's last user message."""
    return next((m.content or "" for m in reversed(request.messages) if m.role == "user"), "")


def script(request: ModelRequest, times: int = 1) -> Response:
    """The model's answer, chosen by the last user message (and the tools' answers so far).

    ``times`` is how often the model has been asked this question (a regenerated answer
    differs from the first); an assistant whose prompt is ``PIRATE`` answers like one.
    """
    asked = last_question(request)
    done = [m.name for m in request.messages if m.role == "tool"]
    system = " ".join(m.content or "" for m in request.messages if m.role == "system")
    if PIRATE in system:
        return f"Arr, you asked: {asked}"
    if "joke" in asked:
        return f"Joke number {times}."
    if "slowly" in asked:
        return " ".join(f"w{n}" for n in range(1, SLOW_WORDS + 1))
    if "mail" in asked:
        # The calculator's output is untrusted content: the mail then needs the user's yes.
        if not done:
            return [call("calculator", expression="6*7")]
        if done == ["calculator"]:
            return [call("send_email", to="boss@example.com", body="42")]
        return "Mail sent."
    if "leave" in asked:
        return "You get ten days of sick leave a year [1]."
    if "xss" in asked:
        return XSS
    if "code" in asked:
        return CODE_ANSWER
    return "Hello from the scripted model."


class Gated:
    """``FunctionModel(script)`` that, while ``hold`` is set, pauses after its first word.

    The test sees the answer streaming, then ``release()``s the rest. A question with
    ``slowly`` streams a word every ``SLOW_DELAY`` seconds. ``requests`` holds what the model
    was sent.
    """

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.inner = FunctionModel(self._answer, id="test:web")
        self.id = self.inner.id
        self.requests = self.inner.requests
        self.hold = threading.Event()
        self._released = threading.Event()

    def _answer(self, request: ModelRequest) -> Response:
        asked = last_question(request)
        if not any(m.role == "tool" for m in request.messages):
            self.asked[asked] += 1
        return script(request, self.asked[asked])

    def release(self) -> None:
        """Let the held answer finish."""
        self._released.set()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """The scripted answer, held after its first piece of text when asked to."""
        held = not self.hold.is_set()
        slow = "slowly" in last_question(request)
        async for chunk in self.inner.stream(request):
            yield chunk
            if slow and isinstance(chunk, TextChunk):
                await asyncio.sleep(SLOW_DELAY)
            if not held and isinstance(chunk, TextChunk):
                held = True
                for _ in range(1500):  # 30 s at most
                    if self._released.is_set():
                        break
                    await asyncio.sleep(0.02)


class Mailer:
    """A plugin with one tool that has side effects, so it needs approval after untrusted input."""

    def __init__(self) -> None:
        self.sent: list[str] = []

        @tool
        def send_email(to: str, body: str) -> str:
            """Send an email."""
            self.sent.append(to)
            return f"sent to {to}"

        self.send_email = send_email

    @hookimpl
    def register_tools(self, register: Callable[..., None]) -> None:
        register(self.send_email)


@dataclass
class Site:
    """The graft under test: its address, the keys, the model, and what it holds.

    ``key`` is ann's (a builder), ``admin_key`` ada's (an admin), ``user_key`` bob's (a user).
    """

    url: str
    key: str = field(repr=False)
    graft: Graft
    model: Gated
    mailer: Mailer
    handbook_id: str
    admin_key: str = field(default="", repr=False)
    user_key: str = field(default="", repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> Any:
        """Call the API with a key (ada's, the admin's, unless told); the ``httpx`` response."""
        headers = {"authorization": f"Bearer {key or self.admin_key}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=15, **kwargs)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; a clear failure when it or the built UI is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the web UI tests drive Debian's Chromium "
            "(apt-get install chromium; scripts/test installs it)",
            pytrace=False,
        )
    if not BUILT_UI.is_file():
        pytest.fail(
            f"the web UI is not built ({BUILT_UI} is missing): run "
            "`npm --prefix web ci && npm --prefix web run build` (or scripts/install)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's artefact folder (build/test-artifacts/web/<test>/), emptied first."""
    folder = ARTIFACTS / _slug(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    return folder


@pytest.fixture
def page_factory(browser: Browser, artifacts: Path) -> Iterator[Callable[..., Page]]:
    """New pages in fresh browser contexts; each is shot and its console saved at the end.

    A message about the Content-Security-Policy fails the test: the UI must work under it.
    ``on`` opens the page in another browser than ``browser`` (one launched with other
    flags, such as another fake microphone).
    """
    opened: list[tuple[Page, list[str]]] = []

    def make(
        *, width: int = 1280, height: int = 860, locale: str = "en-US", on: Browser | None = None
    ) -> Page:
        context = (on or browser).new_context(
            viewport={"width": width, "height": height}, locale=locale, service_workers="block"
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        console: list[str] = []

        def log(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", log)
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        opened.append((page, console))
        return page

    yield make
    violations = []
    for number, (page, console) in enumerate(opened):
        suffix = f"-{number}" if number else ""
        try:
            page.screenshot(path=str(artifacts / f"zz-last{suffix}.png"), full_page=True)
        finally:
            (artifacts / f"console{suffix}.log").write_text("\n".join(console) + "\n")
            page.context.close()
        violations += [line for line in console if "Content Security Policy" in line]
    assert not violations, f"the UI broke its Content-Security-Policy: {violations}"


@pytest.fixture
def page(page_factory: Callable[..., Page]) -> Page:
    """A desktop-sized page, English."""
    return page_factory()


@pytest.fixture
def shot(artifacts: Path) -> Callable[[Page, str], None]:
    """Save a screenshot of ``page`` as ``<n>-<name>.png`` in the test's artefact folder."""
    taken = [0]

    def take(page: Page, name: str) -> None:
        taken[0] += 1
        page.screenshot(path=str(artifacts / f"{taken[0]:02d}-{_slug(name)}.png"), full_page=True)

    return take


PEOPLE = {"ann": ["builder", "user"], "ada": ["admin", "user"], "bob": ["user"]}


async def _prepare(graft: Graft, settings: Settings, docs: Path) -> tuple[dict[str, str], str]:
    """ann, ada and bob (of acme) with keys, and the handbook in the ``hb`` collection."""
    await graft.start()  # started again by the server, which closes it at the end
    keys = {}
    for name, roles in PEOPLE.items():
        person = await graft.store.create_user(tenant="acme", name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, person, creator=OPERATOR, name="browser")
    index = await open_index(graft.store)
    assert index is not None
    await Ingestion(
        index, embedder_for(settings), collection="hb", readers=Readers("acme", everyone=True)
    ).run([str(docs / "handbook.md")])
    reader = Principal("ann", frozenset({"user"}), tenant="acme")
    [document] = await anyio.to_thread.run_sync(index.documents, reader, "hb")
    return keys, str(document["id"])


@pytest.fixture
def site(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    live_server: Callable[[Graft], Any],
) -> Site:
    """A live graft: the scripted model, the mailer, the handbook, the people's keys."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text(HANDBOOK)
    model = Gated()
    mailer = Mailer()
    settings = settings_factory(
        database_url=f"sqlite:///{tmp_path / 'graft.db'}",
        model=model.id,
        assistants={"default": {"collections": ["hb"], "retrieval": "always"}},
    )
    graft = Graft(settings, entry_points=False, models={model.id: model}, plugins=(mailer,))
    # Playwright's sync API keeps an event loop of its own in this thread: set up in another.
    with ThreadPoolExecutor(1) as thread:
        keys, handbook = thread.submit(anyio.run, _prepare, graft, settings, docs).result()
    url = live_server(graft).url
    return Site(url, keys["ann"], graft, model, mailer, handbook, keys["ada"], keys["bob"])


def sign_in(page: Page, site: Site, key: str | None = None) -> None:
    """Open the UI, land on the login page, sign in with a key (ann's), reach the chat."""
    page.goto(f"{site.url}/")
    page.wait_for_url(re.compile(r"#/login"))
    page.get_by_test_id("login-key").fill(key or site.key)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("composer").wait_for(state="visible")


def ask(page: Page, text: str) -> None:
    """Type ``text`` into the composer and send it with Enter, once sending is possible.

    The composer shows before the page has loaded what sending needs (the assistants): an
    Enter pressed before then is ignored, as the disabled Send button says.
    """
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    expect(page.get_by_test_id("send")).to_be_enabled()
    composer.press("Enter")


def last_answer(page: Page) -> Any:
    """The locator of the last assistant message."""
    return page.locator('[data-testid="message"][data-role="assistant"]').last


def answered(page: Page, text: str) -> Any:
    """Wait until no answer streams and the last one contains ``text``; that answer."""
    answer = last_answer(page)
    expect(answer).to_contain_text(text)
    expect(page.locator(STREAMING)).to_have_count(0)
    return answer


def axe_violations(page: Page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's findings of these impacts on the page as it is, one line per finding.

    axe is evaluated as the page's own script would be, through the debugger, so the page
    keeps its CSP (a ``<script>`` tag with axe's text inline would be refused by it).
    """
    if not AXE.is_file():
        pytest.fail(
            f"{AXE} is missing: run `npm --prefix web ci` (axe-core is a devDependency)",
            pytrace=False,
        )
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => {
            const result = await window.axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target.join(' '),
                                          summary: n.failureSummary || ''})),
            }));
        }"""
    )
    lines = []
    for violation in found:
        if violation["impact"] not in impacts:
            continue
        for node in violation["nodes"]:
            summary = " ".join(node["summary"].split())[:240]
            lines.append(
                f"{violation['impact']} {violation['id']} ({violation['help']}) at "
                f"{node['target']}: {summary}"
            )
    return lines


def dump(value: Any) -> str:
    """``value`` as indented JSON, for failure messages."""
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)
