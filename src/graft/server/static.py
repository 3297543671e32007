"""The web UI's files: ``/``, ``/index.html``, ``/assets/*`` and ``/favicon.svg``.

The UI is a single page built from ``web/`` (``npm --prefix web run build``) into the
package folder ``graft/server/static/`` (git-ignored, shipped in the wheel). It routes in
the URL's fragment (``/#/chat``), so the server only serves these four kinds of path, all
public (``graft.server.auth``): a browser without credentials must get the login page.

Every answer carries the UI's strict ``Content-Security-Policy`` (``UI_CSP``: scripts,
styles and calls from this origin only, no inline code, never in a frame), so injected
markup in a model's answer cannot run. ``index.html`` is revalidated on every load
(``no-cache`` + ETag), the assets, whose names carry a hash of their content, are cached for
a year (``immutable``). Files are looked up by Starlette's ``StaticFiles``, which refuses
paths that leave the folder (``..``, absolute paths, symlinks out) and answers ``HEAD`` and
conditional requests. None of these routes is in the OpenAPI document.

Without a built UI, ``/`` answers 503 with a page saying how to build it, and the server
logs one warning as it starts (``warn_if_missing``); the API works either way.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = [
    "ASSETS_CACHE",
    "BUILD_HINT",
    "STATIC_DIR",
    "UI_CSP",
    "install_ui",
    "ui_directory",
    "warn_if_missing",
]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
"""Where ``npm --prefix web run build`` writes the UI (vite's ``build.outDir``)."""

UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""The UI's Content-Security-Policy: nothing inline, nothing from another origin."""

ASSETS_CACHE = "public, max-age=31536000, immutable"
"""Hashed asset names change with their content, so a copy never goes stale."""

_REVALIDATE = "no-cache"
"""``index.html`` and the favicon: kept, but checked (ETag) on every load."""

BUILD_HINT = "scripts/install, or: npm --prefix web ci && npm --prefix web run build"
"""How to build the UI from a source checkout."""


def ui_directory(directory: Path | None = None) -> Path:
    """``directory``, or the package's ``static`` folder."""
    return STATIC_DIR if directory is None else directory


class _UIFiles(StaticFiles):
    """``StaticFiles`` that adds the UI's headers and tolerates a missing folder."""

    def __init__(self, directory: Path, cache_control: str) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.cache_control = cache_control

    async def check_config(self) -> None:
        """No check: a folder that is missing (UI not built) just has no files (404)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """The file (or 304), with the cache policy and the UI's CSP."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = self.cache_control
        response.headers["content-security-policy"] = UI_CSP
        return response


def _not_built(directory: Path) -> HTMLResponse:
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>graft: web UI not built</title></head><body>"
        "<h1>The graft web UI is not built</h1>"
        "<p>The API at <code>/v1</code> works; the browser UI has not been built into "
        f"<code>{html.escape(str(directory))}</code>.</p>"
        "<p>Build it from graft's source folder with <code>scripts/install</code>, or with "
        "<code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code> "
        "(Node.js 18 or newer), then reload this page.</p></body></html>\n"
    )
    headers = {"cache-control": "no-store", "content-security-policy": UI_CSP}
    return HTMLResponse(page, status_code=503, headers=headers)


def install_ui(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the UI built into ``directory`` (default ``STATIC_DIR``) from ``app``."""
    root = ui_directory(directory)
    pages = _UIFiles(root, _REVALIDATE)

    async def index(request: Request) -> Response:
        if not (root / "index.html").is_file():
            return _not_built(root)
        return await pages.get_response("index.html", request.scope)

    async def favicon(request: Request) -> Response:
        return await pages.get_response("favicon.svg", request.scope)

    for path in ("/", "/index.html"):
        app.add_api_route(path, index, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/favicon.svg", favicon, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/assets", _UIFiles(root / "assets", ASSETS_CACHE), name="assets")


def warn_if_missing(directory: Path | None = None) -> bool:
    """Log one warning when the UI is not built; ``True`` when it is there."""
    root = ui_directory(directory)
    if (root / "index.html").is_file():
        return True
    log.warning(
        "graft: the web UI is not built (no %s), so / answers 503; the API works. Build it with %s",
        root / "index.html",
        BUILD_HINT,
    )
    return False
