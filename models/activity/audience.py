"""Who an activity is for, and who is expected to come."""


from sqlalchemy import and_, false, func, or_, select
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


def _path_and_above(org: Organization) -> list[str]:
    """The paths of `org` and of every node above it ("/1/", "/1/4/", "/1/4/9/")."""
    return [org.path[:i + 1] for i, char in enumerate(org.path) if char == "/" and i > 0]


def seen_by_clause(member: Member):
    """A WHERE clause on Activity (joined with its Organization) true exactly for the activities
    whose audience holds `member` — `in_audience` seen from the member's side, so that a listing
    is one query (the rules of `audience_filter`, turned round)."""
    if not member.active:
        return false()
    home = member.org
    above = _path_and_above(home)
    community = community_of(home)
    # open: everyone of the activity's community (a node at community level or above: its subtree).
    open_ = and_(Activity.audience == "open", or_(
        and_(Organization.level <= 2, Organization.path.in_(above)),
        and_(Organization.level > 2, Organization.path.startswith(community.path, autoescape=True))
        if home.level >= 2 else false(),
    ))
    if member.kind not in PARTY_KINDS:
        return open_
    subtree = and_(Activity.audience == "subtree", Organization.path.in_(above))
    # branch: the organization's own members and those of its 党小组 (groups one level below).
    branch_orgs = [home.id] + ([home.parent_id] if home.level >= 4 and home.parent_id is not None else [])
    branch = and_(Activity.audience == "branch", Activity.org_id.in_(branch_orgs))
    return or_(open_, subtree, branch)
