"""``/v1/assistants``: builders create their tenant's assistants over REST ("custom GPTs").

An assistant binds a system prompt, a model, document collections, data sources and tools
under a name; once stored, that name works as the ``model`` of a chat request for the
tenant's users whom its ``roles``, ``users`` and ``groups`` let in (``graft.assistants``).

Everyone lists and reads the assistants they may use, the configured ones included; a
``builder`` or ``admin`` also sees every stored assistant of their tenant, with its whole
definition. Only they may create, replace (``PUT``) and delete one, and only in their own
tenant: another tenant's assistant answers 404, as if it did not exist. A configured
assistant's definition is never shown (its plugin settings may hold secrets): the settings
file is where it is read and changed. Every change is recorded in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from graft.assistants import NAME_PATTERN, AssistantEntry, may_manage, not_found
from graft.config import AssistantSettings
from graft.context import Principal
from graft.runtime import Graft
from graft.server.body import json_body, parse_json_body
from graft.server.deps import CurrentGraft, CurrentPrincipal

__all__ = ["AssistantBody", "AssistantObject", "router"]

router = APIRouter(prefix="/v1/assistants", tags=["assistants"])

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_FORBIDDEN = {"description": "Not a builder or an admin", "content": _ERROR}
_IN_SETTINGS = {"description": "The settings file uses the name", "content": _ERROR}

AnyName = Annotated[str, Path(min_length=1, max_length=255, description="The assistant's name.")]
NewName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="Its name: what a chat request's `model` field will say.",
    ),
]


class AssistantBody(AssistantSettings):
    """``PUT /v1/assistants/{name}``: the assistant's settings, as in ``[assistants.NAME]``.

    Fields left out take their defaults; ``retention_days`` and secret references in
    ``plugins`` are for the settings file only. JSON types are taken as they are (``false``
    is no temperature, ``"5"`` no number), as the schema says.
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class AssistantObject(BaseModel):
    """An assistant as the API shows it."""

    object: Literal["assistant"] = "assistant"
    id: str = Field(description="Its name: the `model` of a chat request.")
    source: Literal["config", "stored"] = Field(
        description="`config`: the settings file's; `stored`: made at run time, the tenant's."
    )
    description: str
    model: str = Field(description="The model it uses (`provider:name`).")
    definition: AssistantSettings | None = Field(
        description="Its settings, for a builder or admin of its tenant; null for a "
        "configured assistant and for anyone else."
    )


class AssistantList(BaseModel):
    """``GET /v1/assistants``."""

    object: Literal["list"] = "list"
    data: list[AssistantObject]


class AssistantDeleted(BaseModel):
    """``DELETE /v1/assistants/{name}``."""

    object: Literal["assistant.deleted"] = "assistant.deleted"
    id: str
    deleted: bool


def _object(graft: Graft, principal: Principal, entry: AssistantEntry) -> AssistantObject:
    settings = entry.settings
    shown = entry.source == "stored" and may_manage(principal)
    return AssistantObject(
        id=entry.name,
        source=entry.source,
        description=settings.description,
        model=settings.model or graft.settings.model,
        definition=settings if shown else None,
    )


@router.get("", summary="List the assistants you may use (a builder: and the tenant's)")
async def list_assistants(graft: CurrentGraft, principal: CurrentPrincipal) -> AssistantList:
    """The configured assistants you may use, then your tenant's stored ones."""
    entries = await graft.catalog.entries(principal, managed=True)
    return AssistantList(data=[_object(graft, principal, entry) for entry in entries])


@router.get("/{name}", summary="Read an assistant")
async def get_assistant(
    name: AnyName, graft: CurrentGraft, principal: CurrentPrincipal
) -> AssistantObject:
    """One assistant you may use, or (a builder, an admin) one of your tenant's."""
    entry = await graft.catalog.find(name, principal)
    if entry is None:
        raise not_found(name)
    return _object(graft, principal, entry)


@router.put(
    "/{name}",
    summary="Create or replace an assistant of your tenant (builders and admins)",
    # The body is parsed by the route itself, after the role check; this documents it.
    openapi_extra={"requestBody": json_body(AssistantBody)},
    responses={
        201: {"model": AssistantObject, "description": "Created"},
        403: _FORBIDDEN,
        409: _IN_SETTINGS,
    },
)
async def put_assistant(
    name: NewName,
    request: Request,
    response: Response,
    graft: CurrentGraft,
    principal: CurrentPrincipal,
) -> AssistantObject:
    """Store the assistant ``name`` for your tenant: 201 when new, 200 when replaced.

    The definition is checked first: its fields, model, middleware, data sources, tools,
    and your right to use its collections and sources (400 or 403 naming the field).
    """
    await graft.catalog.require_manager(principal, name)
    body = await parse_json_body(
        request, AssistantBody, max_depth=graft.settings.limits.max_json_depth
    )
    change = await graft.catalog.put(name, body.model_dump(exclude_unset=True), principal)
    if change.created:
        response.status_code = 201
    settings = AssistantSettings.model_validate(change.definition)
    return _object(graft, principal, AssistantEntry(name, "stored", settings, change.definition))


@router.delete(
    "/{name}",
    summary="Delete an assistant of your tenant (builders and admins)",
    responses={403: _FORBIDDEN, 409: _IN_SETTINGS},
)
async def delete_assistant(
    name: AnyName, graft: CurrentGraft, principal: CurrentPrincipal
) -> AssistantDeleted:
    """Delete one of your tenant's stored assistants; conversations with it stay."""
    await graft.catalog.delete(name, principal)
    return AssistantDeleted(id=name, deleted=True)
