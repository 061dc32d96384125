"""Attendance reports."""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import clock
from models.activity.audience import expected_members
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


def period_attendance(session: Session, org: Organization, start, end) -> list[tuple[Activity, int, int]]:
    """The activities of the subtree starting in [start, end), each with (signed in, expected)."""
    activities = session.scalars(
        select(Activity).join(Organization, Activity.org_id == Organization.id)
        .where(Organization.path.startswith(org.path), Activity.cancelled.is_(False),
               Activity.starts_at >= start, Activity.starts_at < end)
        .order_by(Activity.starts_at, Activity.id)
    ).all()
    rows = []
    for activity in activities:
        report = attendance(session, activity)
        rows.append((activity, len(report.present), len(report.expected)))
    return rows
