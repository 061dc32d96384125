"""Activities (组织生活, 志愿服务), registration, sign-in and sign-out.

Every operation is one transaction; the rules that could race (sign-in, a seat, a promotion from
the waiting list, the points of a sign-out) are conditional statements whose row count decides.
"""

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models import clock
from models.base import Base, DomainError, Forbidden, NotFound, Page, UTCDateTime, now_utc
from models.member import PARTY_KINDS, Member, WechatUser
from models.org import Organization, community_of
from models.points import PointEntry
from models.text import (
    MAX_CAPACITY,
    MAX_CODE,
    MAX_NAME,
    MAX_PLACE,
    MAX_POINTS,
    bad_character,
    check_int,
    clamp_page,
    clean_text,
    fits_id,
)

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
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
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


# Helpers ---------------------------------------------------------------------------------------
def insert_ignore(session: Session, table, **values) -> int:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL; return the rows inserted (0 or 1).

    No savepoint is needed, so it works alike on both databases under concurrency.
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing()
    return session.execute(stmt).rowcount


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Return the great-circle distance between two positions in metres (haversine)."""
    rlat1, rlat2 = math.radians(lat1), math.radians(lat2)
    dlat, dlng = rlat2 - rlat1, math.radians(lng2 - lng1)
    a = math.sin(dlat / 2) ** 2 + math.cos(rlat1) * math.cos(rlat2) * math.sin(dlng / 2) ** 2
    return 2 * 6371000 * math.asin(math.sqrt(a))


def minute_index(now: datetime) -> int:
    return int(now.timestamp() // 60)


def rotating_code(activity: Activity, minute: int) -> str:
    """Return the 6-digit code of `activity` for a given minute (HMAC of its secret)."""
    digest = hmac.new(activity.secret.encode(), f"{activity.id}:{minute}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


def current_code(activity: Activity, now: datetime) -> str:
    """Return the code in force at `now`."""
    return rotating_code(activity, minute_index(now)) if activity.rotating else activity.code


def code_is_valid(activity: Activity, code: str, now: datetime) -> bool:
    """Fixed code, or the rotating code of this minute or the one before."""
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (e.g. "١٢٣٤", which \d matches).
    given = code.encode()
    if not activity.rotating:
        return hmac.compare_digest(given, activity.code.encode())
    minute = minute_index(now)
    return any(hmac.compare_digest(given, rotating_code(activity, m).encode()) for m in (minute, minute - 1))


def scene_for(activity: Activity, now: datetime) -> str:
    """Return the QR scene string in force: "checkin:<id>:<code>" (at most 64 characters)."""
    return f"{SCENE_PREFIX}{activity.id}:{current_code(activity, now)}"


def manages(member: Member, org: Organization) -> bool:
    """Whether `member` is a secretary or administrator over `org`."""
    return member.is_manager and org.is_within(member.org)


def get_activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id) if fits_id(activity_id) else None
    if activity is None or activity.cancelled:
        raise NotFound(f"没有编号为 #{activity_id} 的活动。")
    return activity


def get_managed_activity(session: Session, activity_id: int, manager: Member) -> Activity:
    activity = get_activity(session, activity_id)
    if not manages(manager, activity.org):
        raise Forbidden(f"活动 #{activity_id} 不在您管理的组织范围内。")
    return activity


def activity_by_token(session: Session, token: str) -> Activity | None:
    if not token or len(token) > MAX_CODE or bad_character(token):
        return None
    return session.scalars(select(Activity).where(Activity.token == token, Activity.cancelled.is_(False))).first()


# Creation ----------------------------------------------------------------------------------------
def normalize_kind(raw: str) -> str:
    kind = KIND_ALIASES.get(raw, raw)
    if kind not in KINDS:
        raise DomainError(f"活动类型「{raw}」不认识。可用类型：{'、'.join(KINDS)}。", code="bad_kind")
    return kind


def _new_code(session: Session, now: datetime) -> str:
    # Unique among activities not yet over, so that 签到 <code> finds one activity.
    for _ in range(20):
        code = f"{secrets.randbelow(1_000_000):06d}"
        clash = session.scalar(select(Activity.id).where(Activity.code == code, Activity.ends_at >= now).limit(1))
        if clash is None:
            return code
    raise DomainError("暂时无法生成签到码，请稍后再试。")


def create_activity(
    session: Session,
    creator: Member | None,
    *,
    kind: str,
    title: str,
    starts_at: datetime,
    ends_at: datetime | None = None,
    place: str = "",
    org: Organization | None = None,
    audience: str | None = None,
    capacity: int | None = None,
    registration: bool | None = None,
    points: int | None = None,
    rotating: bool = False,
    latitude: float | None = None,
    longitude: float | None = None,
    radius_m: int | None = None,
    now: datetime | None = None,
    settings: Settings = DEFAULTS,
) -> Activity:
    """Create an activity of the creator's organization (or one below it); commit.

    Without a creator (a scheduled job, e.g. the monthly 主题党日 of the notices rules) `org` is required.
    """
    now = now or now_utc()
    if creator is None:
        if org is None:
            raise ValueError("an activity without a creator needs an organization")
    else:
        org = org or creator.org
        if not manages(creator, org):
            raise Forbidden("只有本组织的书记或管理员可以发布活动。")
    title = clean_text(title, "活动标题").strip()
    place = clean_text(place, "活动地点", MAX_PLACE)
    check_int(capacity, "名额", minimum=1, maximum=MAX_CAPACITY)
    check_int(points, "积分", maximum=MAX_POINTS)
    check_int(radius_m, "签到范围（米）", minimum=1, maximum=MAX_CAPACITY)
    kind = normalize_kind(clean_text(kind, "活动类型", 20))
    if not title or len(title) > 100:
        raise DomainError("请填写活动标题（100字以内）。", code="bad_title")
    if starts_at.tzinfo is None:
        raise ValueError("starts_at must be aware")
    if ends_at is None:
        ends_at = starts_at + timedelta(minutes=settings.activity_default_minutes)
    if ends_at <= starts_at:
        raise DomainError("结束时间必须晚于开始时间。", code="bad_time")
    if starts_at < now - timedelta(minutes=5):
        raise DomainError("开始时间已经过去，请检查日期和时间。", code="bad_time")
    if capacity is not None and capacity < 1:
        raise DomainError("名额必须大于0。", code="bad_capacity")
    audience = audience or ("open" if kind == VOLUNTEER else "branch")
    if audience not in AUDIENCES:
        raise DomainError("参加范围不对。", code="bad_audience")
    if points is None:
        points = settings.volunteer_default_points if kind == VOLUNTEER else 0
    if latitude is not None and radius_m is None:
        radius_m = settings.activity_default_radius
    activity = Activity(
        kind=kind, title=title, org_id=org.id, org=org, audience=audience, starts_at=starts_at,
        ends_at=ends_at, place=(place or "").strip()[:200], capacity=capacity,
        registration=bool(registration) or capacity is not None, points=max(0, points),
        code=_new_code(session, now), rotating=rotating, latitude=latitude, longitude=longitude,
        radius_m=radius_m, created_by_id=creator.id if creator else None, created_at=now,
    )
    session.add(activity)
    session.commit()
    return activity


def reschedule_activity(session: Session, activity: Activity, starts_at: datetime) -> Activity:
    """Move an activity to a new start, keeping its length (its sign-in window moves with it); commit."""
    length = activity.ends_at - activity.starts_at
    activity.starts_at, activity.ends_at = starts_at, starts_at + length
    session.commit()
    return activity


def set_venue(session: Session, activity: Activity, latitude: float, longitude: float,
              radius_m: int | None = None, settings: Settings = DEFAULTS) -> Activity:
    """Set the venue position that sign-ins are checked against; commit."""
    check_int(radius_m, "签到范围（米）", minimum=1, maximum=MAX_CAPACITY)
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise DomainError("位置坐标不对。", code="bad_position")
    activity.latitude, activity.longitude = latitude, longitude
    activity.radius_m = radius_m or settings.activity_default_radius
    session.commit()
    return activity


def set_rotating(session: Session, activity: Activity, on: bool) -> Activity:
    """Turn the rotating code (one per minute) on or off; commit."""
    activity.rotating = on
    session.commit()
    return activity


def cancel_activity(session: Session, activity: Activity) -> Activity:
    activity.cancelled = True
    session.commit()
    return activity


# Audience ----------------------------------------------------------------------------------------
def audience_filter(activity: Activity):
    """A WHERE clause on Member (joined with Organization) selecting the activity's audience."""
    org = activity.org
    active = Member.active.is_(True)
    if activity.audience == "open":
        root = community_of(org) if org.level > 2 else org
        return and_(active, Organization.path.startswith(root.path))
    party = Member.kind.in_(PARTY_KINDS)
    if activity.audience == "subtree":
        return and_(active, party, Organization.path.startswith(org.path))
    # The organization's own members and those of its 党小组 (groups one level below).
    return and_(active, party, or_(Member.org_id == org.id,
                                   and_(Organization.parent_id == org.id, Organization.level >= 4)))


def audience_query(activity: Activity):
    return select(Member).join(Organization, Member.org_id == Organization.id).where(audience_filter(activity))


def in_audience(session: Session, activity: Activity, member: Member) -> bool:
    stmt = audience_query(activity).where(Member.id == member.id).limit(1)
    return session.scalars(stmt).first() is not None


def _expected_query(activity: Activity):
    if activity.registration:
        return (select(Member).join(Registration, Registration.member_id == Member.id)
                .where(Registration.activity_id == activity.id, Registration.status == REGISTERED))
    return audience_query(activity)


def expected_count(session: Session, activity: Activity) -> int:
    return session.scalar(select(func.count()).select_from(_expected_query(activity).subquery())) or 0


def expected_members(session: Session, activity: Activity) -> list[Member]:
    """Who should come: the registered members when there is registration, else the audience."""
    return list(session.scalars(_expected_query(activity).order_by(Member.id)))


# Listing -----------------------------------------------------------------------------------------
def upcoming_for(session: Session, member: Member, now: datetime, limit: int = 10) -> list[Activity]:
    """Return activities not yet over that `member` may see, the soonest first (the chatbot's 活动)."""
    return activities_for(session, member, now, upcoming=True, page=1, per_page=limit).items


def checked_in_count(session: Session, activity_id: int) -> int:
    return session.scalar(select(func.count(CheckIn.id)).where(CheckIn.activity_id == activity_id)) or 0


def registration_of(session: Session, activity_id: int, member_id: int) -> Registration | None:
    return session.scalars(select(Registration).where(
        Registration.activity_id == activity_id, Registration.member_id == member_id)).first()


# Registration ------------------------------------------------------------------------------------
def register(session: Session, activity: Activity, member: Member, now: datetime) -> Registration:
    """Take a seat, or a place on the waiting list when the activity is full; commit."""
    if not activity.registration:
        raise DomainError(f"活动 {activity.number} 无需报名，届时直接签到即可。", code="no_registration")
    if activity.starts_at <= now:
        raise DomainError(f"活动 {activity.number} 已经开始，报名已截止。", code="closed")
    if not in_audience(session, activity, member):
        raise Forbidden(f"活动 {activity.number} 仅限{AUDIENCES[activity.audience]}参加。")
    existing = registration_of(session, activity.id, member.id)
    if existing is not None and existing.status != CANCELLED:
        raise DomainError(registration_text(session, activity, existing), code="already_registered")
    # A seat is a conditional increment: it never passes the capacity, however many ask at once.
    seated = session.execute(
        update(Activity)
        .where(Activity.id == activity.id,
               or_(Activity.capacity.is_(None), Activity.registered_count < Activity.capacity))
        .values(registered_count=Activity.registered_count + 1)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    status = REGISTERED if seated else WAITING
    added = insert_ignore(session, Registration.__table__, activity_id=activity.id, member_id=member.id,
                          status=status, queued_at=now)
    if not added:
        revived = session.execute(
            update(Registration)
            .where(Registration.activity_id == activity.id, Registration.member_id == member.id,
                   Registration.status == CANCELLED)
            .values(status=status, queued_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not revived:
            # The same member registered at the same moment from another request.
            session.rollback()
            raise DomainError("您已报名。", code="already_registered")
    session.commit()
    reg = registration_of(session, activity.id, member.id)
    session.refresh(reg)
    return reg


def cancel_registration(session: Session, activity: Activity, member: Member, now: datetime,
                        settings: Settings = DEFAULTS) -> Member | None:
    """Cancel a registration; a freed seat goes to the first on the waiting list, who is told
    through the outbox. Return the promoted member, if any; commit."""
    from models.outbox import enqueue

    if activity.starts_at <= now:
        raise DomainError(f"活动 {activity.number} 已经开始，无法取消报名。", code="closed")
    reg = registration_of(session, activity.id, member.id)
    if reg is None or reg.status == CANCELLED:
        raise DomainError(f"您没有报名活动 {activity.number}。", code="not_registered")
    was = reg.status
    changed = session.execute(
        update(Registration).where(Registration.id == reg.id, Registration.status == was)
        .values(status=CANCELLED).execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        session.rollback()
        raise DomainError("报名状态刚刚发生变化，请查看活动的最新情况。", code="registration_changed",
                          data={"number": activity.number})
    promoted = None
    if was == REGISTERED:
        # The seat passes to the first waiting member; a conditional update, so two cancellations
        # at once never promote the same person twice.
        waiting = session.scalars(
            select(Registration).where(Registration.activity_id == activity.id, Registration.status == WAITING)
            .order_by(Registration.queued_at, Registration.id)
        ).all()
        for candidate in waiting:
            won = session.execute(
                update(Registration).where(Registration.id == candidate.id, Registration.status == WAITING)
                .values(status=REGISTERED).execution_options(synchronize_session=False)
            ).rowcount
            if won:
                promoted = session.get(Member, candidate.member_id)
                break
        if promoted is None:
            session.execute(
                update(Activity).where(Activity.id == activity.id)
                .values(registered_count=Activity.registered_count - 1)
                .execution_options(synchronize_session=False)
            )
        else:
            enqueue(session, source=f"activity:{activity.id}:promoted:{promoted.id}:{now:%Y%m%d%H%M%S}",
                    kind="activity", member_id=promoted.id, openid=promoted.openid, title="候补转正",
                    body=f"您候补的活动 {activity.number}「{activity.title}」有了空位，已为您转为正式报名。"
                         f"时间：{clock.day_time(activity.starts_at, settings.tz)}。")
    session.commit()
    session.expire_all()
    return promoted


def registration_text(session: Session, activity: Activity, reg: Registration) -> str:
    """Where a member stands: registered, or how many are ahead on the waiting list."""
    if reg.status == REGISTERED:
        return f"您已报名活动 {activity.number}。"
    ahead = session.scalar(select(func.count(Registration.id)).where(
        Registration.activity_id == activity.id, Registration.status == WAITING,
        or_(Registration.queued_at < reg.queued_at,
            and_(Registration.queued_at == reg.queued_at, Registration.id < reg.id)))) or 0
    return f"您在活动 {activity.number} 的候补名单上，前面还有 {ahead} 人。"


# Sign-in -----------------------------------------------------------------------------------------
@dataclass
class CheckInResult:
    checkin: CheckIn
    created: bool  # False: the member had signed in before
    activity: Activity
    count: int  # members signed in so far


def check_in(
    session: Session,
    activity: Activity,
    member: Member,
    *,
    now: datetime,
    method: str,
    code: str | None = None,
    position: tuple[float, float] | None = None,
    proxy_by: Member | None = None,
    settings: Settings = DEFAULTS,
) -> CheckInResult:
    """Sign `member` in to `activity` — the one function behind QR scans, typed codes, the
    mini-program and proxy sign-in (代签). Enforces the window, the audience, the code and the
    venue radius; a repeat answers with the first sign-in. Commits."""
    if method not in METHODS:
        raise ValueError(f"unknown sign-in method {method!r}")
    if activity.cancelled:
        raise DomainError(f"活动 {activity.number} 已取消。", code="cancelled")
    earlier = _existing_checkin(session, activity.id, member.id)
    if earlier is not None:
        raise _already(earlier, settings)
    opens = activity.starts_at - timedelta(minutes=settings.checkin_opens_minutes)
    if now < opens:
        raise DomainError(f"活动 {activity.number}「{activity.title}」尚未开始签到，签到时间为"
                          f"{clock.day_time(opens, settings.tz)}起。", code="too_early")
    if now > activity.ends_at:
        raise DomainError(f"活动 {activity.number}「{activity.title}」已结束，签到已关闭。", code="too_late")
    if method == "proxy":
        if proxy_by is None or not manages(proxy_by, activity.org):
            raise Forbidden("只有本组织的书记或管理员可以代签。")
    else:
        # Counted before it is checked: however many codes arrive at once, at most
        # CHECKIN_MAX_FAILURES per lock-out are ever compared.
        reserve_attempt(session, member.id, activity.id, now, settings)
        if code is None or not code_is_valid(activity, code, now):
            raise DomainError("签到码无效或已过期，请扫描现场二维码或输入现场显示的最新签到码。",
                              code="bad_code")
        release_attempts(session, member.id, activity.id)
    if not in_audience(session, activity, member):
        raise Forbidden(f"活动 {activity.number} 仅限{AUDIENCES[activity.audience]}签到。")
    if activity.registration and not _is_registered(session, activity.id, member.id) and method != "proxy":
        raise Forbidden(f"活动 {activity.number} 需报名参加，您尚未报名或仍在候补名单上。")
    distance = None
    if activity.latitude is not None and activity.longitude is not None and method != "proxy":
        position = position or _last_position(session, member, now, settings)
        if position is None and settings.checkin_require_position:
            raise DomainError("本活动需要核对位置才能签到：请在公众号右上角允许「提供位置信息」，"
                              "重新进入公众号后再签到。", code="no_position")
        if position is not None:
            distance = distance_m(activity.latitude, activity.longitude, *position)
            radius = activity.radius_m or settings.activity_default_radius
            if distance > radius:
                raise DomainError(f"您距离活动地点约 {_metres(distance)}，超出签到范围（{radius}米），"
                                  "请到达现场后再签到。", code="too_far")
    # The unique (activity, member) constraint decides: of any number of simultaneous sign-ins,
    # exactly one inserts; the others find it.
    inserted = insert_ignore(
        session, CheckIn.__table__, activity_id=activity.id, member_id=member.id, checked_in_at=now,
        method=method, proxy_by_id=proxy_by.id if proxy_by is not None and method == "proxy" else None,
        distance_m=distance,
    )
    session.commit()
    checkin = _existing_checkin(session, activity.id, member.id)
    if not inserted:
        # The same member signed in from another request a moment ago (two taps, a scan and a code).
        raise _already(checkin, settings)
    return CheckInResult(checkin, True, activity, checked_in_count(session, activity.id))


def _existing_checkin(session: Session, activity_id: int, member_id: int) -> CheckIn | None:
    return session.scalars(select(CheckIn).where(
        CheckIn.activity_id == activity_id, CheckIn.member_id == member_id)).first()


def _already(checkin: CheckIn, settings) -> DomainError:
    return DomainError(f"您已签到（{clock.day_time(checkin.checked_in_at, settings.tz)}），无需重复签到。",
                       code="already_checked_in", status=409)


def _is_registered(session: Session, activity_id: int, member_id: int) -> bool:
    reg = registration_of(session, activity_id, member_id)
    return reg is not None and reg.status == REGISTERED


def _last_position(session, member, now, settings) -> tuple[float, float] | None:
    if not member.openid:
        return None
    user = session.get(WechatUser, member.openid)
    if user is None or user.latitude is None or user.located_at is None:
        return None
    if (now - user.located_at).total_seconds() > settings.checkin_location_max_age:
        return None
    return user.latitude, user.longitude


def _metres(distance: float) -> str:
    return f"{distance / 1000:.1f}公里" if distance >= 1000 else f"{round(distance)}米"


def reserve_attempt(session: Session, member_id: int, activity_id: int, now: datetime,
                    settings: Settings = DEFAULTS) -> None:
    """Count one sign-in code of `member_id` for `activity_id` before it is checked; commit.

    Raise DomainError (locked, 429) when the member has no try left there. The conditional UPDATE
    decides: concurrent codes queue on the row (or SQLite's lock) and each sees the others' count.
    """
    limit = settings.checkin_max_failures
    lockout = timedelta(seconds=settings.checkin_lockout_seconds)
    insert_ignore(session, CheckInAttempt.__table__, member_id=member_id, activity_id=activity_id, failures=0)
    key = (CheckInAttempt.member_id == member_id, CheckInAttempt.activity_id == activity_id)
    session.execute(update(CheckInAttempt).where(*key, CheckInAttempt.locked_until <= now)
                    .values(failures=0, locked_until=None))
    reserved = session.execute(
        update(CheckInAttempt)
        .where(*key, CheckInAttempt.failures < limit,
               or_(CheckInAttempt.locked_until.is_(None), CheckInAttempt.locked_until <= now))
        .values(failures=CheckInAttempt.failures + 1,
                locked_until=case((CheckInAttempt.failures + 1 >= limit, now + lockout), else_=None))
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if reserved != 1:
        until = session.scalar(select(CheckInAttempt.locked_until).where(*key))
        minutes = max(1, math.ceil(((until or now + lockout) - now).total_seconds() / 60))
        raise DomainError(f"签到码错误次数过多，请{minutes}分钟后再试，或请书记代签。", code="locked",
                          status=429)


def release_attempts(session: Session, member_id: int, activity_id: int) -> None:
    """A right code: the member's count there starts again; commit."""
    session.execute(update(CheckInAttempt)
                    .where(CheckInAttempt.member_id == member_id, CheckInAttempt.activity_id == activity_id,
                           CheckInAttempt.failures > 0)
                    .values(failures=0, locked_until=None))
    session.commit()


def find_by_code(session: Session, code: str, now: datetime, settings: Settings = DEFAULTS,
                 member: Member | None = None) -> Activity:
    """Return the activity a typed code belongs to: a rotating code in force, else a fixed code.

    With `member`, the code is counted against them first (the "no activity" bucket), so typing
    codes at random is limited like wrong codes for one activity."""
    code = code.strip()
    if not re.fullmatch(r"\d{4,8}", code):
        raise DomainError("签到码是数字，请输入现场显示的签到码，例如：签到 123456", code="bad_code")
    if member is not None:
        reserve_attempt(session, member.id, NO_ACTIVITY, now, settings)
    activity = _activity_for_code(session, code, now, settings)
    if member is not None:
        release_attempts(session, member.id, NO_ACTIVITY)
    return activity


def _activity_for_code(session: Session, code: str, now: datetime, settings: Settings) -> Activity:
    opens = timedelta(minutes=settings.checkin_opens_minutes)
    live = session.scalars(select(Activity).where(
        Activity.rotating.is_(True), Activity.cancelled.is_(False),
        Activity.starts_at <= now + opens, Activity.ends_at >= now)).all()
    for activity in live:
        if code_is_valid(activity, code, now):
            return activity
    fixed = session.scalars(
        select(Activity).where(Activity.code == code, Activity.rotating.is_(False), Activity.cancelled.is_(False))
        .order_by((Activity.ends_at >= now).desc(), Activity.starts_at)
    ).first()
    if fixed is None:
        raise DomainError("签到码无效或已过期，请扫描现场二维码或输入现场显示的最新签到码。", code="bad_code")
    return fixed


def check_in_by_code(session: Session, member: Member, code: str, *, now: datetime, method: str = "code",
                     activity_id: int | None = None, position: tuple[float, float] | None = None,
                     settings: Settings = DEFAULTS) -> CheckInResult:
    """Sign in with a typed code (the chatbot) or, with `activity_id`, from the mini-program."""
    code = clean_text(code, "签到码", MAX_CODE)
    if activity_id is not None:
        activity = get_activity(session, activity_id)
    else:
        activity = find_by_code(session, code, now, settings, member=member)
    return check_in(session, activity, member, now=now, method=method, code=code.strip(),
                    position=position, settings=settings)


def check_in_by_scene(session: Session, member: Member, scene: str, *, now: datetime,
                      settings: Settings = DEFAULTS) -> CheckInResult:
    """Sign in from a scanned QR code whose scene (after "checkin:") is "<activity id>:<code>"."""
    found = re.fullmatch(r"(\d+):(\d+)", scene or "")
    if found is None:
        raise DomainError("该签到二维码无法识别，请重新扫描现场二维码。", code="bad_scene")
    activity = get_activity(session, int(found[1]))
    return check_in(session, activity, member, now=now, method="qr", code=found[2], settings=settings)


def proxy_check_in(session: Session, activity: Activity, secretary: Member, name: str, *, now: datetime,
                   settings: Settings = DEFAULTS) -> CheckInResult:
    """代签: the secretary signs in an audience member by name; recorded as a proxy sign-in."""
    if not manages(secretary, activity.org):
        raise Forbidden("只有本组织的书记或管理员可以代签。")
    name = clean_text(name, "姓名", MAX_NAME)
    matches = [m for m in session.scalars(audience_query(activity).where(Member.name == name.strip()))]
    if not matches:
        raise NotFound(f"活动 {activity.number} 的参加范围内没有名为「{name}」的成员。")
    if len(matches) > 1:
        raise DomainError(f"参加范围内有 {len(matches)} 位名为「{name}」的成员，请在后台按手机号代签。",
                          code="ambiguous")
    return check_in(session, activity, matches[0], now=now, method="proxy", proxy_by=secretary,
                    settings=settings)


# Sign-out ----------------------------------------------------------------------------------------
def check_out(session: Session, activity: Activity, member: Member, *, now: datetime,
              settings: Settings = DEFAULTS) -> CheckIn:
    """签退 of a volunteer service: record the service time, capped by the activity's own span,
    and credit the activity's points once. Commits."""
    if not activity.is_volunteer:
        raise DomainError(f"活动 {activity.number} 不是志愿服务，无需签退。", code="not_volunteer")
    checkin = _existing_checkin(session, activity.id, member.id)
    if checkin is None:
        raise DomainError(f"您还没有签到活动 {activity.number}，请先签到。", code="not_checked_in")
    if checkin.checked_out_at is not None:
        raise DomainError(f"您已于 {clock.day_time(checkin.checked_out_at, settings.tz)} 签退，"
                          f"服务时长 {hours_text(checkin.service_minutes)}。", code="already_checked_out")
    grace = timedelta(minutes=settings.checkout_grace_minutes)
    if now > activity.ends_at + grace:
        raise DomainError(f"活动 {activity.number} 已结束较久，无法签退，请联系书记补录。", code="too_late")
    start = max(checkin.checked_in_at, activity.starts_at)
    end = min(now, activity.ends_at)
    minutes = max(0, int((end - start).total_seconds() // 60))
    done = session.execute(
        update(CheckIn).where(CheckIn.id == checkin.id, CheckIn.checked_out_at.is_(None))
        .values(checked_out_at=now, service_minutes=minutes).execution_options(synchronize_session=False)
    ).rowcount
    if done and activity.points > 0:
        insert_ignore(session, PointEntry.__table__, member_id=member.id, amount=activity.points,
                      reason=f"志愿服务 {activity.number} {activity.title}"[:200], source="activity",
                      source_id=str(activity.id), created_at=now)
    session.commit()
    session.refresh(checkin)
    if not done:
        raise DomainError(f"您已签退，服务时长 {hours_text(checkin.service_minutes)}。", code="already_checked_out")
    return checkin


def hours_text(minutes: int | None) -> str:
    """Format a service time: 2小时5分钟, or 45分钟."""
    minutes = minutes or 0
    return f"{minutes // 60}小时{minutes % 60}分钟" if minutes >= 60 else f"{minutes}分钟"


# Attendance --------------------------------------------------------------------------------------
@dataclass
class Attendance:
    activity: Activity
    expected: list[Member]
    present: list[CheckIn]  # in sign-in order; may include people outside the expected list
    absent: list[Member]


def attendance(session: Session, activity: Activity) -> Attendance:
    """Who signed in, who was expected, who is absent."""
    present = list(session.scalars(select(CheckIn).where(CheckIn.activity_id == activity.id)
                                   .order_by(CheckIn.checked_in_at, CheckIn.id)))
    came = {c.member_id for c in present}
    expected = expected_members(session, activity)
    return Attendance(activity, expected, present, [m for m in expected if m.id not in came])


def period_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which the local days `first` to `last` (inclusive) start and end."""
    if last < first:
        raise DomainError("结束日期不能早于开始日期。", code="bad_period")
    return clock.day_bounds(first, last, tz)


def remember_qr(session: Session, activity: Activity, scene: str, url: str) -> None:
    """Keep the WeChat QR code made for a scene, so that every screen shows the same one; commit."""
    activity.qr_scene, activity.qr_url = scene, url
    session.commit()


def qr_expire_seconds(activity: Activity, now: datetime) -> int:
    """How long a temporary QR code should live: until the end of sign-in, at most WeChat's 30 days;
    a rotating code's QR only a few minutes (it is replaced every minute anyway)."""
    if activity.rotating:
        return 300
    return max(60, min(30 * 86400, int((activity.ends_at - now).total_seconds()) + 600))


# Views for the mini-program ----------------------------------------------------------------------
def may_see(session: Session, activity: Activity, member: Member) -> bool:
    """Whether `member` may see `activity`: its managers and its audience."""
    return manages(member, activity.org) or in_audience(session, activity, member)


def activities_for(session: Session, member: Member, now: datetime, *, upcoming: bool = True, page: int = 1,
                   per_page: int = 20) -> Page:
    """The activities `member` may see (upcoming: not yet over, soonest first; else all, latest first), paged."""
    community = community_of(member.org)
    stmt = (select(Activity).join(Organization, Activity.org_id == Organization.id)
            .where(Activity.cancelled.is_(False)))
    # Audiences never reach past a community, so only the member's community and the nodes above
    # it (which a manager there may run) can hold the member's activities.
    ancestors = [community.path[:i + 1] for i, char in enumerate(community.path) if char == "/" and i > 0]
    stmt = stmt.where(or_(Organization.path.startswith(community.path), Organization.path.in_(ancestors),
                          Organization.path.startswith(member.org.path)))
    if upcoming:
        stmt = stmt.where(Activity.ends_at >= now).order_by(Activity.starts_at, Activity.id)
    else:
        stmt = stmt.order_by(Activity.starts_at.desc(), Activity.id.desc())
    visible = [a for a in session.scalars(stmt) if may_see(session, a, member)]
    page = clamp_page(page)
    start = (page - 1) * per_page
    return Page(visible[start:start + per_page], len(visible), page, per_page)


def get_visible_activity(session: Session, activity_id: int, member: Member) -> Activity:
    activity = get_activity(session, activity_id)
    if not may_see(session, activity, member):
        raise Forbidden(f"活动 {activity.number} 不在您的参加范围内。")
    return activity


@dataclass
class ActivityStatus:
    """One activity as one member sees it."""

    activity: Activity
    manager: bool  # the member manages it: sees the sign-in code and the page
    registration: str | None  # registered, waiting or None
    waiting_ahead: int | None
    checkin: CheckIn | None
    count: int  # members signed in so far


def activity_status(session: Session, activity_id: int, member: Member) -> ActivityStatus:
    """Return an activity `member` may see, with their registration and sign-in."""
    activity = get_visible_activity(session, activity_id, member)
    reg = registration_of(session, activity.id, member.id)
    status = reg.status if reg is not None and reg.status != CANCELLED else None
    ahead = None
    if status == WAITING:
        ahead = session.scalar(select(func.count(Registration.id)).where(
            Registration.activity_id == activity.id, Registration.status == WAITING,
            or_(Registration.queued_at < reg.queued_at,
                and_(Registration.queued_at == reg.queued_at, Registration.id < reg.id)))) or 0
    return ActivityStatus(activity, manages(member, activity.org), status, ahead,
                          _existing_checkin(session, activity.id, member.id), checked_in_count(session, activity.id))


def proxy_check_in_member(session: Session, activity: Activity, secretary: Member, member_id: int, *,
                          now: datetime, settings: Settings = DEFAULTS) -> CheckInResult:
    """代签 of one audience member chosen by id (the back office), recorded as a proxy sign-in."""
    if not manages(secretary, activity.org):
        raise Forbidden("只有本组织的书记或管理员可以代签。")
    member = session.scalars(audience_query(activity).where(Member.id == member_id)).first()
    if member is None:
        raise NotFound(f"活动 {activity.number} 的参加范围内没有该成员。")
    return check_in(session, activity, member, now=now, method="proxy", proxy_by=secretary, settings=settings)
