"""One's own second factors, and an organisation's MFA requirement.

Every route here is ``enrolling``: a signed-in session, or the holder of an enrolment grant
(``X-Enrolment-Token``, from a sign-in the organisation's MFA requirement stopped) who may set
up a first factor and nothing else. API tokens never manage factors: a leaked token must not be
able to add its own phone (``MfaService`` refuses them). Removing a factor needs a full session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from pactvault.api.deps import (
    ENROLMENT_HEADER,
    Caller,
    PlatformDep,
    Rule,
    allow,
    client_actor,
)
from pactvault.api.identity_schemas import (
    ChannelIn,
    ChannelSetupOut,
    CodeIn,
    FactorEnrolledOut,
    MfaPolicyIn,
    MfaPolicyOut,
    MfaStatusOut,
    PasskeyOut,
    PasskeyRegistrationIn,
    RecoveryCodesOut,
    TotpSetupOut,
)
from pactvault.audit.journal import Actor
from pactvault.errors import PermissionDeniedError
from pactvault.identity.mfa.service import Account, FactorEnrolled
from pactvault.identity.principal import Principal

router = APIRouter(prefix="/api/v1", tags=["accounts"])
ENROLLING = Rule("enrolling")


@dataclass(frozen=True)
class Enrolling:
    """Whose factors a request manages, and the audit actor."""

    account: Account
    actor: Actor


def enrolling_account(
    request: Request, platform: PlatformDep, caller: Annotated[Caller | None, Depends(ENROLLING)]
) -> Enrolling:
    if caller is not None:
        return Enrolling(caller.principal, caller.actor)
    enrollee = platform.mfa.enrollee(request.headers.get(ENROLMENT_HEADER))
    base = client_actor(request)
    return Enrolling(enrollee, enrollee.actor(base.ip, base.user_agent))


Me = Annotated[Enrolling, Depends(enrolling_account)]


def _session_principal(me: Enrolling, platform: PlatformDep, action: str) -> Principal:
    """Removing factors needs a signed-in session; an enrolment grant can only add them."""
    if isinstance(me.account, Principal):
        return me.account
    denied = PermissionDeniedError("removing a second factor needs a signed-in session")
    platform.access.record_denial(me.actor, action, denied, reason="enrolment-grant")
    raise denied


def _enrolled(result: FactorEnrolled) -> FactorEnrolledOut:
    return FactorEnrolledOut(
        method=result.method, factor_id=result.factor_id, recovery_codes=result.recovery_codes
    )


@router.get("/me/mfa", response_model=MfaStatusOut)
def mfa_status(me: Me, platform: PlatformDep) -> MfaStatusOut:
    status = platform.mfa.status(me.account)
    return MfaStatusOut(
        totp=status.totp,
        passkeys=[PasskeyOut(**vars(p)) for p in status.passkeys],
        email=status.email,
        sms=status.sms,
        recovery_codes_left=status.recovery_codes_left,
        methods=status.methods,
        org_requires_mfa=status.org_requires_mfa,
    )


@router.post("/me/mfa/totp", response_model=TotpSetupOut, status_code=201)
def begin_totp(me: Me, platform: PlatformDep) -> TotpSetupOut:
    """Start adding an authenticator app (RFC 6238); confirm with a first code."""
    setup = platform.mfa.begin_totp(me.account, me.actor)
    return TotpSetupOut(factor_id=setup.factor_id, secret=setup.secret, uri=setup.uri)


@router.post("/me/mfa/totp/confirm", response_model=FactorEnrolledOut)
def confirm_totp(body: CodeIn, me: Me, platform: PlatformDep) -> FactorEnrolledOut:
    return _enrolled(platform.mfa.confirm_totp(me.account, body.code, me.actor))


@router.delete("/me/mfa/totp", status_code=204)
def remove_totp(me: Me, platform: PlatformDep) -> None:
    principal = _session_principal(me, platform, "mfa.totp-remove")
    platform.mfa.remove_totp(principal, me.actor)


@router.post("/me/mfa/recovery-codes", response_model=RecoveryCodesOut)
def regenerate_recovery_codes(me: Me, platform: PlatformDep) -> RecoveryCodesOut:
    """Ten new recovery codes, shown once; every earlier one stops working."""
    return RecoveryCodesOut(
        recovery_codes=platform.mfa.regenerate_recovery_codes(me.account, me.actor)
    )


@router.post("/me/mfa/passkeys/options")
def passkey_options(me: Me, platform: PlatformDep) -> dict[str, object]:
    """``PublicKeyCredentialCreationOptions`` for ``navigator.credentials.create``."""
    return json.loads(platform.mfa.begin_passkey(me.account, me.actor))  # type: ignore[no-any-return]


@router.post("/me/mfa/passkeys", response_model=FactorEnrolledOut, status_code=201)
def register_passkey(
    body: PasskeyRegistrationIn, me: Me, platform: PlatformDep
) -> FactorEnrolledOut:
    return _enrolled(
        platform.mfa.finish_passkey(me.account, dict(body.credential), body.name, me.actor)
    )


@router.delete("/me/mfa/passkeys/{passkey_id:uuid_text}", status_code=204)
def remove_passkey(passkey_id: str, me: Me, platform: PlatformDep) -> None:
    principal = _session_principal(me, platform, "mfa.passkey-remove")
    platform.mfa.remove_passkey(principal, passkey_id, me.actor)


@router.post("/me/mfa/channels", response_model=ChannelSetupOut, status_code=201)
def begin_channel(body: ChannelIn, me: Me, platform: PlatformDep) -> ChannelSetupOut:
    """Add sign-in codes by email or SMS; a code goes to the address to confirm it."""
    setup = platform.mfa.begin_channel(me.account, body.channel, body.destination, me.actor)
    return ChannelSetupOut(
        channel_id=setup.channel_id,
        channel=setup.channel,
        destination=setup.destination,
        expires_at=setup.expires_at,
    )


@router.post("/me/mfa/channels/{channel_id}/confirm", response_model=FactorEnrolledOut)
def confirm_channel(
    channel_id: str, body: CodeIn, me: Me, platform: PlatformDep
) -> FactorEnrolledOut:
    return _enrolled(platform.mfa.confirm_channel(me.account, channel_id, body.code, me.actor))


@router.delete("/me/mfa/channels/{channel_id}", status_code=204)
def remove_channel(channel_id: str, me: Me, platform: PlatformDep) -> None:
    principal = _session_principal(me, platform, "mfa.channel-remove")
    platform.mfa.remove_channel(principal, channel_id, me.actor)


# -- the organisation's requirement ------------------------------------------------------------

OrgManager = Annotated[Caller, allow("org.manage")]
MemberReader = Annotated[Caller, allow("member.read")]


@router.get("/org/mfa-policy", response_model=MfaPolicyOut)
def get_mfa_policy(who: MemberReader, platform: PlatformDep) -> MfaPolicyOut:
    return MfaPolicyOut(require_mfa=platform.mfa.org_requires_mfa(who.org_id))


@router.put("/org/mfa-policy", response_model=MfaPolicyOut)
def set_mfa_policy(body: MfaPolicyIn, who: OrgManager, platform: PlatformDep) -> MfaPolicyOut:
    """Require a second factor of every member: those without one must enrol at next sign-in."""
    platform.mfa.set_org_requirement(who.principal, body.require_mfa, who.actor)
    return MfaPolicyOut(require_mfa=platform.mfa.org_requires_mfa(who.org_id))
