"""Handled messages: one row per WeChat message (or event) whose handling had an effect.

The row's key is the message's identity (sender + MsgId; for events sender + CreateTime + event).
It is inserted in the same transaction as the action the message asks for, so a second delivery of
the message (WeChat's retry, a second web worker, a Redis that forgot or died) cannot do it again:
it finds the row and answers the reply the first delivery stored. Rows are purged after a day.
"""

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import String, Text, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime

KEY_LENGTH = 200
# How long a handled message is remembered; WeChat retries within 15 seconds.
KEEP = timedelta(days=1)


class HandledMessage(Base):
    __tablename__ = "handled_messages"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    reply: Mapped[str | None] = mapped_column(Text)  # None until the first delivery has answered
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def _stored_key(key: str) -> str:
    """The key as stored: a long one (an event key may be a long URL) is cut and made unique by a digest."""
    if len(key) <= KEY_LENGTH:
        return key
    return key[:KEY_LENGTH - 41] + ":" + hashlib.sha1(key.encode("utf-8")).hexdigest()


def claim_message(session: Session, key: str, now: datetime) -> tuple[bool, str]:
    """Insert the message's key into the session's transaction (no commit: the action's own commit
    commits it). Return (True, "") when this delivery is the first, so the action may run; else
    (False, the reply the first delivery stored, "" while it has none).

    On PostgreSQL a concurrent delivery of the same message waits on the key until the first one
    commits (then finds the row) or rolls back (then inserts it and runs the action itself).
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stored = _stored_key(key)
    stmt = dialect.insert(HandledMessage.__table__).values(key=stored, created_at=now).on_conflict_do_nothing()
    if session.execute(stmt).rowcount:
        return True, ""
    reply = session.scalar(select(HandledMessage.reply).where(HandledMessage.key == stored))
    session.rollback()  # end the read, keep nothing of this delivery
    return False, reply or ""


def store_reply(session: Session, key: str, reply: str) -> None:
    """Keep the first delivery's reply for the retries; commit (with the action, if it has not)."""
    session.execute(update(HandledMessage).where(HandledMessage.key == _stored_key(key))
                    .values(reply=reply).execution_options(synchronize_session=False))
    session.commit()


def store_refusal(session: Session, key: str, reply: str) -> None:
    """After a refused action was rolled back: if the key was committed all the same (the domain
    committed something before refusing, such as a failed bind's count), keep the refusal as its
    reply, so that a retry answers it and does not count again; commit."""
    changed = session.execute(
        update(HandledMessage).where(HandledMessage.key == _stored_key(key), HandledMessage.reply.is_(None))
        .values(reply=reply).execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        session.commit()
    else:
        session.rollback()


def purge_handled(session: Session, now: datetime, keep: timedelta = KEEP) -> int:
    """Forget the messages handled before `now - keep`; commit; return how many."""
    count = session.execute(delete(HandledMessage).where(HandledMessage.created_at < now - keep)
                            .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return count
