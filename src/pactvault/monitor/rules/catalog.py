"""The detection rules pactvault ships, with their default thresholds and automatic actions.

Every rule reads the audit journal (the action names below are the ones the services record) and
raises a de-duplicated alert ``monitor.<rule>`` when it fires. What ``threshold`` and
``window_minutes`` mean depends on the rule's ``method``:

- ``count``: fires when more than ``threshold`` distinct items (documents, accounts, events) are
  observed for one key (an actor, an address, an account) within ``window_minutes``;
- ``new-network``: fires when a user or token acts from a network (/24, /48) first seen within
  ``window_minutes`` while it has at least ``threshold`` networks known from before;
- ``unusual-hours``: fires when a user with at least ``threshold`` recorded actions acts in an
  hour of the day (UTC, ± 1 hour) in which they have never acted;
- ``link``: another component raised the alert already (the integrity auditor): the rule adds
  nothing but the configured automatic actions, naming that alert.

``scope`` says who may tune a rule: ``org`` rules have organisation-level settings (the
organisation's administrators, over the API); ``platform`` rules see events that belong to no
organisation yet (failed sign-ins are anonymous) and are tuned by the instance operator (CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pactvault.store.detection_models import RESPONSE_ACTIONS

__all__ = [
    "DOWNLOAD_ACTIONS",
    "EDIT_ACTIONS",
    "PRIVILEGE_ACTIONS",
    "RULES",
    "RuleDef",
    "rule_named",
]

Method = Literal["count", "new-network", "unusual-hours", "link"]
Scope = Literal["org", "platform"]

#: Reading or exporting a document's bytes (the services audit every decryption for a reader).
DOWNLOAD_ACTIONS = frozenset(
    {"document.download", "document.export", "contract.export", "evidence.export"}
)
#: Changing or deleting what exists (there is no free-form contract editing after creation).
EDIT_ACTIONS = frozenset(
    {
        "contract.update",
        "template.update",
        "template.delete",
        "approval.rule.update",
        "approval.rule.delete",
        "role.update",
        "role.delete",
        "member.remove",
        "invitation.revoke",
    }
)
#: Who may do what: roles, clearances, new organisation-wide credentials, security policies.
PRIVILEGE_ACTIONS = frozenset(
    {
        "member.change-role",
        "member.set-clearance",
        "role.create",
        "role.update",
        "role.delete",
        "token.create",
        "token.operator-issued",
        "setup.complete",
        "mfa.org-policy-changed",
        "monitor.rule-changed",
    }
)
#: Wrong second factors (login codes, TOTP, recovery codes, signing step-up codes), and attempts
#: refused because the person or address is already locked out: guessing on regardless.
OTP_FAILURE_ACTIONS = frozenset(
    {"mfa.failed", "stepup.failed", "mfa.throttled", "stepup.throttled"}
)
CONFIDENTIAL_LEVELS = frozenset({"confidential", "secret"})


@dataclass(frozen=True)
class RuleDef:
    name: str
    title: str
    description: str
    method: Method
    scope: Scope
    severity: str
    threshold: int
    window_minutes: int
    actions: tuple[str, ...]
    action_minutes: int
    #: Actions this rule can take at all (an action needing an actor is useless on an address).
    possible_actions: tuple[str, ...] = RESPONSE_ACTIONS

    @property
    def alert_kind(self) -> str:
        return f"monitor.{self.name}"


_ACTOR_ACTIONS = ("slow-down", "step-up", "suspend", "block-ip")
_ADDRESS_ACTIONS = ("slow-down", "block-ip")

RULES: MappingProxyType[str, RuleDef] = MappingProxyType(
    {
        rule.name: rule
        for rule in (
            RuleDef(
                "mass-download",
                "Mass download or export",
                "more than THRESHOLD different documents downloaded or exported by one user or "
                "token within WINDOW minutes",
                "count",
                "org",
                "critical",
                threshold=50,
                window_minutes=10,
                actions=("suspend",),
                action_minutes=60,
            ),
            RuleDef(
                "repeated-voids",
                "Repeated voids",
                "more than THRESHOLD contracts voided by one user or token within WINDOW minutes",
                "count",
                "org",
                "warning",
                threshold=10,
                window_minutes=10,
                actions=(),
                action_minutes=60,
            ),
            RuleDef(
                "repeated-edits",
                "Repeated edits or deletions",
                "more than THRESHOLD changes or deletions (approval rules, roles, members, "
                "invitations, templates) by one user or token within WINDOW minutes",
                "count",
                "org",
                "warning",
                threshold=20,
                window_minutes=10,
                actions=(),
                action_minutes=60,
            ),
            RuleDef(
                "failed-logins-account",
                "Repeated failed sign-ins for one account",
                "more than THRESHOLD failed password sign-ins for one email address (known or "
                "not) within WINDOW minutes; the account's own lockout is identity.throttle's",
                "count",
                "platform",
                "warning",
                threshold=10,
                window_minutes=15,
                actions=(),
                action_minutes=60,
                possible_actions=_ADDRESS_ACTIONS,
            ),
            RuleDef(
                "failed-logins-ip",
                "Repeated failed sign-ins from one address",
                "more than THRESHOLD failed password sign-ins from one address within WINDOW "
                "minutes",
                "count",
                "platform",
                "warning",
                threshold=30,
                window_minutes=15,
                actions=("block-ip",),
                action_minutes=60,
                possible_actions=_ADDRESS_ACTIONS,
            ),
            RuleDef(
                "password-spraying",
                "Password spraying or credential stuffing",
                "failed sign-ins for more than THRESHOLD different accounts from one address "
                "within WINDOW minutes",
                "count",
                "platform",
                "critical",
                threshold=20,
                window_minutes=10,
                actions=("block-ip",),
                action_minutes=120,
                possible_actions=_ADDRESS_ACTIONS,
            ),
            RuleDef(
                "otp-failures",
                "Repeated wrong one-time codes",
                "more than THRESHOLD wrong second factors (sign-in codes, authenticator codes, "
                "signing step-up codes) or attempts while locked out, for one person or from "
                "one address, within WINDOW minutes",
                "count",
                "org",
                "critical",
                threshold=10,
                window_minutes=15,
                actions=("block-ip",),
                action_minutes=60,
            ),
            RuleDef(
                "new-network",
                "Confidential contract read from a new network",
                "a user or token downloads a confidential or secret contract from a network "
                "(/24, /48) first seen within WINDOW minutes, while it has at least THRESHOLD "
                "networks known from before",
                "new-network",
                "org",
                "warning",
                threshold=1,
                window_minutes=1440,
                actions=("step-up",),
                action_minutes=60,
            ),
            RuleDef(
                "unusual-hours",
                "Confidential contract read at an unusual hour",
                "a user with at least THRESHOLD recorded actions downloads a confidential or "
                "secret contract in an hour of the day (UTC, ± 1 hour) they have never acted in",
                "unusual-hours",
                "org",
                "warning",
                threshold=50,
                window_minutes=60,
                actions=(),
                action_minutes=60,
            ),
            RuleDef(
                "privilege-change",
                "Privilege change",
                "roles, clearances, organisation tokens or security policies changed (more than "
                "THRESHOLD changes of one object within WINDOW minutes; 0 alerts on every one)",
                "count",
                "org",
                "warning",
                threshold=0,
                window_minutes=60,
                actions=(),
                action_minutes=60,
            ),
            RuleDef(
                "token-new-network",
                "API token used from a new network",
                "an API token acts from a network (/24, /48) first seen within WINDOW minutes, "
                "while it has at least THRESHOLD networks known from before",
                "new-network",
                "org",
                "warning",
                threshold=1,
                window_minutes=1440,
                actions=(),
                action_minutes=60,
                possible_actions=("slow-down", "suspend", "block-ip"),
            ),
            RuleDef(
                "integrity-failure",
                "Integrity auditor finding",
                "the integrity auditor raised an alert (integrity.*): it is linked here so the "
                "configured actions can follow it; THRESHOLD and WINDOW are not used",
                "link",
                "platform",
                "critical",
                threshold=0,
                window_minutes=60,
                actions=(),
                action_minutes=60,
                possible_actions=(),
            ),
        )
    }
)

#: The longest window any rule may count over: observations older than this are pruned.
MAX_WINDOW_MINUTES = 24 * 60


def rule_named(name: str) -> RuleDef | None:
    return RULES.get(name) if isinstance(name, str) else None
