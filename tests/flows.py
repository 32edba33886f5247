"""Small building blocks the service-level tests share: organisations, contracts, signing."""

from __future__ import annotations

import re

from pactvault.audit.journal import Actor
from pactvault.contracts.service import SignerSpec, SignInput
from pactvault.demo import sample_pdf
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import Organisation, Signature

SENDER = Actor(type="api-token", id="test-token", ip="192.0.2.10", user_agent="pytest")
SIGNER_CLIENT = Actor(type="anonymous", ip="198.51.100.7", user_agent="pytest-signer")


def make_org(platform: Platform, name: str = "Example Ltd") -> str:
    with platform.db.write() as session:
        org = Organisation(name=name)
        session.add(org)
        session.flush()
        return org.id


def invitation_tokens(mailer: MemoryMailer, contract_id: str) -> dict[str, str]:
    """Signer id → signing token, from the invitations 'delivered' so far."""
    found = {}
    for message in mailer.messages:
        tags = dict(message.tags)
        if tags.get("Contract") == contract_id and "Signing-Token" in tags:
            found[tags["Signer"]] = tags["Signing-Token"]
    return found


def seen_digest(platform: Platform, token: str) -> str:
    """Open the invitation as the signer does; returns the hash of the document shown."""
    contract, _ = platform.contracts.open_invitation(token, SIGNER_CLIENT)
    return contract.revisions[-1].plaintext_sha256


def last_code(mailer: MemoryMailer) -> str:
    """The one-time code in the newest signing-code message (as the signer would read it)."""
    for message in reversed(mailer.messages):
        found = re.search(r" is (\d{6,8})\.", message.body)
        if found:
            return found.group(1)
    raise AssertionError("no signing code was sent")


def step_up(platform: Platform, token: str) -> str:
    """Pass the signing step-up by email code, as the signer does; returns the challenge id."""
    assert isinstance(platform.mailer, MemoryMailer)
    challenge = platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email")
    code = last_code(platform.mailer)
    platform.contracts.complete_stepup(token, SIGNER_CLIENT, challenge.challenge_id, code)
    return challenge.challenge_id


def sign_as(platform: Platform, token: str, digest: str | None = None) -> Signature:
    given = SignInput(
        document_sha256=digest or seen_digest(platform, token),
        consent=True,
        stepup_challenge_id=step_up(platform, token),
    )
    return platform.contracts.sign(token, SIGNER_CLIENT, given)


def sent_contract(
    platform: Platform, mailer: MemoryMailer, signers: list[SignerSpec], org_id: str | None = None
) -> tuple[str, str, dict[str, str]]:
    """A contract on the sample PDF, sent: returns (org id, contract id, invitation tokens)."""
    org_id = org_id or make_org(platform)
    contract = platform.contracts.create(
        SENDER, org_id, title="租赁合同 Lease", pdf=sample_pdf(), signers=signers
    )
    platform.contracts.send(SENDER, org_id, contract.id)
    return org_id, contract.id, invitation_tokens(mailer, contract.id)
