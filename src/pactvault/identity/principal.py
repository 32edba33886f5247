"""The authenticated caller every service and ``access.authorize`` receives.

One type for all three ways in: an organisation API token (legacy, no user), a user's API token
and a user's browser session. ``permissions`` is resolved once at authentication from the current
role, so demoting a member takes effect on their next request, tokens included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pactvault.audit.journal import Actor


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, always bound to exactly one organisation."""

    org_id: str
    token_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: str | None = None
    session_id: str | None = None
    role: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    #: Highest classification level readable in clear (分类分级); see access.decision.
    clearance: str = "internal"
    #: Sessions only: when the password was last proven (sign-in or re-authentication).
    authenticated_at: datetime | None = None

    @property
    def kind(self) -> str:
        if self.session_id is not None:
            return "session"
        return "user-token" if self.user_id is not None else "api-token"

    def actor(self, ip: str | None = None, user_agent: str | None = None) -> Actor:
        """The audit actor: the user for sessions, the token for API calls."""
        if self.session_id is not None and self.user_id is not None:
            return Actor(
                type="user", id=self.user_id, org_id=self.org_id, ip=ip, user_agent=user_agent
            )
        return Actor(
            type="api-token", id=self.token_id, org_id=self.org_id, ip=ip, user_agent=user_agent
        )
