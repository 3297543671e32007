"""Changing a user's roles and groups in every store: keys and sessions follow at once."""

from __future__ import annotations

import pytest

from graft.config import Settings
from graft.context import Principal
from graft.errors import NotFound
from graft.identity import issue_key, principal_for_key
from graft.sessions import find_session, open_session, principal_of_session
from graft.store import Store

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


async def test_roles_and_groups_are_replaced_for_one_user_of_one_tenant(store: Store) -> None:
    await store.create_user(tenant="acme", name="ann", roles=["user"], groups=["sales"])
    await store.create_user(tenant="globex", name="ann", roles=["user"], groups=["sales"])
    promoted = await store.set_user_roles("acme", "ann", ["builder", "user"])
    assert promoted.roles == ("builder", "user") and promoted.groups == ("sales",)
    moved = await store.set_user_groups("acme", "ann", ["hr", "研发"])
    assert moved.groups == ("hr", "研发") and moved.roles == ("builder", "user")
    assert await store.get_user("acme", "ann") == moved
    assert await store.set_user_groups("acme", "ann", []) == await store.get_user("acme", "ann")
    assert (await store.get_user("acme", "ann")).groups == ()
    # The other tenant's ann is another user.
    other = await store.get_user("globex", "ann")
    assert other.roles == ("user",) and other.groups == ("sales",)
    with pytest.raises(NotFound, match="no user 'bob'"):
        await store.set_user_roles("acme", "bob", ["user"])
    with pytest.raises(NotFound, match="no user 'bob'"):
        await store.set_user_groups("acme", "bob", [])


async def test_keys_and_sessions_get_the_new_roles_and_groups_at_their_next_use(
    store: Store,
) -> None:
    ann = await store.create_user(
        tenant="acme", name="ann", roles=["builder", "user"], groups=["hr"]
    )
    key, info = await issue_key(store, ann, creator=OPERATOR)
    token, _ = await open_session(store, info.id, Settings())

    async def now() -> tuple[Principal, Principal]:
        session = await find_session(store, token)
        assert session is not None
        return await principal_for_key(store, key), principal_of_session(session)

    for principal in await now():
        assert principal.roles == {"builder", "user"} and principal.groups == {"hr"}
    await store.set_user_roles("acme", "ann", ["user"])
    await store.set_user_groups("acme", "ann", ["ops"])
    for principal in await now():
        assert principal.roles == {"user"} and principal.groups == {"ops"}
    # A role given back returns to the key that was made with it; a new one does not.
    await store.set_user_roles("acme", "ann", ["admin", "builder", "user"])
    for principal in await now():
        assert principal.roles == {"builder", "user"}
    admin_key, _ = await issue_key(store, await store.get_user("acme", "ann"), creator=OPERATOR)
    assert (await principal_for_key(store, admin_key)).roles == {"admin", "builder", "user"}
