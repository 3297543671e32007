"""OpenAPI documents: loading, checking, ``$ref`` expansion, operations as tools."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from tests.services.conftest import SPEC, DemoAPI

from graft.context import Context
from graft.errors import ConfigError, NetworkBlocked
from graft.netguard import NetworkPolicy
from graft.services.manifest import Manifest
from graft.services.openapi import fetch_document, parse_document, read_document
from graft.services.operations import build_operations
from graft.services.schema import RefResolver, to_json_schema
from graft.services.toolset import OpenAPIToolset


def tools_of(spec: dict[str, Any], **options: Any) -> dict[str, Any]:
    document = parse_document(json.dumps(spec), "doc.json")
    return {op.tool.name: op for op in build_operations(document, "demo", **options)}


def test_each_operation_becomes_a_tool_with_its_schema() -> None:
    ops = tools_of(SPEC)
    assert list(ops) == [
        "demo_getItem",
        "demo_list_items",  # "list items!" sanitised
        "demo_createItem",
        "demo_huge",
        "demo_bomb",
        "demo_bombTwice",
        "demo_flakyRead",
        "demo_flakyWrite",
        "demo_fail",
        "demo_bearer",
        "demo_apiKey",
        "demo_oauth",
    ]
    get_item = ops["demo_getItem"].tool
    assert get_item.read_only and get_item.description == (
        "Get one item.\n\nReturns the item with its category."
    )
    assert get_item.parameters == {
        "type": "object",
        "properties": {
            "item_id": {"type": "string", "description": "The item's id."},
            "X-Trace": {"type": "string", "description": "A trace id."},
        },
        "required": ["item_id"],
        "additionalProperties": False,
    }
    listing = ops["demo_list_items"].tool.parameters["properties"]
    assert listing["limit"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 10,
        "description": "How many at most.",
    }
    assert listing["tag"]["items"] == {"type": "string", "enum": ["red", "green"]}


def test_request_body_refs_are_resolved_and_recursion_is_bounded() -> None:
    create = tools_of(SPEC)["demo_createItem"]
    assert not create.tool.read_only and create.body_prop == "body"
    params = create.tool.parameters
    assert params["required"] == ["body"]
    body = params["properties"]["body"]
    assert body["description"] == "The item to create." and body["required"] == ["name"]
    assert "example" not in body  # OpenAPI-only keywords are dropped
    assert body["properties"]["color"] == {
        "type": ["string", "null"],
        "enum": ["red", "green", None],
    }
    category = body["properties"]["category"]
    again = category["properties"]["children"]["items"]
    assert again["type"] == "object" and "recursive" in again["description"]
    json.dumps(params)  # finite, plain JSON


def test_exponential_refs_stay_within_the_node_budget() -> None:
    schemas: dict[str, Any] = {"L0": {"type": "string"}}
    for level in range(1, 40):  # each level uses the one below twice: 2**39 nodes unbounded
        below = {"$ref": f"#/components/schemas/L{level - 1}"}
        schemas[f"L{level}"] = {"type": "object", "properties": {"a": below, "b": below}}
    document = {"components": {"schemas": schemas}}
    schema, left = to_json_schema({"$ref": "#/components/schemas/L39"}, RefResolver(document))
    assert left < 0 and len(json.dumps(schema)) < 500_000


def test_tool_names_are_sanitised_unique_and_short() -> None:
    spec = copy.deepcopy(SPEC)
    spec["paths"] = {
        "/a": {"get": {"operationId": "dup"}, "post": {"operationId": "dup"}},
        "/b/{x}": {
            "parameters": [{"name": "x", "in": "path", "required": True}],
            "delete": {},  # no operationId: named from method and path
        },
        "/c": {"get": {"operationId": "ü" * 10 + "x" * 100}},
    }
    names = list(tools_of(spec))
    assert names[:3] == ["demo_dup", "demo_dup_2", "demo_delete_b_x"]
    assert len(names[3]) == 64 and names[3].startswith("demo_x")


def test_include_and_exclude_select_operations() -> None:
    assert list(tools_of(SPEC, include=["*Item*"], exclude=["createItem"])) == ["demo_getItem"]
    assert list(tools_of(SPEC, include=["POST /items"])) == ["demo_createItem"]


def test_service_description_is_told_with_every_tool() -> None:
    tool = tools_of(SPEC, description_for_model="Our shop.")["demo_huge"].tool
    assert tool.description == "GET /huge\n\n(Service demo: Our shop.)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"openapi": "2.0"}, "must be a 3.x version"),
        ({"swagger": "2.0"}, "Swagger 2.0"),
        ({"paths": []}, "'paths' must be an object"),
        ({"paths": {"items": {}}}, "starts with '/'"),
        ({"paths": {"/a/{id}": {"get": {}}}}, "do not match the template"),
        ({"paths": {"/a": {"get": {"parameters": [{"in": "query"}]}}}}, "needs a 'name'"),
        (
            {"paths": {"/a": {"get": {"parameters": [{"$ref": "other.yaml#/P"}]}}}},
            "outside the document",
        ),
        ({"paths": {"/a": {"get": {"parameters": [{"$ref": "#/nope"}]}}}}, "points at nothing"),
    ],
)
def test_malformed_documents_are_refused_with_the_place(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_document(json.dumps({**SPEC, **change}), "doc.json")


def test_yaml_documents_and_server_urls(tmp_path: Path) -> None:
    # PyYAML is in the test extra: without it this fails, as it must in CI.
    path = tmp_path / "api.yaml"
    path.write_text(
        "openapi: 3.1.0\ninfo: {title: T, version: '1'}\n"
        "servers: [{url: 'https://{host}/v1', variables: {host: {default: api.example.com}}}]\n"
        "paths:\n  /ping:\n    get: {operationId: ping}\n",
        encoding="utf-8",
    )
    document = read_document(path)
    assert document.server_url() == "https://api.example.com/v1"
    assert document.server_url("https://other.example.com/") == "https://other.example.com"
    relative = parse_document(json.dumps(SPEC), "local.json")
    with pytest.raises(ConfigError, match="set base_url"):
        relative.server_url()


async def test_a_document_at_a_url_is_fetched_through_the_guard(api: DemoAPI) -> None:
    policy = NetworkPolicy(ports={api.port}, allow_hosts=["127.0.0.1"])
    document = await fetch_document(f"{api.url}/openapi.json", policy)
    assert document.server_url() == f"{api.url}/api"  # relative server, joined with the URL
    with pytest.raises(NetworkBlocked, match="loopback"):
        await fetch_document(f"{api.url}/openapi.json", NetworkPolicy(ports={api.port}))


async def test_toolset_loads_a_url_document_on_first_listing(api: DemoAPI, ctx: Context) -> None:
    manifest = Manifest(name="shop", allow_hosts=["127.0.0.1"], allow_ports=[api.port])
    toolset = OpenAPIToolset(manifest, spec_url=f"{api.url}/openapi.json")
    assert toolset.operations == []
    names = [tool.name for tool in await toolset.list_tools(ctx)]
    assert names[0] == "shop_getItem" and toolset.base_url == f"{api.url}/api"
    result = await toolset.call_tool("shop_getItem", {"item_id": "7"}, ctx)
    assert json.loads(result)["id"] == "7"


async def test_an_unreachable_document_means_no_tools_not_a_broken_turn(
    api: DemoAPI, ctx: Context
) -> None:
    toolset = OpenAPIToolset(Manifest(name="shop"), spec_url=f"{api.url}/openapi.json")
    assert await toolset.list_tools(ctx) == []  # loopback is not allowed for it
    [record] = await ctx.store.list_audit(None, 10)  # type: ignore[union-attr]
    assert record.action == "network.blocked" and json.loads(record.details)["service"] == "shop"
