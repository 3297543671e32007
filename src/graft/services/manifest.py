"""The manifest of an OpenAPI service, and ``[services.NAME]`` in the settings.

A service is an OpenAPI 3.x document (what the API can do) plus a small manifest, in the
style of a ChatGPT plugin's ``ai-plugin.json`` (how graft may use it): the name its tools are
prefixed with, a description for the model, how to authenticate, and the limits an admin sets
for it: the intranet hosts and ports it may reach (``allow_hosts``, ``allow_ports``, given to
``graft.netguard``), timeouts, how much of an answer is read and shown, and which operations
become tools.

Secrets (a bearer token, an API key, an OAuth2 client secret) are *references*:
``{ "$env" = "NAME" }`` or ``{ "$file" = "path" }`` (``graft.secrets``). A manifest file is
refused when it holds one as plain text; the settings file's references are resolved by
``graft.config`` when the settings load. Either way they become ``SecretStr`` and are
registered for masking, so no log, repr or dump shows them.

```toml
[services.weather]
spec = "https://weather.corp/openapi.json"   # or a file path
description_for_model = "Forecasts for our sites."
auth = { type = "api_key", in = "header", name = "X-API-Key", key = { "$env" = "WEATHER_KEY" } }
allow_hosts = ["weather.corp"]               # intranet: the guard allows it for this service
exclude = ["delete*"]                        # operationIds or "METHOD /path" patterns
```

This module imports nothing of graft's settings, so ``graft.config`` may import it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from graft.errors import ConfigError
from graft.netguard import AllowHosts
from graft.secrets import is_reference, register_secret, resolve_references

__all__ = [
    "NAME_PATTERN",
    "ApiKeyAuth",
    "BearerAuth",
    "Manifest",
    "NoAuth",
    "OAuth2ClientCredentials",
    "ServiceAuth",
    "ServiceOptions",
    "ServiceSettings",
    "load_manifest",
    "service_manifest",
]

NAME_PATTERN: Final = r"^[A-Za-z0-9_-]{1,32}$"
"""A service name prefixes its tools' names and leaves room within the 64 characters."""
_SECRET_FIELDS: Final = ("token", "key", "client_secret")
_CHATGPT_DISPLAY_KEYS: Final = frozenset(
    {
        "schema_version",
        "name_for_human",
        "description_for_human",
        "logo_url",
        "contact_email",
        "legal_info_url",
        "api",
    }
)
"""Keys of a ChatGPT ``ai-plugin.json`` that say nothing graft uses; read and dropped."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _registered(secret: SecretStr) -> SecretStr:
    register_secret(secret.get_secret_value())
    return secret


class NoAuth(_Strict):
    """Calls carry no credentials."""

    type: Literal["none"] = "none"


class BearerAuth(_Strict):
    """``Authorization: Bearer <token>`` on every call."""

    type: Literal["bearer"]
    token: SecretStr = Field(repr=False)

    _register = field_validator("token")(_registered)


class ApiKeyAuth(_Strict):
    """An API key in a header or in the query string."""

    type: Literal["api_key"]
    in_: Literal["header", "query"] = Field(default="header", alias="in")
    name: str = Field(default="X-API-Key", min_length=1, max_length=128)
    key: SecretStr = Field(repr=False)

    _register = field_validator("key")(_registered)


class OAuth2ClientCredentials(_Strict):
    """OAuth2 client credentials: a token from ``token_url``, cached until it expires."""

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = Field(repr=False)
    scope: str | None = None
    client_auth: Literal["basic", "body"] = Field(
        default="basic",
        description="How the client authenticates at the token endpoint: HTTP Basic (the "
        "RFC 6749 default) or `client_id`/`client_secret` in the form body.",
    )

    _register = field_validator("client_secret")(_registered)

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value, "token_url")


ServiceAuth = Annotated[
    NoAuth | BearerAuth | ApiKeyAuth | OAuth2ClientCredentials, Field(discriminator="type")
]


def _check_http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{what} {value!r} must be an http(s) URL without query or fragment")
    return value


class ServiceOptions(_Strict):
    """What a manifest and a ``[services.NAME]`` table both may say."""

    description_for_model: str = Field(
        default="", max_length=2000, description="What the service is for, told to the model."
    )
    auth: ServiceAuth = Field(default_factory=NoAuth)
    base_url: str | None = Field(
        default=None, description="Server URL; overrides the document's `servers`."
    )
    allow_hosts: AllowHosts = Field(
        default_factory=list,
        description="Private hosts or CIDRs this service may reach (the network guard's "
        "`allow_hosts`, for this service only).",
    )
    allow_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list, description="Ports this service may reach besides 80 and 443."
    )
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds for a whole call, retries included."
    )
    max_response_bytes: int = Field(
        default=2 * 1024 * 1024,
        gt=0,
        le=256 * 1024 * 1024,
        description="Most bytes of an answer read, counted after decompression.",
    )
    max_result_chars: int = Field(
        default=16_000, gt=0, description="Most characters of an answer shown to the model."
    )
    retries: int = Field(
        default=2, ge=0, le=5, description="Retries of idempotent calls on 502/503/504."
    )
    include: list[str] = Field(
        default_factory=list,
        description="Operations to offer (operationId or `METHOD /path`, glob patterns); "
        "empty: all.",
    )
    exclude: list[str] = Field(default_factory=list, description="Operations never offered.")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value, "base_url").rstrip("/")


class Manifest(ServiceOptions):
    """A service's manifest: its name and everything ``ServiceOptions`` holds."""

    name: str = Field(pattern=NAME_PATTERN, description="Prefix of the service's tool names.")


class ServiceSettings(ServiceOptions):
    """``[services.NAME]``: a document, an optional manifest file, and options over it.

    Options set here win over the manifest file's, key by key; the table's key is the name.
    Relative paths are taken from the working folder.
    """

    spec: str = Field(min_length=1, description="The OpenAPI document: a file path or a URL.")
    manifest: Path | None = Field(default=None, description="A manifest file (JSON or TOML).")


def _chatgpt_style(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the display keys of ``ai-plugin.json`` dropped, ``name_for_model`` read."""
    out = {key: value for key, value in data.items() if key not in _CHATGPT_DISPLAY_KEYS}
    if "name_for_model" in out:
        out.setdefault("name", out.pop("name_for_model"))
    return out


def _validation_problem(exc: ValidationError, where: str) -> ConfigError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'manifest'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )
    return ConfigError(f"{where}: {problems}")


def _read_table(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the manifest {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"the manifest {str(path)!r} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the manifest {str(path)!r} is not a table")
    return data


def load_manifest(
    path: Path, *, name: str | None = None, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read a manifest file (``.toml``, else JSON), its secret references resolved.

    ``name`` wins over the file's; a relative ``$file`` is taken from the file's folder, and
    ``$env`` from ``environ`` (default: this process's environment).

    Raises:
        ConfigError: The file is unreadable or invalid, or holds a secret as plain text.
    """
    data = _chatgpt_style(_read_table(path))
    auth = data.get("auth")
    if isinstance(auth, Mapping):
        for field in _SECRET_FIELDS:
            if field in auth and not is_reference(auth[field]):
                raise ConfigError(
                    f"{path}: auth.{field}: secrets do not belong in the manifest; reference "
                    f'it instead ({field} = {{ "$env" = "VARIABLE" }} or {{ "$file" = "path" }})'
                )
    data = resolve_references(
        data,
        setting=str(path),
        base_dir=path.absolute().parent,
        environ=os.environ if environ is None else environ,
    )
    if name is not None:
        data["name"] = name
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise _validation_problem(exc, str(path)) from None


def service_manifest(
    name: str, service: ServiceSettings, *, environ: Mapping[str, str] | None = None
) -> Manifest:
    """The manifest of ``[services.NAME]``: its manifest file with the table's options on top."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"services.{name}: a service name must match {NAME_PATTERN}")
    values: dict[str, Any] = {}
    if service.manifest is not None:
        found = load_manifest(service.manifest, name=name, environ=environ)
        values = {key: getattr(found, key) for key in found.model_fields_set}
    own = service.model_fields_set - {"spec", "manifest"}
    values.update({key: getattr(service, key) for key in own})
    try:
        return Manifest.model_validate({**values, "name": name})
    except ValidationError as exc:
        raise _validation_problem(exc, f"services.{name}") from None
