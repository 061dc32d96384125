"""Attendance reports."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from config import DEFAULTS, Settings
from models import clock
from models.activity.audience import expected_counts, expected_members
from models.activity.leave import approved_member_ids
from models.activity.tables import Activity, CheckIn
from models.base import DomainError
from models.member import Member
from models.org import Organization


# Attendance --------------------------------------------------------------------------------------
@dataclass
class Attendance:
    """应到 (expected), 实到 (present), 请假 (on leave: approved, not signed in), 缺席 (absent), 迟到 (late)."""

    activity: Activity
    expected: list[Member]
    present: list[CheckIn]  # in sign-in order; may include people outside the expected list
    absent: list[Member]  # expected, not signed in, no approved leave
    on_leave: list[Member] = field(default_factory=list)
    late: set[int] = field(default_factory=set)  # members signed in after the start and LATE_GRACE_MINUTES

    @property
    def came(self) -> int:
        """实到: the expected who signed in."""
        expected = {m.id for m in self.expected}
        return sum(1 for c in self.present if c.member_id in expected)


def counts_signed_in_only(activity: Activity) -> bool:
    """An activity open to volunteers without registration expects those who came, not everyone in the
    community: its attendance counts against the signed in."""
    return activity.audience == "open" and not activity.registration


def attendance(session: Session, activity: Activity, settings: Settings = DEFAULTS) -> Attendance:
    """Who signed in, who was expected, who is on leave or absent, who came late: at most four
    statements, whatever the numbers.

    The expected members are read first; a sign-in's member and proxy are then in the session when
    expected, and all the others are read in one more statement, never one per row."""
    expected = [] if counts_signed_in_only(activity) else expected_members(session, activity)
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
    if counts_signed_in_only(activity):
        expected = [c.member for c in present]
    came = {c.member_id for c in present}
    excused = set(session.scalars(approved_member_ids(session, activity.id))) - came
    grace = activity.starts_at + timedelta(minutes=settings.late_grace_minutes)
    return Attendance(activity, expected, present,
                      [m for m in expected if m.id not in came and m.id not in excused],
                      [m for m in expected if m.id in excused],
                      {c.member_id for c in present if c.checked_in_at > grace})


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
    return [(a, present.get(a.id, 0), present.get(a.id, 0) if counts_signed_in_only(a) else expected[a.id])
            for a in activities]
