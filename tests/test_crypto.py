"""Encryption at rest (graft.crypto): keys, ids, the sealed form, tampering, key sources."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from graft.config import load_settings
from graft.crypto import (
    PREFIX,
    DataKeys,
    KeySource,
    encode_key,
    generate_key,
    is_sealed,
    key_id,
    key_id_of,
    looks_damaged,
    parse_keys,
    read_key_file,
    write_key_file,
)
from graft.errors import ConfigError, DataIntegrityError, GraftError

SECRET = "launch code 7741 机密计划：黎明时分 🚀"
CONTEXT = "messages.content/conv_a"


def sealed_parts(value: str) -> tuple[str, bytes]:
    """The header (``g1:<id>``) and the raw nonce || ciphertext || tag of a sealed value."""
    header, _, payload = value.rpartition(":")
    return header, base64.urlsafe_b64decode(payload)


def reseal(header: str, raw: bytes) -> str:
    return f"{header}:{base64.urlsafe_b64encode(raw).decode()}"


def flip(raw: bytes, index: int) -> bytes:
    return raw[:index] + bytes([raw[index] ^ 0x01]) + raw[index + 1 :]


# --- round trip and key ids ------------------------------------------------------------------


@pytest.mark.parametrize("text", [SECRET, "", "x", "a" * 100_000, '{"city": "Paris"}'])
def test_round_trip(text: str) -> None:
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt(text, CONTEXT)
    assert sealed.startswith(f"{PREFIX}{keys.current_id}:")
    assert sealed.isascii() and sealed.isprintable()
    assert keys.decrypt(sealed, CONTEXT) == text
    assert is_sealed(sealed) and key_id_of(sealed) == keys.current_id


def test_each_value_gets_its_own_nonce() -> None:
    keys = DataKeys([generate_key()])
    values = {keys.encrypt(SECRET, CONTEXT) for _ in range(100)}
    assert len(values) == 100
    assert len({sealed_parts(v)[1][:12] for v in values}) == 100


def test_the_plaintext_is_not_in_the_sealed_value() -> None:
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt(SECRET, CONTEXT)
    assert SECRET not in sealed
    assert SECRET.encode() not in sealed_parts(sealed)[1]


def test_key_ids_are_short_stable_and_distinct() -> None:
    first, second = generate_key(), generate_key()
    assert len(key_id(first)) == 8 and set(key_id(first)) <= set("0123456789abcdef")
    assert key_id(first) == key_id(bytes(first))
    assert key_id(first) != key_id(second)
    keys = DataKeys([second, first])
    assert keys.current_id == key_id(second)
    assert keys.ids == (key_id(second), key_id(first))
    assert keys.keys == (second, first)


def test_the_newest_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    before = DataKeys([old]).encrypt(SECRET, CONTEXT)
    ring = DataKeys([new, old])
    after = ring.encrypt(SECRET, CONTEXT)
    assert key_id_of(after) == key_id(new)
    assert ring.decrypt(before, CONTEXT) == ring.decrypt(after, CONTEXT) == SECRET


def test_plaintext_stored_before_encryption_reads_as_it_is() -> None:
    keys = DataKeys([generate_key()])
    legacy_values = ("hello", "g1 is a name", "g1:short", "g1:not-hex!:x", SECRET, "", "a:b:c")
    for legacy in legacy_values:
        assert keys.decrypt(legacy, CONTEXT) == legacy
        assert key_id_of(legacy) is None


# --- integrity -------------------------------------------------------------------------------


def test_a_value_of_another_key_is_an_integrity_error() -> None:
    sealed = DataKeys([generate_key()]).encrypt(SECRET, CONTEXT)
    with pytest.raises(DataIntegrityError, match="not configured here"):
        DataKeys([generate_key()]).decrypt(sealed, CONTEXT)


def test_a_value_relabelled_with_another_key_id_is_an_integrity_error() -> None:
    mine, other = generate_key(), generate_key()
    ring = DataKeys([mine, other])
    header, raw = sealed_parts(DataKeys([other]).encrypt(SECRET, CONTEXT))
    with pytest.raises(DataIntegrityError, match="tag"):
        ring.decrypt(reseal(f"{PREFIX}{key_id(mine)}", raw), CONTEXT)


@pytest.mark.parametrize(
    ("part", "index"),
    [
        ("nonce", 0),
        ("nonce", 11),
        ("ciphertext", 12),
        ("ciphertext", -17),
        ("tag", -16),
        ("tag", -1),
    ],
)
def test_a_flipped_bit_is_an_integrity_error(part: str, index: int) -> None:
    keys = DataKeys([generate_key()])
    header, raw = sealed_parts(keys.encrypt(SECRET, CONTEXT))
    with pytest.raises(DataIntegrityError) as caught:
        keys.decrypt(reseal(header, flip(raw, index)), CONTEXT)
    assert caught.value.status == 500
    assert caught.value.code == "data_integrity_error"
    assert isinstance(caught.value, GraftError)


def test_a_changed_key_id_is_an_integrity_error() -> None:
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt(SECRET, CONTEXT)
    kid = keys.current_id
    other = ("0" if kid[0] != "0" else "1") + kid[1:]
    with pytest.raises(DataIntegrityError):
        keys.decrypt(sealed.replace(kid, other, 1), CONTEXT)


def test_any_changed_character_is_an_integrity_error_never_text() -> None:
    """Every position of the stored string, each replaced by two other characters."""
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt("short secret", CONTEXT)
    for index, char in enumerate(sealed):
        for replacement in {"A", "g", ":", "=", "-", "0", "é"} - {char}:
            damaged = sealed[:index] + replacement + sealed[index + 1 :]
            with pytest.raises(DataIntegrityError):
                keys.decrypt(damaged, CONTEXT)


def test_a_truncated_value_is_an_integrity_error() -> None:
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt(SECRET, CONTEXT)
    # Cut anywhere after its header: a shorter stub could be old plaintext ("g1:ab").
    for cut in (len(PREFIX) + 9, len(PREFIX) + 12, len(sealed) - 4, len(sealed) - 1):
        with pytest.raises(DataIntegrityError):
            keys.decrypt(sealed[:cut], CONTEXT)


def test_another_context_is_an_integrity_error() -> None:
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt(SECRET, "messages.content/conv_a")
    for context in ("messages.content/conv_b", "tool_runs.result/conv_a", "", "messages.content"):
        with pytest.raises(DataIntegrityError):
            keys.decrypt(sealed, context)


def test_the_error_message_shows_no_plaintext() -> None:
    keys = DataKeys([generate_key()])
    header, raw = sealed_parts(keys.encrypt(SECRET, CONTEXT))
    with pytest.raises(DataIntegrityError) as caught:
        keys.decrypt(reseal(header, flip(raw, 20)), CONTEXT)
    message = str(caught.value)
    assert CONTEXT in message
    assert "launch" not in message and "机密" not in message


def test_a_damaged_prefix_is_not_taken_for_plaintext() -> None:
    keys = DataKeys([generate_key()])
    sealed = keys.encrypt(SECRET, CONTEXT)
    for damaged in ("h" + sealed[1:], "g2" + sealed[2:], sealed[:2] + ";" + sealed[3:]):
        assert looks_damaged(damaged)
        with pytest.raises(DataIntegrityError, match="format"):
            keys.decrypt(damaged, CONTEXT)
    assert not looks_damaged("an ordinary message: it has spaces, and it is long enough")


# --- keys in text ----------------------------------------------------------------------------


def test_parse_keys_reads_commas_lines_and_comments() -> None:
    first, second = generate_key(), generate_key()
    text = f"# comment\n{encode_key(first)}  # id\n\n {encode_key(second)} , {encode_key(first)}"
    assert parse_keys(text, source="test") == [first, second]
    padded = base64.urlsafe_b64encode(first).decode()
    assert parse_keys(padded, source="test") == [first]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no data key"),
        ("  ,  # nothing", "no data key"),
        ("not base64 at all!", "not base64url"),
        (encode_key(b"short"), "5 bytes, not 32"),
        (encode_key(os.urandom(48)), "48 bytes"),
    ],
)
def test_parse_keys_refuses_bad_keys(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_keys(text, source="GRAFT_DATA_KEY")
    assert "GRAFT_DATA_KEY" in caught.value.message


def test_a_bad_environment_key_names_the_variable_not_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = encode_key(generate_key())
    monkeypatch.setenv("GRAFT_DATA_KEY", f"{good},{good[:20]}")
    source = KeySource.from_settings(load_settings(home=tmp_path))
    assert source is not None
    with pytest.raises(ConfigError, match="GRAFT_DATA_KEY: data key 2 is 15 bytes") as caught:
        source.load()
    assert good[:20] not in caught.value.message


# --- key sources -----------------------------------------------------------------------------


def test_the_key_file_is_made_on_first_start_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    source = KeySource.from_settings(settings)
    assert source is not None and not source.from_env
    assert source.path == tmp_path / "home" / "data.key"
    keys = source.load()
    assert keys is not None and keys.encrypting
    assert stat.S_IMODE(source.path.stat().st_mode) == 0o600
    assert read_key_file(source.path) == list(keys.keys)
    again = source.load()
    assert again is not None and again.ids == keys.ids  # not made twice
    assert [p.name for p in source.path.parent.iterdir()] == ["data.key"]  # no temporary left


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620])
def test_a_key_file_others_may_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "data.key"
    write_key_file(path, [generate_key()])
    path.chmod(mode)
    source = KeySource(None, path, True)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        source.load()


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    write_key_file(path, [generate_key()])
    path.write_text("garbage\n")
    with pytest.raises(ConfigError, match="data key file"):
        KeySource(None, path, True).load()


def test_the_environment_wins_and_no_file_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    new, old = generate_key(), generate_key()
    monkeypatch.setenv("GRAFT_DATA_KEY", f"{encode_key(new)}, {encode_key(old)}")
    settings = load_settings(home=tmp_path, port=9000)  # overrides keep the variable's keys
    source = KeySource.from_settings(settings)
    assert source is not None and source.from_env
    keys = source.load()
    assert keys is not None and keys.keys == (new, old)
    assert not (tmp_path / "data.key").exists()
    assert encode_key(new) not in repr(settings)
    assert encode_key(new) not in repr(source) and encode_key(new) not in repr(keys)


def test_data_keys_do_not_belong_in_the_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text(f'data_key = "{encode_key(generate_key())}"\n')
    with pytest.raises(ConfigError, match="do not belong in the settings file"):
        load_settings(config)


def test_with_encryption_off_no_key_is_made_and_none_is_needed(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, encrypt_at_rest=False)
    source = KeySource.from_settings(settings)
    assert source is not None
    assert source.load() is None
    assert not (tmp_path / "data.key").exists()
    write_key_file(tmp_path / "data.key", [generate_key()])
    keys = source.load()  # an existing key still decrypts what was encrypted before
    assert keys is not None and not keys.encrypting


def test_the_memory_store_has_no_key_source(tmp_path: Path) -> None:
    assert KeySource.from_settings(load_settings(home=tmp_path, database_url="memory://")) is None


def test_a_keyring_reads_its_changed_key_file(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    old = generate_key()
    write_key_file(path, [old])
    running = KeySource(None, path, True).load()  # a server's keyring
    assert running is not None
    new = generate_key()
    write_key_file(path, [new, old])  # what rotate-data-key does
    rotated = DataKeys([new, old]).encrypt(SECRET, CONTEXT)
    assert running.decrypt(rotated, CONTEXT) == SECRET  # an unknown id: it looked again
    assert running.current_id == key_id(new)
    assert key_id_of(running.encrypt(SECRET, CONTEXT)) == key_id(new)


def test_a_keyring_keeps_its_keys_when_the_file_turns_bad(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    write_key_file(path, [generate_key()])
    running = KeySource(None, path, True).load()
    assert running is not None
    path.chmod(0o644)
    path.write_text(path.read_text() + "\n")
    stranger = DataKeys([generate_key()]).encrypt(SECRET, CONTEXT)
    with pytest.raises(DataIntegrityError):
        running.decrypt(stranger, CONTEXT)
    assert running.decrypt(running.encrypt(SECRET, CONTEXT), CONTEXT) == SECRET
