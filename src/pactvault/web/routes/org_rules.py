"""Approval rules (审批规则) in the organisation pages: list, create, edit, versions, delete.

``contracts.approval_rules`` validates, versions and audits; this module turns a plain HTML form
into a ``RuleSpec`` and back. The form works without JavaScript: a condition (every contract, a
classification level or above, amounts per currency) and a fixed number of step rows, of which
the empty ones are left out. Amounts are typed in major units with at most two decimals (元, not
分) and stored in minor units, as the service and the API keep them.

Every route needs ``approval.manage``, as in ``api/routes/approvals.py``. An edit carries the
version it was made from, so a change made meanwhile by someone else is refused, not overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from pactvault.access.decision import LEVELS
from pactvault.api.deps import Caller, PlatformDep
from pactvault.contracts.approval_rules import (
    APPROVE,
    AmountThreshold,
    Condition,
    RuleInfo,
    RuleSpec,
    Step,
)
from pactvault.errors import InvalidInputError, PactvaultError
from pactvault.platform import Platform
from pactvault.web.pages import PageRoute, redirect
from pactvault.web.routes.organisation import failed, org_render
from pactvault.web.security import page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RuleManager = Annotated[Caller, page_allow("approval.manage")]
RuleId = Annotated[str, Path(min_length=1, max_length=36)]
RULES = "/organisation/approval-rules"
FORM_STEPS = 4
FORM_AMOUNTS = 3
MAX_FIELD = 200


@dataclass
class StepForm:
    mode: str = "any"
    roles: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


@dataclass
class RuleForm:
    """A rule as the form shows it (strings, fixed numbers of rows)."""

    name: str = ""
    enabled: bool = True
    always: bool = False
    min_classification: str = ""
    amounts: list[tuple[str, str]] = field(default_factory=list)
    steps: list[StepForm] = field(default_factory=list)
    expected_version: int | None = None

    def __post_init__(self) -> None:
        self.amounts = (self.amounts + [("", "")] * FORM_AMOUNTS)[
            : max(FORM_AMOUNTS, len(self.amounts))
        ]
        self.steps = (self.steps + [StepForm() for _ in range(FORM_STEPS)])[
            : max(FORM_STEPS, len(self.steps))
        ]

    @classmethod
    def of(cls, rule: RuleInfo) -> RuleForm:
        return cls(
            name=rule.name,
            enabled=rule.enabled,
            always=rule.condition.always,
            min_classification=rule.condition.min_classification or "",
            amounts=[(a.currency, _major(a.minor)) for a in rule.condition.amounts],
            steps=[StepForm(s.mode, sorted(s.roles), sorted(s.user_ids)) for s in rule.steps],
            expected_version=rule.version,
        )

    @classmethod
    def parse(cls, form: FormData) -> RuleForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""

        def texts(name: str) -> list[str]:
            return [v[:64] for v in form.getlist(name) if isinstance(v, str) and v][:50]

        version = text("expected_version")
        return cls(
            name=text("name"),
            enabled=form.get("enabled") == "on",
            always=form.get("always") == "on",
            min_classification=text("min_classification"),
            amounts=[
                (text(f"currency{i}").upper(), text(f"amount{i}"))
                for i in range(1, FORM_AMOUNTS + 1)
            ],
            steps=[
                StepForm(
                    text(f"step{i}_mode") or "any", texts(f"step{i}_roles"), texts(f"step{i}_users")
                )
                for i in range(1, FORM_STEPS + 1)
            ],
            expected_version=int(version) if version.isdigit() else None,
        )

    def spec(self) -> RuleSpec:
        """The rule the form describes (the service validates the rest)."""
        if self.min_classification and self.min_classification not in LEVELS:
            raise InvalidInputError(f"the classification level must be one of {', '.join(LEVELS)}")
        amounts = tuple(
            AmountThreshold(currency, _minor(amount))
            for currency, amount in self.amounts
            if currency or amount
        )
        return RuleSpec(
            name=self.name,
            condition=Condition(
                always=self.always,
                min_classification=self.min_classification or None,
                amounts=amounts,
            ),
            steps=[
                Step(mode=s.mode, roles=frozenset(s.roles), user_ids=frozenset(s.users))
                for s in self.steps
                if s.roles or s.users
            ],
            enabled=self.enabled,
        )


def _major(minor: int) -> str:
    whole, cents = divmod(minor, 100)
    return f"{whole}" if not cents else f"{whole}.{cents:02d}"


def _minor(text: str) -> int:
    """``"12500.5"`` → 1250050; refuses signs, exponents and more than two decimals."""
    cleaned = text.replace(",", "").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInputError("amounts are numbers with at most two decimals") from None
    if not cleaned or not amount.is_finite() or amount < 0 or "e" in cleaned.lower():
        raise InvalidInputError("amounts are numbers with at most two decimals")
    minor = amount * 100
    if minor != minor.to_integral_value():
        raise InvalidInputError("amounts are numbers with at most two decimals")
    return int(minor)


def _choices(platform: Platform, who: Caller) -> dict[str, object]:
    """Who a step may name: roles that grant approval, members who hold it."""
    roles = [r for r in platform.roles.list_roles(who.principal) if APPROVE in r.permissions]
    approvers = [
        m
        for m in platform.people.list_members(who.principal)
        if m.status == "active" and any(r.key == m.role for r in roles)
    ]
    return {"approver_roles": roles, "approvers": approvers, "levels": LEVELS}


def render_rules(
    request: Request,
    platform: Platform,
    who: Caller,
    *,
    form: RuleForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return org_render(
        request,
        "org_rules.html",
        {
            "rules": platform.approvals.rules.list_rules(who.principal),
            "form": form or RuleForm(),
            "names": {
                m.user_id: m.display_name for m in platform.people.list_members(who.principal)
            },
            "error": error,
            **_choices(platform, who),
        },
        status=status,
    )


def render_rule(
    request: Request,
    platform: Platform,
    who: Caller,
    rule_id: str,
    *,
    form: RuleForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    rules = platform.approvals.rules
    rule = rules.get_rule(who.principal, rule_id)
    return org_render(
        request,
        "org_rule.html",
        {
            "rule": rule,
            "versions": list(reversed(rules.rule_versions(who.principal, rule_id))),
            "form": form or RuleForm.of(rule),
            "names": {
                m.user_id: m.display_name for m in platform.people.list_members(who.principal)
            },
            "error": error,
            **_choices(platform, who),
        },
        status=status,
    )


@router.get(RULES)
def rules_page(request: Request, who: RuleManager, platform: PlatformDep) -> Response:
    return render_rules(request, platform, who)


@router.post(RULES)
async def create_rule(request: Request, who: RuleManager, platform: PlatformDep) -> Response:
    form = RuleForm.parse(await request.form())
    return await run_in_threadpool(_create, request, who, platform, form)


def _create(request: Request, who: Caller, platform: Platform, form: RuleForm) -> Response:
    try:
        rule = platform.approvals.rules.create_rule(who.principal, form.spec(), who.actor)
    except PactvaultError as exc:
        return failed(
            request, exc, lambda **kw: render_rules(request, platform, who, form=form, **kw)
        )
    return redirect(request, f"{RULES}/{rule.id}", flash="flash.org.rule_created")


@router.get(RULES + "/{rule_id}")
def rule_page(
    rule_id: RuleId, request: Request, who: RuleManager, platform: PlatformDep
) -> Response:
    return render_rule(request, platform, who, rule_id)


@router.post(RULES + "/{rule_id}")
async def update_rule(
    rule_id: RuleId, request: Request, who: RuleManager, platform: PlatformDep
) -> Response:
    form = RuleForm.parse(await request.form())
    return await run_in_threadpool(_update, request, who, platform, rule_id, form)


def _update(
    request: Request, who: Caller, platform: Platform, rule_id: str, form: RuleForm
) -> Response:
    try:
        platform.approvals.rules.update_rule(
            who.principal,
            rule_id,
            form.spec(),
            who.actor,
            expected_version=form.expected_version,
        )
    except PactvaultError as exc:
        return failed(
            request,
            exc,
            lambda **kw: render_rule(request, platform, who, rule_id, form=form, **kw),
        )
    return redirect(request, f"{RULES}/{rule_id}", flash="flash.org.rule_updated")


@router.post(RULES + "/{rule_id}/delete")
def delete_rule(
    rule_id: RuleId, request: Request, who: RuleManager, platform: PlatformDep
) -> Response:
    """Retire the rule; its versions stay, since requests refer to them."""
    try:
        platform.approvals.rules.delete_rule(who.principal, rule_id, who.actor)
    except PactvaultError as exc:
        return failed(request, exc, lambda **kw: render_rule(request, platform, who, rule_id, **kw))
    return redirect(request, RULES, flash="flash.org.rule_deleted")
