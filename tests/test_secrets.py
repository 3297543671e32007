"""graft.secrets: the masked form, references to secrets, and masking in logs."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graft.errors import ConfigError
from graft.secrets import (
    SecretMasker,
    SecretRegistry,
    install_secret_masking,
    is_reference,
    mask,
    mask_secrets,
    register_secret,
    resolve_reference,
    resolve_references,
)

KEY = "sk-proj-Zq8Yw2Lm4Nb6Vc1Xr9Tk3Pq5abcd"

# --- the masked form ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (KEY, "sk-…abcd"),
        ("gk-WDDnm4-jpt_oDopkTkQEnwpx_S54mD5YI9r_JqO6c_s", "gk-…6c_s"),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_…8B4a"),
        ("0123456789abcdef", "…cdef"),  # no prefix to keep
        ("sk-secret-123", "…-123"),  # the prefix would leave less than half hidden
        ("hunter2-pass", "…pass"),  # a long "prefix" is no prefix
        ("short-pass", "…"),  # under 12 characters: nothing shown
        ("", "…"),
    ],
)
def test_mask_keeps_a_short_prefix_and_the_last_four(secret: str, shown: str) -> None:
    assert mask(secret) == shown


def test_registry_masks_known_secrets_and_credential_shapes() -> None:
    registry = SecretRegistry()
    registry.add("correct-horse-battery")
    registry.add("abc")  # too short to mask without mangling everything
    text = (
        "login with correct-horse-battery failed; Authorization: Bearer tok.abcdefghijklmnop; "
        "{'authorization': 'Basic dXNlcjpwYXNzd29yZA=='} X-API-Key: someKey1234567890; "
        f"key {KEY}, graft key gk-abcdefghijklmnopqrstuvwxyz, bearer abcdefghijklmnopqr; abc"
    )
    masked = registry.mask(text)
    assert masked == (
        "login with …tery failed; Authorization: Bearer …mnop; "
        "{'authorization': 'Basic …ZA=='} X-API-Key: …7890; "
        "key sk-…abcd, graft key gk-…wxyz, bearer …opqr; abc"
    )
    assert registry.mask(masked) == masked, "masking twice changes nothing"


def test_ordinary_text_is_left_alone() -> None:
    text = "the Authorization header is missing; send a bearer token; task-force sk-short"
    assert SecretRegistry().mask(text) == text


def test_a_secret_inside_another_is_masked_whole() -> None:
    registry = SecretRegistry()
    registry.add("password")
    registry.add("password-and-more")
    assert registry.mask("x password-and-more y") == "x …more y"
    assert "password" in registry and "nope" not in registry


# --- references ----------------------------------------------------------------------------


def resolve(reference: object, tmp_path: Path, **environ: str) -> str:
    assert isinstance(reference, dict)
    return resolve_reference(
        reference, setting="plugins.x.token", base_dir=tmp_path, environ=environ
    )


def test_is_reference() -> None:
    assert is_reference({"$env": "X"}) and is_reference({"$file": "f"})
    assert not is_reference("sk-x") and not is_reference({"env": "X"}) and not is_reference(None)


def test_env_reference_reads_the_variable_and_registers_it(tmp_path: Path) -> None:
    secret = "env-secret-value-0001"
    assert resolve({"$env": "TOKEN"}, tmp_path, TOKEN=f" {secret}\n") == secret
    assert mask_secrets(f"said {secret}") == f"said {mask(secret)}"


def test_file_reference_reads_the_stripped_file_beside_the_config(tmp_path: Path) -> None:
    secret = "file-secret-value-0002"
    (tmp_path / "keys").mkdir()
    path = tmp_path / "keys" / "token"
    path.write_text(f"\n  {secret}  \n")
    path.chmod(0o600)
    assert resolve({"$file": "keys/token"}, tmp_path) == secret
    assert resolve({"$file": str(path)}, Path("/nonexistent")) == secret
    assert mask_secrets(secret) == mask(secret)


@pytest.mark.parametrize(
    ("reference", "environ", "message"),
    [
        ({"$env": "TOKEN"}, {}, "plugins.x.token: the environment variable TOKEN is not set"),
        (
            {"$env": "TOKEN"},
            {"TOKEN": "  "},
            "plugins.x.token: the environment variable TOKEN is empty",
        ),
        ({"$env": ""}, {}, 'plugins.x.token: "$env" must be the name of an environment variable'),
        ({"$env": 7}, {}, '"$env" must be the name of an environment variable'),
        ({"$file": ""}, {}, '"$file" must be the name of a file'),
        ({"$env": "TOKEN", "$file": "f"}, {"TOKEN": "x"}, "exactly one key"),
        ({"$env": "TOKEN", "default": "x"}, {"TOKEN": "x"}, "'$env', 'default'"),
    ],
)
def test_bad_references_say_which_setting(
    tmp_path: Path, reference: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(reference, tmp_path, **environ)
    assert message in caught.value.message


SECRET_CONTENT = "must-never-be-shown-0003"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_text(" \n\t\n"), "is empty"),
        (lambda p: p.write_bytes(SECRET_CONTENT.encode() + b"\xff\xfe"), "is not UTF-8 text"),
        (lambda p: p.write_text(SECRET_CONTENT * 3000), "is over 64 KiB"),
    ],
)
def test_bad_secret_files_name_the_file_never_the_content(
    tmp_path: Path, setup: object, message: str
) -> None:
    path = tmp_path / "token"
    setup(path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        resolve({"$file": "token"}, tmp_path)
    text = caught.value.message
    assert text.startswith("plugins.x.token: ") and message in text
    assert repr(str(path)) in text
    assert SECRET_CONTENT not in text and "\\xff" not in text


def test_unreadable_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET_CONTENT)
    opened = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        # What open() raises for a file without read permission (root reads any file, so the
        # refusal is simulated rather than made with chmod).
        if self.name == "token":
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ConfigError, match="cannot read the secret file .*: Permission denied"):
        resolve({"$file": "token"}, tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_secret_file_others_can_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET_CONTENT)
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="graft.secrets"):
        assert resolve({"$file": "token"}, tmp_path) == SECRET_CONTENT
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "can be read by other users (mode 0o640)" in record.getMessage()
    assert "plugins.x.token" in record.getMessage() and str(path) in record.getMessage()
    assert SECRET_CONTENT not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="graft.secrets"):
        resolve({"$file": "token"}, tmp_path)
    assert not caplog.records


def test_references_are_resolved_at_any_depth(tmp_path: Path) -> None:
    value = {
        "url": "https://search.example.com",
        "token": {"$env": "SEARCH_TOKEN"},
        "backends": [{"name": "a", "key": {"$env": "SEARCH_TOKEN"}}, 3],
        "limits": {"per_minute": 10},
    }
    resolved = resolve_references(
        value, setting="plugins.search", base_dir=tmp_path, environ={"SEARCH_TOKEN": "tok-0004"}
    )
    assert resolved == {
        "url": "https://search.example.com",
        "token": "tok-0004",
        "backends": [{"name": "a", "key": "tok-0004"}, 3],
        "limits": {"per_minute": 10},
    }
    assert value["token"] == {"$env": "SEARCH_TOKEN"}, "the input is not changed"
    with pytest.raises(ConfigError, match=r"plugins\.search\.backends\[0\]\.key: .* MISSING"):
        resolve_references(
            {"backends": [{"key": {"$env": "MISSING"}}]},
            setting="plugins.search",
            base_dir=tmp_path,
            environ={},
        )


# --- logging -------------------------------------------------------------------------------

LOGGED_KEY = "sk-logged-Hx7Kq2Wn5Rt8Ym3Vb6Zc9wxyz"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger ``secrets_test`` with a formatting handler that writes into a string."""
    register_secret(LOGGED_KEY)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    parent = logging.getLogger("secrets_test")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    yield parent, stream
    for added in parent.handlers:
        for found in [f for f in added.filters if isinstance(f, SecretMasker)]:
            added.removeFilter(found)
    parent.removeHandler(handler)
    parent.propagate = True


def test_the_filter_masks_messages_and_arguments(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    parent, stream = captured
    install_secret_masking(parent)
    install_secret_masking(parent)  # a second call adds no second filter
    for handler in parent.handlers:
        assert sum(isinstance(f, SecretMasker) for f in handler.filters) == 1
    # A child's records reach the parent's handler without passing the parent's filters.
    child = logging.getLogger("secrets_test.child")
    child.info("calling with key %s", LOGGED_KEY)
    child.warning("upstream said: %r", {"headers": {"Authorization": "Bearer abcdefghijklmnop"}})
    parent.info("plain %d", 42)
    assert stream.getvalue().splitlines() == [
        f"INFO secrets_test.child: calling with key {mask(LOGGED_KEY)}",
        "WARNING secrets_test.child: upstream said: {'headers': {'Authorization': 'Bearer …mnop'}}",
        "INFO secrets_test: plain 42",
    ]


def test_the_filter_masks_tracebacks_and_stacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    parent, stream = captured
    install_secret_masking(parent)
    try:
        raise RuntimeError(f"upstream rejected {LOGGED_KEY}")
    except RuntimeError:
        logging.getLogger("secrets_test.child").exception("call failed")
    logging.getLogger("secrets_test.child").info("here", stack_info=True)
    output = stream.getvalue()
    assert LOGGED_KEY not in output
    assert f"RuntimeError: upstream rejected {mask(LOGGED_KEY)}" in output
    assert (
        "Traceback (most recent call last)" in output and "Stack (most recent call last)" in output
    )


def test_a_filter_keeps_records_it_cannot_format() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %d", (1,), None)
    assert SecretMasker().filter(record)
    assert (record.msg, record.args) == ("%d %d", (1,))


@pytest.fixture
def restore_filters() -> Iterator[None]:
    """Take the maskers that install_secret_masking() puts on shared handlers off again."""
    yield
    handlers = [*logging.getLogger().handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for other in logging.Logger.manager.loggerDict.values():
        if isinstance(other, logging.Logger):
            handlers.extend(other.handlers)
    for handler in handlers:
        for found in [f for f in handler.filters if isinstance(f, SecretMasker)]:
            handler.removeFilter(found)


def test_installed_on_the_root_handlers_it_masks_every_logger(
    caplog: pytest.LogCaptureFixture, restore_filters: None
) -> None:
    register_secret(LOGGED_KEY)
    caplog.set_level(logging.INFO)
    install_secret_masking()
    assert logging.lastResort is not None
    assert any(isinstance(f, SecretMasker) for f in logging.lastResort.filters)
    logging.getLogger("graft.models.openai").warning("retrying with %s", LOGGED_KEY)
    try:
        raise KeyError(LOGGED_KEY)
    except KeyError:
        logging.getLogger("graft.server.errors").exception("POST /v1/chat/completions failed")
    assert LOGGED_KEY not in caplog.text
    assert f"retrying with {mask(LOGGED_KEY)}" in caplog.text
    assert f"KeyError: '{mask(LOGGED_KEY)}'" in caplog.text
