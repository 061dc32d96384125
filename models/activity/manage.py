"""Creating and changing activities, and finding one by number or by its page token."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz
from models.activity.tables import AUDIENCES, KIND_ALIASES, KINDS, VOLUNTEER, Activity
from models.base import DomainError, Forbidden, NotFound, now_utc
from models.member import Member
from models.org import Organization
from models.text import MAX_CAPACITY, MAX_CODE, MAX_PLACE, MAX_POINTS, bad_character, check_int, clean_text, fits_id


def get_activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id) if fits_id(activity_id) else None
    if activity is None or activity.cancelled:
        raise NotFound(f"没有编号为 #{activity_id} 的活动。")
    return activity


def get_managed_activity(session: Session, activity_id: int, manager: Member) -> Activity:
    activity = get_activity(session, activity_id)
    if not authz.can(manager, authz.MANAGE_ACTIVITY, activity.org):
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


@dataclass(frozen=True)
class NewActivity:
    """What a secretary (or a scheduled job) asks for when publishing an activity.

    `org` None: the creator's own organization. `audience`, `points`, `ends_at`, `radius_m` None:
    the kind's default (from the settings). A capacity implies registration.
    """

    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime | None = None
    place: str = ""
    org: Organization | None = None
    audience: str | None = None
    capacity: int | None = None
    registration: bool | None = None
    points: int | None = None
    rotating: bool = False
    latitude: float | None = None
    longitude: float | None = None
    radius_m: int | None = None


def create_activity(session: Session, creator: Member | None, new: NewActivity, *, now: datetime | None = None,
                    settings: Settings = DEFAULTS) -> Activity:
    """Create an activity of the creator's organization (or one below it); commit.

    Without a creator (a scheduled job, e.g. the monthly 主题党日 of the notices rules) `new.org` is required.
    """
    now = now or now_utc()
    org = _publishing_org(creator, new.org)
    title = clean_text(new.title, "活动标题").strip()
    place = clean_text(new.place, "活动地点", MAX_PLACE)
    check_int(new.capacity, "名额", minimum=1, maximum=MAX_CAPACITY)
    check_int(new.points, "积分", maximum=MAX_POINTS)
    check_int(new.radius_m, "签到范围（米）", minimum=1, maximum=MAX_CAPACITY)
    kind = normalize_kind(clean_text(new.kind, "活动类型", 20))
    if not title or len(title) > 100:
        raise DomainError("请填写活动标题（100字以内）。", code="bad_title")
    ends_at = _checked_times(new, now, settings)
    if new.capacity is not None and new.capacity < 1:
        raise DomainError("名额必须大于0。", code="bad_capacity")
    audience = new.audience or ("open" if kind == VOLUNTEER else "branch")
    if audience not in AUDIENCES:
        raise DomainError("参加范围不对。", code="bad_audience")
    points = new.points
    if points is None:
        points = settings.volunteer_default_points if kind == VOLUNTEER else 0
    radius_m = new.radius_m
    if new.latitude is not None and radius_m is None:
        radius_m = settings.activity_default_radius
    activity = Activity(
        kind=kind, title=title, org_id=org.id, org=org, audience=audience, starts_at=new.starts_at,
        ends_at=ends_at, place=(place or "").strip()[:200], capacity=new.capacity,
        registration=bool(new.registration) or new.capacity is not None, points=max(0, points),
        code=_new_code(session, now), rotating=new.rotating, latitude=new.latitude, longitude=new.longitude,
        radius_m=radius_m, created_by_id=creator.id if creator else None, created_at=now,
    )
    session.add(activity)
    session.commit()
    return activity


def _publishing_org(creator: Member | None, org: Organization | None) -> Organization:
    """The organization an activity is published for, if the creator may publish there."""
    if creator is None:
        if org is None:
            raise ValueError("an activity without a creator needs an organization")
        return org
    org = org or creator.org
    if not authz.can(creator, authz.MANAGE_ACTIVITY, org):
        raise Forbidden("只有本组织的书记或管理员可以发布活动。")
    return org


def _checked_times(new: NewActivity, now: datetime, settings: Settings) -> datetime:
    """Check the start and the end of a new activity; return the end (the default length if none)."""
    if new.starts_at.tzinfo is None:
        raise ValueError("starts_at must be aware")
    ends_at = new.ends_at
    if ends_at is None:
        ends_at = new.starts_at + timedelta(minutes=settings.activity_default_minutes)
    if ends_at <= new.starts_at:
        raise DomainError("结束时间必须晚于开始时间。", code="bad_time")
    if new.starts_at < now - timedelta(minutes=5):
        raise DomainError("开始时间已经过去，请检查日期和时间。", code="bad_time")
    return ends_at


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

