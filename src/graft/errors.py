"""Every public exception graft raises, in one tree.

The core raises these domain errors; each edge translates them once: the HTTP layer into an
OpenAI-style error object with a status code (``graft.server.errors``), the CLI into a
message and exit code, the event stream into an ``ErrorEvent``.

```
GraftError
├── ConfigError                 settings or assistant definitions are invalid
├── DataIntegrityError  (500)   stored data was changed or its data key is missing
├── InvalidRequest      (400)   a request the caller must fix
│   └── PayloadTooLarge (413)
├── AuthenticationError (401)   no or wrong credentials
├── PermissionDenied    (403)   authenticated, but not allowed (assistant, tool, conversation)
│   ├── NetworkBlocked          an outbound call the network policy refuses (graft.netguard)
│   └── QueryRefused            a SQL query the guard refuses (graft.sqlguard)
├── NotFound            (404)
│   ├── UnknownAssistant        the ``model`` field names no assistant
│   └── ConversationNotFound
├── RateLimited         (429)   too many requests or streams for now; ``retry_after`` seconds
│   └── BudgetExceeded          the user's tokens of the day are spent
├── ModelError          (502)   the upstream model failed
│   ├── ModelTimeout    (504)
│   └── ModelUnavailable(503)   not installed or not configured (e.g. a missing extra)
└── ToolError                   a tool call failed; the agent loop turns it into a tool message
    ├── ToolArgumentError       the model sent arguments that do not fit the schema
    ├── ToolTimeout
    ├── ToolNotFound
    └── QueryFailed             a data source could not run a query (timeout, database error)
```

``ToolError`` is the one family the model sees and can fix: the agent loop sends it back as
the tool's result. Everything else is for humans and propagates.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BudgetExceeded",
    "ConfigError",
    "ConversationNotFound",
    "DataIntegrityError",
    "GraftError",
    "ImagesUnsupported",
    "InvalidRequest",
    "ModelError",
    "ModelTimeout",
    "ModelUnavailable",
    "NetworkBlocked",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueryFailed",
    "QueryRefused",
    "RateLimited",
    "ToolArgumentError",
    "ToolError",
    "ToolNotFound",
    "ToolTimeout",
    "UnknownAssistant",
]


class GraftError(Exception):
    """Base of every error graft raises on purpose.

    ``status`` and ``type``/``code`` are what the HTTP layer answers with; ``param`` names the
    offending request field where there is one (as OpenAI's error object does).
    """

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ConfigError(GraftError):
    """The settings file, an environment variable or an assistant definition is invalid."""

    code = "config_error"


class InvalidRequest(GraftError):
    """The request is malformed or asks for something graft refuses to do."""

    status = 400
    type = "invalid_request_error"


class ImagesUnsupported(InvalidRequest):
    """The request shows the model images, and the model reads text only."""

    code = "images_unsupported"


class PayloadTooLarge(InvalidRequest):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class ClientGone(GraftError):
    """The client closed the connection before its request arrived whole; nobody to answer.

    499 is the status proxies log for it ("client closed request"); it is never an error of
    the server's, so it is not logged as one.
    """

    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"


class AuthenticationError(GraftError):
    """Missing or invalid credentials."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GraftError):
    """The principal may not use this assistant, tool or conversation."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class NetworkBlocked(PermissionDenied):
    """An outbound call (a model, a tool, a webhook) that the network policy refuses.

    The message names the host, the address it resolved to and the rule that refused it;
    never the URL's path or query, which may carry tokens. ``graft.netguard`` raises it.
    """

    code = "network_blocked"

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        host: str = "",
        address: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        """What refused the call: ``scheme``, ``port``, ``userinfo``, ``host``, ``address``."""
        self.host = host
        self.address = address
        self.port = port


class QueryRefused(PermissionDenied):
    """A SQL query the guard refuses (``graft.sqlguard``).

    Not one read-only statement, or a table, column or function the principal may not use;
    the message says which, so the model can fix the query.
    """

    code = "query_refused"


class NotFound(GraftError):
    """A named thing does not exist (or is not visible to this principal)."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Conflict(GraftError):
    """The thing to create exists already (a user name taken in its tenant)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class UnknownAssistant(NotFound):
    """The ``model`` field of a request names no assistant."""

    code = "model_not_found"


class ConversationNotFound(NotFound):
    """No conversation with that id belongs to this principal."""

    code = "conversation_not_found"


class RateLimited(GraftError):
    """Over a rate limit: the caller may try again in ``retry_after`` seconds.

    ``type`` and ``code`` are OpenAI's for a request rate (``requests``,
    ``rate_limit_exceeded``); the HTTP layer adds a ``Retry-After`` header.
    """

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BudgetExceeded(RateLimited):
    """The user's token budget of the day is spent; it starts again at UTC midnight."""

    type = "tokens"
    code = "budget_exceeded"


class ModelError(GraftError):
    """The upstream model failed: an HTTP error, a broken stream, a crash of the local model."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    upstream_status: int | None = None
    """The HTTP status the upstream answered with, when it answered with an error."""


class ModelTimeout(ModelError):
    """The upstream model did not answer in time."""

    status = 504
    code = "upstream_timeout"


class ModelUnavailable(ModelError):
    """The model cannot be used here: an extra is not installed or the provider is unset."""

    status = 503
    code = "model_unavailable"


class ToolError(GraftError):
    """A tool call failed. The message goes back to the model as the tool's result."""

    code = "tool_error"


class ToolArgumentError(ToolError):
    """The model's arguments do not match the tool's schema."""

    code = "invalid_tool_arguments"


class ToolTimeout(ToolError):
    """The tool did not finish within its timeout."""

    code = "tool_timeout"


class ToolNotFound(ToolError):
    """The model called a tool that the assistant does not offer."""

    code = "tool_not_found"


class QueryFailed(ToolError):
    """A data source could not run a query the guard passed.

    A timeout, or the database's own error (including its refusal to write in a read-only
    transaction).
    """

    code = "query_failed"


class DataIntegrityError(GraftError):
    """An encrypted value failed to decrypt: it was changed, or its data key is missing.

    The message names the column and its owner (a conversation id), never the plaintext.
    """

    code = "data_integrity_error"
