"""Getting messages to people: SMTP email and an SMS sender interface.

``notify.Mailer`` is the email seam; ``delivery.smtp.SmtpMailer`` is its production
implementation. SMS has no production gateway here: ``delivery.sms.SmsSender`` is the interface a
provider adapter implements, and ``FileOutboxSmsSender`` is a *development-only* stand-in that
writes messages to files and delivers nothing.
"""

from __future__ import annotations

from pactvault.errors import PactvaultError


class DeliveryError(PactvaultError):
    """A message could not be handed to the mail server or SMS gateway.

    The request that needed it failed; nothing was sent (or we cannot know that it was), so the
    caller should let the person retry rather than pretend the message is on its way.
    """

    slug = "delivery-failed"
    status = 502
    title = "Message delivery failed"
