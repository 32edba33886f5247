"""How the managing pages show stored values: statuses, levels, event names, actors, money, times.

Services store stable codes (``partially_signed``, ``contract.sign``, ``confidential``); the pages
show them in the reader's language. Each table below maps a code to its catalog key, written out
in full so that the catalog tests can see every key is used; a code missing from a table (a new
audit action, say) is shown as the code itself rather than hiding the row.

``render`` is ``pages.render`` with these helpers in the context: ``label(kind, code)``,
``when(datetime)`` (UTC, minute precision), ``money(minor, currency)`` and ``holds(permission)``
(whether the caller holds a permission in any reach, to show only the actions they may take —
the routes still check every action themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse

from pactvault.identity.principal import Principal
from pactvault.web.i18n import Translator
from pactvault.web.pages import render as render_page
from pactvault.web.pages import translator

CONTRACT_STATUS = {
    "draft": "manage.status.draft",
    "sent": "manage.status.sent",
    "partially_signed": "manage.status.partially_signed",
    "completed": "manage.status.completed",
    "declined": "manage.status.declined",
    "voided": "manage.status.voided",
    "expired": "manage.status.expired",
}
SIGNER_STATUS = {
    "pending": "manage.signer.pending",
    "invited": "manage.signer.invited",
    "signed": "manage.signer.signed",
    "declined": "manage.signer.declined",
    "closed": "manage.signer.closed",
}
LEVEL = {
    "public": "manage.level.public",
    "internal": "manage.level.internal",
    "confidential": "manage.level.confidential",
    "secret": "manage.level.secret",
}
REVISION = {
    "original": "manage.revision.original",
    "prepared": "manage.revision.prepared",
    "signed": "manage.revision.signed",
    "sealed": "manage.revision.sealed",
}
#: Audit actions of a contract's timeline (and the journal page), in the reader's words.
EVENT = {
    "contract.create": "manage.event.create",
    "contract.send": "manage.event.send",
    "contract.sign": "manage.event.sign",
    "contract.decline": "manage.event.decline",
    "contract.void": "manage.event.void",
    "contract.expire": "manage.event.expire",
    "contract.complete": "manage.event.complete",
    "contract.remind": "manage.event.remind",
    "signer.invite": "manage.event.invite",
    "signer.view": "manage.event.view",
    "signer.open": "manage.event.open",
    "document.view": "manage.event.document_view",
    "document.download": "manage.event.download",
    "approval.requested": "manage.event.approval_requested",
    "approval.approved": "manage.event.approval_approved",
    "approval.rejected": "manage.event.approval_rejected",
    "approval.completed": "manage.event.approval_completed",
    "approval.withdrawn": "manage.event.approval_withdrawn",
    "approval.superseded": "manage.event.approval_superseded",
    "access.denied": "manage.event.access_denied",
}
ACTOR = {
    "user": "manage.actor.user",
    "signer": "manage.actor.signer",
    "api-token": "manage.actor.api_token",
    "system": "manage.actor.system",
    "anonymous": "manage.actor.anonymous",
    "operator-cli": "manage.actor.operator",
    "setup": "manage.actor.setup",
}
APPROVAL_STATUS = {
    "pending": "approvals.status.pending",
    "approved": "approvals.status.approved",
    "rejected": "approvals.status.rejected",
    "withdrawn": "approvals.status.withdrawn",
    "superseded": "approvals.status.superseded",
}
STEP_STATUS = {
    "waiting": "approvals.step.waiting",
    "active": "approvals.step.active",
    "approved": "approvals.step.approved",
    "rejected": "approvals.step.rejected",
    "closed": "approvals.step.closed",
}
DECISION = {
    "approved": "approvals.decision.approved",
    "rejected": "approvals.decision.rejected",
}
STEP_MODE = {"any": "org.rules.mode_any", "all": "org.rules.mode_all"}
ALERT_STATUS = {
    "open": "alerts.status.open",
    "acknowledged": "alerts.status.acknowledged",
    "resolved": "alerts.status.resolved",
}
SEVERITY = {
    "info": "alerts.severity.info",
    "warning": "alerts.severity.warning",
    "critical": "alerts.severity.critical",
}
DELIVERY_STATUS = {
    "pending": "alerts.delivery.pending",
    "delivered": "alerts.delivery.delivered",
    "failed": "alerts.delivery.failed",
}
VERIFICATION_STATUS = {
    "pending": "org.review.status.pending",
    "verified": "org.review.status.verified",
    "rejected": "org.review.status.rejected",
    "expired": "org.review.status.expired",
}
#: What each permission allows, for the custom-role checklist and the token form.
PERMISSION = {
    "contract.create": "org.permission.contract_create",
    "contract.read.all": "org.permission.contract_read_all",
    "contract.read.own": "org.permission.contract_read_own",
    "contract.update.all": "org.permission.contract_update_all",
    "contract.update.own": "org.permission.contract_update_own",
    "contract.send.all": "org.permission.contract_send_all",
    "contract.send.own": "org.permission.contract_send_own",
    "contract.void.all": "org.permission.contract_void_all",
    "contract.void.own": "org.permission.contract_void_own",
    "contract.approve": "org.permission.contract_approve",
    "template.manage": "org.permission.template_manage",
    "audit.read": "org.permission.audit_read",
    "alert.read": "org.permission.alert_read",
    "alert.manage": "org.permission.alert_manage",
    "member.read": "org.permission.member_read",
    "member.invite": "org.permission.member_invite",
    "member.manage": "org.permission.member_manage",
    "identity.review": "org.permission.identity_review",
    "role.manage": "org.permission.role_manage",
    "token.manage": "org.permission.token_manage",
    "key.manage": "org.permission.key_manage",
    "approval.manage": "org.permission.approval_manage",
    "org.manage": "org.permission.org_manage",
}
ROLE = {
    "owner": "roles.owner",
    "admin": "roles.admin",
    "contract_manager": "roles.contract_manager",
    "approver": "roles.approver",
    "member": "roles.member",
    "auditor": "roles.auditor",
}

TABLES: Mapping[str, Mapping[str, str]] = {
    "status": CONTRACT_STATUS,
    "signer": SIGNER_STATUS,
    "level": LEVEL,
    "revision": REVISION,
    "event": EVENT,
    "actor": ACTOR,
    "approval": APPROVAL_STATUS,
    "step": STEP_STATUS,
    "decision": DECISION,
    "mode": STEP_MODE,
    "alert": ALERT_STATUS,
    "severity": SEVERITY,
    "delivery": DELIVERY_STATUS,
    "verification": VERIFICATION_STATUS,
    "permission": PERMISSION,
    "role": ROLE,
}


def label(t: Translator, kind: str, code: str | None) -> str:
    """``code`` of table ``kind`` in the reader's language (the code itself when unknown)."""
    if code is None:
        return "—"
    key = TABLES[kind].get(code)
    return t(key) if key is not None else code


def when(moment: datetime | None) -> str:
    """A stored (UTC) moment to the minute; the pages say once that times are UTC."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "—"


def money(amount_minor: int | None, currency: str | None) -> str:
    """Minor units as an amount with two decimals (分 → 元): ``1,234.50 CNY``."""
    if amount_minor is None or currency is None:
        return "—"
    whole, cents = divmod(amount_minor, 100)
    return f"{whole:,}.{cents:02d} {currency}"


def holds(principal: Principal | None, permission: str) -> bool:
    """Whether ``principal`` holds ``permission`` in any reach (``.all``/``.own``)."""
    if principal is None:
        return False
    held = principal.permissions
    return bool({permission, f"{permission}.all", f"{permission}.own"} & held)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """``pages.render`` with the display helpers above."""
    t = translator(request)
    caller = getattr(request.state, "caller", None)
    principal = caller.principal if caller is not None else None
    helpers = {
        "label": lambda kind, code: label(t, kind, code),
        "when": when,
        "money": money,
        "holds": lambda permission: holds(principal, permission),
    }
    return render_page(
        request, template, {**helpers, **(context or {})}, status=status, headers=headers
    )
