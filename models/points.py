"""The points ledger (积分): append-only; a balance is the sum of a member's entries."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, now_utc


class PointEntry(Base):
    __tablename__ = "point_entries"
    # A source (a wish, an activity, a manual award) credits a member once.
    __table_args__ = (UniqueConstraint("member_id", "source", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # wish, activity, manual
    source_id: Mapped[str] = mapped_column(String(64))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


def balance(session: Session, member_id: int) -> int:
    """Return the sum of a member's ledger entries."""
    total = session.scalar(select(func.sum(PointEntry.amount)).where(PointEntry.member_id == member_id))
    return int(total or 0)
