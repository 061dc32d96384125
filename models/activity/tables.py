"""The activity tables (activities, registrations, sign-ins, code attempts, reminder choices) and their constants."""

import secrets
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, now_utc
from models.member import Member
from models.org import Organization

KINDS = ("主题党日", "支部党员大会", "支委会", "党小组会", "党课", "志愿服务", "其他")
VOLUNTEER = "志愿服务"
KIND_ALIASES = {"党日": "主题党日", "党员大会": "支部党员大会", "小组会": "党小组会", "志愿": "志愿服务",
                "志愿活动": "志愿服务"}
# Who an activity is for: the organization's own party members (and its 党小组), every party
# member of the subtree, or everyone of the community, volunteers included.
AUDIENCES = {"branch": "本支部党员", "subtree": "下属全体党员", "open": "党员和志愿者"}
REGISTERED, WAITING, CANCELLED = "registered", "waiting", "cancelled"
METHODS = {"qr": "扫码", "code": "签到码", "app": "小程序", "proxy": "代签"}
SCENE_PREFIX = "checkin:"

class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    audience: Mapped[str] = mapped_column(String(10), default="branch")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # upcoming lists: not yet over
    place: Mapped[str] = mapped_column(String(200), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    radius_m: Mapped[int | None] = mapped_column(Integer)
    registration: Mapped[bool] = mapped_column(Boolean, default=False)
    capacity: Mapped[int | None] = mapped_column(Integer)
    # Seats taken: changed only by conditional updates, so it never passes the capacity.
    registered_count: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    # The fixed sign-in code; with `rotating`, codes derived from `secret` and the minute instead.
    code: Mapped[str] = mapped_column(String(12), index=True)
    rotating: Mapped[bool] = mapped_column(Boolean, default=False)
    secret: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_hex(16))
    # The meeting-room page's address: unguessable, given only to the managers.
    token: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: secrets.token_urlsafe(24))
    # The WeChat QR code last made for this activity (created off the reply path).
    qr_scene: Mapped[str | None] = mapped_column(String(64))
    qr_url: Mapped[str | None] = mapped_column(String(300))
    # Reminder rounds already queued, e.g. "24,1".
    reminded: Mapped[str] = mapped_column(String(50), default="")
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    org: Mapped[Organization] = relationship()

    @property
    def is_volunteer(self) -> bool:
        return self.kind == VOLUNTEER

    @property
    def number(self) -> str:
        return f"#{self.id}"


class Registration(Base):
    __tablename__ = "activity_registrations"
    __table_args__ = (UniqueConstraint("activity_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)  # waiting-list order


class CheckIn(Base):
    """One member's attendance at one activity: the unique constraint makes a sign-in count once."""

    __tablename__ = "activity_checkins"
    __table_args__ = (UniqueConstraint("activity_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(10))  # qr, code, app, proxy
    # The audit trail of a proxy sign-in (代签): who recorded it.
    proxy_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    distance_m: Mapped[float | None] = mapped_column(Float)
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    service_minutes: Mapped[int | None] = mapped_column(Integer)

    member: Mapped[Member] = relationship(foreign_keys=[member_id])
    proxy_by: Mapped[Member | None] = relationship(foreign_keys=[proxy_by_id])


class CheckInAttempt(Base):
    """Codes one member tried for one activity (activity_id 0: typed codes that matched no activity).

    Every code is counted before it is checked (a conditional UPDATE); a right code resets the
    count; CHECKIN_MAX_FAILURES wrong ones lock the member out there for CHECKIN_LOCKOUT_SECONDS.
    """

    __tablename__ = "activity_checkin_attempts"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    # No foreign key: 0 stands for "no activity".
    activity_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


NO_ACTIVITY = 0  # the attempts bucket of typed codes that belong to no activity


class ReminderSetting(Base):
    """A member's choice about activity reminders (no row: reminders on)."""

    __tablename__ = "activity_reminder_settings"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

