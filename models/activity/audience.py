"""Who an activity is for, and who is expected to come."""

from collections.abc import Sequence

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session, aliased

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


def _community_path(org: Organization) -> str:
    """The path of `community_of(org)` read from `org.path` ("/1/4/9/" → "/1/4/"): no query."""
    if org.level <= 2:
        return org.path
    ids = org.path.strip("/").split("/")
    return "/" + "/".join(ids[:2]) + "/"


def _audience_root(activity: Activity) -> str:
    """The path whose subtree an "open" activity is for (its community; itself at level 1 or 2)."""
    return _community_path(activity.org)


def _counts_by_subtree(session: Session, paths: set[str], party: bool) -> dict[str, int]:
    """{path: the active members (party members only, with `party`) of that node's subtree}, one
    grouped statement for every path."""
    if not paths:
        return {}
    top, node = aliased(Organization), aliased(Organization)
    conditions = [top.path.in_(sorted(paths)), Member.active.is_(True)]
    if party:
        conditions.append(Member.kind.in_(PARTY_KINDS))
    rows = session.execute(
        select(top.path, func.count(Member.id))
        .join(node, node.path.startswith(top.path))
        .join(Member, Member.org_id == node.id)
        .where(*conditions).group_by(top.path))
    return dict(rows.all())


def _counts_by_branch(session: Session, org_ids: set[int]) -> dict[int, int]:
    """{organization id: its own active party members and those of its 党小组}, one grouped statement."""
    if not org_ids:
        return {}
    top, node = aliased(Organization), aliased(Organization)
    rows = session.execute(
        select(top.id, func.count(Member.id))
        .join(node, or_(node.id == top.id, and_(node.parent_id == top.id, node.level >= 4)))
        .join(Member, Member.org_id == node.id)
        .where(top.id.in_(sorted(org_ids)), Member.active.is_(True), Member.kind.in_(PARTY_KINDS))
        .group_by(top.id))
    return dict(rows.all())


def _registered_counts(session: Session, activity_ids: list[int]) -> dict[int, int]:
    if not activity_ids:
        return {}
    rows = session.execute(
        select(Registration.activity_id, func.count(Member.id))
        .join(Member, Member.id == Registration.member_id)
        .where(Registration.activity_id.in_(activity_ids), Registration.status == REGISTERED)
        .group_by(Registration.activity_id))
    return dict(rows.all())


def expected_counts(session: Session, activities: Sequence[Activity]) -> dict[int, int]:
    """{activity id: `expected_count(activity)`} for many activities in at most four grouped
    statements (registrations, and one per audience rule), whatever their number: an audience is
    counted once per distinct organization, never per activity × member. The activities' `org`
    should be loaded (joinedload) so that reading it costs nothing."""
    registered = [a.id for a in activities if a.registration]
    by_rule: dict[str, list[Activity]] = {"open": [], "subtree": [], "branch": []}
    for a in activities:
        if not a.registration:  # any other audience is the branch rule, as in audience_filter
            by_rule[a.audience if a.audience in ("open", "subtree") else "branch"].append(a)
    open_ = _counts_by_subtree(session, {_audience_root(a) for a in by_rule["open"]}, party=False)
    subtree = _counts_by_subtree(session, {a.org.path for a in by_rule["subtree"]}, party=True)
    branch = _counts_by_branch(session, {a.org_id for a in by_rule["branch"]})
    counts = _registered_counts(session, registered)
    counts |= {a.id: open_.get(_audience_root(a), 0) for a in by_rule["open"]}
    counts |= {a.id: subtree.get(a.org.path, 0) for a in by_rule["subtree"]}
    counts |= {a.id: branch.get(a.org_id, 0) for a in by_rule["branch"]}
    return {a.id: counts.get(a.id, 0) for a in activities}


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
