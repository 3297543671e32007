"""Keys: shown once, stored hashed, found by their public part, never more than allowed."""

from __future__ import annotations

import pytest

from graft.context import Principal
from graft.errors import AuthenticationError, InvalidRequest, PermissionDenied
from graft.identity import check_roles, hash_key, issue_key, key_id_of, principal_for_key
from graft.store.memory import MemoryStore

ADMIN = Principal("root", frozenset({"admin"}))
BUILDER = Principal("bea", frozenset({"builder"}))


@pytest.fixture
async def store() -> MemoryStore:
    return MemoryStore()


async def test_a_key_is_stored_as_a_digest_and_authenticates_its_user(store: MemoryStore) -> None:
    ann = await store.create_user(tenant="acme", name="ann", roles=["builder"], groups=["sales"])
    key, info = await issue_key(store, ann, creator=ADMIN, name="laptop")
    assert key_id_of(key) == info.id and key.startswith(info.id + "_") and len(key) == 59
    stored = await store.find_key(info.id)
    assert stored is not None and stored.sha256 == hash_key(key) and key not in repr(stored)
    principal = await principal_for_key(store, key)
    assert principal == Principal("ann", frozenset({"builder"}), frozenset({"sales"}), "acme")
    assert info.created_by == "root" and info.name == "laptop"


async def test_wrong_revoked_and_disabled_keys_get_one_answer(store: MemoryStore) -> None:
    ann = await store.create_user(tenant="acme", name="ann", roles=["user"], groups=[])
    key, info = await issue_key(store, ann, creator=ADMIN)
    other, _ = await issue_key(store, ann, creator=ADMIN)
    wrong_secret = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    unknown = "gk_ffffffffffff_" + key.split("_", 2)[2]
    for token in (wrong_secret, unknown, "gk_short", "sk-something"):
        with pytest.raises(AuthenticationError, match="^invalid API key$"):
            await principal_for_key(store, token)
    await store.revoke_key(info.id)
    with pytest.raises(AuthenticationError, match="^invalid API key$"):
        await principal_for_key(store, key)
    assert (await principal_for_key(store, other)).user_id == "ann"
    await store.set_user_disabled("acme", "ann", True)
    with pytest.raises(AuthenticationError, match="^invalid API key$"):
        await principal_for_key(store, other)


async def test_a_key_carries_a_subset_of_its_user_and_creator_roles(store: MemoryStore) -> None:
    boss = await store.create_user(tenant="t", name="boss", roles=["admin", "user"], groups=[])
    # By default: every role of the user that the creator may give.
    _, info = await issue_key(store, boss, creator=BUILDER)
    assert info.roles == ("user",)
    _, info = await issue_key(store, boss, creator=ADMIN)
    assert info.roles == ("admin", "user")
    with pytest.raises(PermissionDenied, match="may not give the role 'admin'"):
        await issue_key(store, boss, creator=BUILDER, roles=["admin"])
    with pytest.raises(InvalidRequest, match="does not have the role 'builder'"):
        await issue_key(store, boss, creator=ADMIN, roles=["builder"])
    with pytest.raises(InvalidRequest, match="unknown role 'root'"):
        await issue_key(store, boss, creator=ADMIN, roles=["root"])


async def test_a_demoted_user_keys_lose_the_role_at_once(store: MemoryStore) -> None:
    ann = await store.create_user(tenant="t", name="ann", roles=["builder", "user"], groups=[])
    key, _ = await issue_key(store, ann, creator=ADMIN)
    assert (await principal_for_key(store, key)).roles == frozenset({"builder", "user"})
    await store.set_user_roles("t", "ann", ["user"])
    assert (await principal_for_key(store, key)).roles == frozenset({"user"})


async def test_disabled_users_get_no_new_keys(store: MemoryStore) -> None:
    await store.create_user(tenant="t", name="ann", roles=["user"], groups=[])
    ann = await store.set_user_disabled("t", "ann", True)
    with pytest.raises(PermissionDenied, match="disabled"):
        await issue_key(store, ann, creator=ADMIN)


def test_roles_are_checked_and_ordered() -> None:
    assert check_roles(["user", "admin", "user"]) == ["admin", "user"]
    with pytest.raises(InvalidRequest):
        check_roles(["superuser"])
