"""Attendance reports."""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from models import clock
from models.activity.audience import expected_counts, expected_members
from models.activity.tables import Activity, CheckIn
from models.base import DomainError
from models.member import Member
from models.org import Organization


# Attendance --------------------------------------------------------------------------------------
@dataclass
class Attendance:
    activity: Activity
    expected: list[Member]
    present: list[CheckIn]  # in sign-in order; may include people outside the expected list
    absent: list[Member]


def attendance(session: Session, activity: Activity) -> Attendance:
    """Who signed in, who was expected, who is absent: at most three statements, whatever the numbers.

    The expected members are read first; a sign-in's member and proxy are then in the session when
    expected, and all the others are read in one more statement, never one per row."""
    expected = expected_members(session, activity)
    present = list(session.scalars(select(CheckIn).where(CheckIn.activity_id == activity.id)
                                   .order_by(CheckIn.checked_in_at, CheckIn.id)))
    people = {m.id: m for m in expected}
    wanted = {c.member_id for c in present} | {c.proxy_by_id for c in present if c.proxy_by_id is not None}
    missing = sorted(wanted - people.keys())  # signed in from outside the expected list, or proxies who are
    if missing:
        people |= {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(missing)))}
    for c in present:  # loaded, as a joinedload would have
        set_committed_value(c, "member", people.get(c.member_id))
        set_committed_value(c, "proxy_by", people.get(c.proxy_by_id) if c.proxy_by_id is not None else None)
    came = {c.member_id for c in present}
    return Attendance(activity, expected, present, [m for m in expected if m.id not in came])


def period_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which the local days `first` to `last` (inclusive) start and end."""
    if last < first:
        raise DomainError("结束日期不能早于开始日期。", code="bad_period")
    return clock.day_bounds(first, last, tz)


def period_attendance(session: Session, org: Organization, start, end) -> list[tuple[Activity, int, int]]:
    """The activities of the subtree starting in [start, end), each with (signed in, expected).

    Counted in SQL with grouped statements (the activities, their sign-ins, their audiences: at most
    six statements whatever the period), not an attendance per activity."""
    chosen = (Activity.org_id.in_(select(Organization.id).where(Organization.path.startswith(org.path))),
              Activity.cancelled.is_(False), Activity.starts_at >= start, Activity.starts_at < end)
    activities = session.scalars(
        select(Activity).where(*chosen).order_by(Activity.starts_at, Activity.id)
        .options(joinedload(Activity.org))
    ).all()
    if not activities:
        return []
    present = dict(session.execute(
        select(CheckIn.activity_id, func.count(CheckIn.id))
        .where(CheckIn.activity_id.in_(select(Activity.id).where(*chosen)))
        .group_by(CheckIn.activity_id)
    ).all())
    expected = expected_counts(session, activities)
    return [(a, present.get(a.id, 0), expected[a.id]) for a in activities]
