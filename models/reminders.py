"""Activity reminders through the outbox: 24 hours and 1 hour before the start (settings), once each."""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import clock
from models.activity import (
    REGISTERED,
    Activity,
    Registration,
    ReminderSetting,
    approved_member_ids,
    expected_members,
    seen_by_clause,
    upcoming_for,
)
from models.base import insert_ignore
from models.member import Member
from models.org import Organization
from models.orglife import OrgLifeOccurrence
from models.outbox import enqueue


def reminder_leads(settings: Settings) -> list[float]:
    """The reminder rounds in hours, largest first, from the ACTIVITY_REMINDER_HOURS setting."""
    raw = settings.activity_reminder_hours
    return sorted({float(x) for x in raw.replace("，", ",").split(",") if x.strip()}, reverse=True)


def _label(hours: float) -> str:
    return f"{hours:g}"


def reminders_enabled(session: Session, member_id: int) -> bool:
    row = session.get(ReminderSetting, member_id)
    return row is None or row.enabled


def set_reminders(session: Session, member: Member, enabled: bool, now: datetime) -> None:
    """Turn activity reminders on or off for a member; commit."""
    insert_ignore(session, ReminderSetting.__table__, member_id=member.id, enabled=enabled, updated_at=now)
    row = session.get(ReminderSetting, member.id)
    session.refresh(row)
    row.enabled, row.updated_at = enabled, now
    session.commit()


def queue_activity_reminders(session: Session, now: datetime, settings: Settings = DEFAULTS) -> int:
    """Queue the reminders due at `now`; return how many outbox rows were added. Commits.

    Each round of each activity is queued once (the outbox is unique per source and recipient, and
    the round is marked on the activity); a round whose time passed before the job ran is folded
    into the nearest round still due, so nobody gets two reminders at once.
    """
    leads = reminder_leads(settings)
    if not leads:
        return 0
    horizon = now + timedelta(hours=leads[0])
    due = session.scalars(
        select(Activity).where(
            Activity.cancelled.is_(False), Activity.starts_at > now, Activity.starts_at <= horizon,
            # Monthly org-life occasions have their own notice and reminder (models.orglife).
            Activity.id.not_in(select(OrgLifeOccurrence.activity_id).where(OrgLifeOccurrence.activity_id.is_not(None))),
        ).order_by(Activity.starts_at)
    ).all()
    muted = set(session.scalars(select(ReminderSetting.member_id).where(ReminderSetting.enabled.is_(False))))
    queued = 0
    for activity in due:
        done = set(filter(None, activity.reminded.split(",")))
        rounds = [h for h in leads if activity.starts_at - timedelta(hours=h) <= now and _label(h) not in done]
        if not rounds:
            continue
        lead = min(rounds)  # the latest round due stands for the earlier ones missed
        source = f"activity:{activity.id}:reminder:{_label(lead)}h"
        place = f"，地点：{activity.place}" if activity.place else ""
        starts = clock.day_time(activity.starts_at, settings.tz)
        body = (f"活动提醒：{activity.number}「{activity.title}」将于 {starts} 开始"
                f"{place}。请准时参加，现场扫码或发送「签到 签到码」签到。")
        on_leave = set(session.scalars(approved_member_ids(session, activity.id)))
        for member in expected_members(session, activity):
            if member.id in muted or member.id in on_leave:
                continue
            if enqueue(session, source=source, kind="reminder", title=f"{activity.kind}提醒", body=body,
                       member_id=member.id, openid=member.openid,
                       data={"starts_at": activity.starts_at, "place": activity.place}):
                queued += 1
        activity.reminded = ",".join(sorted(done | {_label(h) for h in rounds}))
        session.commit()
    return queued


def upcoming_reminders(session: Session, member: Member, now: datetime, settings: Settings = DEFAULTS,
                       days: int = 7) -> tuple[bool, list[tuple[Activity, list[datetime]]]]:
    """Whether the member's reminders are on, and the coming activities with their reminder times.

    A constant number of statements: the member's registrations and audiences among the listed
    activities are each read in one statement, not one per activity."""
    enabled = reminders_enabled(session, member.id)
    coming = [a for a in upcoming_for(session, member, now, limit=20)
              if now < a.starts_at <= now + timedelta(days=days)]
    registered = [a.id for a in coming if a.registration]
    open_ = [a.id for a in coming if not a.registration]
    reminded = set()
    if registered:
        reminded |= set(session.scalars(
            select(Registration.activity_id).where(Registration.activity_id.in_(registered),
                                                   Registration.member_id == member.id,
                                                   Registration.status == REGISTERED)))
    if open_:  # the listing also holds the activities the member manages without being invited
        reminded |= set(session.scalars(
            select(Activity.id).join(Organization, Activity.org_id == Organization.id)
            .where(Activity.id.in_(open_), seen_by_clause(member))))
    rows = []
    for activity in coming:
        if activity.id not in reminded:
            continue
        times = [activity.starts_at - timedelta(hours=h) for h in reminder_leads(settings)]
        rows.append((activity, [t for t in times if t > now]))
    return enabled, rows
