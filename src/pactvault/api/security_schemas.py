"""Bodies of the security monitoring routes (rules, automatic responses, step-up).

Built field by field from the services' objects, so nothing stored later leaks by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pactvault.monitor.rules.catalog import RuleDef
from pactvault.monitor.rules.settings import RuleChange, RuleSettings
from pactvault.store.detection_models import Response


class RuleOut(BaseModel):
    name: str
    title: str
    description: str = Field(description="What THRESHOLD and WINDOW mean for this rule")
    scope: str = Field(description="org: tuned per organisation; platform: by the operator only")
    severity: str
    alert_kind: str
    possible_actions: list[str]
    enabled: bool
    threshold: int
    window_minutes: int
    actions: list[str] = Field(description="Automatic responses when the rule fires")
    action_minutes: int = Field(description="How long each automatic response lasts")
    source: str = Field(description="default, platform or organisation")
    updated_at: datetime | None
    updated_by: str | None

    @classmethod
    def of(cls, rule: RuleDef, s: RuleSettings) -> RuleOut:
        return cls(
            name=rule.name,
            title=rule.title,
            description=rule.description,
            scope=rule.scope,
            severity=rule.severity,
            alert_kind=rule.alert_kind,
            possible_actions=list(rule.possible_actions),
            enabled=s.enabled,
            threshold=s.threshold,
            window_minutes=s.window_minutes,
            actions=list(s.actions),
            action_minutes=s.action_minutes,
            source=s.source,
            updated_at=s.updated_at,
            updated_by=s.updated_by,
        )


class RuleChangeIn(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool | None = None
    threshold: int | None = Field(default=None, ge=0, le=1_000_000)
    window_minutes: int | None = Field(default=None, ge=1, le=1440)
    actions: list[str] | None = Field(default=None, max_length=4)
    action_minutes: int | None = Field(default=None, ge=1, le=10080)

    def change(self) -> RuleChange:
        return RuleChange(
            enabled=self.enabled,
            threshold=self.threshold,
            window_minutes=self.window_minutes,
            actions=tuple(self.actions) if self.actions is not None else None,
            action_minutes=self.action_minutes,
        )


class ResponseOut(BaseModel):
    id: str
    rule: str
    action: str
    target_type: str = Field(description="ip, user, token or signer")
    target: str = Field(description="The address key (ip:…) or the user, token or signer id")
    alert_id: str | None
    reason: str
    details: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None

    @classmethod
    def of(cls, r: Response) -> ResponseOut:
        return cls(
            id=r.id,
            rule=r.rule,
            action=r.action,
            target_type=r.target_type,
            target=r.target,
            alert_id=r.alert_id,
            reason=r.reason,
            details=dict(r.details or {}),
            created_at=r.created_at,
            expires_at=r.expires_at,
            lifted_at=r.lifted_at,
            lifted_by=r.lifted_by,
        )


class ResponsePageOut(BaseModel):
    items: list[ResponseOut]
    total: int
    limit: int
    offset: int


class LiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


class StepUpStatusOut(BaseModel):
    required: bool = Field(description="Whether a security check is owed before sensitive actions")
    methods: list[str]


class StepUpCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="email or sms")


class StepUpCodeOut(BaseModel):
    channel: str
    destination: str
    expires_at: datetime


class StepUpProofIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="totp, recovery, email or sms")
    code: str = Field(min_length=1, max_length=64)


class StepUpDoneOut(BaseModel):
    lifted: int = Field(description="How many security-check requirements ended")
