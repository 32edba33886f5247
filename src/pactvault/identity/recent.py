"""Recent authentication ("sudo mode") for sensitive changes to one's own account.

A session lives for hours; a session cookie stolen in that time must not be enough to add the
thief's own authenticator, passkey, code channel or API token — that would outlive the session.
So those changes need the password proven within ``REAUTH_WINDOW`` (at sign-in, or again with
``LoginService.reauthenticate``). Enrolment grants are fresh by construction (minutes old, from a
correct password) and API tokens cannot make these changes at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pactvault.identity.errors import ReauthenticationRequiredError
from pactvault.identity.principal import Principal

REAUTH_WINDOW = timedelta(minutes=20)


def require_recent_authentication(
    principal: Principal, now: datetime, window: timedelta = REAUTH_WINDOW
) -> None:
    """Raise ``ReauthenticationRequiredError`` unless the session proved the password lately."""
    if principal.session_id is None:
        return  # not a session: the caller's own rules apply (tokens are refused elsewhere)
    proven = principal.authenticated_at
    if proven is None or now - proven > window:
        raise ReauthenticationRequiredError()
