"""Security notices: a person is emailed when their account's protection changes — read from the
audit journal, once each, only to the account's owner, never for history or refused attempts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from identity_kit import CLIENT, PASSWORD
from pactvault.audit.journal import Actor
from pactvault.errors import PactvaultError
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer, Message
from pactvault.platform import Platform
from pactvault.store.identity_models import User

SYSTEM = Actor(type="system", id="pytest-notices")
NEW_PASSWORD = "another long passphrase 2026"


def _notices(mailer: MemoryMailer) -> list[Message]:
    return [m for m in mailer.messages if "Security-Notice" in dict(m.tags)]


def _member(platform: Platform, org_owner_email: str, email: str) -> None:
    owner = platform.sessions.authenticate(
        platform.login.login(org_owner_email, PASSWORD, CLIENT).token  # type: ignore[union-attr]
    )
    platform.people.invite(owner, email, "member")
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    token = next(
        dict(m.tags)["Invitation-Token"] for m in reversed(mailer.messages) if m.to == email
    )
    platform.people.accept_invitation(token, CLIENT, account=NewAccount("Mia", PASSWORD))


def test_a_password_change_and_a_new_token_are_announced_to_their_owner_only(
    platform: Platform,
) -> None:
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    owner_email = "owner@notices.test"
    platform.people.create_organisation(
        SYSTEM, "Notices Ltd", owner_email, NewAccount("O", PASSWORD)
    )
    _member(platform, owner_email, "mia@notices.test")
    # History is not announced: the first run starts at the journal's head.
    assert platform.notices.run_due() == 0

    issued = platform.login.login("mia@notices.test", PASSWORD, CLIENT)
    mia = platform.sessions.authenticate(issued.token)  # type: ignore[union-attr]
    # A refused change (wrong current password) is not announced.
    with pytest.raises(PactvaultError):
        platform.login.change_password(
            mia, "wrong password!!", NEW_PASSWORD, has_second_factor=False
        )
    from_browser = replace(mia.actor(), ip="198.51.100.7", user_agent="Firefox/140")
    platform.login.change_password(
        mia, PASSWORD, NEW_PASSWORD, has_second_factor=False, actor=from_browser
    )
    platform.tokens.create_user_token(mia, "ci", ["contract.read.own"])

    assert platform.notices.run_due() == 2
    sent = _notices(mailer)
    assert [m.to for m in sent] == ["mia@notices.test", "mia@notices.test"]
    assert [dict(m.tags)["Security-Notice"] for m in sent] == [
        "user.password-change",
        "token.create",
    ]
    assert "The password was changed" in sent[0].body and "修改了密码" in sent[0].body
    assert "198.51.100.7" in sent[0].body and "Firefox/140" in sent[0].body
    assert "/account/security" in sent[0].body
    assert NEW_PASSWORD not in sent[0].body and PASSWORD not in sent[0].body
    # Once each: nothing new, nothing sent again.
    assert platform.notices.run_due() == 0
    assert len(_notices(mailer)) == 2


def test_a_disabled_account_is_not_written_to(platform: Platform) -> None:
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    platform.people.create_organisation(
        SYSTEM, "Quiet Ltd", "owner@quiet.test", NewAccount("O", PASSWORD)
    )
    assert platform.notices.run_due() == 0
    owner = platform.sessions.authenticate(
        platform.login.login("owner@quiet.test", PASSWORD, CLIENT).token  # type: ignore[union-attr]
    )
    platform.login.change_password(owner, PASSWORD, NEW_PASSWORD, has_second_factor=False)
    with platform.db.write() as s:
        user = s.get(User, owner.user_id)
        assert user is not None
        user.status = "disabled"
    platform.notices.run_due()
    assert _notices(mailer) == []
