"""The chat route's fast path answers exactly as the router would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from graft.errors import GraftError, NotFound
from graft.server.fastpath import PATH, ChatFastPath, _handler
from graft.testing import FakeModel


def test_requests_are_answered_and_labelled_like_routed_ones(graft_factory, live_server) -> None:
    server = live_server(graft_factory(FakeModel("hi there", "again")))
    ok = httpx.post(
        f"{server.url}{PATH}",
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "hi there"
    assert ok.headers["x-content-type-options"] == "nosniff"  # outer middleware still ran
    bad = httpx.post(
        f"{server.url}{PATH}",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_json"
    unknown = httpx.post(
        f"{server.url}{PATH}",
        json={"model": "nobody", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]["message"]
    # Other methods on the path go through the router: 405 with every allowed method.
    get = httpx.get(f"{server.url}{PATH}")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    metrics = httpx.get(f"{server.url}/metrics").text
    # Labelled by the route's path, as routed requests are (not "unmatched").
    counted = f'graft_http_requests_total{{method="POST",route="{PATH}",status="200"}} 1.0'
    assert counted in metrics
    assert f'route="{PATH}",status="400"' in metrics
    assert "/v1/chat/completions" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def _app(endpoint: Any) -> FastAPI:
    app = FastAPI()

    @app.post(PATH)
    async def routed(request: Request) -> Response:  # what the router would call
        return PlainTextResponse("routed")

    @app.exception_handler(GraftError)
    async def graft_error(request: Request, exc: GraftError) -> Response:
        return PlainTextResponse(f"handled {exc.message}", status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("internal", status_code=500)

    app.add_middleware(ChatFastPath, fastapi=app, endpoint=endpoint)
    return app


async def test_an_endpoint_error_goes_to_the_apps_handler() -> None:
    async def failing(request: Request) -> Response:
        raise NotFound("no such thing")

    async def crashing(request: Request) -> Response:
        raise RuntimeError("bug")

    transport = httpx.ASGITransport(app=_app(failing))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(PATH)
    assert (answer.status_code, answer.text) == (404, "handled no such thing")
    # An exception without a handler goes on to the server-error middleware's catch-all.
    transport = httpx.ASGITransport(app=_app(crashing), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(PATH)
    assert (answer.status_code, answer.text) == (500, "internal")


def test_handlers_are_looked_up_as_starlette_does() -> None:
    async def by_status(request: Request, exc: Exception) -> Response:
        return Response()

    async def by_class(request: Request, exc: Exception) -> Response:
        return Response()

    handlers: dict[Any, Any] = {404: by_status, HTTPException: by_class, GraftError: by_class}
    assert _handler(handlers, HTTPException(404)) is by_status
    assert _handler(handlers, HTTPException(400)) is by_class
    assert _handler(handlers, NotFound("x")) is by_class  # a subclass finds its base's handler
    assert _handler({**handlers, Exception: by_class}, ValueError("x")) is None
    with pytest.raises(LookupError, match="no POST"):
        ChatFastPath(FastAPI(), FastAPI(), endpoint=by_status)  # type: ignore[arg-type]
