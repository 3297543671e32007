"""Secrets: the form they are shown in, the references that name them, and masking them in logs.

graft holds a few secrets: provider API keys, a database password, whatever plugins are
given. This module owns what keeps them private, so that no other module has to think about it:

- ``mask(secret)`` is the only form a secret is ever shown in: ``sk-…abcd``, enough to tell
  two keys apart, never enough to use one.
- A setting that holds a secret can name where the secret lives instead of holding it: a
  *reference*, ``{"$env": "NAME"}`` (an environment variable) or ``{"$file": "path"}`` (a
  file's content, surrounding whitespace stripped). ``resolve_reference`` reads it once, when
  the settings load; a problem is a ``ConfigError`` that names the setting and the variable or
  file, never a value.
- Every secret graft knows (each resolved reference, each configured API key) is registered
  here. ``mask_secrets(text)`` replaces them, and anything shaped like a credential (an
  ``Authorization`` header, a ``Bearer`` token, an ``sk-``/``gk-`` key), by their masked
  form: for text on its way to a client, such as an upstream's error message.
  ``SecretMasker``, a ``logging.Filter``, does the same to every log record, traceback
  included; ``install_secret_masking`` puts it on the handlers.

The registry only grows, and it is process-wide on purpose: a secret read by one part of graft
must be masked in what any other part logs.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeGuard

from graft.errors import ConfigError

__all__ = [
    "SecretMasker",
    "SecretRegistry",
    "install_secret_masking",
    "is_reference",
    "mask",
    "mask_secrets",
    "register_secret",
    "resolve_reference",
    "resolve_references",
]

log = logging.getLogger(__name__)

_SHOWN_FROM_CHARS: Final = 12
"""Shorter secrets are shown as a bare ``…``: four characters of eleven say too much."""
_MIN_KNOWN_CHARS: Final = 4
"""Shorter registered values are not masked in text: they would match everywhere."""
_MAX_FILE_BYTES: Final = 64 * 1024
"""A ``$file`` larger than this is a mistake (a wrong path), not a secret."""
_REFERENCE_KINDS: Final = ("$env", "$file")

_PREFIX = re.compile(r"[A-Za-z0-9]{1,4}[-_]")
"""A recognisable key prefix: ``sk-``, ``gk-``, ``ghp_``, ``sk_``."""
_CREDENTIAL = r"[A-Za-z0-9._~+/=-]"
_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bapi-key)([\"']?\s*[:=]\s*[\"']?)"
    r"((?:bearer|basic|token)\s+)?([^\s\"',;]+)"
)
"""``Authorization: Bearer xxx``, ``"authorization": "xxx"``, ``X-API-Key: xxx``."""
_BEARER = re.compile(rf"(?i)\b(bearer\s+)({_CREDENTIAL}{{8,}})")
_KEY = re.compile(r"(?<![A-Za-z0-9])(?:sk|gk)[-_][A-Za-z0-9_-]{17,}")
"""``sk-...`` (OpenAI, DeepSeek, DashScope) and ``gk-...`` (graft's own) keys, 20+ chars."""


def mask(secret: str) -> str:
    """Show ``secret`` as its recognisable prefix, ``…`` and its last four characters.

    ``sk-proj-Zq8Yw2abcd`` becomes ``sk-…abcd``. The prefix (up to the first ``-`` or ``_``,
    at most five characters) is kept only while at least half of the secret stays hidden;
    a secret shorter than 12 characters becomes a bare ``…``, revealing neither characters
    nor length.
    """
    if len(secret) < _SHOWN_FROM_CHARS:
        return "…"
    tail = secret[-4:]
    found = _PREFIX.match(secret)
    prefix = found[0] if found else ""
    if len(prefix) + len(tail) > len(secret) // 2:
        prefix = ""
    return f"{prefix}…{tail}"


class SecretRegistry:
    """The secret values to mask wherever they appear; it only grows. Safe across threads."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Remember ``value`` (values shorter than four characters are ignored)."""
        if len(value) < _MIN_KNOWN_CHARS or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def mask(self, text: str) -> str:
        """``text`` with every known secret and every credential-shaped string masked."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(_masked_match, text)
        text = _HEADER.sub(_masked_header, text)
        text = _BEARER.sub(lambda m: m[1] + mask(m[2]), text)
        return _KEY.sub(_masked_match, text)


def _masked_match(found: re.Match[str]) -> str:
    return mask(found[0])


def _masked_header(found: re.Match[str]) -> str:
    name, separator, scheme, credential = found.groups()
    if "…" in credential:  # masked already
        return found[0]
    return f"{name}{separator}{scheme or ''}{mask(credential)}"


_REGISTRY: Final = SecretRegistry()


def register_secret(value: str) -> None:
    """Have ``value`` masked in logs and in ``mask_secrets`` from now on."""
    _REGISTRY.add(value)


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped string masked."""
    return _REGISTRY.mask(text)


# --- references ------------------------------------------------------------------------------


def is_reference(value: object) -> TypeGuard[Mapping[str, Any]]:
    """Whether ``value`` is a secret reference: a table with a ``$env`` or ``$file`` key."""
    return isinstance(value, Mapping) and any(kind in value for kind in _REFERENCE_KINDS)


def resolve_reference(
    reference: Mapping[str, Any],
    *,
    setting: str,
    base_dir: Path,
    environ: Mapping[str, str],
) -> str:
    """The secret that ``reference`` names, registered for masking.

    ``setting`` is the setting's dotted path, for error messages; a relative ``$file`` path is
    taken from ``base_dir``. Raises ``ConfigError`` when the variable is unset or empty, or
    the file is missing, unreadable, not UTF-8 text or empty; a file that other users may
    read is used, with a warning.
    """
    if len(reference) != 1:
        raise ConfigError(
            f'{setting}: a secret reference has exactly one key, "$env" or "$file"; '
            f"this one has {', '.join(map(repr, sorted(map(str, reference))))}"
        )
    kind, target = next(iter(reference.items()))
    if not isinstance(target, str) or not target.strip():
        what = "an environment variable" if kind == "$env" else "a file"
        raise ConfigError(f'{setting}: "{kind}" must be the name of {what}')
    if kind == "$env":
        value = environ.get(target)
        if value is None:
            raise ConfigError(f"{setting}: the environment variable {target} is not set")
        value = value.strip()
        if not value:
            raise ConfigError(f"{setting}: the environment variable {target} is empty")
    else:
        value = _read_secret_file(_secret_path(target, base_dir), setting)
    register_secret(value)
    return value


def resolve_references(
    value: Any, *, setting: str, base_dir: Path, environ: Mapping[str, str]
) -> Any:
    """``value`` with every reference in it, at any depth of tables and lists, resolved.

    For free-form settings (plugin tables): the secrets become plain strings, registered
    for masking. Containers are copied; everything else is returned as it is.
    """
    if is_reference(value):
        return resolve_reference(value, setting=setting, base_dir=base_dir, environ=environ)
    if isinstance(value, Mapping):
        return {
            key: resolve_references(
                item, setting=f"{setting}.{key}", base_dir=base_dir, environ=environ
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            resolve_references(
                item, setting=f"{setting}[{index}]", base_dir=base_dir, environ=environ
            )
            for index, item in enumerate(value)
        ]
    return value


def _secret_path(name: str, base_dir: Path) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def _read_secret_file(path: Path, setting: str) -> str:
    """The stripped content of a ``$file``; warns when other users may read it."""
    shown = repr(str(path))
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ConfigError(f"{setting}: the secret file {shown} is not a regular file")
            raw = file.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{setting}: the secret file {shown} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{setting}: the secret file {shown} is a folder") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{setting}: cannot read the secret file {shown}: {reason}") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise ConfigError(
            f"{setting}: the secret file {shown} is over {_MAX_FILE_BYTES // 1024} KiB; "
            "is it the right file?"
        )
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{setting}: the secret file {shown} is not UTF-8 text") from None
    if not value:
        raise ConfigError(f"{setting}: the secret file {shown} is empty")
    if os.name == "posix" and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "%s: the secret file %s can be read by other users (mode %s); "
            "make it private with: chmod 600 %s",
            setting,
            shown,
            oct(stat.S_IMODE(mode)),
            shown,
        )
    return value


# --- logging ---------------------------------------------------------------------------------

_TRACEBACKS: Final = logging.Formatter()


class SecretMasker(logging.Filter):
    """A filter that masks secrets in a log record; it never drops one.

    The message is formatted with its arguments, then masked; when that changed it, the
    record keeps the masked text with no arguments. A traceback (``exc_info``) is formatted
    into ``exc_text``, masked, which every ``logging.Formatter`` prints instead of formatting
    the exception again; so is ``stack_info``. Handlers that read ``exc_info`` themselves
    (not through a ``Formatter``) see the exception unmasked.
    """

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self.registry = _REGISTRY if registry is None else registry

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask ``record`` in place; always keep it."""
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: the handler reports that itself
            return True
        masked = self.registry.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.registry.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.registry.mask(record.stack_info)
        return True


def install_secret_masking(logger: logging.Logger | None = None) -> SecretMasker:
    """Put a ``SecretMasker`` on every handler of ``logger`` (default: the root logger).

    Call it once logging is configured: a handler added later has no masker. Without a
    ``logger``, it also goes on Python's last-resort handler (which prints warnings when no
    handler is configured, as in ``graft serve``) and on the handlers of every logger
    configured so far. Calling it again adds no second masker to a handler.
    """
    # The filter goes on handlers, not loggers: a logger's filters see only the records
    # logged on that very logger, never those that propagate up from its children
    # (``graft.models.openai`` -> root), while a handler's filters see every record it emits.
    masker = SecretMasker()
    handlers: list[logging.Handler] = list((logger or logging.getLogger()).handlers)
    if logger is None:
        if logging.lastResort is not None:
            handlers.append(logging.lastResort)
        for other in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(other, logging.Logger):
                handlers.extend(other.handlers)
    for handler in handlers:
        if not any(isinstance(existing, SecretMasker) for existing in handler.filters):
            handler.addFilter(masker)
    return masker
