"""Where a user receives one-time codes: enrolling, confirming and removing email/SMS channels.

A channel is active only after a code sent to it came back, so nobody can route another
person's phone or mailbox into their account's sign-in. One row per user and channel; an active
channel must be removed (from a full session) before another number replaces it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pactvault.delivery.sms import normalise_phone
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError
from pactvault.identity.mfa.otp import CHANNELS
from pactvault.store.mfa_models import OtpChannel


def begin(
    session: Session, user_id: str, channel: str, destination: str, now: datetime
) -> OtpChannel:
    """A pending channel row (replacing a pending one of the same kind)."""
    if channel not in CHANNELS:
        raise InvalidInputError("the channel must be 'email' or 'sms'")
    if channel == "sms":
        destination = normalise_phone(destination)
    row = session.execute(
        select(OtpChannel)
        .where(OtpChannel.user_id == user_id, OtpChannel.channel == channel)
        .with_for_update()
    ).scalar_one_or_none()
    if row is not None and row.confirmed_at is not None:
        raise ConflictError(f"{channel} codes are already set up; remove them first")
    if row is None:
        row = OtpChannel(user_id=user_id, channel=channel, destination=destination, created_at=now)
        session.add(row)
    else:
        row.destination = destination
        row.created_at = now
    session.flush()
    return row


def pending(session: Session, user_id: str, channel_id: str) -> OtpChannel:
    row = session.get(OtpChannel, channel_id, with_for_update=True)
    if row is None or row.user_id != user_id or row.confirmed_at is not None:
        raise NotFoundError("pending channel not found")
    return row


def active(session: Session, user_id: str) -> dict[str, OtpChannel]:
    rows = session.execute(
        select(OtpChannel).where(
            OtpChannel.user_id == user_id, OtpChannel.confirmed_at.is_not(None)
        )
    ).scalars()
    return {row.channel: row for row in rows}


def remove(session: Session, user_id: str, channel_id: str) -> OtpChannel:
    row = session.get(OtpChannel, channel_id)
    if row is None or row.user_id != user_id:
        raise NotFoundError("channel not found")
    session.execute(delete(OtpChannel).where(OtpChannel.id == channel_id))
    return row
