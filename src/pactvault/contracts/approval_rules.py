"""Approval rules (审批规则): when a contract needs approval before sending, and by whom.

A rule is a condition plus an ordered list of steps. The condition holds if *any* of its clauses
does: the contract's amount reaches a threshold in that currency, its classification reaches a
level, or ``always``. Each step names approver roles (built-in or custom role keys) and/or
explicit user ids, and a mode: ``any`` (one approval completes the step) or ``all`` (every eligible
approver must approve).

Rules are versioned: every change (create, update, enable/disable, delete) bumps ``version`` and
appends an immutable ``approval_rule_versions`` row, and is audited. Requests copy what they need
at creation (see ``approvals``), so editing a rule never changes a pending request.

Inputs are validated strictly (unknown roles, roles that cannot approve, empty steps, negative
amounts → ``InvalidInputError``), and every refusal — bad input, conflict, denial — is written to
the audit journal after the failed transaction rolled back (``audited_refusals``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.access.decision import LEVELS, AccessControl, require
from pactvault.access.roles import role_permissions
from pactvault.audit.journal import Actor, record
from pactvault.canonical import canonical_json
from pactvault.crypto.hashing import sha256_hex
from pactvault.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PactvaultError,
)
from pactvault.identity.members import active_member
from pactvault.identity.principal import Principal
from pactvault.store.approval_models import STEP_MODES, ApprovalRule, ApprovalRuleVersion
from pactvault.store.base import utcnow
from pactvault.store.db import Database

#: The permission an approver must hold, at request time and again when deciding.
APPROVE = "contract.approve"
MANAGE = "approval.manage"
MAX_RULES = 100
MAX_STEPS = 10
MAX_STEP_ENTRIES = 50
MAX_NAME = 200
#: Fits a signed 64-bit column with room to spare; no real contract is worth more minor units.
MAX_AMOUNT_MINOR = 10**18
CURRENCY = re.compile(r"^[A-Z]{3}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
RULE_NOT_FOUND = "approval rule not found"
RULE_OBJECT = "approval_rule"


# -- what the rules look at ---------------------------------------------------------------------


@dataclass(frozen=True)
class ContractFacts:
    """What approval needs to know about a contract, built by the caller from the contract row.

    ``document_sha256`` is the SHA-256 of the current (unsigned) document revision: an approval
    covers exactly that document and these facts, so any change needs a new approval.
    """

    contract_id: str
    org_id: str
    title: str
    classification: str
    amount_minor: int | None
    currency: str | None
    created_by_user_id: str | None
    document_sha256: str

    def digest(self) -> str:
        """SHA-256 over the canonical JSON of every fact; what an approval is bound to."""
        return sha256_hex(
            canonical_json(
                {
                    "contract_id": self.contract_id,
                    "org_id": self.org_id,
                    "title": self.title,
                    "classification": self.classification,
                    "amount_minor": self.amount_minor,
                    "currency": self.currency,
                    "created_by_user_id": self.created_by_user_id,
                    "document_sha256": self.document_sha256,
                }
            )
        )


def check_facts(facts: ContractFacts) -> ContractFacts:
    """Refuse facts we cannot reason about, rather than guess (fail closed)."""
    if not isinstance(facts, ContractFacts):
        raise InvalidInputError("contract facts are required")
    for name in ("contract_id", "org_id"):
        value = getattr(facts, name)
        if not isinstance(value, str) or not 0 < len(value) <= 36:
            raise InvalidInputError(f"{name} must be an id")
    if not isinstance(facts.title, str) or not facts.title.strip():
        raise InvalidInputError("the contract needs a title")
    if facts.classification not in LEVELS:
        raise InvalidInputError(f"classification must be one of {', '.join(LEVELS)}")
    if facts.amount_minor is not None:
        _check_amount(facts.amount_minor, "the contract amount")
    if (facts.amount_minor is None) != (facts.currency is None):
        raise InvalidInputError("an amount needs a currency, and a currency an amount")
    if facts.currency is not None and not (
        isinstance(facts.currency, str) and CURRENCY.match(facts.currency)
    ):
        raise InvalidInputError("currency must be an ISO 4217 code such as CNY")
    if facts.created_by_user_id is not None and not isinstance(facts.created_by_user_id, str):
        raise InvalidInputError("created_by_user_id must be an id")
    if not isinstance(facts.document_sha256, str) or not SHA256_HEX.match(facts.document_sha256):
        raise InvalidInputError("document_sha256 must be a lowercase hex SHA-256 digest")
    return facts


def _check_amount(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be a whole number of minor units")
    if value < 0:
        raise InvalidInputError(f"{what} must not be negative")
    if value > MAX_AMOUNT_MINOR:
        raise InvalidInputError(f"{what} is too large")
    return value


# -- rule definitions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AmountThreshold:
    """``amount ≥ minor`` for contracts in ``currency`` (minor units: 分 for CNY)."""

    currency: str
    minor: int


@dataclass(frozen=True)
class Condition:
    """Holds if any clause holds. A condition with no clause at all is refused."""

    always: bool = False
    min_classification: str | None = None
    amounts: tuple[AmountThreshold, ...] = ()

    def matches(self, facts: ContractFacts) -> bool:
        if self.always:
            return True
        if self.min_classification is not None and LEVELS.index(
            facts.classification
        ) >= LEVELS.index(self.min_classification):
            return True
        return facts.amount_minor is not None and any(
            t.currency == facts.currency and facts.amount_minor >= t.minor for t in self.amounts
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "always": self.always,
            "min_classification": self.min_classification,
            "amounts": [{"currency": t.currency, "minor": t.minor} for t in self.amounts],
        }


@dataclass(frozen=True)
class Step:
    """One approval step: who may approve (roles and/or users), and whether one or all must."""

    mode: str = "any"
    roles: frozenset[str] = field(default_factory=frozenset)
    user_ids: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "roles": sorted(self.roles), "user_ids": sorted(self.user_ids)}


@dataclass(frozen=True)
class RuleSpec:
    """A rule as an administrator writes it."""

    name: str
    condition: Condition
    steps: Sequence[Step]
    enabled: bool = True


@dataclass(frozen=True)
class RuleInfo:
    """One version of a rule, as stored."""

    id: str
    org_id: str
    name: str
    version: int
    enabled: bool
    deleted: bool
    condition: Condition
    steps: tuple[Step, ...]
    changed_at: datetime


def _validated_condition(condition: object) -> Condition:
    if not isinstance(condition, Condition):
        raise InvalidInputError("a condition is required")
    if not isinstance(condition.always, bool):
        raise InvalidInputError("'always' must be true or false")
    level = condition.min_classification
    if level is not None and level not in LEVELS:
        raise InvalidInputError(f"the classification level must be one of {', '.join(LEVELS)}")
    thresholds = []
    seen: set[str] = set()
    for threshold in tuple(condition.amounts or ()):
        if not isinstance(threshold, AmountThreshold):
            raise InvalidInputError("amount thresholds need a currency and an amount")
        if not isinstance(threshold.currency, str) or not CURRENCY.match(threshold.currency):
            raise InvalidInputError("currency must be an ISO 4217 code such as CNY")
        if threshold.currency in seen:
            raise InvalidInputError(f"two amount thresholds for {threshold.currency}")
        seen.add(threshold.currency)
        _check_amount(threshold.minor, "the amount threshold")
        thresholds.append(threshold)
    if not condition.always and level is None and not thresholds:
        raise InvalidInputError(
            "the condition needs at least one clause: an amount, a classification level or always"
        )
    ordered = tuple(sorted(thresholds, key=lambda t: t.currency))
    return Condition(always=condition.always, min_classification=level, amounts=ordered)


def _string_set(values: object, what: str) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{what} must be a list")
    items = list(values)
    if not all(isinstance(v, str) and 0 < len(v) <= 64 for v in items):
        raise InvalidInputError(f"{what} must be a list of names or ids")
    return frozenset(items)


def _validated_steps(session: Session, org_id: str, steps: object) -> tuple[Step, ...]:
    """Steps in order; every role must exist here and grant approval, every user be a member."""
    if isinstance(steps, str | bytes) or not isinstance(steps, Iterable):
        raise InvalidInputError("steps must be a list")
    steps = list(steps)
    if not steps:
        raise InvalidInputError("a rule needs at least one step")
    if len(steps) > MAX_STEPS:
        raise InvalidInputError(f"a rule has at most {MAX_STEPS} steps")
    checked = []
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, Step):
            raise InvalidInputError(f"step {number}: a step needs a mode and approvers")
        if step.mode not in STEP_MODES:
            raise InvalidInputError(f"step {number}: mode must be 'any' or 'all'")
        roles = _string_set(step.roles, f"step {number}: roles")
        users = _string_set(step.user_ids, f"step {number}: user_ids")
        if not roles and not users:
            raise InvalidInputError(f"step {number}: name at least one approver role or user")
        if len(roles) + len(users) > MAX_STEP_ENTRIES:
            raise InvalidInputError(f"step {number}: at most {MAX_STEP_ENTRIES} roles and users")
        for role in sorted(roles):
            permissions = role_permissions(session, org_id, role)
            if permissions is None:
                raise InvalidInputError(f"step {number}: there is no role {role!r}")
            if APPROVE not in permissions:
                raise InvalidInputError(
                    f"step {number}: the role {role!r} does not grant {APPROVE}, "
                    "so its members cannot approve"
                )
        for user_id in sorted(users):
            member = active_member(session, user_id, org_id)
            if member is None:
                raise InvalidInputError(
                    f"step {number}: user {user_id} is not an active member of the organisation"
                )
            if APPROVE not in member.permissions:
                raise InvalidInputError(
                    f"step {number}: user {user_id} does not hold {APPROVE}, so cannot approve"
                )
        checked.append(Step(mode=step.mode, roles=roles, user_ids=users))
    return tuple(checked)


def _validated_name(name: object) -> str:
    cleaned = " ".join(name.split()) if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > MAX_NAME:
        raise InvalidInputError(f"the rule name must be 1 to {MAX_NAME} characters")
    return cleaned


# -- stored form --------------------------------------------------------------------------------


def _malformed(rule_id: str) -> IntegrityError:
    return IntegrityError(f"approval rule {rule_id} is stored in a form we cannot read")


def condition_from_json(rule_id: str, data: Any) -> Condition:
    """Parse a stored condition strictly; anything odd is an integrity failure, never a guess."""
    try:
        amounts = tuple(
            AmountThreshold(currency=str(a["currency"]), minor=int(a["minor"]))
            for a in data["amounts"]
        )
        condition = Condition(
            always=bool(data["always"]),
            min_classification=data["min_classification"],
            amounts=amounts,
        )
    except (KeyError, TypeError, ValueError):
        raise _malformed(rule_id) from None
    if condition.min_classification is not None and condition.min_classification not in LEVELS:
        raise _malformed(rule_id)
    return condition


def steps_from_json(rule_id: str, data: Any) -> tuple[Step, ...]:
    try:
        steps = tuple(
            Step(mode=s["mode"], roles=frozenset(s["roles"]), user_ids=frozenset(s["user_ids"]))
            for s in data
        )
    except (KeyError, TypeError):
        raise _malformed(rule_id) from None
    if not steps or any(s.mode not in STEP_MODES or not (s.roles or s.user_ids) for s in steps):
        raise _malformed(rule_id)
    return steps


def rule_info(row: ApprovalRule | ApprovalRuleVersion) -> RuleInfo:
    rule_id = row.rule_id if isinstance(row, ApprovalRuleVersion) else row.id
    changed = row.created_at if isinstance(row, ApprovalRuleVersion) else row.updated_at
    return RuleInfo(
        id=rule_id,
        org_id=row.org_id,
        name=row.name,
        version=row.version,
        enabled=row.enabled,
        deleted=row.deleted,
        condition=condition_from_json(rule_id, row.condition),
        steps=steps_from_json(rule_id, row.steps),
        changed_at=changed,
    )


def applicable_rules(session: Session, facts: ContractFacts) -> list[RuleInfo]:
    """The organisation's enabled rules whose condition holds for ``facts``, ordered by name.

    The order is the order of the steps in a request that combines several rules.
    """
    check_facts(facts)
    rows = session.execute(
        select(ApprovalRule)
        .where(
            ApprovalRule.org_id == facts.org_id,
            ApprovalRule.enabled.is_(True),
            ApprovalRule.deleted.is_(False),
        )
        .order_by(ApprovalRule.name, ApprovalRule.id)
    ).scalars()
    return [info for info in map(rule_info, rows) if info.condition.matches(facts)]


# -- refusals -----------------------------------------------------------------------------------


def audit_id(value: object) -> str | None:
    """An id as the audit journal may hold it: a string of at most 36 characters, or nothing."""
    return value[:36] if isinstance(value, str) and value else None


@contextmanager
def audited_refusals(
    access: AccessControl,
    actor: Actor,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
) -> Iterator[None]:
    """Like ``AccessControl.guard``, for every 4xx refusal (bad input and conflicts too).

    Use it *outside* ``db.write()``: the failed unit of work rolls back (nothing changes), the
    refusal is recorded as ``access.denied`` (with its status) in a fresh transaction, and the
    error propagates unchanged.
    """
    try:
        yield
    except PactvaultError as exc:
        if 400 <= exc.status < 500:
            access.record_denial(actor, action, exc, object_type=object_type, object_id=object_id)
        raise


# -- the service --------------------------------------------------------------------------------


class ApprovalRuleService:
    """Create, change, delete and list an organisation's rules (``approval.manage``)."""

    def __init__(
        self, db: Database, access: AccessControl, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._access = access
        self._clock = clock

    def create_rule(
        self, principal: Principal, spec: RuleSpec, actor: Actor | None = None
    ) -> RuleInfo:
        actor = actor or principal.actor()
        with (
            audited_refusals(self._access, actor, "approval.rule.create", object_type=RULE_OBJECT),
            self._db.write() as s,
        ):
            require(principal, MANAGE)
            name, enabled, condition, steps = self._validated(s, principal.org_id, spec)
            count = s.execute(
                select(func.count())
                .select_from(ApprovalRule)
                .where(ApprovalRule.org_id == principal.org_id, ApprovalRule.deleted.is_(False))
            ).scalar_one()
            if count >= MAX_RULES:
                raise ConflictError(f"an organisation has at most {MAX_RULES} approval rules")
            self._check_unique_name(s, principal.org_id, name, None)
            now = self._clock()
            row = ApprovalRule(
                org_id=principal.org_id,
                name=name,
                version=1,
                enabled=enabled,
                deleted=False,
                condition=condition.to_json(),
                steps=[step.to_json() for step in steps],
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return self._new_version(s, actor, row, "approval.rule.create")

    def update_rule(
        self,
        principal: Principal,
        rule_id: str,
        spec: RuleSpec,
        actor: Actor | None = None,
        *,
        expected_version: int | None = None,
    ) -> RuleInfo:
        """Replace the definition; pending requests keep the version they were created under.

        ``expected_version`` (optimistic concurrency) refuses to overwrite a change the caller
        has not seen.
        """
        actor = actor or principal.actor()
        with (
            audited_refusals(
                self._access,
                actor,
                "approval.rule.update",
                object_type=RULE_OBJECT,
                object_id=audit_id(rule_id),
            ),
            self._db.write() as s,
        ):
            require(principal, MANAGE)
            row = self._rule(s, principal.org_id, rule_id)
            if expected_version is not None and row.version != expected_version:
                raise ConflictError(
                    f"the rule was changed meanwhile (now version {row.version}); reload it"
                )
            name, enabled, condition, steps = self._validated(s, principal.org_id, spec)
            self._check_unique_name(s, principal.org_id, name, row.id)
            row.name = name
            row.enabled = enabled
            row.condition = condition.to_json()
            row.steps = [step.to_json() for step in steps]
            return self._new_version(s, actor, row, "approval.rule.update")

    def delete_rule(self, principal: Principal, rule_id: str, actor: Actor | None = None) -> None:
        """Retire a rule. The row and its versions stay, since requests refer to them."""
        actor = actor or principal.actor()
        with (
            audited_refusals(
                self._access,
                actor,
                "approval.rule.delete",
                object_type=RULE_OBJECT,
                object_id=audit_id(rule_id),
            ),
            self._db.write() as s,
        ):
            require(principal, MANAGE)
            row = self._rule(s, principal.org_id, rule_id)
            row.deleted = True
            row.enabled = False
            self._new_version(s, actor, row, "approval.rule.delete")

    def list_rules(self, principal: Principal) -> list[RuleInfo]:
        self._access.authorize(principal, MANAGE)
        with self._db.read() as s:
            rows = s.execute(
                select(ApprovalRule)
                .where(ApprovalRule.org_id == principal.org_id, ApprovalRule.deleted.is_(False))
                .order_by(ApprovalRule.name, ApprovalRule.id)
            ).scalars()
            return [rule_info(row) for row in rows]

    def get_rule(self, principal: Principal, rule_id: str) -> RuleInfo:
        """One rule as it is now; a deleted or another tenant's rule answers as missing."""
        actor = principal.actor()
        with (
            self._access.guard(actor, MANAGE, object_type=RULE_OBJECT, object_id=audit_id(rule_id)),
            self._db.read() as s,
        ):
            require(principal, MANAGE)
            return rule_info(self._rule(s, principal.org_id, rule_id, lock=False))

    def rule_versions(self, principal: Principal, rule_id: str) -> list[RuleInfo]:
        """Every version of a rule, oldest first (deleted rules included)."""
        actor = principal.actor()
        with (
            self._access.guard(actor, MANAGE, object_type=RULE_OBJECT, object_id=audit_id(rule_id)),
            self._db.read() as s,
        ):
            require(principal, MANAGE)
            self._rule(s, principal.org_id, rule_id, lock=False, include_deleted=True)
            rows = s.execute(
                select(ApprovalRuleVersion)
                .where(
                    ApprovalRuleVersion.rule_id == rule_id,
                    ApprovalRuleVersion.org_id == principal.org_id,
                )
                .order_by(ApprovalRuleVersion.version)
            ).scalars()
            return [rule_info(row) for row in rows]

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _validated(
        session: Session, org_id: str, spec: RuleSpec
    ) -> tuple[str, bool, Condition, tuple[Step, ...]]:
        if not isinstance(spec, RuleSpec):
            raise InvalidInputError("a rule needs a name, a condition and steps")
        if not isinstance(spec.enabled, bool):
            raise InvalidInputError("'enabled' must be true or false")
        return (
            _validated_name(spec.name),
            spec.enabled,
            _validated_condition(spec.condition),
            _validated_steps(session, org_id, spec.steps),
        )

    @staticmethod
    def _check_unique_name(session: Session, org_id: str, name: str, rule_id: str | None) -> None:
        clash = session.execute(
            select(ApprovalRule.id).where(
                ApprovalRule.org_id == org_id,
                ApprovalRule.deleted.is_(False),
                func.lower(ApprovalRule.name) == name.lower(),
            )
        ).scalars()
        if any(other != rule_id for other in clash):
            raise ConflictError(f"an approval rule named {name!r} already exists")

    @staticmethod
    def _rule(
        session: Session,
        org_id: str,
        rule_id: str,
        *,
        lock: bool = True,
        include_deleted: bool = False,
    ) -> ApprovalRule:
        if not isinstance(rule_id, str) or not 0 < len(rule_id) <= 36:
            raise NotFoundError(RULE_NOT_FOUND)
        query = select(ApprovalRule).where(
            ApprovalRule.id == rule_id, ApprovalRule.org_id == org_id
        )
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        # Another tenant's rule and a deleted one answer exactly like a missing one.
        if row is None or (row.deleted and not include_deleted):
            raise NotFoundError(RULE_NOT_FOUND)
        return row

    def _new_version(
        self, session: Session, actor: Actor, row: ApprovalRule, action: str
    ) -> RuleInfo:
        """Append the immutable version row for ``row``'s new state, and audit the change."""
        if action != "approval.rule.create":
            row.version += 1
        row.updated_at = self._clock()
        version = ApprovalRuleVersion(
            rule_id=row.id,
            org_id=row.org_id,
            version=row.version,
            name=row.name,
            enabled=row.enabled,
            deleted=row.deleted,
            condition=row.condition,
            steps=row.steps,
            created_at=row.updated_at,
            created_by=actor.id,
        )
        session.add(version)
        session.flush()
        record(
            session,
            actor,
            action,
            object_type=RULE_OBJECT,
            object_id=row.id,
            org_id=row.org_id,
            details={
                "name": row.name,
                "version": row.version,
                "enabled": row.enabled,
                "deleted": row.deleted,
                # The full definition, so the journal alone shows what each version required.
                "condition": row.condition,
                "steps": row.steps,
            },
        )
        return rule_info(row)


__all__ = [
    "APPROVE",
    "MANAGE",
    "AmountThreshold",
    "ApprovalRuleService",
    "Condition",
    "ContractFacts",
    "RuleInfo",
    "RuleSpec",
    "Step",
    "applicable_rules",
    "audit_id",
    "audited_refusals",
    "check_facts",
]
