"""``Graft``: one configured instance (settings, plugins, store, models) per process.

Every entry point of a process shares it: the server and the CLI build one ``Graft`` from
the settings, ``start()`` it (migrations, configuration checks) and call ``run_turn``.
Models are created on first use and cached by id, so connection pools and the embedded
model are loaded once. Assistants come from the settings and, per tenant, from the store
(``graft.assistants``): ``resolve_assistant`` finds either for a principal.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from functools import partial
from types import TracebackType

from graft.approvals import Approvals
from graft.assistants import AssistantCatalog
from graft.config import AssistantSettings, Settings, load_settings, split_model_id
from graft.context import Context, Principal
from graft.coordination import open_coordination
from graft.crypto import KeySource
from graft.errors import (
    AuthenticationError,
    ConfigError,
    GraftError,
    ModelUnavailable,
    UnknownAssistant,
)
from graft.events import Event
from graft.heartbeat import Heartbeat, WorkerStore
from graft.middleware import Middleware
from graft.model_routing import canary_model_id, primary_model_id
from graft.model_settings import resolve_model_id
from graft.models.base import Model, ModelFactory
from graft.plugins import PluginInfo, Registry, make_plugin_manager, plugin_infos
from graft.store import Store, open_store
from graft.store.pending import PendingTurns
from graft.streams import RunningStreams
from graft.tools.router import ToolBox, ToolRouter
from graft.turn import TurnRequest, run_turn
from graft.voice.video import FrameStore

__all__ = ["Graft"]


class Graft:
    """A configured graft instance. Use as ``async with Graft(settings) as graft: ...``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        models: Mapping[str, Model] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.pm = make_plugin_manager(entry_points=entry_points, plugins=plugins)
        self.registry = Registry.collect(self.pm, self.settings)
        self.store = (
            store
            if store is not None
            else open_store(
                self.settings.sqlalchemy_url, data_keys=KeySource.from_settings(self.settings)
            )
        )
        self.tools = ToolRouter(
            [toolset for toolset, _ in self.registry.toolsets],
            default_timeout=self.settings.limits.tool_timeout,
            audit=self.store,
        )
        self.coordination = open_coordination(self.settings)
        """What the workers share besides the store (Redis with ``limits.redis_url``)."""
        self.approvals = Approvals(self.coordination)
        self.pending = PendingTurns(self.coordination)
        """Turns that answered and are still being stored; readers wait for them."""
        self.streams = RunningStreams(self.coordination)
        """Streamed answers running now, which ``POST .../cancel`` stops on any worker."""
        self._heartbeat: Heartbeat | None = None
        """This worker's liveness in the store (``graft.heartbeat``)."""
        self._models: dict[str, Model] = dict(models or {})
        self._preset_models = set(self._models)
        self.catalog = AssistantCatalog(self)
        """The configured assistants and the tenants' stored ones."""
        self.frames = FrameStore()
        """The latest camera frame of each call (``graft.voice.video``), for ``look``."""

    async def start(self) -> None:
        """Check the configuration and open the store (running migrations)."""
        self.check()
        await self.store.start()
        await self.coordination.start()
        if isinstance(self.store, WorkerStore):  # turns of dead workers: interrupted
            limits = self.settings.limits
            self._heartbeat = Heartbeat(
                self.store, interval=limits.worker_heartbeat, timeout=limits.worker_timeout
            )
            await self._heartbeat.start()

    async def aclose(self) -> None:
        """Close model connections and the store, once the turns still being stored are."""
        await self.pending.wait()
        for toolset in self.tools.toolsets:  # MCP sessions, service clients
            close = getattr(toolset, "aclose", None)
            if close is not None:
                await close()
        for model_id, model in list(self._models.items()):
            close = getattr(model, "aclose", None)
            if close is not None and model_id not in self._preset_models:
                await close()
        await self.coordination.aclose()
        if self._heartbeat is not None:
            await self._heartbeat.stop()
            self._heartbeat = None
        await self.store.close()

    async def __aenter__(self) -> Graft:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def check(self) -> None:
        """Raise ``ConfigError`` if an assistant names an unknown provider or middleware."""
        for name in self.settings.assistant_names():
            self.check_assistant(name, self.assistant(name))

    def check_assistant(self, name: str, assistant: AssistantSettings) -> None:
        """Raise ``ConfigError`` (``param``: the field) if its provider or middleware is unknown.

        Its model, its canary's and its fallbacks may be aliases (``graft.model_settings``):
        an unknown alias or a loop of aliases is refused too.
        """
        aliases = self.settings.models.aliases
        targets: list[tuple[str, Callable[[], str | None]]] = [
            ("model", partial(primary_model_id, self.settings, assistant)),
            ("canary", partial(canary_model_id, self.settings, assistant)),
            *[
                ("fallbacks", partial(resolve_model_id, wanted, assistant.models, aliases))
                for wanted in assistant.fallbacks
            ],
        ]
        for param, resolve in targets:
            try:
                model_id = resolve()
                if model_id is None:
                    continue
                prefix, _ = split_model_id(model_id)
            except (ConfigError, ValueError) as exc:
                why = exc.message if isinstance(exc, ConfigError) else str(exc)
                raise ConfigError(f"assistant {name!r}: {param}: {why}", param=param) from None
            if model_id not in self._models and self._factory(prefix) is None:
                raise ConfigError(
                    f"assistant {name!r}: no model provider {prefix!r}; known: "
                    f"{', '.join(sorted({*self.registry.models, *self.settings.providers}))}",
                    param=param,
                )
        try:
            self.middleware(assistant.middleware)
        except ConfigError as exc:
            raise ConfigError(f"assistant {name!r}: {exc.message}", param="middleware") from None

    def problems(self) -> list[str]:
        """What would make an assistant fail on its first request (a missing key, say).

        Models may say why they cannot be called through an ``unavailable`` attribute;
        ``graft serve`` prints these at start and ``graft check`` exits non-zero on them.
        """
        found = []
        for name in self.settings.assistant_names():
            assistant = self.assistant(name)
            try:
                why = getattr(self.model_for(assistant), "unavailable", None)
            except GraftError as exc:
                why = exc.message
            if why:
                found.append(
                    f"assistant {name!r} ({assistant.model or self.settings.model}): {why}"
                )
        return found

    async def resolve_assistant(self, name: str, principal: Principal) -> AssistantSettings:
        """The assistant ``name`` for ``principal``: configured, or stored for their tenant.

        A configured name never reaches the store; a stored one is cached a few seconds
        (``graft.assistants``). ``UnknownAssistant`` if neither has it.
        """
        return await self.catalog.resolve(name, principal)

    def assistant(self, name: str) -> AssistantSettings:
        """The configured assistant called ``name``, or ``UnknownAssistant``.

        Only the settings' assistants: requests use ``resolve_assistant``, which knows the
        tenants' stored ones too.
        """
        found = self.settings.assistant(name)
        if found is None:
            raise UnknownAssistant(
                f"the model {name!r} does not exist; GET /v1/models lists the assistants",
                param="model",
            )
        return found

    def model_for(self, assistant: AssistantSettings) -> Model:
        """The model an assistant uses (its primary one: aliases resolved, no canary)."""
        try:
            model_id = primary_model_id(self.settings, assistant)
        except ConfigError as exc:  # a stored assistant's alias the settings dropped since
            raise ModelUnavailable(exc.message) from None
        return self.get_model(model_id)

    def get_model(self, model_id: str) -> Model:
        """Return the model for ``provider:name``, creating it on first use."""
        model = self._models.get(model_id)
        if model is None:
            prefix, _ = split_model_id(model_id)
            factory = self._factory(prefix)
            if factory is None:
                raise ModelUnavailable(f"no model provider {prefix!r} for model {model_id!r}")
            model = self._models[model_id] = factory(model_id, self.settings)
        return model

    def _factory(self, prefix: str) -> ModelFactory | None:
        entry = self.registry.models.get(prefix)
        if entry is not None:
            return entry[0]
        # A provider configured only in the settings is OpenAI-compatible.
        if prefix in self.settings.providers and "openai" in self.registry.models:
            return self.registry.models["openai"][0]
        return None

    def middleware(self, names: Iterable[str]) -> list[Middleware]:
        """The middleware called ``names``, in order; ``ConfigError`` for unknown names."""
        chain = []
        for name in names:
            entry = self.registry.middleware.get(name)
            if entry is None:
                known = ", ".join(sorted(self.registry.middleware)) or "none"
                raise ConfigError(f"no middleware named {name!r} (registered: {known})")
            chain.append(entry[0])
        return chain

    async def authenticate(self, headers: Mapping[str, str], method: str = "GET") -> Principal:
        """Ask the ``authenticate`` hooks who sent these headers with this HTTP method."""
        # Called one by one (not through pluggy's firstresult) so that async hooks work too.
        arguments = {
            "headers": headers,
            "settings": self.settings,
            "store": self.store,
            "method": method,
        }
        for impl in reversed(self.pm.hook.authenticate.get_hookimpls()):
            result = impl.function(**{name: arguments[name] for name in impl.argnames})
            principal = await result if inspect.isawaitable(result) else result
            if isinstance(principal, Principal):
                return principal
            if principal is not None:
                raise TypeError(f"{impl.plugin_name}: authenticate must return a Principal or None")
        raise AuthenticationError("no authenticator accepted the request")

    def principal_for(self, user: str | None = None) -> Principal:
        """A principal for a local operator (the CLI): roles from a matching API key entry."""
        auth = self.settings.auth
        user = user or auth.default_user
        for key in auth.api_keys:
            if key.user == user:
                return Principal(user, frozenset(key.roles), frozenset(key.groups), key.tenant)
        roles = auth.default_roles if user == auth.default_user else []
        return Principal(user, frozenset(roles))

    def context(
        self, principal: Principal, assistant: str, settings: AssistantSettings | None = None
    ) -> Context:
        """A context outside a turn (``graft tools call``), for a configured assistant.

        ``settings`` gives the assistant's settings when they come from elsewhere (a stored
        assistant: ``open_context``).
        """
        return Context(
            principal,
            self.settings,
            assistant,
            settings if settings is not None else self.assistant(assistant),
            store=self.store,
            get_model=self.get_model,
        )

    async def open_context(self, principal: Principal, assistant: str) -> Context:
        """A context outside a turn for any assistant ``principal`` may reach, stored ones too.

        The store must be started when ``assistant`` is not one of the settings'.
        """
        return self.context(
            principal, assistant, await self.resolve_assistant(assistant, principal)
        )

    async def toolbox(self, ctx: Context) -> ToolBox:
        """The tools a context may call."""
        return await self.tools.resolve(ctx)

    def run_turn(self, request: TurnRequest, principal: Principal) -> AsyncGenerator[Event, None]:
        """Run one chat turn (see ``graft.turn``)."""
        return run_turn(self, request, principal)

    def plugin_infos(self) -> list[PluginInfo]:
        """Every loaded plugin, with its package and hooks."""
        return plugin_infos(self.pm)
