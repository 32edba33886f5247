"""Rule settings: thresholds, windows and automatic actions, per organisation and platform-wide.

The effective settings of a rule for an organisation are, first found: the organisation's row,
the platform row (``scope`` ``*``), the defaults in ``catalog``. Organisations tune their
``org`` rules; ``platform`` rules (sign-in failures, integrity links) only the operator.

Who may change them: ``alert.manage`` — the people who handle the alerts tune the rules that raise
them (owners and administrators by default; a custom "security analyst" role can be given it).
No new permission: reading is ``alert.read``, like the alerts themselves. Because switching a
rule off is itself a way to hide an attack, every change is audited as ``monitor.rule-changed``
with the before and after, and the ``privilege-change`` rule alerts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, require
from pactvault.audit.journal import Actor, record
from pactvault.errors import InvalidInputError, NotFoundError
from pactvault.identity.principal import Principal
from pactvault.monitor.alerts import ALERT_MANAGE_PERMISSION, ALERT_READ_PERMISSION
from pactvault.monitor.rules.catalog import MAX_WINDOW_MINUTES, RULES, RuleDef, rule_named
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.detection_models import PLATFORM_SCOPE, RuleSetting

__all__ = ["RuleChange", "RuleSettings", "RuleSettingsService"]

MAX_THRESHOLD = 1_000_000
MAX_ACTION_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class RuleSettings:
    rule: str
    enabled: bool
    threshold: int
    window_minutes: int
    actions: tuple[str, ...]
    action_minutes: int
    #: ``default``, ``platform`` or ``organisation``: where these values come from.
    source: str = "default"
    updated_at: datetime | None = None
    updated_by: str | None = None

    @classmethod
    def default(cls, rule: RuleDef) -> RuleSettings:
        return cls(
            rule.name,
            True,
            rule.threshold,
            rule.window_minutes,
            rule.actions,
            rule.action_minutes,
        )

    @classmethod
    def of_row(cls, row: RuleSetting, source: str) -> RuleSettings:
        return cls(
            row.rule,
            row.enabled,
            row.threshold,
            row.window_minutes,
            tuple(row.actions or ()),
            row.action_minutes,
            source,
            row.updated_at,
            row.updated_by,
        )

    def values(self) -> dict[str, object]:
        """What a change compares and audits (no provenance)."""
        out = asdict(self)
        for key in ("rule", "source", "updated_at", "updated_by"):
            out.pop(key)
        out["actions"] = list(self.actions)
        return out


@dataclass(frozen=True)
class RuleChange:
    """A partial update: ``None`` keeps the current value."""

    enabled: bool | None = None
    threshold: int | None = None
    window_minutes: int | None = None
    actions: tuple[str, ...] | None = None
    action_minutes: int | None = None


def _checked(rule: RuleDef, settings: RuleSettings) -> RuleSettings:
    if not 0 <= settings.threshold <= MAX_THRESHOLD:
        raise InvalidInputError(f"threshold must be 0..{MAX_THRESHOLD}")
    if not 1 <= settings.window_minutes <= MAX_WINDOW_MINUTES:
        raise InvalidInputError(f"window_minutes must be 1..{MAX_WINDOW_MINUTES}")
    if not 1 <= settings.action_minutes <= MAX_ACTION_MINUTES:
        raise InvalidInputError(f"action_minutes must be 1..{MAX_ACTION_MINUTES}")
    actions = tuple(dict.fromkeys(settings.actions))  # keep order, drop repeats
    unknown = [a for a in actions if a not in rule.possible_actions]
    if unknown:
        allowed = ", ".join(rule.possible_actions) or "none"
        raise InvalidInputError(
            f"rule {rule.name} cannot take the action(s) {', '.join(unknown)} (possible: {allowed})"
        )
    return replace(settings, actions=actions)


def _org_rule(name: str) -> RuleDef:
    """An organisation-level rule; platform rules and unknown names answer alike."""
    definition = rule_named(name)
    if definition is None or definition.scope != "org":
        raise NotFoundError("rule not found")
    return definition


class RuleSettingsService:
    def __init__(
        self, db: Database, access: AccessControl, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._access = access
        self._clock = clock

    # -- reading (the engine) -------------------------------------------------------------------

    @staticmethod
    def effective_many(
        session: Session, pairs: Iterable[tuple[str, str | None]]
    ) -> dict[tuple[str, str | None], RuleSettings]:
        """Effective settings for each ``(rule, org_id)`` (org None: the platform's), in one
        query. Organisation rows only count for ``org`` rules."""
        pairs = set(pairs)
        scopes = {PLATFORM_SCOPE} | {org for _, org in pairs if org}
        rows = {
            (r.scope, r.rule): r
            for r in session.execute(
                select(RuleSetting).where(RuleSetting.scope.in_(scopes))
            ).scalars()
        }
        out: dict[tuple[str, str | None], RuleSettings] = {}
        for name, org in pairs:
            rule = RULES[name]
            own = rows.get((org, name)) if org and rule.scope == "org" else None
            platform = rows.get((PLATFORM_SCOPE, name))
            if own is not None:
                out[(name, org)] = RuleSettings.of_row(own, "organisation")
            elif platform is not None:
                out[(name, org)] = RuleSettings.of_row(platform, "platform")
            else:
                out[(name, org)] = RuleSettings.default(rule)
        return out

    def effective(self, rule: str, org_id: str | None) -> RuleSettings:
        if rule_named(rule) is None:
            raise NotFoundError("rule not found")
        with self._db.read() as session:
            return self.effective_many(session, [(rule, org_id)])[(rule, org_id)]

    # -- organisation administrators (API) ------------------------------------------------------

    def list_for(
        self, principal: Principal, actor: Actor | None = None
    ) -> list[tuple[RuleDef, RuleSettings]]:
        """Every rule as it applies to the caller's organisation (``platform`` rules read-only)."""
        self._access.authorize(principal, ALERT_READ_PERMISSION, actor=actor)
        with self._db.read() as session:
            found = self.effective_many(session, [(n, principal.org_id) for n in RULES])
        return [(RULES[n], found[(n, principal.org_id)]) for n in RULES]

    def change(
        self, principal: Principal, rule: str, change: RuleChange, actor: Actor | None = None
    ) -> RuleSettings:
        """Change one of the organisation's rules; a platform rule answers like a missing one."""
        actor = actor or principal.actor()
        with self._access.guard(
            actor, "monitor.rule-change", object_type="monitor-rule", object_id=str(rule)[:36]
        ):
            require(principal, ALERT_MANAGE_PERMISSION)
            definition = _org_rule(rule)
        return self._store(actor, definition, principal.org_id, change)

    def reset(self, principal: Principal, rule: str, actor: Actor | None = None) -> RuleSettings:
        """Back to the platform's settings (or the defaults): the organisation's row goes."""
        actor = actor or principal.actor()
        with self._access.guard(
            actor, "monitor.rule-change", object_type="monitor-rule", object_id=str(rule)[:36]
        ):
            require(principal, ALERT_MANAGE_PERMISSION)
            definition = _org_rule(rule)
        return self._delete(actor, definition, principal.org_id)

    # -- the operator (CLI) ---------------------------------------------------------------------

    def operator_list(self, org_id: str | None = None) -> list[tuple[RuleDef, RuleSettings]]:
        with self._db.read() as session:
            found = self.effective_many(session, [(n, org_id) for n in RULES])
        return [(RULES[n], found[(n, org_id)]) for n in RULES]

    def operator_change(
        self, actor: Actor, rule: str, change: RuleChange, *, org_id: str | None = None
    ) -> RuleSettings:
        """Platform-wide settings (``org_id`` None), or an organisation's ``org`` rule."""
        definition = rule_named(rule)
        if definition is None:
            raise NotFoundError(f"no rule named {rule!r} (see `pactvault monitor rules`)")
        if org_id is not None and definition.scope != "org":
            raise InvalidInputError(f"rule {rule} is platform-wide: change it without --org")
        return self._store(actor, definition, org_id, change)

    def operator_reset(self, actor: Actor, rule: str, *, org_id: str | None = None) -> RuleSettings:
        definition = rule_named(rule)
        if definition is None:
            raise NotFoundError(f"no rule named {rule!r} (see `pactvault monitor rules`)")
        return self._delete(actor, definition, org_id)

    # -- storage --------------------------------------------------------------------------------

    def _store(
        self, actor: Actor, rule: RuleDef, org_id: str | None, change: RuleChange
    ) -> RuleSettings:
        scope = org_id or PLATFORM_SCOPE
        now = self._clock()
        with self._db.write() as session:
            before = self.effective_many(session, [(rule.name, org_id)])[(rule.name, org_id)]
            updates: Mapping[str, object] = {
                k: v for k, v in asdict(change).items() if v is not None
            }
            if "actions" in updates:
                updates = {**updates, "actions": tuple(updates["actions"])}  # type: ignore[arg-type]
            after = _checked(rule, replace(before, **updates))  # type: ignore[arg-type]
            row = session.execute(
                select(RuleSetting)
                .where(RuleSetting.scope == scope, RuleSetting.rule == rule.name)
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                row = RuleSetting(scope=scope, rule=rule.name)
                session.add(row)
            row.enabled = after.enabled
            row.threshold = after.threshold
            row.window_minutes = after.window_minutes
            row.actions = list(after.actions)
            row.action_minutes = after.action_minutes
            row.updated_at = now
            row.updated_by = f"{actor.type}:{actor.id or '-'}"[:140]
            session.flush()
            record(
                session,
                actor,
                "monitor.rule-changed",
                object_type="monitor-rule",
                object_id=rule.name,
                org_id=org_id,
                details={"before": before.values(), "after": after.values(), "scope": scope},
            )
            return RuleSettings.of_row(row, "organisation" if org_id else "platform")

    def _delete(self, actor: Actor, rule: RuleDef, org_id: str | None) -> RuleSettings:
        scope = org_id or PLATFORM_SCOPE
        with self._db.write() as session:
            before = self.effective_many(session, [(rule.name, org_id)])[(rule.name, org_id)]
            row = session.get(RuleSetting, (scope, rule.name))
            if row is not None:
                session.delete(row)
                session.flush()
            after = self.effective_many(session, [(rule.name, org_id)])[(rule.name, org_id)]
            if row is not None:
                record(
                    session,
                    actor,
                    "monitor.rule-changed",
                    object_type="monitor-rule",
                    object_id=rule.name,
                    org_id=org_id,
                    details={
                        "before": before.values(),
                        "after": after.values(),
                        "scope": scope,
                        "reset": True,
                    },
                )
            return after
