"""Encryption at rest in the SQL store, on SQLite and PostgreSQL: what reaches the disk.

Contents, tool calls, tool arguments and results, titles, feedback comments and the passages
a turn cited are stored sealed (``graft.crypto``): the SQLite file and its WAL hold none of
the plaintext, PostgreSQL's columns hold ciphertext, a changed byte is an integrity error,
and ``graft keys rotate-data-key`` re-encrypts everything while older rows stay readable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from graft.cli import cli
from graft.config import load_settings
from graft.context import Principal
from graft.crypto import (
    DataKeys,
    KeySource,
    encode_key,
    generate_key,
    key_id,
    key_id_of,
    parse_keys,
)
from graft.errors import ConfigError, DataIntegrityError
from graft.messages import Message, ToolCall, Usage
from graft.runtime import Graft
from graft.store import ToolRun
from graft.store.encrypted import ENCRYPTED_TABLES, MESSAGES, reencrypt_batch
from graft.store.schema import t_conversations, t_messages, t_turns
from graft.store.sql import SQLStore

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")

SECRET = "Operation Nightjar: 机密计划，黎明时分在北门交接"
TOOL_ARGUMENTS = '{"query": "Nightjar vault 北门密码"}'
TOOL_RESULT = "Nightjar result: 保险库在地下二层"
ANSWER = "Nightjar answer: 明白，黎明时分见"
COMMENT = "Nightjar feedback: 北门 was the wrong gate"
CITATIONS = [
    {
        "n": 1,
        "document_id": "doc_1",
        "chunk_id": 7,
        "title": "Nightjar handbook",
        "text": "Handover 地下二层 at 黎明时分",
        "link": "/v1/knowledge/documents/doc_1#chunk-7",
    }
]
FRAGMENTS = ("Nightjar", "机密计划", "黎明时分", "北门", "保险库", "明白", "地下二层")
"""Pieces of every stored value, none of which may appear on disk."""


# --- helpers --------------------------------------------------------------------------------


async def store_secret_turn(store: SQLStore, principal: Principal = ALICE) -> str:
    """One conversation with every kind of encrypted value in it; returns its id."""
    cid, tid = await store.begin_turn(
        principal,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("system", "Be brief."), Message("user", SECRET)],
    )
    await store.finish_turn(
        tid,
        messages=[
            Message("assistant", None, tool_calls=[ToolCall("call_1", "search", TOOL_ARGUMENTS)]),
            Message("tool", TOOL_RESULT, tool_call_id="call_1", name="search"),
            Message("assistant", ANSWER),
        ],
        tool_runs=[ToolRun("call_1", "search", TOOL_ARGUMENTS, TOOL_RESULT, False, 3.5)],
        usage=Usage(30, 12),
        finish_reason="stop",
        duration_ms=40.0,
        citations=CITATIONS,
    )
    await store.put_feedback(principal, tid, "down", COMMENT)
    return cid


async def assert_readable(store: SQLStore, cid: str, principal: Principal = ALICE) -> None:
    """The owner gets every value back as it was written."""
    history = await store.load_history(cid, principal)
    assert [m.content for m in history] == ["Be brief.", SECRET, None, TOOL_RESULT, ANSWER]
    assert history[2].tool_calls == [ToolCall("call_1", "search", TOOL_ARGUMENTS)]
    info, stored, [turn] = await store.get_conversation(cid, principal)
    assert info.title == SECRET
    assert [s.message for s in stored] == history
    assert turn.tool_runs == [ToolRun("call_1", "search", TOOL_ARGUMENTS, TOOL_RESULT, False, 3.5)]
    assert turn.citations == CITATIONS
    titles = {c.id: c.title for c in await store.list_conversations(principal)}
    assert titles[cid] == SECRET
    feedback = await store.get_feedback_for(cid, principal)
    assert feedback[turn.id].comment == COMMENT


def assert_no_plaintext(data: bytes, where: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment.encode() not in data, f"{fragment!r} is readable in {where}"


def outside_engine(url: str) -> Engine:
    """An engine of the test's own on the store's database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, poolclass=NullPool)


def raw_values(url: str) -> dict[str, list[str]]:
    """Every non-empty value of every encrypted column, as the database holds it."""
    engine = outside_engine(url)
    try:
        with engine.connect() as conn:
            return {
                f"{spec.table.name}.{column}": [
                    value for (value,) in conn.execute(select(spec.table.c[column])) if value
                ]
                for spec in ENCRYPTED_TABLES
                for column in spec.columns
            }
    finally:
        engine.dispose()


def assert_all_sealed_with(url: str, kid: str) -> None:
    found = raw_values(url)
    assert all(found.values()), f"every encrypted column has values: {found}"
    for column, values in found.items():
        for value in values:
            assert key_id_of(value) == kid, f"{column}: {value[:20]}… is not sealed with {kid}"
            assert_no_plaintext(value.encode(), column)


def flip_one_character(value: str) -> str:
    """``value`` with one character of its ciphertext changed (to another base64url one)."""
    index = len(value) // 2
    replacement = "A" if value[index] != "A" else "B"
    return value[:index] + replacement + value[index + 1 :]


# --- what reaches the disk ------------------------------------------------------------------


async def test_the_sqlite_file_and_its_wal_hold_no_plaintext(
    tmp_path: Path, data_keys: DataKeys
) -> None:
    path = tmp_path / "graft.db"
    store = SQLStore(f"sqlite:///{path}", data_keys=data_keys)
    await store.start()
    try:
        cid = await store_secret_turn(store)
        await store_secret_turn(store, BOB)
        wal = path.with_name("graft.db-wal")
        assert wal.stat().st_size > 0, "the writes are in the WAL, not yet checkpointed"
        assert_no_plaintext(path.read_bytes(), "graft.db")
        assert_no_plaintext(wal.read_bytes(), "graft.db-wal")
        await assert_readable(store, cid)
    finally:
        await store.close()
    for file in sorted(tmp_path.glob("*")):  # noqa: ASYNC240 - the test's own files
        assert_no_plaintext(file.read_bytes(), file.name)  # after the last checkpoint too


async def test_every_sql_backend_stores_sealed_values(sql_store: SQLStore, sql_url: str) -> None:
    # On PostgreSQL this is the raw column values, as a dump or a replica would have them.
    cid = await store_secret_turn(sql_store)
    assert sql_store.data_keys is not None
    assert_all_sealed_with(sql_url, sql_store.data_keys.current_id)
    await assert_readable(sql_store, cid)


async def test_a_title_is_sealed_when_a_later_turn_sets_it(
    sql_store: SQLStore, sql_url: str
) -> None:
    cid, _ = await sql_store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("system", "no user text yet")],
    )
    assert raw_values(sql_url)["conversations.title"] == []  # untitled stays "", unsealed
    await sql_store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:echo",
        conversation_id=cid,
        new_messages=[Message("user", SECRET)],
    )
    [title] = raw_values(sql_url)["conversations.title"]
    assert key_id_of(title) is not None
    assert (await sql_store.list_conversations(ALICE))[0].title == SECRET


# --- integrity ------------------------------------------------------------------------------


async def test_a_flipped_byte_in_a_message_is_an_integrity_error(
    sql_store: SQLStore, sql_url: str
) -> None:
    cid = await store_secret_turn(sql_store)
    engine = outside_engine(sql_url)
    try:
        with engine.begin() as conn:
            row_id, content = conn.execute(
                select(t_messages.c.id, t_messages.c.content).where(
                    t_messages.c.conversation_id == cid, t_messages.c.role == "user"
                )
            ).one()
            conn.execute(
                update(t_messages)
                .where(t_messages.c.id == row_id)
                .values(content=flip_one_character(content))
            )
    finally:
        engine.dispose()
    with pytest.raises(DataIntegrityError) as caught:
        await sql_store.load_history(cid, ALICE)
    assert f"messages.content/{cid}" in caught.value.message
    assert not any(fragment in caught.value.message for fragment in FRAGMENTS)
    with pytest.raises(DataIntegrityError):
        await sql_store.get_conversation(cid, ALICE)


async def test_a_flipped_byte_in_a_title_is_an_integrity_error(
    sql_store: SQLStore, sql_url: str
) -> None:
    cid = await store_secret_turn(sql_store)
    engine = outside_engine(sql_url)
    try:
        with engine.begin() as conn:
            title = conn.execute(
                select(t_conversations.c.title).where(t_conversations.c.id == cid)
            ).scalar_one()
            conn.execute(
                update(t_conversations)
                .where(t_conversations.c.id == cid)
                .values(title=flip_one_character(title))
            )
    finally:
        engine.dispose()
    with pytest.raises(DataIntegrityError, match="conversations.title"):
        await sql_store.list_conversations(ALICE)


async def test_a_flipped_byte_in_a_turns_citations_is_an_integrity_error(
    sql_store: SQLStore, sql_url: str
) -> None:
    cid = await store_secret_turn(sql_store)
    engine = outside_engine(sql_url)
    try:
        with engine.begin() as conn:
            turn_id, cited = conn.execute(
                select(t_turns.c.id, t_turns.c.citations).where(t_turns.c.conversation_id == cid)
            ).one()
            assert key_id_of(cited) is not None
            conn.execute(
                update(t_turns)
                .where(t_turns.c.id == turn_id)
                .values(citations=flip_one_character(cited))
            )
    finally:
        engine.dispose()
    with pytest.raises(DataIntegrityError, match=f"turns.citations/{cid}"):
        await sql_store.get_conversation(cid, ALICE)


async def test_a_value_moved_to_another_conversation_does_not_decrypt(
    sql_store: SQLStore, sql_url: str
) -> None:
    # Someone who can write to the database copies Alice's message into Bob's conversation.
    alices = await store_secret_turn(sql_store)
    bobs, _ = await sql_store.begin_turn(
        BOB,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("user", "harmless")],
    )
    engine = outside_engine(sql_url)
    try:
        with engine.begin() as conn:
            stolen = conn.execute(
                select(t_messages.c.content).where(
                    t_messages.c.conversation_id == alices, t_messages.c.role == "user"
                )
            ).scalar_one()
            conn.execute(
                update(t_messages)
                .where(t_messages.c.conversation_id == bobs)
                .values(content=stolen)
            )
    finally:
        engine.dispose()
    with pytest.raises(DataIntegrityError):
        await sql_store.load_history(bobs, BOB)


async def test_without_its_key_sealed_data_is_an_integrity_error(sql_url: str) -> None:
    writer = SQLStore(sql_url, data_keys=DataKeys([generate_key()]))
    await writer.start()
    try:
        cid = await store_secret_turn(writer)
    finally:
        await writer.close()
    for keys in (DataKeys([generate_key()]), None):
        reader = SQLStore(sql_url, data_keys=keys)
        await reader.start()
        try:
            with pytest.raises(DataIntegrityError):
                await reader.load_history(cid, ALICE)
        finally:
            await reader.close()


# --- plaintext from before, and rotation ----------------------------------------------------


async def test_plaintext_from_before_encryption_reads_and_rotation_encrypts_it(
    sql_url: str, tmp_path: Path
) -> None:
    before = SQLStore(sql_url)  # no keys: what a graft without encryption stored
    await before.start()
    try:
        cid = await store_secret_turn(before)
    finally:
        await before.close()
    assert SECRET in raw_values(sql_url)["messages.content"]

    keys = DataKeys([generate_key()])
    store = SQLStore(sql_url, data_keys=keys)
    await store.start()
    try:
        await assert_readable(store, cid)  # read as it is
        done = await store.reencrypt(batch_size=2)
        assert done.counts["messages.content"].encrypted == 4
        assert done.counts["messages.tool_calls"].encrypted == 1
        assert done.counts["tool_runs.result"].encrypted == 1
        assert done.counts["conversations.title"].encrypted == 1
        assert done.counts["feedback.comment"].encrypted == 1
        assert done.counts["turns.citations"].encrypted == 1
        assert all(c.reencrypted == 0 for c in done.counts.values())
        assert_all_sealed_with(sql_url, keys.current_id)
        await assert_readable(store, cid)
        again = await store.reencrypt()
        assert again.changed == 0
        assert again.counts["messages.content"].current == 4
    finally:
        await store.close()
    if make_url(sql_url).get_backend_name() == "sqlite":
        assert done.scrubbed is True
        folder = Path(make_url(sql_url).database or "").parent
        for file in folder.iterdir():  # no old copy left in free pages or the WAL
            assert_no_plaintext(file.read_bytes(), file.name)
    else:
        assert done.scrubbed is None


async def test_rows_of_both_keys_are_readable_while_rotation_runs(sql_url: str) -> None:
    old, new = generate_key(), generate_key()
    store = SQLStore(sql_url, data_keys=DataKeys([old]))
    await store.start()
    try:
        first = await store_secret_turn(store)
        second = await store_secret_turn(store)
    finally:
        await store.close()
    rotating = SQLStore(sql_url, data_keys=DataKeys([new, old]))
    await rotating.start()
    try:
        # One batch of one message: the rest are still sealed with the old key.
        with rotating.engine.begin() as conn:
            reencrypt_batch(conn, MESSAGES, DataKeys([new, old]), None, 1)
        kids = {key_id_of(v) for v in raw_values(sql_url)["messages.content"]}
        assert kids == {key_id(old), key_id(new)}
        await assert_readable(rotating, first)
        await assert_readable(rotating, second)
    finally:
        await rotating.close()


# --- graft keys rotate-data-key -------------------------------------------------------------


@pytest.fixture
def graft_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sql_url: str
) -> Iterator[dict[str, Any]]:
    """GRAFT_HOME in tmp_path and the test's database, as the CLI reads them."""
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GRAFT_DATABASE_URL", sql_url)
    yield {"url": sql_url, "key_file": tmp_path / "home" / "data.key"}


def file_ids(key_file: Path) -> list[str]:
    """The ids of the keys in a key file, newest first (from its comments)."""
    return [line.split("# id ")[1] for line in key_file.read_text().splitlines() if "# id " in line]


def reported(stdout: str) -> dict[str, tuple[int, ...]]:
    """The counts rotate-data-key printed, by column."""
    found = {}
    for line in stdout.splitlines():
        numbers = re.findall(r" (\d+) ", line)
        if len(numbers) == 3:
            found[line.split()[0]] = tuple(int(n) for n in numbers)
    return found


def rotate(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["keys", "rotate-data-key", *args])
    assert result.exit_code == 0, result.output
    return result


def test_rotate_data_key_re_encrypts_everything_with_a_new_key(graft_env: dict[str, Any]) -> None:
    url, key_file = graft_env["url"], graft_env["key_file"]
    # A running graft: its keyring comes from the key file it made on start.
    server = SQLStore(url, data_keys=KeySource.from_settings(load_settings()))

    async def before() -> tuple[str, str]:
        await server.start()
        return await store_secret_turn(server), await store_secret_turn(server, BOB)

    alices, bobs = asyncio.run(before())
    assert server.data_keys is not None
    old_id = server.data_keys.current_id
    assert_all_sealed_with(url, old_id)

    result = rotate("--batch-size", "2")
    [new_id, kept] = file_ids(key_file)
    assert kept == old_id and new_id != old_id
    assert f"added data key {new_id}" in result.output
    counts = reported(result.stdout)
    assert counts["messages.content"] == (8, 0, 0)  # re-encrypted, encrypted, already
    assert counts["messages.tool_calls"] == counts["tool_runs.arguments"] == (2, 0, 0)
    assert counts["conversations.title"] == counts["feedback.comment"] == (2, 0, 0)
    assert_all_sealed_with(url, new_id)

    async def after() -> str:
        # The running graft reads the rotated rows (it reloads the changed key file)...
        await assert_readable(server, alices)
        await assert_readable(server, bobs, BOB)
        # ...and from then on encrypts with the new key.
        third = await store_secret_turn(server)
        await server.close()
        return third

    asyncio.run(after())
    assert_all_sealed_with(url, new_id)

    result = rotate("--no-new-key", "--drop-old")
    assert f"removed data keys {old_id}" in result.output
    assert file_ids(key_file) == [new_id]
    only_new = KeySource.from_settings(load_settings()).load()  # type: ignore[union-attr]
    assert only_new is not None and only_new.ids == (new_id,)

    async def readable_with_the_new_key_alone() -> None:
        store = SQLStore(url, data_keys=only_new)
        await store.start()
        try:
            await assert_readable(store, alices)
        finally:
            await store.close()

    asyncio.run(readable_with_the_new_key_alone())


def test_rotate_data_key_with_the_key_in_the_environment(
    graft_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = graft_env["url"]
    old = generate_key()
    monkeypatch.setenv("GRAFT_DATA_KEY", encode_key(old))

    async def before() -> str:
        store = SQLStore(url, data_keys=DataKeys([old]))
        await store.start()
        try:
            return await store_secret_turn(store)
        finally:
            await store.close()

    cid = asyncio.run(before())
    result = rotate()
    [line] = [line for line in result.stdout.splitlines() if line.startswith("GRAFT_DATA_KEY=")]
    value = line.removeprefix("GRAFT_DATA_KEY=")
    new, kept = value.split(",")
    assert kept == encode_key(old) and new != kept
    assert "this command does not change" in result.stderr
    assert not graft_env["key_file"].exists()
    assert_all_sealed_with(url, key_id(old))  # nothing re-encrypted yet

    monkeypatch.setenv("GRAFT_DATA_KEY", value)  # what the operator does
    result = rotate("--no-new-key", "--drop-old")
    new_id = key_id(parse_keys(new, source="test")[0])
    assert_all_sealed_with(url, new_id)
    assert f"GRAFT_DATA_KEY={new}" in result.stdout

    async def after() -> None:
        store = SQLStore(url, data_keys=KeySource.from_settings(load_settings()))
        await store.start()
        try:
            await assert_readable(store, cid)
        finally:
            await store.close()

    asyncio.run(after())


def test_rotate_data_key_refuses_without_encryption(
    graft_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFT_ENCRYPT_AT_REST", "false")
    result = CliRunner().invoke(cli, ["keys", "rotate-data-key"])
    assert result.exit_code == 1
    assert "encrypt_at_rest is off" in result.output


# --- graft from its settings ----------------------------------------------------------------


async def test_graft_encrypts_by_default_with_a_key_file_in_its_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    async with Graft(settings, entry_points=False) as graft:
        assert isinstance(graft.store, SQLStore)
        keys = graft.store.data_keys
        assert keys is not None and keys.encrypting
        cid = await store_secret_turn(graft.store)
        await assert_readable(graft.store, cid)
    key_file = tmp_path / "home" / "data.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert_no_plaintext((tmp_path / "home" / "graft.db").read_bytes(), "graft.db")


async def test_graft_refuses_to_start_with_a_key_file_others_can_read(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    async with Graft(settings, entry_points=False):
        pass
    (tmp_path / "data.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        async with Graft(settings, entry_points=False):
            pass
