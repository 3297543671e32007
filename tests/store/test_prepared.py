"""``Prepared`` statements store exactly what ``Connection.execute`` would, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import ArgumentError, IntegrityError

from graft.store.prepared import Prepared
from graft.store.sql import SQLStore, t_conversations, t_turns

WHEN = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=timezone(timedelta(hours=8)))
CONVERSATION_KEYS = ["id", "tenant", "user_id", "assistant", "title", "created_at", "updated_at"]
INSERT_CONVERSATION = Prepared(insert(t_conversations).inline(), keys=CONVERSATION_KEYS)


def conversation(cid: str, title: str = "标题 with 'quotes'") -> dict[str, object]:
    return {
        "id": cid,
        "tenant": "acme",
        "user_id": "alice",
        "assistant": "default",
        "title": title,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


async def test_rows_match_what_sqlalchemy_stores(sql_store: SQLStore) -> None:
    with sql_store.engine.begin() as conn:
        INSERT_CONVERSATION.execute(conn, conversation("prepared"))
        conn.execute(insert(t_conversations), conversation("core"))
        # As the database holds them (SQLite: text), not as SQLAlchemy reads them back.
        stored = {
            row[0]: row[1:]
            for row in conn.exec_driver_sql(
                "SELECT id, tenant, user_id, assistant, title, created_at, updated_at"
                " FROM conversations"
            )
        }
    assert stored["prepared"] == stored["core"]
    with sql_store.engine.connect() as conn:
        row = conn.execute(select(t_conversations).where(t_conversations.c.id == "prepared")).one()
    assert row.created_at == WHEN and row.created_at.tzinfo == UTC  # the type's processors ran
    assert row.title == "标题 with 'quotes'"


async def test_literal_values_and_rowcount(sql_store: SQLStore) -> None:
    insert_turn = Prepared(
        insert(t_turns).inline(),
        keys=["id", "conversation_id", "status", "model", "prompt_tokens", "completion_tokens"]
        + ["started_at"],
    )
    finish = Prepared(
        update(t_turns)
        .where((t_turns.c.id == bindparam("b_tid")) & (t_turns.c.status == "running"))
        .values(status=bindparam("b_status"))
    )
    turn = {
        "conversation_id": "c1",
        "model": "m",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "started_at": WHEN,
    }
    with sql_store.engine.begin() as conn:
        INSERT_CONVERSATION.execute(conn, conversation("c1"))
        insert_turn.executemany(
            conn,
            [turn | {"id": "t1", "status": "running"}, turn | {"id": "t2", "status": "done"}],
        )
        # 'running' is a literal of the statement: only a running turn is finished.
        assert finish.execute(conn, {"b_tid": "t1", "b_status": "done"}).rowcount == 1
        assert finish.execute(conn, {"b_tid": "t1", "b_status": "failed"}).rowcount == 0
        assert finish.execute(conn, {"b_tid": "t2", "b_status": "failed"}).rowcount == 0
        statuses = {r.id: r.status for r in conn.execute(select(t_turns.c.id, t_turns.c.status))}
    assert statuses == {"t1": "done", "t2": "done"}


async def test_database_errors_are_sqlalchemy_errors(sql_store: SQLStore) -> None:
    with sql_store.engine.connect() as conn, conn.begin():
        INSERT_CONVERSATION.execute(conn, conversation("dup"))
        with pytest.raises(IntegrityError):
            INSERT_CONVERSATION.executemany(conn, [conversation("dup")])


async def test_bad_values_are_refused_before_the_database(sql_store: SQLStore) -> None:
    with sql_store.engine.connect() as conn, conn.begin():
        with pytest.raises(ArgumentError, match="no value for parameter 'updated_at'"):
            INSERT_CONVERSATION.execute(
                conn, {k: v for k, v in conversation("c").items() if k != "updated_at"}
            )
        with pytest.raises(ValueError, match="naive datetime"):  # the column type's check
            INSERT_CONVERSATION.execute(
                conn, conversation("c") | {"created_at": datetime(2026, 1, 1)}
            )


def test_statements_it_cannot_run_are_refused(sql_store: SQLStore) -> None:
    table = Table(
        "t",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(10), default=lambda: "x"),
    )
    engine = sql_store.engine
    with engine.connect() as conn:
        with pytest.raises(ArgumentError, match="Python-side defaults"):
            Prepared(insert(table).inline(), keys=["id"]).execute(conn, {"id": 1})
        with pytest.raises(ArgumentError, match="RETURNING"):
            Prepared(
                insert(t_conversations).returning(t_conversations.c.id), keys=CONVERSATION_KEYS
            ).execute(conn, conversation("c"))
        with pytest.raises(ArgumentError, match="expanding IN"):
            Prepared(
                select(t_turns.c.id).where(t_turns.c.id.in_(bindparam("ids", expanding=True)))
            ).execute(conn, {"ids": ["a"]})
