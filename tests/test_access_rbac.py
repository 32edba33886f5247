"""Roles, permissions and the authorisation decision; anti-escalation; denials audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from identity_kit import Kit, make_kit
from pactvault.access.decision import Resource, decide, reach
from pactvault.access.permissions import (
    BUILTIN_ROLES,
    LEGACY_SCOPES,
    PERMISSIONS,
    SCOPED_ACTIONS,
    legacy_permissions,
)
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from pactvault.identity.principal import Principal


def member_of(role: str, org: str = "org-a", user: str = "u1") -> Principal:
    return Principal(
        org_id=org, user_id=user, session_id="s", role=role, permissions=BUILTIN_ROLES[role]
    )


def contract(org: str = "org-a", owner: str | None = "someone", parties: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return Resource("contract", "c1", org, owner, frozenset(parties))


# -- the pure decision -------------------------------------------------------------------------


def test_the_permission_table_is_consistent() -> None:
    for role, permissions in BUILTIN_ROLES.items():
        assert permissions <= set(PERMISSIONS), role
    assert BUILTIN_ROLES["owner"] == frozenset(PERMISSIONS)
    assert "org.manage" not in BUILTIN_ROLES["admin"]  # only owners make owners
    for scoped in SCOPED_ACTIONS:
        assert f"{scoped}.all" in PERMISSIONS and f"{scoped}.own" in PERMISSIONS
    for permissions in LEGACY_SCOPES.values():
        assert permissions <= set(PERMISSIONS)


def test_unknown_permissions_are_denied_even_to_owners() -> None:
    owner = member_of("owner")
    for name in ("contract.destroy", "", "contract", "contract.read.all.extra", "admin"):
        decision = decide(owner, name)
        assert not decision.allowed and decision.reason == "unknown-permission"
        assert isinstance(decision.error(), PermissionDeniedError)
    assert not decide(Principal(org_id="org-a"), "contract.create").allowed  # no permissions


@pytest.mark.parametrize(
    ("role", "permission", "resource", "allowed"),
    [
        ("owner", "contract.read", contract(), True),
        ("admin", "contract.void", contract(), True),
        ("admin", "org.manage", None, False),
        ("contract_manager", "contract.create", None, True),
        ("contract_manager", "contract.send", contract(owner="u1"), True),
        ("contract_manager", "contract.send", contract(owner="u2"), False),
        # Signing a colleague's draft makes one a party (may read it), not its owner.
        ("contract_manager", "contract.send", contract(owner="u2", parties=("u1",)), False),
        ("contract_manager", "contract.void", contract(owner="u2", parties=("u1",)), False),
        ("contract_manager", "contract.update", contract(owner="u2", parties=("u1",)), False),
        ("contract_manager", "contract.read", contract(owner="u2", parties=("u1",)), True),
        ("contract_manager", "contract.read", None, False),  # .own needs the resource
        ("contract_manager", "member.manage", None, False),
        ("approver", "contract.approve", None, True),
        ("approver", "contract.read", contract(parties=("u1",)), True),
        ("approver", "contract.read", contract(), False),
        ("member", "contract.read", contract(parties=("u1",)), True),
        ("member", "contract.read", contract(), False),
        ("member", "contract.create", None, False),
        ("member", "contract.send", contract(owner="u1"), False),
        ("auditor", "audit.read", None, True),
        ("auditor", "contract.read", contract(), False),  # journal yes, content no
        ("auditor", "contract.read", contract(owner="u1"), False),
    ],
)
def test_builtin_role_decisions(
    role: str, permission: str, resource: Resource | None, allowed: bool
) -> None:
    assert decide(member_of(role), permission, resource).allowed is allowed


def test_other_tenants_resources_are_hidden_even_from_owners() -> None:
    decision = decide(member_of("owner"), "contract.read", contract(org="org-b"))
    assert not decision.allowed and decision.hide
    error = decision.error()
    assert type(error) is NotFoundError and str(error) == "contract not found"


def test_reach_for_list_queries() -> None:
    assert reach(member_of("admin"), "contract.read") == "all"
    assert reach(member_of("member"), "contract.read") == "own"
    assert reach(member_of("auditor"), "contract.read") is None
    assert reach(member_of("owner"), "audit.read") is None  # not a scoped action
    token = Principal(org_id="org-a", token_id="t", permissions=frozenset({"contract.read.own"}))
    assert reach(token, "contract.read") is None  # no user, so nothing is "own"


def test_legacy_token_scopes_map_to_permissions() -> None:
    assert legacy_permissions({"admin"}) == frozenset(PERMISSIONS)
    assert legacy_permissions({"contracts:read"}) == {"contract.read.all"}
    writer = legacy_permissions({"contracts:write"})
    assert "contract.send.all" in writer and "contract.read.all" not in writer
    assert legacy_permissions({"bogus"}) == frozenset()


# -- audited enforcement and anti-escalation ---------------------------------------------------


@pytest.fixture
def kit(database_url: str) -> Iterator[Kit]:
    instance = make_kit(database_url)
    yield instance
    instance.close()


def test_authorize_audits_denials(kit: Kit) -> None:
    owner = kit.organisation()
    mia = kit.member(owner, "mia@acme.test", "member")
    kit.access.authorize(owner, "audit.read")  # allowed: nothing recorded
    assert kit.events("access.denied") == []
    with pytest.raises(PermissionDeniedError):
        kit.access.authorize(mia, "audit.read")
    with pytest.raises(PermissionDeniedError):
        kit.access.authorize(mia, "no.such.permission")
    with pytest.raises(NotFoundError):
        kit.access.authorize(owner, "contract.read", Resource("contract", "c9", "elsewhere"))
    denied = kit.events("access.denied")
    assert [(e.actor_id, e.details["action"], e.details["reason"]) for e in denied] == [
        (mia.user_id, "audit.read", "missing-permission"),
        (mia.user_id, "no.such.permission", "unknown-permission"),
        # Recorded exactly as a missing id would be: the prober's auditors learn nothing.
        (owner.user_id, "contract.read", "not found"),
    ]
    assert denied[-1].object_id == "c9" and denied[-1].details["status"] == 404


def test_a_member_cannot_raise_their_own_role(kit: Kit) -> None:
    owner = kit.organisation()
    mia = kit.member(owner, "mia@acme.test", "member")
    admin = kit.member(owner, "ada@acme.test", "admin")
    with pytest.raises(PermissionDeniedError):
        kit.people.change_role(mia, mia.user_id or "", "admin")
    with pytest.raises(PermissionDeniedError, match="your own role"):
        kit.people.change_role(admin, admin.user_id or "", "owner")
    with pytest.raises(PermissionDeniedError, match="your own role"):
        kit.people.change_role(owner, owner.user_id or "", "admin")
    assert kit.people.get_member(owner, mia.user_id or "").role == "member"
    assert kit.people.get_member(owner, admin.user_id or "").role == "admin"
    actions = [e.details["action"] for e in kit.events("access.denied")]
    assert actions == ["member.change-role"] * 3


def test_nobody_grants_more_than_they_hold(kit: Kit) -> None:
    owner = kit.organisation()
    admin = kit.member(owner, "ada@acme.test", "admin")
    mia = kit.member(owner, "mia@acme.test", "member")
    # An admin cannot make an owner, by role change or by invitation ...
    with pytest.raises(PermissionDeniedError, match=r"org\.manage"):
        kit.people.change_role(admin, mia.user_id or "", "owner")
    with pytest.raises(PermissionDeniedError, match=r"org\.manage"):
        kit.people.invite(admin, "friend@elsewhere.test", "owner")
    # ... nor demote or remove an owner.
    with pytest.raises(PermissionDeniedError):
        kit.people.change_role(admin, owner.user_id or "", "member")
    with pytest.raises(PermissionDeniedError):
        kit.people.remove_member(admin, owner.user_id or "")
    # A custom role cannot smuggle in a permission its creator lacks.
    with pytest.raises(PermissionDeniedError):
        kit.roles.create_role(admin, "superadmin", "Super", ["org.manage", "audit.read"])
    # What admins may do, they can.
    kit.people.change_role(admin, mia.user_id or "", "contract_manager")
    kit.people.invite(admin, "friend@elsewhere.test", "admin")
    assert kit.people.get_member(owner, owner.user_id or "").role == "owner"
    assert len(kit.events("access.denied")) == 5
    assert not any(e.details.get("to") == "owner" for e in kit.events("member.change-role"))


def test_custom_roles(kit: Kit) -> None:
    owner = kit.organisation()
    admin = kit.member(owner, "ada@acme.test", "admin")
    role = kit.roles.create_role(admin, "legal", "Legal team", ["contract.read.all", "audit.read"])
    assert role.permissions == ("audit.read", "contract.read.all")
    with pytest.raises(ConflictError):
        kit.roles.create_role(admin, "legal", "again", ["audit.read"])
    for bad_key in ("owner", "Legal", "x", "has space"):
        with pytest.raises(InvalidInputError):
            kit.roles.create_role(admin, bad_key, "n", ["audit.read"])
    with pytest.raises(InvalidInputError):
        kit.roles.create_role(admin, "weird", "n", ["contract.teleport"])

    lena = kit.member(admin, "lena@acme.test", "legal")
    assert lena.permissions == {"contract.read.all", "audit.read"}
    assert {"legal", "owner", "auditor"} <= {r.key for r in kit.roles.list_roles(admin)}
    # Lena cannot edit the role she holds; a member cannot manage roles at all.
    with pytest.raises(PermissionDeniedError):
        kit.roles.update_role(lena, "legal", ["contract.read.all"])
    with pytest.raises(PermissionDeniedError):
        kit.roles.update_role(admin, "legal", ["contract.read.all", "org.manage"])
    kit.roles.update_role(admin, "legal", ["contract.read.all"])
    assert kit.sign_in("lena@acme.test").permissions == {"contract.read.all"}
    with pytest.raises(ConflictError):
        kit.roles.delete_role(admin, "legal")  # still held
    kit.people.change_role(admin, lena.user_id or "", "member")
    kit.roles.delete_role(admin, "legal")
    with pytest.raises(NotFoundError):
        kit.roles.delete_role(admin, "legal")
    # Another organisation's role keys are not visible, let alone editable.
    other = kit.organisation("Other Co", "boss@other.test")
    kit.roles.create_role(other, "legal", "Their legal", ["audit.read"])
    with pytest.raises(NotFoundError):
        kit.roles.update_role(admin, "legal", ["audit.read"])
    with pytest.raises(InvalidInputError):
        kit.people.invite(admin, "z@acme.test", "legal")
    assert "legal" not in {r.key for r in kit.roles.list_roles(admin)}
