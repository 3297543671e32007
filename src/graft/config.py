"""One typed settings tree, read once at the edge (CLI or server factory) and passed down.

Sources, later ones winning: built-in defaults, a TOML file (``--config``, ``GRAFT_CONFIG``
or ``./graft.toml``), then environment variables prefixed ``GRAFT_`` with ``__`` for nesting
(``GRAFT_LIMITS__MAX_STEPS=4``). No other module reads ``os.environ``.

Secrets never sit in the file. A provider names the environment variable that holds its key
(``api_key_env``), or its ``api_key`` is a reference: ``{"$env": "NAME"}`` or
``{"$file": "path"}`` (``graft.secrets``). ``database_url`` and any value inside a
``[plugins.NAME]`` table may be a reference too. References are resolved here, once: a
relative ``$file`` path from the settings file's folder, or from ``home`` for references that
come from ``GRAFT_*`` variables or keyword overrides. Keys become ``SecretStr``, which no log
or dump prints (plugin values stay ``str``, as plugins expect); every secret is registered
with ``graft.secrets`` so that logs and error messages show it masked (``sk-…abcd``).

A model id is ``provider:name``: ``local:smollm2``, ``openai:gpt-4o-mini``,
``deepseek:deepseek-chat``, ``vllm:Qwen/Qwen2.5-7B-Instruct``. The presets below make one
setting (``GRAFT_MODEL``) enough to switch to a hosted or self-hosted model.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from graft.auth_settings import AccessRule, AccessSettings, ApiKeySettings, AuthSettings
from graft.crypto import is_sealed
from graft.embedding_settings import EmbeddingsSettings
from graft.errors import ConfigError
from graft.mcp_bridge.settings import MCPServerSettings
from graft.model_settings import CanarySettings, ModelsSettings, resolve_model_id
from graft.netguard import AllowHosts, NetworkSettings
from graft.secrets import is_reference, register_secret, resolve_reference, resolve_references
from graft.services.manifest import ServiceSettings
from graft.sources.settings import NAME_PATTERN as SOURCE_NAME_PATTERN
from graft.sources.settings import SourceSettings, url_password
from graft.telemetry_settings import TelemetrySettings
from graft.voice_settings import VoiceSettings

__all__ = [
    "DEFAULT_ASSISTANT",
    "PROVIDER_PRESETS",
    "AccessRule",
    "AccessSettings",
    "ApiKeySettings",
    "AssistantSettings",
    "AuthSettings",
    "EvalsSettings",
    "KnowledgeSettings",
    "LimitsSettings",
    "ProviderSettings",
    "Settings",
    "load_settings",
    "setting_value",
    "split_model_id",
]

DEFAULT_ASSISTANT = "default"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and accurately."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSettings(_Strict):
    """An OpenAI-compatible endpoint. Unset fields fall back to the preset of the same name."""

    base_url: str | None = None
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable that holds the API key."
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description='The key; in the settings file only as a reference: `{ "$env" = "NAME" }` '
        'or `{ "$file" = "path" }`. Wins over `api_key_env`.',
    )
    api_key_required: bool = Field(
        default=True, description="Refuse to call without a key when `api_key_env` is set."
    )
    timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for any byte.")
    connect_timeout: float = Field(default=10.0, gt=0)
    max_connections: int = Field(
        default=256,
        gt=0,
        description="Connections open to this provider at once, per worker; a request beyond "
        "them waits up to `connect_timeout` for a free one. A stream holds one until it ends.",
    )
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries before the first byte.")
    retry_delay: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="Seconds before the first retry, doubled for each next one (with jitter); "
        "an upstream's `Retry-After` wins.",
    )
    allow_hosts: AllowHosts = Field(
        default_factory=list,
        description="Intranet host names (`*.corp`) or CIDRs this provider's `base_url` may "
        "resolve to (graft.models.guard); a `base_url` written as an IP address or "
        "`localhost` needs none.",
    )


PROVIDER_PRESETS: dict[str, ProviderSettings] = {
    "openai": ProviderSettings(base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"),
    "deepseek": ProviderSettings(
        base_url="https://api.deepseek.com/v1", api_key_env="DEEPSEEK_API_KEY"
    ),
    "dashscope": ProviderSettings(
        base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
        api_key_env="DASHSCOPE_API_KEY",
    ),
    # vLLM serves without a key unless started with --api-key; send one when it is set.
    "vllm": ProviderSettings(
        base_url="http://127.0.0.1:8000/v1", api_key_env="VLLM_API_KEY", api_key_required=False
    ),
    "ollama": ProviderSettings(base_url="http://127.0.0.1:11434/v1"),
}


class AssistantSettings(_Strict):
    """A named assistant: what a request's ``model`` field selects."""

    description: str = ""
    model: str | None = Field(
        default=None, description="Model id or alias (`[models.aliases]`); defaults to `model`."
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="This assistant's own model aliases (alias → model id or alias), over "
        "`[models.aliases]` (graft.model_settings).",
    )
    canary: CanarySettings | None = Field(
        default=None,
        description="A candidate model for a share of its conversations (graft.model_routing).",
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Model ids or aliases tried in order when its model fails before its "
        "first chunk, after that model's own retries (graft.model_routing).",
    )
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    tools: list[str] | None = Field(
        default=None, description="Tool names the assistant may call; None means every tool."
    )
    middleware: list[str] = Field(default_factory=list)
    roles: list[str] = Field(
        default_factory=list,
        description="Roles allowed to use it. With `users` and `groups` empty too, everyone.",
    )
    users: list[str] = Field(default_factory=list, description="Users allowed to use it.")
    groups: list[str] = Field(default_factory=list, description="Groups allowed to use it.")
    tenants: list[str] = Field(
        default_factory=list, description="If set, only users of these tenants may use it."
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Delete its conversations this many days after their last turn "
        "(`graft.retention`); None keeps them.",
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Plugin settings for this assistant only, over the global `[plugins.NAME]`.",
    )
    tools_shown: int | None = Field(
        default=None,
        ge=1,
        description="Tools the model sees per turn, chosen by retrieval over their "
        "descriptions (graft.tools.select); None: all up to 20, the 10 best above.",
    )
    pinned_tools: list[str] = Field(
        default_factory=list, description="Tools always shown, whatever the retrieval says."
    )
    sources: list[str] | None = Field(
        default=None,
        description="Data sources (`[sources.NAME]`) its SQL tools may query; None: every one.",
    )
    collections: list[str] = Field(
        default_factory=list,
        description="Document collections its `search_knowledge` tool searches (none: no tool).",
    )
    retrieval: Literal["tool", "always"] = Field(
        default="tool",
        description="With `collections`: `tool` lets the model search when it needs to; "
        "`always` also gives it the best passages for every user message.",
    )


class LimitsSettings(_Strict):
    """Bounds that protect the server from oversized or runaway work."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_messages: int = Field(default=1000, gt=0)
    max_steps: int = Field(default=8, gt=0, le=100, description="Model calls per turn.")
    max_parallel_tools: int = Field(default=8, gt=0)
    tool_timeout: float = Field(default=30.0, gt=0)
    max_repeated_calls: int = Field(
        default=2, ge=1, description="Identical tool calls allowed per turn before refusing."
    )
    max_tool_output_chars: int = Field(default=20_000, gt=0)
    approval_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a tool call waits for the user's approval before it is denied.",
    )
    requests_per_minute: int = Field(
        default=600, ge=0, description="Requests per user and minute (burst included); 0: off."
    )
    requests_per_minute_per_key: int = Field(
        default=0, ge=0, description="Requests per API key and minute, within the user's; 0: off."
    )
    tokens_per_day: int = Field(
        default=0, ge=0, description="Tokens per user and UTC day before turns are refused; 0: off."
    )
    max_streams_per_user: int = Field(
        default=8, ge=0, description="Streamed answers one user may have open at once; 0: off."
    )
    max_json_depth: int = Field(
        default=32, gt=0, description="Deepest nesting of arrays and objects in a JSON body."
    )
    redis_url: str | None = Field(
        default=None,
        repr=False,  # a URL may hold a password
        description="Redis shared by every worker for the counters above; unset: per process.",
    )
    worker_heartbeat: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between a worker's heartbeats in the store (graft.heartbeat).",
    )
    worker_timeout: float = Field(
        default=30.0,
        gt=0,
        description="A worker silent this long is dead: its running turns become "
        "`interrupted` (graft.heartbeat).",
    )

    @model_validator(mode="after")
    def _timeout_outlasts_heartbeats(self) -> LimitsSettings:
        """A live worker must never look dead: a few heartbeats fit in its timeout."""
        if self.worker_timeout <= 2 * self.worker_heartbeat:
            raise ValueError(
                f"limits.worker_timeout ({self.worker_timeout:g} s) must be more than twice "
                f"limits.worker_heartbeat ({self.worker_heartbeat:g} s)"
            )
        return self


class KnowledgeSettings(_Strict):
    """Document knowledge (``graft.knowledge``): what the HTTP API accepts."""

    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024,
        gt=0,
        description="Largest request body of a document upload "
        "(`POST /v1/knowledge/collections/{collection}/documents`), over `limits.max_body_bytes`"
        "; also the largest file in it.",
    )


class EvalsSettings(_Strict):
    """Eval suites (``graft eval``, ``graft.evals``): the judge model and the regression gate."""

    judge: str | None = Field(
        default=None,
        description="Model id (`openai:gpt-4o-mini`) that grades `judge:` checks when a suite "
        "names none; unset: a suite with `judge:` checks must name its own.",
    )
    threshold: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Pass-rate drop (0.05: five points) that fails `graft eval compare` when "
        "neither the command nor the suite sets one.",
    )

    @field_validator("judge")
    @classmethod
    def _judge_has_provider(cls, value: str | None) -> str | None:
        if value is not None:
            split_model_id(value)
        return value


@functools.cache
def _implicit_default() -> AssistantSettings:
    """The ``default`` assistant when none is configured, made once (every turn asks)."""
    return AssistantSettings()


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "graft"


class Settings(BaseSettings):
    """The whole configuration of one graft process."""

    model_config = SettingsConfigDict(
        env_prefix="GRAFT_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(default_factory=_default_home, description="Folder for graft's data.")
    database_url: str | None = Field(
        default=None,
        repr=False,  # a URL may hold a password
        description="SQLAlchemy URL; defaults to a SQLite file in `home`. May be a secret "
        "reference, for a URL with a password.",
    )
    model: str = Field(default="local:smollm2", description="Model of the default assistant.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ssl_certfile: Path | None = Field(
        default=None, description="PEM certificate (chain): `graft serve` speaks HTTPS."
    )
    ssl_keyfile: Path | None = Field(default=None, description="PEM private key of the cert.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (`https://app.example.com`) whose pages may call the API; "
        "none by default, so browsers refuse cross-origin calls.",
    )
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    assistants: dict[str, AssistantSettings] = Field(default_factory=dict)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    embeddings: EmbeddingsSettings = Field(
        default_factory=EmbeddingsSettings,
        description="The model that turns text into vectors for search (`graft.embeddings`).",
    )
    mcp_servers: dict[str, MCPServerSettings] = Field(default_factory=dict, repr=False)
    models: ModelsSettings = Field(
        default_factory=ModelsSettings,
        description="Model aliases shared by the assistants (`graft.model_settings`).",
    )
    access: AccessSettings = Field(default_factory=AccessSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    voice: VoiceSettings = Field(
        default_factory=VoiceSettings,
        description="Voice calls: turn-taking, greeting, WebRTC, speech engines (`graft.voice`).",
    )
    evals: EvalsSettings = Field(
        default_factory=EvalsSettings,
        description="Eval suites: the judge model and the regression gate (`graft.evals`).",
    )
    knowledge: KnowledgeSettings = Field(
        default_factory=KnowledgeSettings,
        description="Document knowledge: uploads over HTTP (`graft.server.uploads`).",
    )
    telemetry: TelemetrySettings = Field(
        default_factory=TelemetrySettings,
        description="OpenTelemetry traces (off by default) and the log format (`graft.telemetry`).",
    )
    link_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (and their subdomains) that answers may link to or load images "
        "from; links and images to any other host are neutralised.",
    )
    services: dict[str, ServiceSettings] = Field(
        default_factory=dict,
        description="OpenAPI services whose operations become tools (`graft.services`).",
    )
    sources: dict[
        Annotated[str, StringConstraints(pattern=SOURCE_NAME_PATTERN)], SourceSettings
    ] = Field(
        default_factory=dict,
        repr=False,
        description="Databases the SQL tools may query (`graft.sources`).",
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        repr=False,  # may hold resolved secrets, which stay plain strings
        description="Per-plugin settings, read with `plugin_config`; any value may be a "
        "secret reference, resolved to a plain string.",
    )
    local_model_path: Path | None = Field(
        default=None, description="A GGUF file for `local:` models; defaults to SmolLM2."
    )
    encrypt_at_rest: bool = Field(
        default=True,
        description="Encrypt message contents, titles, tool arguments and results in the "
        "database with the data key (AES-256-GCM, graft.crypto).",
    )
    data_key_file: Path | None = Field(
        default=None,
        description="The data key file, mode 0600; defaults to `data.key` in `home`, made "
        "on first start. Not read while `GRAFT_DATA_KEY` is set.",
    )
    data_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Data keys from `GRAFT_DATA_KEY` only (base64url, newest first, "
        "comma-separated); wins over the key file.",
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_secret_references(cls, data: Any) -> Any:
        """Resolve references that reach the model unresolved: from ``GRAFT_*`` or overrides.

        ``load_settings`` resolved the file's own already, from the file's folder; these
        relative ``$file`` paths start from ``home``.
        """
        if not isinstance(data, dict):
            return data
        home = data.get("home")
        base_dir = Path(home) if isinstance(home, str | Path) else _default_home()
        return _resolve_references(data, base_dir, os.environ)

    @model_validator(mode="after")
    def _models_resolve(self) -> Settings:
        """Every model an assistant names is a model id or a known alias (no loops)."""
        aliases = self.models.aliases
        wanted: list[tuple[str, str | None, dict[str, str] | None]] = [("model", self.model, None)]
        for name, assistant in self.assistants.items():
            canary = assistant.canary.model if assistant.canary else None
            wanted.append((f"assistants.{name}.model", assistant.model, assistant.models))
            wanted.append((f"assistants.{name}.canary.model", canary, assistant.models))
            for i, fallback in enumerate(assistant.fallbacks):
                wanted.append((f"assistants.{name}.fallbacks[{i}]", fallback, assistant.models))
        for where, model, own in wanted:
            if model is not None:
                try:
                    split_model_id(resolve_model_id(model, own, aliases))
                except (ConfigError, ValueError) as exc:
                    raise ValueError(f"{where}: {getattr(exc, 'message', exc)}") from None
        return self

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if origin == "*" or not (
                parts.scheme in ("http", "https")
                and parts.netloc
                and parts.path in ("", "/")
                and not (parts.query or parts.fragment)
            ):
                raise ValueError(
                    f"{origin!r} is not an origin such as https://app.example.com "
                    "(a scheme and a host, no path; '*' is not accepted)"
                )
        return [origin.rstrip("/") for origin in value]

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Settings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("HTTPS needs both ssl_certfile and ssl_keyfile")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: the environment wins over the file."""
        # The environment overrides the TOML file, which arrives as init kwargs.
        return (env_settings, init_settings)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to ``graft.db`` in ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'graft.db'}"

    @property
    def data_key_path(self) -> Path:
        """The data key file, defaulting to ``data.key`` in ``home``."""
        return self.data_key_file or self.home / "data.key"

    def assistant_names(self) -> list[str]:
        """Every assistant, the implicit default one included."""
        names = list(self.assistants)
        return names if DEFAULT_ASSISTANT in names else [DEFAULT_ASSISTANT, *names]

    def assistant(self, name: str) -> AssistantSettings | None:
        """Return the assistant called ``name``; ``default`` exists even when unconfigured."""
        found = self.assistants.get(name)
        if found is None and name == DEFAULT_ASSISTANT:
            return _implicit_default()
        return found

    def provider(self, name: str) -> ProviderSettings | None:
        """Return the configured provider merged over its preset, or None if unknown."""
        preset = PROVIDER_PRESETS.get(name)
        override = self.providers.get(name)
        if preset is None and override is None:
            return None
        if preset is None:
            assert override is not None
            return override
        if override is None:
            return preset
        update = override.model_dump(exclude_unset=True)
        if override.api_key is not None:  # excluded from dumps, so carried over by hand
            update["api_key"] = override.api_key
        return preset.model_copy(update=update)

    def plugin_config(self, plugin: str) -> dict[str, Any]:
        """Settings of one plugin (``[plugins.NAME]`` in the TOML file)."""
        return dict(self.plugins.get(plugin, {}))


def setting_value(value: Any) -> Any:
    """A free-form plugin setting as its type: environment variables arrive as text.

    ``GRAFT_PLUGINS__X__TIMEOUT=5`` gives ``"5"``; text that is JSON (numbers, booleans,
    lists) is read as JSON, anything else stays the text it is.
    """
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def split_model_id(model_id: str) -> tuple[str, str]:
    """Split ``provider:name`` at the first colon (``ollama:qwen2.5:7b`` keeps its tag)."""
    provider, sep, name = model_id.partition(":")
    if not sep or not provider or not name:
        raise ValueError(
            f"model id {model_id!r} must look like 'provider:name', e.g. 'openai:gpt-4o-mini'"
        )
    return provider, name


def _resolve_references(
    data: dict[str, Any], base_dir: Path, environ: Mapping[str, str]
) -> dict[str, Any]:
    """``data`` with its secret references resolved (see ``graft.secrets``).

    Provider keys become ``SecretStr``; ``database_url`` and plugin values plain strings.
    """

    def resolve(reference: Mapping[str, Any], setting: str) -> str:
        return resolve_reference(reference, setting=setting, base_dir=base_dir, environ=environ)

    resolved = dict(data)
    providers = data.get("providers")
    if isinstance(providers, Mapping):
        resolved["providers"] = {
            name: (
                {**provider, "api_key": SecretStr(resolve(key, f"providers.{name}.api_key"))}
                if isinstance(provider, Mapping) and is_reference(key := provider.get("api_key"))
                else provider
            )
            for name, provider in providers.items()
        }
    auth = data.get("auth")
    if isinstance(auth, Mapping) and is_reference(secret := auth.get("oidc_client_secret")):
        resolved["auth"] = {
            **auth,
            "oidc_client_secret": SecretStr(resolve(secret, "auth.oidc_client_secret")),
        }
    if is_reference(url := data.get("database_url")):
        resolved["database_url"] = resolve(url, "database_url")
    if isinstance(plugins := data.get("plugins"), Mapping):
        resolved["plugins"] = resolve_references(
            plugins, setting="plugins", base_dir=base_dir, environ=environ
        )
    if isinstance(services := data.get("services"), Mapping):
        resolved["services"] = resolve_references(
            services, setting="services", base_dir=base_dir, environ=environ
        )
    if isinstance(servers := data.get("mcp_servers"), Mapping):
        resolved["mcp_servers"] = resolve_references(
            servers, setting="mcp_servers", base_dir=base_dir, environ=environ
        )
    if isinstance(sources := data.get("sources"), Mapping):
        resolved["sources"] = resolve_references(
            sources, setting="sources", base_dir=base_dir, environ=environ
        )
    if isinstance(assistants := data.get("assistants"), Mapping):
        # An assistant's own plugin settings may hold secrets too (a webhook's key).
        resolved["assistants"] = {
            name: {
                **assistant,
                "plugins": resolve_references(
                    assistant["plugins"],
                    setting=f"assistants.{name}.plugins",
                    base_dir=base_dir,
                    environ=environ,
                ),
            }
            if isinstance(assistant, Mapping) and isinstance(assistant.get("plugins"), Mapping)
            else assistant
            for name, assistant in assistants.items()
        }
    return resolved


def _resolve_secrets(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """Give each provider its key and register every secret the settings hold for masking.

    A provider's own ``api_key`` wins; without one, ``api_key_env`` names the variable read.
    """
    resolved: dict[str, ProviderSettings] = {}
    for name in {*PROVIDER_PRESETS, *settings.providers}:
        provider = settings.provider(name)
        if provider is None:
            continue
        key = provider.api_key
        if key is None and provider.api_key_env:
            value = environ.get(provider.api_key_env)
            key = SecretStr(value) if value else None
        if key is not None:
            register_secret(key.get_secret_value())
        resolved[name] = provider.model_copy(update={"api_key": key})
    settings.providers = resolved
    try:
        password = urlsplit(settings.database_url or "").password
    except ValueError:  # not a URL the store will accept either; it says so itself
        password = None
    if password:
        register_secret(password)
        register_secret(unquote(password))
    if settings.auth.oidc_client_secret is not None:
        register_secret(settings.auth.oidc_client_secret.get_secret_value())
    for source in settings.sources.values():
        # A sealed password is registered when it is opened (graft.sources.toolset).
        for secret in (source.password, url_password(source.url)):
            text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if text:
                register_secret(text)
                register_secret(unquote(text))
    if settings.data_key is not None:
        for data_key in settings.data_key.get_secret_value().split(","):
            register_secret(data_key.strip())
    return settings


def _refuse_plain_secrets(data: Mapping[str, Any]) -> None:
    """Refuse a settings file that holds a key, a secret or a password as plain text."""
    if "data_key" in data:
        raise ConfigError(
            "data_key: data keys do not belong in the settings file; set GRAFT_DATA_KEY "
            "or keep them in the key file (data_key_file)"
        )
    for name, provider in (data.get("providers") or {}).items():
        if (
            isinstance(provider, dict)
            and "api_key" in provider
            and not is_reference(provider["api_key"])
        ):
            raise ConfigError(
                f"providers.{name}.api_key: keys do not belong in the settings file; "
                'reference the key instead (api_key = { "$env" = "VARIABLE" } or '
                '{ "$file" = "path/to/key" }) or set api_key_env'
            )
    for name, source in (data.get("sources") or {}).items():
        if not isinstance(source, dict):
            continue
        if isinstance(source.get("url"), str) and url_password(source["url"]):
            raise ConfigError(
                f"sources.{name}.url: passwords do not belong in the settings file; "
                "`graft sources add` stores one encrypted, or reference it "
                '(password = { "$env" = "VARIABLE" })'
            )
        if isinstance(source.get("password"), str) and not is_sealed(source["password"]):
            raise ConfigError(
                f"sources.{name}.password: passwords do not belong in the settings file "
                'as text; reference it (password = { "$env" = "VARIABLE" }) or let '
                "`graft sources add` seal it with the data keys"
            )
    auth = data.get("auth")
    if (
        isinstance(auth, dict)
        and "oidc_client_secret" in auth
        and not is_reference(auth["oidc_client_secret"])
    ):
        raise ConfigError(
            "auth.oidc_client_secret: secrets do not belong in the settings file; reference "
            'it instead (oidc_client_secret = { "$env" = "VARIABLE" }) or set '
            "GRAFT_AUTH__OIDC_CLIENT_SECRET"
        )


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the settings once: TOML file, then ``GRAFT_*`` variables, then ``overrides``.

    Raises ``ConfigError`` with every problem listed when the configuration is invalid.
    """
    path = config_file or os.environ.get("GRAFT_CONFIG")
    data: dict[str, Any] = {}
    if path is None and Path("graft.toml").is_file():
        path = "graft.toml"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    _refuse_plain_secrets(data)
    if path is not None:
        data = _resolve_references(data, Path(path).absolute().parent, os.environ)
    try:
        settings = Settings(**data)
        if overrides:
            dumped = settings.model_dump()
            for name, provider in settings.providers.items():
                if provider.api_key is not None:  # excluded from dumps, so carried over by hand
                    dumped["providers"][name]["api_key"] = provider.api_key
            if settings.data_key is not None:  # excluded from dumps too
                dumped["data_key"] = settings.data_key
            settings = Settings.model_validate({**dumped, **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    return _resolve_secrets(settings, os.environ)
