"""The figures of the console's dashboard and of the comparison of communities: counts of a
manager's subtree in a constant number of SQL statements (each filtered to the subtree first,
grouped in the database), however many members, activities, wishes and notices it holds.

Expected attendance follows models.activity.audience (the registered members when an activity has
registration, else its audience), computed here from member counts per organization instead of one
count per activity.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity.tables import REGISTERED, Activity, CheckIn, Registration
from models.base import now_utc
from models.member import PARTY_KINDS, Member
from models.notices import Notice, notice_source
from models.org import Organization, community_of
from models.outbox import OutboxMessage
from models.quota import quota_report, quotas_from_settings
from models.wishes import CLAIMED, DONE, FULFILLED, OPEN, PENDING, REFUSED, WITHDRAWN, Wish

MONTHS_SHOWN = 12  # months in the dashboard's charts, the current one last
LISTED = 10  # names listed under a figure (members behind on the quota, not yet bound)
NOTICES_SHOWN = 5  # the latest notices with their read rates
QUOTA_KIND = "在职党员"  # the kind whose quota the dashboard follows


def rate(part: int, whole: int) -> float | None:
    """part / whole, None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass
class ActivityFigure:
    id: int
    title: str
    kind: str
    starts_at: datetime
    org_id: int
    org_name: str
    present: int = 0
    expected: int = 0

    @property
    def rate(self) -> float | None:
        return rate(self.present, self.expected)


@dataclass
class Month:
    year: int
    month: int
    start: datetime  # UTC
    end: datetime
    present: int = 0
    expected: int = 0
    wishes_posted: int = 0
    wishes_done: int = 0

    @property
    def label(self) -> str:
        return f"{self.month}月"

    @property
    def rate(self) -> float | None:
        return rate(self.present, self.expected)


@dataclass
class NoticeFigure:
    notice: Notice
    sent: int = 0
    read: int = 0

    @property
    def rate(self) -> float | None:
        return rate(self.read, self.sent)


@dataclass
class QuotaFigure:
    kind: str
    org_life_quota: int
    volunteer_quota: int
    members: int = 0
    org_life_done: int = 0  # members who reached the organizational-life count
    volunteer_done: int = 0
    on_track: int = 0  # both reached
    behind: list = field(default_factory=list)  # QuotaRow, the most behind first (at most LISTED)
    behind_total: int = 0


@dataclass
class Dashboard:
    org: Organization
    now: datetime
    members: int = 0  # active members of the subtree
    bound: int = 0
    unbound: list[Member] = field(default_factory=list)  # at most LISTED
    activities: list[ActivityFigure] = field(default_factory=list)  # this month's
    months: list[Month] = field(default_factory=list)
    wishes: dict[str, int] = field(default_factory=dict)  # 待审核, 待认领, 已认领, 已逾期, 待确认
    notices: list[NoticeFigure] = field(default_factory=list)
    quota: QuotaFigure | None = None
    orgs: list[Organization] = field(default_factory=list, repr=False)  # the subtree's, loaded once

    @property
    def unbound_total(self) -> int:
        return self.members - self.bound

    @property
    def month_rate(self) -> float | None:
        return rate(sum(a.present for a in self.activities), sum(a.expected for a in self.activities))


OVERDUE = "已逾期"  # claimed, and the fulfilment date has passed
WISH_FIGURES = (PENDING, OPEN, CLAIMED, OVERDUE, FULFILLED)


# The organizations and their member counts ---------------------------------------------------
@dataclass
class _Node:
    id: int
    name: str
    path: str
    parent_id: int | None
    level: int
    active: int = 0
    party: int = 0
    bound: int = 0


class _Tree:
    """The organizations an activity of the subtree may draw its audience from (the subtree, or
    the community above a branch manager), with their active, party and bound member counts:
    two statements."""

    def __init__(self, session: Session, org: Organization):
        scope = community_of(org) if org.level > 2 else org
        # Loaded whole, and held: a member's `org` shown on the page is then found in the session.
        self.orgs = list(session.scalars(select(Organization).where(Organization.path.startswith(scope.path))))
        self.nodes = {o.id: _Node(o.id, o.name, o.path, o.parent_id, o.level) for o in self.orgs}
        party = case((Member.kind.in_(PARTY_KINDS), 1), else_=0)
        bound = case((and_(Member.openid.is_(None), Member.miniapp_openid.is_(None)), 0), else_=1)
        for org_id, active, party_count, bound_count in session.execute(
            select(Member.org_id, func.count(Member.id), func.sum(party), func.sum(bound))
            .join(Organization, Member.org_id == Organization.id)
            .where(Organization.path.startswith(scope.path), Member.active.is_(True))
            .group_by(Member.org_id)
        ):
            node = self.nodes.get(org_id)
            if node is not None:
                node.active, node.party, node.bound = active, int(party_count or 0), int(bound_count or 0)

    def below(self, path: str) -> list[_Node]:
        return [n for n in self.nodes.values() if n.path.startswith(path)]

    def community(self, node: _Node) -> _Node:
        while node.level > 2 and node.parent_id in self.nodes:
            node = self.nodes[node.parent_id]
        return node

    def audience_size(self, org_id: int, audience: str) -> int:
        """models.activity.audience.audience_filter, counted."""
        node = self.nodes.get(org_id)
        if node is None:
            return 0
        if audience == "open":
            root = self.community(node) if node.level > 2 else node
            return sum(n.active for n in self.below(root.path))
        if audience == "subtree":
            return sum(n.party for n in self.below(node.path))
        return node.party + sum(n.party for n in self.nodes.values() if n.parent_id == node.id and n.level >= 4)


def _activities(session: Session, org: Organization, tree: _Tree, start: datetime, end: datetime
                ) -> list[ActivityFigure]:
    """The subtree's activities (not cancelled) starting in [start, end), with their sign-ins and
    expected attendance: three statements."""
    where = (Organization.path.startswith(org.path), Activity.cancelled.is_(False),
             Activity.starts_at >= start, Activity.starts_at < end)
    rows = session.execute(
        select(Activity.id, Activity.title, Activity.kind, Activity.starts_at, Activity.org_id, Activity.audience,
               Activity.registration, Organization.name)
        .join(Organization, Activity.org_id == Organization.id).where(*where)
        .order_by(Activity.starts_at, Activity.id)
    ).all()
    present = dict(session.execute(
        select(CheckIn.activity_id, func.count(CheckIn.id)).join(Activity, Activity.id == CheckIn.activity_id)
        .join(Organization, Activity.org_id == Organization.id).where(*where).group_by(CheckIn.activity_id)
    ).all())
    registered = dict(session.execute(
        select(Registration.activity_id, func.count(Registration.id))
        .join(Activity, Activity.id == Registration.activity_id)
        .join(Organization, Activity.org_id == Organization.id)
        .where(*where, Activity.registration.is_(True), Registration.status == REGISTERED)
        .group_by(Registration.activity_id)
    ).all())
    figures = []
    for row in rows:
        expected = registered.get(row.id, 0) if row.registration else tree.audience_size(row.org_id, row.audience)
        figures.append(ActivityFigure(row.id, row.title, row.kind, row.starts_at, row.org_id, row.name,
                                      present.get(row.id, 0), expected))
    return figures


def _months(now: datetime, tz, count: int = MONTHS_SHOWN) -> list[Month]:
    """The last `count` local months, the current one last, with their UTC bounds."""
    starts = [clock.month_start(now, tz)]
    while len(starts) < count:
        first = starts[0]
        starts.insert(0, first.replace(year=first.year - 1, month=12) if first.month == 1
                      else first.replace(month=first.month - 1))
    ends = starts[1:] + [_next_month(starts[-1])]
    return [Month(s.year, s.month, s.astimezone(UTC), e.astimezone(UTC)) for s, e in zip(starts, ends, strict=True)]


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


# The figures ---------------------------------------------------------------------------------
def _wish_counts(session: Session, org: Organization, now: datetime) -> dict[str, int]:
    """Wishes of the subtree by state, with the claimed ones past their date as 已逾期: one statement."""
    late = case((and_(Wish.status == CLAIMED, Wish.fulfil_by < now), 1), else_=0)
    counts = {state: 0 for state in WISH_FIGURES}
    for status, total, overdue in session.execute(
        select(Wish.status, func.count(Wish.id), func.sum(late)).join(Organization, Wish.org_id == Organization.id)
        .where(Organization.path.startswith(org.path), Wish.status.in_([PENDING, OPEN, CLAIMED, FULFILLED]))
        .group_by(Wish.status)
    ):
        counts[status] = total
        if status == CLAIMED:
            counts[OVERDUE] = int(overdue or 0)
    return counts


def _wish_months(session: Session, org: Organization, months: list[Month]) -> None:
    """Wishes posted and completed in each month: one statement (a sum per month)."""
    def within(column, month):
        return func.sum(case((and_(column >= month.start, column < month.end), 1), else_=0))

    columns = [within(Wish.created_at, m) for m in months] + [within(Wish.completed_at, m) for m in months]
    row = session.execute(
        select(*columns).join(Organization, Wish.org_id == Organization.id)
        .where(Organization.path.startswith(org.path), (Wish.created_at >= months[0].start)
               | (Wish.completed_at >= months[0].start))
    ).one()
    for i, month in enumerate(months):
        month.wishes_posted, month.wishes_done = int(row[i] or 0), int(row[len(months) + i] or 0)


def _notices(session: Session, org: Organization) -> list[NoticeFigure]:
    """The latest notices of the subtree with how many were sent and read: two statements."""
    notices = list(session.scalars(
        select(Notice).join(Organization, Notice.org_id == Organization.id)
        .where(Organization.path.startswith(org.path)).order_by(Notice.created_at.desc(), Notice.id.desc())
        .limit(NOTICES_SHOWN)
    ))
    figures = {notice_source(n.id): NoticeFigure(n) for n in notices}
    if figures:
        for source, sent, read in session.execute(
            select(OutboxMessage.source, func.count(OutboxMessage.id), func.count(OutboxMessage.read_at))
            .where(OutboxMessage.source.in_(list(figures))).group_by(OutboxMessage.source)
        ):
            figures[source].sent, figures[source].read = sent, read
    return list(figures.values())


def _quota(session: Session, org: Organization, now: datetime, settings: Settings) -> QuotaFigure | None:
    """This year's quota of 在职党员 (models.quota.quota_report): who reached it, who is behind."""
    quotas = quotas_from_settings(settings)
    if QUOTA_KIND not in quotas:
        return None
    year = clock.local(now, settings.tz).year
    rows = [r for r in quota_report(session, org, year, {QUOTA_KIND: quotas[QUOTA_KIND]}, settings)
            if r.member.kind == QUOTA_KIND]
    figure = QuotaFigure(QUOTA_KIND, *quotas[QUOTA_KIND], members=len(rows))
    figure.org_life_done = sum(r.org_life >= r.org_life_quota for r in rows)
    figure.volunteer_done = sum(r.volunteer >= r.volunteer_quota for r in rows)
    behind = [r for r in rows if r.behind]
    figure.on_track, figure.behind_total, figure.behind = len(rows) - len(behind), len(behind), behind[:LISTED]
    return figure


def dashboard(session: Session, actor: Member | None, *, now: datetime | None = None,
              settings: Settings = DEFAULTS) -> Dashboard:
    """The dashboard of the actor's subtree (they must manage it)."""
    authz.authorize(actor, authz.LIST_MEMBERS, actor.org if actor is not None else None)
    now = now or now_utc()
    org = actor.org
    tree = _Tree(session, org)
    board = Dashboard(org, now, orgs=tree.orgs)
    inside = tree.below(org.path)
    board.members, board.bound = sum(n.active for n in inside), sum(n.bound for n in inside)
    board.unbound = list(session.scalars(
        select(Member).join(Organization, Member.org_id == Organization.id)
        .where(Organization.path.startswith(org.path), Member.active.is_(True), Member.openid.is_(None),
               Member.miniapp_openid.is_(None))
        .order_by(Organization.full_name, Member.name, Member.id).limit(LISTED)
    ))
    board.months = _months(now, settings.tz)
    year_of_activities = _activities(session, org, tree, board.months[0].start, board.months[-1].end)
    for activity in year_of_activities:
        for month in board.months:
            if month.start <= activity.starts_at < month.end:
                month.present += activity.present
                month.expected += activity.expected
    current = board.months[-1]
    board.activities = [a for a in year_of_activities if current.start <= a.starts_at < current.end]
    board.wishes = _wish_counts(session, org, now)
    _wish_months(session, org, board.months)
    board.notices = _notices(session, org)
    board.quota = _quota(session, org, now, settings)
    return board


# The comparison of the organizations below a street or community -----------------------------
@dataclass
class UnitFigure:
    """One organization below the manager's, with the figures of its subtree this year."""

    org_id: int
    name: str
    members: int = 0
    bound: int = 0
    present: int = 0
    expected: int = 0
    wishes: int = 0  # published this year (not withdrawn or refused)
    wishes_done: int = 0
    notices_sent: int = 0
    notices_read: int = 0

    @property
    def attendance_rate(self) -> float | None:
        return rate(self.present, self.expected)

    @property
    def wishes_rate(self) -> float | None:
        return rate(self.wishes_done, self.wishes)

    @property
    def notices_rate(self) -> float | None:
        return rate(self.notices_read, self.notices_sent)

    @property
    def bound_rate(self) -> float | None:
        return rate(self.bound, self.members)


SORT_KEYS = {
    "name": lambda u: u.name,
    "attendance": lambda u: u.attendance_rate,
    "wishes": lambda u: u.wishes_rate,
    "notices": lambda u: u.notices_rate,
    "bound": lambda u: u.bound_rate,
    "members": lambda u: u.members,
}


def compares_units(actor: Member | None) -> bool:
    """Whether the actor's dashboard compares the organizations below them: a street (党工委) or a
    community's manager."""
    return actor is not None and authz.can(actor, authz.LIST_MEMBERS, actor.org) and actor.org.level <= 2


def compare_units(session: Session, actor: Member | None, *, sort: str = "name", descending: bool = False,
                  now: datetime | None = None, settings: Settings = DEFAULTS) -> list[UnitFigure]:
    """The organizations directly below the actor's (the communities of a street, the branches of a
    community), each with this year's attendance rate, wishes fulfilled, notices read and members
    bound of its subtree; sorted by `sort` (SORT_KEYS; an empty figure last). One grouped statement
    per figure."""
    authz.authorize(actor, authz.LIST_MEMBERS, actor.org if actor is not None else None)
    now = now or now_utc()
    org = actor.org
    tree = _Tree(session, org)
    units = {n.id: UnitFigure(n.id, n.name) for n in tree.nodes.values() if n.parent_id == org.id}
    paths = [(tree.nodes[unit_id].path, unit) for unit_id, unit in units.items()]

    def unit_of(org_id: int) -> UnitFigure | None:
        node = tree.nodes.get(org_id)
        return next((unit for path, unit in paths if node is not None and node.path.startswith(path)), None)

    for node in tree.below(org.path):
        unit = unit_of(node.id)
        if unit is not None:
            unit.members, unit.bound = unit.members + node.active, unit.bound + node.bound
    start, end = clock.year_bounds(clock.local(now, settings.tz).year, settings.tz)
    for activity in _activities(session, org, tree, start, end):
        unit = unit_of(activity.org_id)
        if unit is not None:
            unit.present, unit.expected = unit.present + activity.present, unit.expected + activity.expected
    _unit_wishes(session, org, start, end, unit_of)
    _unit_notices(session, org, start, end, unit_of)
    key = SORT_KEYS.get(sort, SORT_KEYS["name"])
    filled = [u for u in units.values() if key(u) is not None]
    empty = [u for u in units.values() if key(u) is None]
    filled.sort(key=lambda u: (key(u), u.name), reverse=descending)
    return filled + sorted(empty, key=lambda u: u.name)


def _unit_wishes(session: Session, org: Organization, start: datetime, end: datetime, unit_of) -> None:
    done = case((Wish.status == DONE, 1), else_=0)
    for org_id, total, finished in session.execute(
        select(Wish.org_id, func.count(Wish.id), func.sum(done)).join(Organization, Wish.org_id == Organization.id)
        .where(Organization.path.startswith(org.path), Wish.created_at >= start, Wish.created_at < end,
               Wish.status.notin_([WITHDRAWN, REFUSED, PENDING]))
        .group_by(Wish.org_id)
    ):
        unit = unit_of(org_id)
        if unit is not None:
            unit.wishes, unit.wishes_done = unit.wishes + total, unit.wishes_done + int(finished or 0)


def _unit_notices(session: Session, org: Organization, start: datetime, end: datetime, unit_of) -> None:
    """The year's notices of the subtree, then their deliveries and reads grouped by notice (by the
    outbox's indexed source): two statements."""
    notices = dict(session.execute(
        select(Notice.id, Notice.org_id).join(Organization, Notice.org_id == Organization.id)
        .where(Organization.path.startswith(org.path), Notice.created_at >= start, Notice.created_at < end)
    ).all())
    if not notices:
        return
    sources = {notice_source(notice_id): org_id for notice_id, org_id in notices.items()}
    for source, sent, read in session.execute(
        select(OutboxMessage.source, func.count(OutboxMessage.id), func.count(OutboxMessage.read_at))
        .where(OutboxMessage.source.in_(list(sources))).group_by(OutboxMessage.source)
    ):
        unit = unit_of(sources[source])
        if unit is not None:
            unit.notices_sent, unit.notices_read = unit.notices_sent + sent, unit.notices_read + read
