"""Creating and changing activities, and finding one by number or by its page token."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity.audience import expected_members
from models.activity.tables import (
    AUDIENCES,
    KIND_ALIASES,
    KINDS,
    REGISTERED,
    VOLUNTEER,
    WAITING,
    Activity,
    Registration,
)
from models.base import DomainError, Forbidden, NotFound, now_utc
from models.member import Member
from models.org import Organization
from models.outbox import PENDING, OutboxMessage, enqueue_many
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


# Changes and cancellation ------------------------------------------------------------------------
MAX_REASON = 200


def reminder_source_pattern(activity_id: int) -> str:
    """The LIKE pattern of an activity's reminder rows in the outbox (models/reminders.py names them
    "activity:<id>:reminder:<hours>h")."""
    return f"activity:{activity_id}:reminder:%"


def withdraw_reminders(session: Session, activity: Activity) -> int:
    """Delete the activity's reminders still waiting in the outbox (in the caller's transaction);
    return how many. Only rows no sender has claimed yet: a conditional DELETE, so a reminder being
    sent at this moment is left to its sender, and one sent stays in the inbox as sent."""
    return session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.source.like(reminder_source_pattern(activity.id)), OutboxMessage.status == PENDING)
        .execution_options(synchronize_session=False)
    ).rowcount


def counting_on(session: Session, activity: Activity) -> list[int]:
    """Who counts on the activity taking place: with registration, the registered and the waiting;
    without, everyone it is for (the members its reminders go to)."""
    if activity.registration:
        return list(session.scalars(
            select(Registration.member_id)
            .where(Registration.activity_id == activity.id, Registration.status.in_((REGISTERED, WAITING)))
            .order_by(Registration.member_id)))
    return [m.id for m in expected_members(session, activity)]


def _tell(session: Session, activity: Activity, recipients: list[int], *, source: str, title: str,
          body: str) -> int:
    return enqueue_many(session, recipients, source=source, kind="activity", title=title, body=body,
                        data={"starts_at": activity.starts_at, "place": activity.place})


@dataclass(frozen=True)
class Cancelled:
    """What cancel_activity did: the activity, how many were told, how many reminders withdrawn."""

    activity: Activity
    told: int
    withdrawn: int


def cancel_activity(session: Session, activity: Activity, *, reason: str = "", by: Member | None = None,
                    now: datetime | None = None, settings: Settings = DEFAULTS) -> Activity:
    """Cancel an activity, in one transaction: everyone who counts on it (`counting_on`, but the
    canceller) is told through the outbox, with the reason if given, and its reminders not yet sent
    are withdrawn; commit. The cancellation is a conditional update: cancelled twice at once, it is
    cancelled and told once (a second attempt finds no activity)."""
    return cancel_activity_report(session, activity, reason=reason, by=by, now=now, settings=settings).activity


def cancel_activity_report(session: Session, activity: Activity, *, reason: str = "", by: Member | None = None,
                           now: datetime | None = None, settings: Settings = DEFAULTS) -> Cancelled:
    """cancel_activity, answering how many were told and how many reminders were withdrawn."""
    reason = clean_text(reason or "", "取消原因", MAX_REASON).strip()
    taken = session.execute(
        update(Activity).where(Activity.id == activity.id, Activity.cancelled.is_(False))
        .values(cancelled=True).execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        session.rollback()
        raise NotFound(f"没有编号为 #{activity.id} 的活动。")
    withdrawn = withdraw_reminders(session, activity)
    recipients = [m for m in counting_on(session, activity) if by is None or m != by.id]
    why = f"取消原因：{reason}。" if reason else ""
    when = clock.weekday_time(activity.starts_at, settings.tz)
    where = f"，{activity.place}" if activity.place else ""
    body = f"活动取消：{activity.number}「{activity.title}」（原定 {when}{where}）已取消，不必前往。{why}"
    told = _tell(session, activity, recipients, source=f"activity:{activity.id}:cancelled",
                 title=f"{activity.kind}取消", body=body)
    session.commit()
    session.refresh(activity)
    return Cancelled(activity, told, withdrawn)


@dataclass(frozen=True)
class ActivityChanges:
    """A secretary's edit of an activity: its title, place, start and end (None: unchanged)."""

    title: str | None = None
    place: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


def edit_activity(session: Session, activity: Activity, changes: ActivityChanges, *, by: Member | None = None,
                  now: datetime | None = None, settings: Settings = DEFAULTS) -> int:
    """Change an activity's title, place or times; commit; return how many were told. A new time or
    place is told to everyone who counts on it (but the editor); a new start withdraws the reminders
    not yet sent, so that they are queued again for the new time."""
    now = now or now_utc()
    title = activity.title if changes.title is None else clean_text(changes.title, "活动标题").strip()
    if not title or len(title) > 100:
        raise DomainError("请填写活动标题（100字以内）。", code="bad_title")
    place = activity.place if changes.place is None else clean_text(changes.place, "活动地点", MAX_PLACE).strip()
    starts_at = changes.starts_at or activity.starts_at
    ends_at = changes.ends_at or (starts_at + (activity.ends_at - activity.starts_at))
    moved = starts_at != activity.starts_at or ends_at != activity.ends_at
    if moved:
        _checked_times(NewActivity(kind=activity.kind, title=title, starts_at=starts_at, ends_at=ends_at), now,
                       settings)
    relocated = place != activity.place
    activity.title, activity.place = title, place
    told = 0
    if moved or relocated:
        if starts_at != activity.starts_at:
            withdraw_reminders(session, activity)
            activity.reminded = ""
        activity.starts_at, activity.ends_at = starts_at, ends_at
        recipients = [m for m in counting_on(session, activity) if by is None or m != by.id]
        where = f"，地点：{place}" if place else ""
        body = (f"活动变更：{activity.number}「{title}」改为 {clock.weekday_time(starts_at, settings.tz)} 开始"
                f"{where}。请按新的时间和地点参加。")
        told = _tell(session, activity, recipients, source=f"activity:{activity.id}:changed:{now:%Y%m%d%H%M%S%f}",
                     title=f"{activity.kind}变更", body=body)
    session.commit()
    return told

