"""The transactional outbox: every message to a person is a row written with the action behind it.

The scheduler's sender (scheduler/) is the only code that drains it through WeChat's API.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, now_utc

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    # A source (a notice, a late reply, a reminder …) reaches one recipient once.
    __table_args__ = (UniqueConstraint("source", "recipient"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    # "m<member id>" for a member, "o<openid>" for a follower not bound to one.
    recipient: Mapped[str] = mapped_column(String(80))
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # reply, notice, reminder, greeting, wish, activity
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def enqueue(
    session: Session,
    *,
    source: str,
    kind: str,
    body: str,
    title: str = "",
    member_id: int | None = None,
    openid: str | None = None,
    urgent: bool = False,
) -> bool:
    """Add a message for a member (or a bare follower's openid) to the outbox, in the caller's
    transaction; return False if that source already queued it for that recipient."""
    if member_id is None and not openid:
        raise ValueError("a message needs a member or an openid")
    recipient = f"m{member_id}" if member_id is not None else f"o{openid}"
    try:
        with session.begin_nested():
            session.add(
                OutboxMessage(
                    source=source, recipient=recipient, openid=openid, body=body, kind=kind,
                    title=title, member_id=member_id, urgent=urgent,
                )
            )
    except IntegrityError:
        return False
    return True
