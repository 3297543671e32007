"""The web UI's files over a real server: caching, CSP, HEAD, no way out of the folder, public.

The UI here is a small stand-in folder (index.html, one hashed asset, the icon), so these
tests do not depend on the frontend being built; tests/web drive the real one in a browser.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from graft.default_plugins.api_key_auth import hash_api_key
from graft.server import create_app, static
from graft.server.auth import is_public
from graft.testing import FakeModel

KEYS = [{"sha256": hash_api_key("sk-good"), "user": "ann", "roles": ["user"]}]
INDEX = b'<!doctype html><html><head><script type="module" src="/assets/app-1a2b.js"></script>'
SCRIPT = b"console.log('graft');\n"


@pytest.fixture
def ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built UI in a temporary folder, served by every app made in the test."""
    root = tmp_path / "ui"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "app-1a2b.js").write_bytes(SCRIPT)
    (root / "assets" / "app-1a2b.css").write_text("body { color: black; }\n")
    (root / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", root / "assets" / "link.js")
    monkeypatch.setattr(static, "STATIC_DIR", root)
    return root


@pytest.fixture
def url(ui: Path, graft_factory: Callable[..., Any], live_server: Callable[..., Any]) -> str:
    """A live server whose API needs a key."""
    graft = graft_factory(FakeModel("hi"), auth={"api_keys": KEYS})
    return str(live_server(graft).url)


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """``GET target`` sent byte for byte (no client normalises ``..`` away)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_the_page_is_served_at_the_root_revalidated_and_with_the_strict_csp(url: str) -> None:
    for path in ("/", "/index.html"):
        page = httpx.get(f"{url}{path}")
        assert page.status_code == 200 and page.content == INDEX
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert page.headers["content-security-policy"] == static.UI_CSP
        assert "script-src 'self';" in static.UI_CSP and "unsafe" not in static.UI_CSP
        assert page.headers["x-frame-options"] == "DENY"  # the middleware's headers stay
        assert page.headers["x-content-type-options"] == "nosniff"
        again = httpx.get(f"{url}{path}", headers={"if-none-match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["cache-control"] == "no-cache"


def test_assets_are_cached_for_good_and_head_works(url: str) -> None:
    script = httpx.get(f"{url}/assets/app-1a2b.js")
    assert script.status_code == 200 and script.content == SCRIPT
    assert "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.headers["content-security-policy"] == static.UI_CSP
    style = httpx.get(f"{url}/assets/app-1a2b.css")
    assert style.headers["content-type"].startswith("text/css")
    head = httpx.head(f"{url}/assets/app-1a2b.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(SCRIPT))
    assert head.headers["cache-control"] == script.headers["cache-control"]
    page = httpx.head(f"{url}/")
    assert page.status_code == 200 and page.content == b"" and page.headers["etag"]
    icon = httpx.get(f"{url}/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
    assert httpx.post(f"{url}/").status_code == 405


@pytest.mark.parametrize("keys", [KEYS, []], ids=["keyed", "single-user"])
def test_missing_assets_are_404_and_nothing_outside_the_folder_is_served(
    ui: Path, keys: list[Any], graft_factory: Callable[..., Any], live_server: Callable[..., Any]
) -> None:
    # Single-user graft authenticates every request: the file lookup alone must hold.
    url = live_server(graft_factory(FakeModel("hi"), auth={"api_keys": keys})).url
    missing = httpx.get(f"{url}/assets/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] is not None
    assert httpx.get(f"{url}/assets/link.js").status_code == 404  # a symlink out
    assert httpx.get(f"{url}/assets/").status_code == 404  # no listing
    for target in (
        "/assets/../secret.txt",
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/..%5c..%5csecret.txt",
        "/assets//etc/passwd",
        "/assets/%2fetc%2fpasswd",
        "/assets/../index.html",
    ):
        status, body = raw_get(url, target)
        assert status == (401 if keys and "." in target else 404), (target, status)
        assert b"top secret" not in body and b"root:" not in body and INDEX not in body


def test_the_ui_is_public_and_nothing_else_opens_with_it(url: str) -> None:
    for path in ("/", "/index.html", "/favicon.svg", "/assets/app-1a2b.js"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    for path in (
        "/assetsX",
        "/assetsX/app-1a2b.js",
        "/assets",
        "/favicon.ico",
        "/index.htm",
        "/v1/models",
        "/v1/assets/app-1a2b.js",
        "/static/index.html",
    ):
        refused = httpx.get(f"{url}{path}")
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json()["error"]["type"] == "authentication_error"
    status, _ = raw_get(url, "/assets/../v1/models")
    assert status == 401
    # With the key, the API answers as before.
    models = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer sk-good"})
    assert models.status_code == 200


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/", True),
        ("/assets/index-Dx3.js", True),
        ("/assets/fonts/a.woff2", True),
        ("/assets", False),
        ("/assetsX/a.js", False),
        ("/assets/../v1/models", False),
        ("/assets/./a.js", False),
        ("/assets/.env", False),
        ("/assets/..\\v1", False),
        ("/v1/chat/completions", False),
        ("//", False),
    ],
)
def test_which_paths_are_public(path: str, public: bool) -> None:
    assert is_public(path) is public


def test_the_ui_is_not_in_the_openapi_document(url: str) -> None:
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert paths and not {"/", "/index.html", "/favicon.svg"} & set(paths)
    assert not [p for p in paths if p.startswith("/assets")]


def test_without_a_built_ui_the_root_says_how_to_build_it(
    tmp_path: Path, graft_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "not-built"
    app = create_app(graft_factory(FakeModel("hi")), static_dir=missing)
    with caplog.at_level(logging.WARNING, logger="graft.server.static"), TestClient(app) as client:
        for path in ("/", "/index.html"):
            page = client.get(path)
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == static.UI_CSP
            assert page.headers["cache-control"] == "no-store"
            assert "scripts/install" in page.text
            assert "npm --prefix web ci &amp;&amp; npm --prefix web run build" in page.text
        assert client.get("/assets/app.js").status_code == 404
        assert client.get("/favicon.svg").status_code == 404
        assert client.get("/healthz").status_code == 200  # the API works without the UI
    warnings = [r for r in caplog.records if r.name == "graft.server.static"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "not built" in warnings[0].getMessage() and "npm --prefix web" in (
        warnings[0].getMessage()
    )


def test_a_built_ui_passed_to_create_app_is_served_without_a_warning(
    ui: Path, graft_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = ui.parent / "elsewhere"
    ui.rename(elsewhere)
    app = create_app(graft_factory(FakeModel("hi")), static_dir=elsewhere)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        assert client.get("/").content == INDEX
        assert client.get("/assets/app-1a2b.js").content == SCRIPT
    assert not [r for r in caplog.records if r.name == "graft.server.static"]
