"""Security monitoring for organisation administrators, and the step-up check for members.

- ``/api/v1/org/security/rules``: the detection rules as they apply to the organisation
  (``alert.read``); its administrators tune thresholds, windows and automatic actions of the
  organisation-level rules, or reset them to the platform's (``alert.manage``: whoever handles
  the alerts tunes what raises them; every change is audited and itself alerts).
- ``/api/v1/org/security/responses``: the automatic responses taken about the organisation
  (``alert.read``), each liftable by ``alert.manage``. Another organisation's response answers
  exactly like a missing one.
- ``/api/v1/me/security/step-up``: a member a rule asked to prove a second factor again does it
  here (the ``step-up`` response holds back their sensitive actions until then).

Platform-wide rules and the address blocks raised before any organisation is known (failed
sign-ins) are the instance operator's: ``pactvault monitor``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pactvault.api.deps import AnyCaller, Caller, PlatformDep, allow
from pactvault.api.query import Offset
from pactvault.api.security_schemas import (
    LiftIn,
    ResponseOut,
    ResponsePageOut,
    RuleChangeIn,
    RuleOut,
    StepUpCodeIn,
    StepUpCodeOut,
    StepUpDoneOut,
    StepUpProofIn,
    StepUpStatusOut,
)
from pactvault.errors import PermissionDeniedError
from pactvault.monitor.alerts import ALERT_MANAGE_PERMISSION, ALERT_READ_PERMISSION
from pactvault.monitor.rules.catalog import rule_named
from pactvault.monitor.stepup import METHODS
from pactvault.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["security"])
Reader = Annotated[Caller, allow(ALERT_READ_PERMISSION)]
Manager = Annotated[Caller, allow(ALERT_MANAGE_PERMISSION)]


@router.get("/org/security/rules", response_model=list[RuleOut])
def list_rules(who: Reader, platform: PlatformDep) -> list[RuleOut]:
    """Every detection rule with its effective settings for this organisation."""
    found = platform.monitor.rules.list_for(who.principal, who.actor)
    return [RuleOut.of(rule, settings) for rule, settings in found]


@router.put("/org/security/rules/{rule}", response_model=RuleOut)
def change_rule(rule: str, body: RuleChangeIn, who: Manager, platform: PlatformDep) -> RuleOut:
    """Change an organisation-level rule (only the fields sent). Platform rules answer 404."""
    settings = platform.monitor.rules.change(who.principal, rule, body.change(), who.actor)
    definition = rule_named(rule)
    assert definition is not None
    return RuleOut.of(definition, settings)


@router.delete("/org/security/rules/{rule}", response_model=RuleOut)
def reset_rule(rule: str, who: Manager, platform: PlatformDep) -> RuleOut:
    """Drop the organisation's settings of a rule: the platform's (or the defaults) apply."""
    settings = platform.monitor.rules.reset(who.principal, rule, who.actor)
    definition = rule_named(rule)
    assert definition is not None
    return RuleOut.of(definition, settings)


@router.get("/org/security/responses", response_model=ResponsePageOut)
def list_responses(
    who: Reader,
    platform: PlatformDep,
    active: Annotated[bool, Query(description="Only those in force now")] = True,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ResponsePageOut:
    """Automatic responses about the organisation, newest first."""
    page = platform.monitor.responses.page(
        who.principal, active_only=active, limit=limit, offset=offset, actor=who.actor
    )
    return ResponsePageOut(
        items=[ResponseOut.of(r) for r in page.items], total=page.total, limit=limit, offset=offset
    )


@router.post("/org/security/responses/{response_id}/lift", response_model=ResponseOut)
def lift_response(
    response_id: str, who: Manager, platform: PlatformDep, body: LiftIn | None = None
) -> ResponseOut:
    """End a response now (audited); one no longer in force is a conflict (409)."""
    lifted = platform.monitor.responses.lift(
        who.principal, response_id, body.note if body else None, who.actor
    )
    return ResponseOut.of(lifted)


def _session(who: Caller, platform: Platform) -> None:
    if who.principal.session_id is None:
        denied = PermissionDeniedError("a security check needs a signed-in session, not a token")
        platform.access.record_denial(who.actor, "monitor.step-up", denied, reason="not-a-session")
        raise denied


@router.get("/me/security/step-up", response_model=StepUpStatusOut)
def step_up_status(who: AnyCaller, platform: PlatformDep) -> StepUpStatusOut:
    """Whether a security check is owed, and the ways to pass it."""
    _session(who, platform)
    return StepUpStatusOut(
        required=platform.monitor.stepup.pending(who.principal), methods=[*METHODS]
    )


@router.post("/me/security/step-up/code", response_model=StepUpCodeOut, status_code=201)
def step_up_code(body: StepUpCodeIn, who: AnyCaller, platform: PlatformDep) -> StepUpCodeOut:
    """Send a one-time code to the account email or the confirmed mobile number."""
    _session(who, platform)
    sent = platform.monitor.stepup.send_code(who.principal, body.channel, who.actor)
    return StepUpCodeOut(
        channel=sent.channel, destination=sent.destination, expires_at=sent.expires_at
    )


@router.post("/me/security/step-up", response_model=StepUpDoneOut)
def step_up(body: StepUpProofIn, who: AnyCaller, platform: PlatformDep) -> StepUpDoneOut:
    """Prove a second factor: the security check ends. Wrong codes are throttled and audited."""
    _session(who, platform)
    lifted = platform.monitor.stepup.prove(who.principal, body.method, body.code, who.actor)
    return StepUpDoneOut(lifted=lifted)
