"""A real JSON API on 127.0.0.1 (Starlette on uvicorn) with its OpenAPI document.

One server for the whole session; ``api`` resets its counters for each test. The document
uses ``$ref`` for schemas, parameters and bodies, a recursive schema, path, query and header
parameters and a JSON body. Endpoints cover what the client must handle: a huge body, a
gzip bomb, 503-then-200, auth by bearer, API key and OAuth2 client credentials, and a
canary (``/admin``, outside the base path ``/api``) that no call may reach.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.conftest import LiveServer

from graft.config import Settings, load_settings
from graft.context import Context, Principal
from graft.services.manifest import Manifest
from graft.services.openapi import parse_document
from graft.services.toolset import OpenAPIToolset
from graft.testing import MemoryStore

BEARER = "tok-bearer-0123456789abcdef"
API_KEY = "key-api-0123456789abcdef"
CLIENT_ID, CLIENT_SECRET = "graft-client", "cs-0123456789abcdef"
HUGE_BYTES = 3_000_000
BOMB_BYTES = 64 * 1024 * 1024

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Demo Shop", "version": "1.0"},
    "servers": [{"url": "/api"}],
    "paths": {
        "/items/{item_id}": {
            "parameters": [{"$ref": "#/components/parameters/ItemId"}],
            "get": {
                "operationId": "getItem",
                "summary": "Get one item.",
                "description": "Returns the item with its category.",
                "parameters": [
                    {
                        "name": "X-Trace",
                        "in": "header",
                        "description": "A trace id.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": {"description": "the item"}},
            },
        },
        "/items": {
            "get": {
                "operationId": "list items!",
                "summary": "List items.",
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {
                        "name": "tag",
                        "in": "query",
                        "description": "Only items with these tags.",
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["red", "green"]},
                        },
                    },
                ],
                "responses": {"200": {"description": "items"}},
            },
            "post": {
                "operationId": "createItem",
                "summary": "Create an item.",
                "requestBody": {"$ref": "#/components/requestBodies/NewItem"},
                "responses": {"201": {"description": "created"}},
            },
        },
        "/huge": {"get": {"operationId": "huge", "responses": {}}},
        "/bomb": {"get": {"operationId": "bomb", "responses": {}}},
        "/bomb2": {"get": {"operationId": "bombTwice", "responses": {}}},
        "/flaky": {
            "get": {"operationId": "flakyRead", "responses": {}},
            "post": {"operationId": "flakyWrite", "responses": {}},
        },
        "/fail": {"get": {"operationId": "fail", "responses": {}}},
        "/secure/bearer": {"get": {"operationId": "bearer", "responses": {}}},
        "/secure/key": {"get": {"operationId": "apiKey", "responses": {}}},
        "/secure/oauth": {"get": {"operationId": "oauth", "responses": {}}},
    },
    "components": {
        "parameters": {
            "ItemId": {
                "name": "item_id",
                "in": "path",
                "required": True,
                "description": "The item's id.",
                "schema": {"type": "string"},
            },
            "Limit": {
                "name": "limit",
                "in": "query",
                "description": "How many at most.",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            },
        },
        "requestBodies": {
            "NewItem": {
                "required": True,
                "description": "The item to create.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
            }
        },
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "description": "Display name."},
                    "color": {"type": "string", "enum": ["red", "green"], "nullable": True},
                    "category": {"$ref": "#/components/schemas/Category"},
                },
                "example": {"name": "x"},
            },
            "Category": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Category"},
                    },
                },
            },
        },
    },
}


@dataclass
class DemoState:
    hits: Counter[str] = field(default_factory=Counter)
    seen: list[dict[str, Any]] = field(default_factory=list)
    tokens_issued: int = 0


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    chunk = b"0" * (1024 * 1024)
    return (
        b"".join(packer.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))) + packer.flush()
    )


class DemoApp:
    """The demo API's handlers; every call to ``/api`` or ``/admin`` is recorded."""

    def __init__(self, state: DemoState) -> None:
        self.state = state
        self.bomb = _bomb()
        self.valid_tokens: set[str] = set()

    async def record(self, request: Request) -> None:
        self.state.hits[request.url.path] += 1
        self.state.seen.append(
            {
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode("latin-1"),
                "query": list(request.query_params.multi_items()),
                "headers": dict(request.headers),
                "body": (await request.body()).decode("utf-8", "replace"),
            }
        )

    async def get_item(self, request: Request) -> Response:
        await self.record(request)
        item_id = request.path_params["item_id"]
        trace = request.headers.get("x-trace")
        return JSONResponse({"id": item_id, "name": f"item {item_id}", "trace": trace})

    async def items(self, request: Request) -> Response:
        await self.record(request)
        if request.method == "POST":
            return JSONResponse({"created": await request.json()}, status_code=201)
        query = request.query_params
        return JSONResponse({"limit": query.get("limit"), "tags": query.getlist("tag")})

    async def huge(self, request: Request) -> Response:
        await self.record(request)
        return Response(json.dumps({"data": "x" * HUGE_BYTES}), media_type="application/json")

    async def bomb_once(self, request: Request) -> Response:
        await self.record(request)
        headers = {"Content-Encoding": "gzip"}
        return Response(self.bomb, media_type="application/json", headers=headers)

    async def bomb_twice(self, request: Request) -> Response:
        await self.record(request)
        headers = {"Content-Encoding": "gzip, gzip"}
        return Response(gzip.compress(self.bomb), media_type="application/json", headers=headers)

    async def flaky(self, request: Request) -> Response:
        """503 for the first call of each method, 200 after."""
        await self.record(request)
        key = f"flaky-{request.method}-answered"
        if self.state.hits[key] == 0:
            self.state.hits[key] += 1
            return JSONResponse({"error": "try later"}, status_code=503)
        return JSONResponse({"ok": True, "method": request.method})

    async def fail(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"error": "boom", "auth": request.headers.get("x-api-key")}, 500)

    async def bearer(self, request: Request) -> Response:
        await self.record(request)
        header = request.headers.get("authorization", "")
        if header != f"Bearer {BEARER}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"ok": True, "you_sent": header})

    async def api_key(self, request: Request) -> Response:
        await self.record(request)
        key = request.headers.get("x-api-key") or request.query_params.get("api_key")
        if key != API_KEY:
            return JSONResponse({"error": "bad key"}, status_code=403)
        return JSONResponse({"ok": True, "url": str(request.url)})

    async def token(self, request: Request) -> Response:
        await self.record(request)
        form = await request.form()
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        self.state.tokens_issued += 1
        issued = f"at-{self.state.tokens_issued}-0123456789"
        self.valid_tokens.add(issued)
        return JSONResponse({"access_token": issued, "token_type": "Bearer", "expires_in": 3600})

    async def oauth(self, request: Request) -> Response:
        await self.record(request)
        header = request.headers.get("authorization", "")
        if header.removeprefix("Bearer ") not in self.valid_tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"ok": True, "token": header})

    async def revoke(self, request: Request) -> Response:
        self.valid_tokens.clear()
        return Response(status_code=204)

    async def admin(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"secret": "admin area"})

    async def spec(self, request: Request) -> Response:
        return JSONResponse(SPEC)

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/items/{item_id}", self.get_item),
                Route("/api/items", self.items, methods=["GET", "POST"]),
                Route("/api/huge", self.huge),
                Route("/api/bomb", self.bomb_once),
                Route("/api/bomb2", self.bomb_twice),
                Route("/api/flaky", self.flaky, methods=["GET", "POST"]),
                Route("/api/fail", self.fail),
                Route("/api/secure/bearer", self.bearer),
                Route("/api/secure/key", self.api_key),
                Route("/api/secure/oauth", self.oauth),
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/oauth/revoke", self.revoke, methods=["POST"]),
                Route("/admin", self.admin),
                Route("/api/admin", self.admin),
                Route("/openapi.json", self.spec),
            ]
        )


@dataclass
class DemoAPI:
    server: LiveServer
    state: DemoState

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def hits(self) -> Counter[str]:
        return self.state.hits

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.state.seen

    def manifest(self, **fields: Any) -> Manifest:
        """A manifest for this server: loopback allowed for it, calls to ``/api``."""
        values: dict[str, Any] = {
            "name": "demo",
            "base_url": f"{self.url}/api",
            "allow_hosts": ["127.0.0.1"],
            "allow_ports": [self.port],
        }
        return Manifest.model_validate({**values, **fields})

    def toolset(self, **fields: Any) -> OpenAPIToolset:
        document = parse_document(json.dumps(SPEC), "demo.json")
        return OpenAPIToolset(self.manifest(**fields), document=document)


@pytest.fixture(scope="session")
def _demo_server() -> Iterator[DemoAPI]:
    state = DemoState()
    with LiveServer(DemoApp(state).asgi()) as server:
        yield DemoAPI(server, state)


@pytest.fixture
def api(_demo_server: DemoAPI) -> DemoAPI:
    _demo_server.state.hits.clear()
    _demo_server.state.seen.clear()
    _demo_server.state.tokens_issued = 0
    return _demo_server


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def ctx(settings: Settings) -> Context:
    assistant = settings.assistant("default")
    assert assistant is not None
    return Context(Principal("ann"), settings, "default", assistant, store=MemoryStore())
