"""Organisations, invitations and members; tenant isolation of every id."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from identity_kit import CLIENT, PASSWORD, SYSTEM, Kit, make_kit
from pactvault.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PactvaultError,
    PermissionDeniedError,
)
from pactvault.identity.errors import PasswordRejectedError
from pactvault.identity.people import INVALID_INVITATION, NewAccount
from pactvault.store.identity_models import Invitation, Membership, User


@pytest.fixture
def kit(database_url: str) -> Iterator[Kit]:
    instance = make_kit(database_url)
    yield instance
    instance.close()


def accept_new(kit: Kit, token: str, password: str = PASSWORD) -> object:
    return kit.people.accept_invitation(token, CLIENT, account=NewAccount("Nia New", password))


def test_invitation_is_mailed_hashed_and_creates_the_member(kit: Kit) -> None:
    owner = kit.organisation()
    info = kit.people.invite(owner, " Nia@Example.TEST ", "approver")
    assert not hasattr(info, "token")  # the inviter never sees the capability
    token = kit.invitation_token("nia@example.test")
    with kit.db.read() as s:
        row = s.get(Invitation, info.id)
        assert row is not None
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    member = kit.people.accept_invitation(token, CLIENT, account=NewAccount("Nia", PASSWORD))
    assert (member.org_id, member.role, member.email) == (
        owner.org_id,
        "approver",
        "nia@example.test",
    )
    assert kit.sign_in("nia@example.test").role == "approver"
    assert kit.events("invitation.accept")[-1].actor_id == member.user_id


def test_invitations_are_single_use(kit: Kit) -> None:
    owner = kit.organisation()
    kit.people.invite(owner, "nia@example.test", "member")
    token = kit.invitation_token("nia@example.test")
    accept_new(kit, token)
    with pytest.raises(AuthenticationError, match=INVALID_INVITATION):
        accept_new(kit, token)
    with kit.db.read() as s:
        assert len(s.execute(select(Membership)).scalars().all()) == 2


def test_invitations_expire_and_can_be_revoked(kit: Kit) -> None:
    owner = kit.organisation()
    kit.people.invite(owner, "late@example.test", "member")
    late = kit.invitation_token("late@example.test")
    revoked_info = kit.people.invite(owner, "gone@example.test", "member")
    gone = kit.invitation_token("gone@example.test")
    kit.people.revoke_invitation(owner, revoked_info.id)
    with pytest.raises(AuthenticationError, match=INVALID_INVITATION):
        accept_new(kit, gone)
    assert [i.email for i in kit.people.pending_invitations(owner)] == ["late@example.test"]
    kit.clock.advance(days=7, seconds=1)
    with pytest.raises(AuthenticationError, match=INVALID_INVITATION):
        accept_new(kit, late)
    for forged in ("", "pvinv_" + "A" * 43, late + "x", "pva_" + late[6:]):
        with pytest.raises(AuthenticationError, match=INVALID_INVITATION):
            accept_new(kit, forged)
    with kit.db.read() as s:
        assert s.execute(select(User.id).where(User.email.like("%example.test"))).first() is None


def test_new_accounts_obey_the_password_policy(kit: Kit) -> None:
    owner = kit.organisation()
    kit.people.invite(owner, "nia@example.test", "member")
    token = kit.invitation_token("nia@example.test")
    with pytest.raises(PasswordRejectedError) as short:
        accept_new(kit, token, "short but ok")  # 12 < 15 without a second factor
    assert short.value.reason == "too-short"
    with pytest.raises(PasswordRejectedError) as common:
        accept_new(kit, token, "qwertyuiopasdfghjkl")
    assert common.value.reason == "common"
    accept_new(kit, token)  # the invitation was not spent by the refusals


def test_existing_accounts_must_sign_in_to_accept(kit: Kit) -> None:
    acme = kit.organisation()
    other = kit.organisation("Other Co", "boss@other.test")
    kit.people.invite(other, "owner@acme.test", "auditor")
    token = kit.invitation_token("owner@acme.test")
    # Holding the token is not enough to take over (or re-password) an existing account.
    with pytest.raises(AuthenticationError, match="sign in"):
        kit.people.accept_invitation(
            token, CLIENT, account=NewAccount("Evil", "attacker chosen pw")
        )
    with pytest.raises(AuthenticationError, match="sign in"):
        kit.people.accept_invitation(token, CLIENT, principal=other)
    joined = kit.people.accept_invitation(token, CLIENT, principal=acme)
    assert (joined.user_id, joined.org_id, joined.role) == (acme.user_id, other.org_id, "auditor")
    assert kit.sign_in("owner@acme.test", org_id=other.org_id).role == "auditor"
    assert kit.sign_in("owner@acme.test").org_id == acme.org_id  # first joined by default


def test_invite_validation(kit: Kit) -> None:
    owner = kit.organisation()
    with pytest.raises(InvalidInputError):
        kit.people.invite(owner, "not-an-email", "member")
    with pytest.raises(InvalidInputError):
        kit.people.invite(owner, "x@example.test", "superuser")
    with pytest.raises(ConflictError):
        kit.people.invite(owner, "owner@acme.test", "member")
    with pytest.raises(ConflictError):
        kit.people.create_organisation(
            SYSTEM, "Again", "owner@acme.test", NewAccount("O", PASSWORD)
        )


def test_an_organisation_keeps_an_owner(kit: Kit) -> None:
    owner = kit.organisation()
    with pytest.raises(ConflictError):
        kit.people.remove_member(owner, owner.user_id or "")
    mia = kit.member(owner, "mia@acme.test", "member")
    with pytest.raises(PermissionDeniedError):
        kit.people.remove_member(mia, owner.user_id or "")
    kit.people.remove_member(mia, mia.user_id or "")  # anyone may leave
    assert [m.email for m in kit.people.list_members(owner)] == ["owner@acme.test"]
    second = kit.member(owner, "co@acme.test", "owner")
    kit.people.change_role(second, owner.user_id or "", "admin")
    with pytest.raises(ConflictError):
        kit.people.remove_member(second, second.user_id or "")


def test_other_tenants_ids_answer_exactly_like_missing_ones(kit: Kit) -> None:
    acme = kit.organisation()
    acme_member = kit.member(acme, "mia@acme.test", "member")
    invitation = kit.people.invite(acme, "pending@acme.test", "member")
    other = kit.organisation("Other Co", "boss@other.test")
    before = len(kit.events("access.denied"))

    calls: list[tuple[str, Callable[[str], object]]] = [
        ("member", lambda i: kit.people.get_member(other, i)),
        ("member", lambda i: kit.people.change_role(other, i, "member")),
        ("member", lambda i: kit.people.remove_member(other, i)),
        ("invitation", lambda i: kit.people.revoke_invitation(other, i)),
        ("member", lambda i: kit.login.unlock_account(other, i)),
        ("member", lambda i: kit.sessions.revoke_member_sessions(other, i)),
        ("session", lambda i: kit.sessions.revoke_session(other, i)),
    ]
    foreign = {
        "member": acme_member.user_id,
        "invitation": invitation.id,
        "session": acme_member.session_id,
    }
    for kind, call in calls:
        errors: list[PactvaultError] = []
        for target in (foreign[kind], str(uuid.uuid4())):
            with pytest.raises(NotFoundError) as caught:
                call(target or "")
            errors.append(caught.value)
        assert type(errors[0]) is type(errors[1]) is NotFoundError
        assert (str(errors[0]), errors[0].status) == (str(errors[1]), errors[1].status)
    # Every probe was recorded; nothing changed in the other tenant.
    assert len(kit.events("access.denied")) - before == 2 * len(calls)
    assert kit.people.get_member(acme, acme_member.user_id or "").role == "member"
    assert [i.id for i in kit.people.pending_invitations(acme)] == [invitation.id]
    assert kit.sessions.list_sessions(acme_member)  # the member's session is still live
