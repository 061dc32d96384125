"""What a member sees: the listing of activities, one activity with their standing."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from models import authz
from models.activity.audience import in_audience, seen_by_clause
from models.activity.checkin import checked_in_count, existing_checkin
from models.activity.manage import get_activity
from models.activity.registration import registration_of, waiting_ahead
from models.activity.tables import CANCELLED, WAITING, Activity, CheckIn
from models.base import Forbidden, Page
from models.member import Member
from models.org import Organization
from models.text import clamp_page


def upcoming_for(session: Session, member: Member, now: datetime, limit: int = 10) -> list[Activity]:
    """Return activities not yet over that `member` may see, the soonest first (the chatbot's 活动)."""
    return activities_for(session, member, now, upcoming=True, page=1, per_page=limit).items



# Listing and one activity as a member sees it -----------------------------------------------------
def may_see(session: Session, activity: Activity, member: Member) -> bool:
    """Whether `member` may see `activity`: its managers and its audience."""
    return authz.can(member, authz.MANAGE_ACTIVITY, activity.org) or in_audience(session, activity, member)


def activities_for(session: Session, member: Member, now: datetime, *, upcoming: bool = True, page: int = 1,
                   per_page: int = 20) -> Page:
    """The activities `member` may see (upcoming: not yet over, soonest first; else all, latest first), paged.

    One query for the page and one for the count: who may see an activity (`may_see`: its managers and
    its audience) is a WHERE clause."""
    stmt = (select(Activity).join(Organization, Activity.org_id == Organization.id)
            .where(Activity.cancelled.is_(False),
                   or_(authz.activity_manager_clause(member), seen_by_clause(member))))
    if upcoming:
        stmt = stmt.where(Activity.ends_at >= now)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    if upcoming:
        stmt = stmt.order_by(Activity.starts_at, Activity.id)
    else:
        stmt = stmt.order_by(Activity.starts_at.desc(), Activity.id.desc())
    page = clamp_page(page)
    items = list(session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)
                                 .options(selectinload(Activity.org))))  # no query per row
    return Page(items, total, page, per_page)


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
        ahead = waiting_ahead(session, activity, reg)
    return ActivityStatus(activity, authz.can(member, authz.MANAGE_ACTIVITY, activity.org), status, ahead,
                          existing_checkin(session, activity.id, member.id), checked_in_count(session, activity.id))

