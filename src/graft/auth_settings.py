"""Who may come in and what they may use: the ``[auth]`` and ``[access]`` settings.

``AuthSettings`` holds API keys (as digests), the single-user defaults, browser sessions and
OpenID Connect; ``AccessSettings`` the access rules per tool, collection and data source,
which ``graft.policy`` applies. They are part of ``graft.config.Settings`` (and importable
from ``graft.config``), kept here so that module stays one screenful per concern.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["AccessRule", "AccessSettings", "ApiKeySettings", "AuthSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccessRule(_Strict):
    """Who may use one tool, collection or data source (``graft.policy`` applies it).

    A principal passes when it is listed by user name, by one of its groups or by one of its
    roles (admins always), and, when ``tenants`` is set, belongs to one of those tenants (that
    holds for admins too). A rule that lists no user, group or role lets every principal of
    its tenants in.
    """

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    tenants: list[str] = Field(default_factory=list)


class AccessSettings(_Strict):
    """Access rules by kind and name; a thing without a rule is open to every principal."""

    tools: dict[str, AccessRule] = Field(default_factory=dict)
    collections: dict[str, AccessRule] = Field(default_factory=dict)
    data_sources: dict[str, AccessRule] = Field(default_factory=dict)


class ApiKeySettings(_Strict):
    """One API key, stored as its SHA-256 hex digest (``graft keys new`` prints an entry)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    user: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    tenant: str = "default"


class AuthSettings(_Strict):
    """Authentication. With no keys graft runs single-user: every request is ``local``."""

    api_keys: list[ApiKeySettings] = Field(default_factory=list)
    default_user: str = "local"
    default_roles: list[str] = Field(default_factory=lambda: ["admin"])
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 366,
        description="How long a browser session (POST /v1/auth/session) lasts, in hours.",
    )
    secure_cookies: bool = Field(
        default=False,
        description="Mark session cookies Secure even on plain HTTP requests (graft behind a "
        "TLS proxy that does not send X-Forwarded-Proto); HTTPS requests always get Secure.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL (`https://login.example.com/realms/acme`): "
        "browsers may sign in there (`/v1/auth/oidc/login`); unset: OIDC is off.",
    )
    oidc_client_id: str = Field(default="", description="graft's client id at the issuer.")
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        repr=False,
        description="The client secret; in the settings file only as a reference: "
        '`{ "$env" = "NAME" }` or `{ "$file" = "path" }`. Unset: a public client (PKCE only).',
    )
    oidc_scopes: str = Field(default="openid email profile", description="Scopes asked for.")
    oidc_user_claim: str = Field(
        default="preferred_username",
        description="The ID-token claim that names the graft user; `sub` when it is absent.",
    )
    oidc_groups_claim: str = Field(
        default="groups", description="The claim whose list becomes a created user's groups."
    )
    oidc_create_users: bool = Field(
        default=False,
        description="Create an unknown user (role `user`) at first sign-in; otherwise only "
        "existing users may sign in.",
    )
    oidc_tenant: str = Field(default="default", description="The tenant of OIDC users.")

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"{value!r} is not an issuer URL such as https://login.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _oidc_needs_a_client_id(self) -> AuthSettings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("oidc_issuer needs oidc_client_id")
        return self
