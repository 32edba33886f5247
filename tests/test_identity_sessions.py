"""Server-side sessions, CSRF tokens and personal API tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from conftest import database_bytes
from identity_kit import CLIENT, PASSWORD, Kit, make_kit
from pactvault.audit.journal import Actor
from pactvault.errors import AuthenticationError, InvalidInputError, NotFoundError
from pactvault.identity.sessions import SessionService
from pactvault.store.identity_models import UserSession


@pytest.fixture
def kit(database_url: str) -> Iterator[Kit]:
    instance = make_kit(database_url)
    yield instance
    instance.close()


def test_sessions_are_stored_hashed(kit: Kit) -> None:
    kit.organisation()
    issued = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    with kit.db.read() as s:
        row = s.get(UserSession, issued.session_id)
        assert row is not None
        assert row.token_sha256 == hashlib.sha256(issued.token.encode()).hexdigest()
    at_rest = database_bytes(kit.db)
    assert issued.token.encode() not in at_rest
    assert issued.token.removeprefix("pvsess_").encode() not in at_rest
    assert kit.sessions.authenticate(issued.token).session_id == issued.session_id
    for bad in (None, "", issued.token + "x", issued.token[:-1], "pvsess_" + "A" * 43):
        with pytest.raises(AuthenticationError):
            kit.sessions.authenticate(bad)


def test_idle_and_absolute_expiry(kit: Kit) -> None:
    kit.organisation()
    issued = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    kit.clock.advance(minutes=29)
    kit.sessions.authenticate(issued.token)  # use keeps it alive
    kit.clock.advance(minutes=29)
    kit.sessions.authenticate(issued.token)
    kit.clock.advance(minutes=31)
    with pytest.raises(AuthenticationError):
        kit.sessions.authenticate(issued.token)  # idle too long

    busy = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    for _ in range(12 * 3 - 1):  # active every 20 minutes, just under 12 hours
        kit.clock.advance(minutes=20)
        kit.sessions.authenticate(busy.token)
    kit.clock.advance(minutes=20)
    with pytest.raises(AuthenticationError):
        kit.sessions.authenticate(busy.token)  # absolute lifetime over, however active


def test_session_list_revoke_and_sign_out_everywhere(kit: Kit) -> None:
    owner = kit.organisation()
    phone = Actor(type="anonymous", ip="198.51.100.20", user_agent="Phone/1.0")
    phone_session = kit.login.login("owner@acme.test", PASSWORD, phone)
    listed = kit.sessions.list_sessions(owner)
    assert len(listed) == 2
    current = [s for s in listed if s.current]
    assert [s.id for s in current] == [owner.session_id]
    assert {(s.ip, s.user_agent) for s in listed} == {
        (CLIENT.ip, CLIENT.user_agent),
        ("198.51.100.20", "Phone/1.0"),
    }

    kit.sessions.revoke_session(owner, phone_session.session_id)
    with pytest.raises(AuthenticationError):
        kit.sessions.authenticate(phone_session.token)
    assert [s.id for s in kit.sessions.list_sessions(owner)] == [owner.session_id]

    # Someone else's session id is "not found", and the attempt is on record.
    mia = kit.member(owner, "mia@acme.test", "admin")
    with pytest.raises(NotFoundError):
        kit.sessions.revoke_session(mia, owner.session_id or "")
    assert kit.events("access.denied")[-1].details["action"] == "session.revoke"

    extra = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    # The same person is also a member of a second organisation, with a session there.
    second = kit.organisation("Second Org", "owner2@acme.test")
    kit.people.invite(second, "owner@acme.test", "member")
    kit.people.accept_invitation(kit.invitation_token("owner@acme.test"), CLIENT, principal=owner)
    there = kit.login.login("owner@acme.test", PASSWORD, CLIENT, org_id=second.org_id)
    assert kit.sessions.authenticate(there.token).org_id == second.org_id
    assert kit.sessions.sign_out_everywhere(owner, keep_current=True) == 2
    for ended in (extra, there):
        with pytest.raises(AuthenticationError):
            kit.sessions.authenticate(ended.token)
    assert kit.sessions.authenticate(kit.session_tokens[owner.session_id or ""]) is not None
    assert kit.sessions.sign_out_everywhere(owner) == 1
    assert kit.sessions.list_sessions(mia) and not _live(kit, owner.user_id)
    assert kit.events("session.sign-out-everywhere")[-1].details["revoked"] == 1


def _live(kit: Kit, user_id: str | None) -> list[str]:
    with kit.db.read() as s:
        return list(
            s.execute(
                select(UserSession.id).where(
                    UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
                )
            ).scalars()
        )


def test_sessions_end_when_membership_ends(kit: Kit) -> None:
    owner = kit.organisation()
    mia = kit.member(owner, "mia@acme.test", "member")
    token = kit.session_tokens[mia.session_id or ""]
    kit.people.remove_member(owner, mia.user_id or "")
    with pytest.raises(AuthenticationError):
        kit.sessions.authenticate(token)


def test_csrf_tokens_are_bound_to_the_session(kit: Kit) -> None:
    kit.organisation()
    issued = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    other = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    assert issued.csrf_token == kit.sessions.csrf_token(issued.session_id)
    assert kit.sessions.verify_csrf(issued.session_id, issued.csrf_token)
    assert not kit.sessions.verify_csrf(other.session_id, issued.csrf_token)
    assert not kit.sessions.verify_csrf(issued.session_id, None)
    last = issued.csrf_token[-1]
    altered = issued.csrf_token[:-1] + ("1" if last == "0" else "0")
    assert not kit.sessions.verify_csrf(issued.session_id, altered)
    rekeyed = SessionService(kit.db, kit.access, csrf_key=b"z" * 32)
    assert not rekeyed.verify_csrf(issued.session_id, issued.csrf_token)
    with pytest.raises(ValueError):
        SessionService(kit.db, kit.access, csrf_key=b"short")


def test_personal_api_tokens_are_scoped_and_follow_the_owner(kit: Kit) -> None:
    owner = kit.organisation()
    manager = kit.member(owner, "max@acme.test", "contract_manager")
    issued = kit.tokens.create_user_token(
        manager, "ci", ["contract.create", "contract.read.own"], expires_in_days=30
    )
    who = kit.tokens.authenticate(issued.token)
    assert (who.user_id, who.org_id, who.role) == (
        manager.user_id,
        owner.org_id,
        "contract_manager",
    )
    assert who.permissions == {"contract.create", "contract.read.own"}
    assert who.actor().type == "api-token"
    # Escalation through a token is refused; so is minting tokens with a token.
    with pytest.raises(InvalidInputError, match="you do not have"):
        kit.tokens.create_user_token(manager, "x", ["member.manage"])
    with pytest.raises(AuthenticationError):
        kit.tokens.create_user_token(who, "child", ["contract.create"])
    with pytest.raises(InvalidInputError):
        kit.tokens.create_user_token(manager, "x", ["contract.create"], expires_in_days=400)
    with pytest.raises(InvalidInputError):
        kit.tokens.create_user_token(manager, "x", ["contract.destroy"])
    assert [t.id for t in kit.tokens.list_user_tokens(manager)] == [issued.token_id]

    # Demotion shrinks the token at once; leaving the organisation kills it.
    kit.people.change_role(owner, manager.user_id or "", "member")
    assert kit.tokens.authenticate(issued.token).permissions == {"contract.read.own"}
    kit.people.remove_member(owner, manager.user_id or "")
    with pytest.raises(AuthenticationError):
        kit.tokens.authenticate(issued.token)


def test_personal_token_revocation(kit: Kit) -> None:
    owner = kit.organisation()
    mia = kit.member(owner, "mia@acme.test", "member")
    mine = kit.tokens.create_user_token(mia, "mine", ["contract.read.own"])
    owners = kit.tokens.create_user_token(owner, "owner's", ["audit.read"])
    with pytest.raises(NotFoundError):
        kit.tokens.revoke(mia, owners.token_id)
    kit.tokens.revoke(mia, mine.token_id)
    with pytest.raises(AuthenticationError):
        kit.tokens.authenticate(mine.token)
    kit.tokens.revoke(owner, owners.token_id)  # token.manage would also allow others'
    with pytest.raises(AuthenticationError):
        kit.tokens.authenticate(owners.token)


def test_organisation_tokens_keep_working_with_mapped_permissions(kit: Kit) -> None:
    setup = kit.tokens.create_setup_token()
    assert setup is not None
    admin = kit.tokens.complete_setup(setup, "Legacy Ltd", CLIENT)
    who = kit.tokens.authenticate(admin.token)
    assert who.user_id is None and "admin" in who.scopes
    assert "org.manage" in who.permissions
    reader = kit.tokens.create(who, "reader", ["contracts:read"])
    assert kit.tokens.authenticate(reader.token).permissions == {"contract.read.all"}
