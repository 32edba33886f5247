"""Security monitoring: alerts (stored, de-duplicated, delivered to signed webhooks) and the
integrity auditor that re-checks stored documents, the evidence ledger and the audit journal.

``AlertService`` is the sink every detector raises into; ``IntegrityAuditor`` is the first
detector (``run`` for the CLI, ``run_if_due`` for the maintenance loop).
"""

from __future__ import annotations

from pactvault.monitor.alerts import (
    ALERT_MANAGE_PERMISSION,
    ALERT_READ_PERMISSION,
    AlertService,
    DeliveryStats,
    RaisedAlert,
)
from pactvault.monitor.findings import Finding, IntegrityReport, ProgressUpdate
from pactvault.monitor.integrity import IntegrityAuditor
from pactvault.monitor.webhooks import WebhookEndpoint, new_webhook_secret, verify_webhook

__all__ = [
    "ALERT_MANAGE_PERMISSION",
    "ALERT_READ_PERMISSION",
    "AlertService",
    "DeliveryStats",
    "Finding",
    "IntegrityAuditor",
    "IntegrityReport",
    "ProgressUpdate",
    "RaisedAlert",
    "WebhookEndpoint",
    "new_webhook_secret",
    "verify_webhook",
]
