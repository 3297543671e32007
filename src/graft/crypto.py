"""Encryption at rest: the data keys, where they live, and the sealed form of a stored value.

What users say to a model, what tools are called with and what they answer is encrypted
before it reaches the database, so that a copy of the database (a stolen disk, a backup, a
SQLite file and its WAL read byte by byte) shows none of it. This module owns the mechanism;
``graft.store.encrypted`` says which columns use it. Anything else graft comes to store that
must stay private (credentials of plugins and data sources, say) uses the same two calls,
``DataKeys.encrypt`` and ``DataKeys.decrypt``, with a context of its own, and ``graft keys
rotate-data-key`` re-encrypts it once its table is listed there.

**Cipher.** AES-256-GCM from ``cryptography`` (OpenSSL underneath): authenticated, so a
changed byte is an error, never different text. Each value gets a fresh random 96-bit nonce
(the random-nonce bound of 2**32 messages per key is far beyond what one key of one graft
sees; rotate long before).

**Sealed form.** A text column keeps a printable string::

    g1:<key id>:<base64url(nonce (12 bytes) || ciphertext || tag (16 bytes))>

``g1`` is the format's version, the key id is 8 hex digits (below). ``None`` and ``""`` are
stored as they are: there is nothing to hide in them, and an empty title must stay
recognisably empty.

**Associated data (AAD).** Each value is authenticated together with ``g1:<key id>`` and
a *context* the caller gives: for a column, ``<table>.<column>/<owner>``, where the owner is
the id that decides who may read the row (the conversation's id for titles, messages and
tool runs). So a value is bound to its column (a tool result cannot be passed off as a
message) and to its conversation: someone who can write to the database cannot move another
user's ciphertext into a conversation of their own and have graft decrypt it for them. The
row's own id is not part of it, because rows are written with database-assigned ids that are
not known before the ``INSERT``: within one conversation, values of one column could be
swapped or replayed by such an attacker; detecting that would take a MAC over the whole
conversation. Encryption does not hide sizes, timestamps, roles, tool names or ids.

**Keys.** 32 random bytes, written as base64url. A key's id is the first 8 hex digits of the
SHA-256 of a label and the key: stored with every value, it says which key decrypts it, and
says nothing useful about the key. A keyring holds keys newest first: the newest encrypts,
any of them decrypts. Keys come from ``GRAFT_DATA_KEY`` (the ``data_key`` setting: one or
more keys, comma-separated, newest first) or, when that is unset, from the key file
(``data_key_file``, by default ``data.key`` in ``home``: one key a line, newest first, ``#``
comments), which is created with mode 0600 on first start. A key file that others may read or
write is refused. Keys never enter the database.

**Integrity.** Decrypting a value that was changed (any byte of the key id, nonce,
ciphertext or tag), that belongs to another column or conversation, or whose key is unknown,
raises ``DataIntegrityError``; its message names the column and owner, never the plaintext.
A value that does not start with ``g1:<8 hex digits>:`` was stored before encryption was
turned on and is returned as it is (the migration path: ``graft keys rotate-data-key``
encrypts such values); one that is a single character away from the sealed form (a damaged
prefix) is an error, not text. So is old plaintext that happens to start like a sealed value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from graft.errors import ConfigError, DataIntegrityError

if TYPE_CHECKING:
    from graft.config import Settings

__all__ = [
    "KEY_BYTES",
    "PREFIX",
    "RELOAD_EVERY",
    "DataKeys",
    "KeyFile",
    "KeySource",
    "encode_key",
    "generate_key",
    "is_sealed",
    "key_id",
    "key_id_of",
    "looks_damaged",
    "parse_keys",
    "read_key_file",
    "write_key_file",
]

log = logging.getLogger(__name__)

KEY_BYTES: Final = 32
"""AES-256."""
PREFIX: Final = "g1:"
"""The sealed form's version tag."""
RELOAD_EVERY: Final = 5.0
"""Seconds between two looks at a watched key file (a ``stat``), from the encrypting path."""
_ID_CHARS: Final = 8
_HEADER: Final = len(PREFIX) + _ID_CHARS + 1  # "g1:" + key id + ":"
_NONCE: Final = 12
_TAG: Final = 16
_MIN_PAYLOAD: Final = 4 * ((_NONCE + _TAG + 2) // 3)  # base64 of an empty plaintext's seal
_HEX: Final = frozenset("0123456789abcdef")
_BASE64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
_MAX_KEY_FILE_BYTES: Final = 64 * 1024


# --- keys -----------------------------------------------------------------------------------


def generate_key() -> bytes:
    """A new random data key."""
    return os.urandom(KEY_BYTES)


def encode_key(key: bytes) -> str:
    """A key as it is written in the key file and ``GRAFT_DATA_KEY``: base64url, unpadded."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def key_id(key: bytes) -> str:
    """The short public id of a key, stored with every value it encrypts."""
    return hashlib.sha256(b"graft data key id\x00" + key).hexdigest()[:_ID_CHARS]


def parse_keys(text: str, *, source: str) -> list[bytes]:
    """The keys in ``text``, newest first: base64url keys separated by commas or lines.

    Blank lines and ``#`` comments are skipped.

    Raises:
        ConfigError: A key is not base64url of 32 bytes, two keys share an id, or there is
            no key at all. The message names ``source`` and the key's position, never a key.
    """
    keys: list[bytes] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for part in line.split(","):
            encoded = part.strip()
            if not encoded:
                continue
            position = len(keys) + 1
            try:
                key = base64.b64decode(
                    encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
                )
            except (binascii.Error, ValueError):
                raise ConfigError(f"{source}: data key {position} is not base64url text") from None
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    f"{source}: data key {position} is {len(key)} bytes, not {KEY_BYTES}; "
                    'make one with: python -c "import base64,os; '
                    'print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
                )
            keys.append(key)
    if not keys:
        raise ConfigError(f"{source}: no data key in it")
    ids = [key_id(k) for k in keys]
    for index, kid in enumerate(ids):
        if kid in ids[:index] and keys[index] not in keys[:index]:
            raise ConfigError(f"{source}: two different data keys share the id {kid}")
    return list(dict.fromkeys(keys))  # the same key twice is harmless: keep the first


# --- the keyring ----------------------------------------------------------------------------


class DataKeys:
    """A keyring: the newest key encrypts, every key decrypts. Safe to share between threads.

    ``encrypting`` says whether the store encrypts what it writes (``encrypt_at_rest``); a
    keyring that does not still decrypts what was written while it did. A keyring that
    watches its key file reads it again when it has changed (looked at every
    ``RELOAD_EVERY`` seconds, and at once when a value names a key id it does not know), so
    a running server reads, and from then on encrypts with, a key that ``graft keys
    rotate-data-key`` added. A key file that cannot be read then keeps the keys there were.
    """

    def __init__(
        self,
        keys: Sequence[bytes],
        *,
        encrypting: bool = True,
        watch: KeyFile | None = None,
    ) -> None:
        """Hold ``keys``, newest first.

        Args:
            keys: 32-byte keys, newest first; at least one.
            encrypting: Whether new values are to be encrypted.
            watch: The key file the keys came from, read again when it changes.
        """
        self.encrypting = encrypting
        self._watch = watch
        self._lock = threading.Lock()
        self._next_look = time.monotonic() + RELOAD_EVERY
        self._set(keys)

    def _set(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("a keyring needs at least one data key")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ConfigError(f"a data key is {KEY_BYTES} bytes, not {len(key)}")
        ciphers = {key_id(key): AESGCM(key) for key in keys}
        current = key_id(keys[0])
        # One assignment: a reader in another thread sees the old state or the new one.
        self._state = (current, PREFIX + current, ciphers[current], ciphers, tuple(keys))

    @property
    def current_id(self) -> str:
        """The id of the key that encrypts."""
        return self._state[0]

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key's id, newest first."""
        return tuple(self._state[3])

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The keys themselves, newest first (for writing them back to their file)."""
        return self._state[4]

    def encrypt(self, plaintext: str, context: str) -> str:
        """``plaintext`` sealed with the newest key, bound to ``context`` (see the module)."""
        if self._watch is not None and time.monotonic() >= self._next_look:
            self._look()
        _, header, cipher, _, _ = self._state
        nonce = os.urandom(_NONCE)
        sealed = cipher.encrypt(nonce, plaintext.encode("utf-8"), f"{header}|{context}".encode())
        return f"{header}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, value: str, context: str) -> str:
        """The plaintext of a sealed ``value``; a value stored before encryption, as it is.

        Raises:
            DataIntegrityError: The value was changed, belongs to another context, or was
                encrypted with a key this keyring does not have.
        """
        kid = key_id_of(value)
        if kid is None:
            if looks_damaged(value):
                raise _integrity(context, "its format is damaged")
            return value
        cipher = self._state[3].get(kid)
        if cipher is None and self._watch is not None:
            self._look()  # a rotation may have added it
            cipher = self._state[3].get(kid)
        if cipher is None:
            raise _integrity(context, f"it names data key {kid!r}, which is not configured here")
        payload = value[_HEADER:]
        try:
            raw = base64.urlsafe_b64decode(payload)
        except (binascii.Error, ValueError):
            raise _integrity(context, "it is not valid base64") from None
        # The decoder skips stray characters and ignores spare bits: only the canonical text.
        if len(raw) < _NONCE + _TAG or base64.urlsafe_b64encode(raw).decode("ascii") != payload:
            raise _integrity(context, "it is not valid base64")
        try:
            plaintext = cipher.decrypt(
                raw[:_NONCE], raw[_NONCE:], f"{value[: _HEADER - 1]}|{context}".encode()
            )
        except InvalidTag:
            raise _integrity(context, "its authentication tag does not match") from None
        return plaintext.decode("utf-8")

    def _look(self) -> None:
        """Read the watched key file again if it changed since it was last read."""
        watch = self._watch
        assert watch is not None
        with self._lock:
            self._next_look = time.monotonic() + RELOAD_EVERY
            try:
                if watch.changed():
                    before = self.current_id
                    self._set(watch.read())
                    if self.current_id != before:
                        log.info(
                            "data keys reloaded from %s: encrypting with %s",
                            watch.path,
                            self.current_id,
                        )
            except (ConfigError, OSError) as exc:
                log.warning("data keys not reloaded, keeping those there were: %s", exc)

    def __repr__(self) -> str:
        return f"DataKeys(ids={list(self.ids)!r}, encrypting={self.encrypting})"


def is_sealed(value: str) -> bool:
    """Whether ``value`` starts like a sealed value, ``g1:<8 hex>:`` (it may still fail)."""
    return key_id_of(value) is not None


def key_id_of(value: str) -> str | None:
    """The id of the key that sealed ``value``; ``None`` for a value stored in plaintext."""
    if not value.startswith(PREFIX) or len(value) < _HEADER or value[_HEADER - 1] != ":":
        return None
    kid = value[len(PREFIX) : _HEADER - 1]
    return kid if _HEX.issuperset(kid) else None


def looks_damaged(value: str) -> bool:
    """Whether ``value`` is a sealed value with one character of its frame changed.

    Plaintext stored before encryption is returned as it is; a sealed value whose ``g1:``
    prefix or separator lost a byte would pass for such plaintext. Real text is not within
    one character of ``g1:<8 hex>:<40+ base64url characters>``.
    """
    if len(value) < _HEADER + _MIN_PAYLOAD:
        return False
    misses = (
        (value[0] != "g")
        + (value[1] != "1")
        + (value[2] != ":")
        + (value[_HEADER - 1] != ":")
        + sum(c not in _HEX for c in value[len(PREFIX) : _HEADER - 1])
    )
    if misses > 1:
        return False
    for c in value[_HEADER:]:
        if c not in _BASE64URL:
            misses += 1
            if misses > 1:
                return False
    return True


def _integrity(context: str, why: str) -> DataIntegrityError:
    return DataIntegrityError(
        f"stored data failed its integrity check ({context}): {why}. It was changed outside "
        "graft, or encrypted with a data key that is not configured here."
    )


# --- the key file ---------------------------------------------------------------------------


def read_key_file(path: Path) -> list[bytes]:
    """The keys in a key file, newest first.

    Raises:
        ConfigError: The file is missing, not a regular file, readable or writable by group
            or others (``chmod 600``), or holds no valid key.
    """
    shown = str(path)
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ConfigError(f"the data key file {shown} is not a regular file")
            if os.name == "posix" and mode & 0o077:
                raise ConfigError(
                    f"the data key file {shown} may be read or changed by other users "
                    f"(mode {oct(stat.S_IMODE(mode))}); graft will not use it until only its "
                    f"owner can: chmod 600 {shown}"
                )
            raw = file.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"the data key file {shown} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"the data key file {shown} is a folder") from None
    except PermissionError:
        raise ConfigError(f"cannot read the data key file {shown}: permission denied") from None
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"the data key file {shown} is too large to be a key file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the data key file {shown} is not text") from None
    return parse_keys(text, source=f"the data key file {shown}")


_KEY_FILE_HEADER = """\
# graft data keys, newest first: the first encrypts, all of them decrypt.
# Without this file the encrypted conversations cannot be read: back it up, apart
# from the database. `graft keys rotate-data-key` adds a key and re-encrypts.
"""


def write_key_file(path: Path, keys: Iterable[bytes], *, exclusive: bool = False) -> None:
    """Write ``keys`` (newest first) to ``path`` with mode 0600, atomically and durably.

    The keys go to a temporary file beside ``path`` that is synced and then renamed over it
    (or, with ``exclusive``, linked to it: a ``FileExistsError`` if another process created
    it first), so a crash leaves the old file or the new one, never half of one.
    """
    lines = [_KEY_FILE_HEADER, *(f"{encode_key(k)}  # id {key_id(k)}\n" for k in keys)]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if os.name == "posix":
                os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write("".join(lines))
            file.flush()
            os.fsync(file.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if os.name == "posix":
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


# --- where a process's keys come from -------------------------------------------------------


class KeyFile:
    """A key file that a keyring reads again when it changes (see ``DataKeys``)."""

    def __init__(self, path: Path) -> None:
        """Watch ``path``; nothing is read until ``read()``."""
        self.path = path
        self._stamp: tuple[int, int, int] | None = None

    def read(self) -> list[bytes]:
        """The keys in the file now (``read_key_file``), remembering which version it was."""
        stamp = self._now()  # before reading: a change during the read is seen next time
        keys = read_key_file(self.path)
        self._stamp = stamp
        return keys

    def changed(self) -> bool:
        """Whether the file was replaced or written since it was last read."""
        return self._now() != self._stamp

    def _now(self) -> tuple[int, int, int]:
        found = os.stat(self.path)
        return (found.st_ino, found.st_mtime_ns, found.st_size)


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the data keys of a process come from; ``load()`` reads them, when the store starts.

    ``env`` is the value of ``GRAFT_DATA_KEY`` (the ``data_key`` setting), which wins when
    set: the key file is then neither read nor created. Otherwise ``path`` is the key file,
    created with a new key on first start when ``encrypting``.
    """

    env: str | None = field(repr=False)  # the keys themselves
    path: Path
    encrypting: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySource | None:
        """The key source the settings describe; ``None`` for the in-memory store."""
        if settings.sqlalchemy_url == "memory://":
            return None  # nothing reaches a disk
        env = settings.data_key.get_secret_value() if settings.data_key is not None else None
        return cls(env or None, settings.data_key_path, settings.encrypt_at_rest)

    @property
    def from_env(self) -> bool:
        """Whether the keys come from ``GRAFT_DATA_KEY`` rather than the key file."""
        return self.env is not None

    def load(self) -> DataKeys | None:
        """Read the keys, creating the key file on first start; ``None`` if there are none.

        There are none only with ``encrypt_at_rest`` off and neither a key variable nor a
        key file: values are then stored in plaintext and encrypted ones cannot be read.

        Raises:
            ConfigError: The variable or file holds no valid key, or the file's permissions
                let others read or change it.
        """
        if self.env is not None:
            return DataKeys(
                parse_keys(self.env, source="GRAFT_DATA_KEY"), encrypting=self.encrypting
            )
        if not self.path.exists():
            if not self.encrypting:
                return None
            # FileExistsError: another process made it first; use theirs.
            with contextlib.suppress(FileExistsError):
                write_key_file(self.path, [generate_key()], exclusive=True)
        watch = KeyFile(self.path)
        return DataKeys(watch.read(), encrypting=self.encrypting, watch=watch)
