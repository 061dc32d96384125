"""Who an activity is for, and who is expected to come."""


from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models.activity.tables import REGISTERED, Activity, Registration
from models.member import PARTY_KINDS, Member
from models.org import Organization, community_of


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

