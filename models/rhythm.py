"""Each branch's rhythm of 三会一课 and 主题党日, checked: which required meetings of a month (or of a
quarter) were held, are scheduled, or were missed; the note to a branch secretary on
RHYTHM_CHECK_DAY about what is neither held nor scheduled; the street's table of branches × months;
and the quarterly ranking of branches (季排名).

The requirement is the ORGLIFE_RHYTHM setting (kind → month or quarter). An activity of that kind
of the branch or of a group below it counts; so does an active org-life rule of the branch whose
next occasion falls in the period (scheduled). Every figure is counted in SQL for all the branches
at once: the cost is a fixed number of statements, whatever the size of the district.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity import Activity, CheckIn
from models.member import PARTY_KINDS, Member
from models.org import Organization
from models.orglife import OrgLifeRule, activity_kind, scheduled_start
from models.outbox import OutboxMessage, enqueue
from models.records import MeetingRecord
from models.sheets import append_row, new_sheet, to_bytes

BRANCH_LEVEL = 3  # 党支部 (models.org.LEVEL_NAMES)
HELD, SCHEDULED, MISSED, DUE = "held", "scheduled", "missed", "due"
STATUS_NAMES = {HELD: "已开展", SCHEDULED: "已安排", MISSED: "未开展", DUE: "待安排"}


@dataclass(frozen=True)
class Period:
    year: int
    month: int  # the first month
    months: int  # 1 or 3

    @classmethod
    def of(cls, kind: str, year: int, month: int) -> "Period":
        if kind == "quarter":
            return cls(year, (month - 1) // 3 * 3 + 1, 3)
        return cls(year, month, 1)

    @property
    def key(self) -> str:
        return f"{self.year}-Q{(self.month - 1) // 3 + 1}" if self.months == 3 else f"{self.year}-{self.month:02d}"

    @property
    def label(self) -> str:
        return f"{self.year}年第{(self.month - 1) // 3 + 1}季度" if self.months == 3 else f"{self.year}年{self.month}月"

    @property
    def last_month(self) -> int:
        return self.month + self.months - 1

    def bounds(self, settings: Settings) -> tuple[datetime, datetime]:
        end_year, end_month = (self.year + 1, 1) if self.last_month == 12 else (self.year, self.last_month + 1)
        first, _ = clock.day_bounds(date(self.year, self.month, 1), date(self.year, self.month, 1), settings.tz)
        last, _ = clock.day_bounds(date(end_year, end_month, 1), date(end_year, end_month, 1), settings.tz)
        return first, last


@dataclass
class Held:
    activity_id: int
    starts_at: datetime
    attendance: float | None  # sign-ins / the branch's party members
    recorded: bool


@dataclass
class Cell:
    """One required kind of one branch in one period."""

    kind: str
    period: Period
    status: str
    held: list[Held] = field(default_factory=list)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]


@dataclass
class BranchRow:
    branch: Organization
    members: int  # its party members (the subtree's)
    months: dict[int, list[Cell]]  # month → the kinds whose period ends that month


@dataclass
class _Facts:
    """What the checks need of every branch below a node, read in a fixed number of statements."""

    branches: list[Organization]
    members: dict[int, int]
    activities: dict[tuple[int, str], list[tuple[int, datetime]]]  # (branch, kind) → (id, starts)
    checkins: dict[int, int]
    recorded: set[int]
    rules: dict[tuple[int, str], list[OrgLifeRule]]


def _branch_of(path: str, branch_paths: dict[str, int]) -> int | None:
    """The branch whose subtree holds the node of `path` ("/1/4/9/12/" → the id of "/1/4/9/")."""
    parts = path.strip("/").split("/")
    for depth in range(len(parts), 0, -1):
        found = branch_paths.get("/" + "/".join(parts[:depth]) + "/")
        if found is not None:
            return found
    return None


def _facts(session: Session, root: Organization, first: datetime, last: datetime, settings: Settings) -> _Facts:
    branches = list(session.scalars(select(Organization).where(
        Organization.path.startswith(root.path), Organization.level == BRANCH_LEVEL).order_by(Organization.path)))
    paths = {b.path: b.id for b in branches}
    under = Organization.path.startswith(root.path)
    members: dict[int, int] = defaultdict(int)
    for path, count in session.execute(
            select(Organization.path, func.count(Member.id)).join(Member, Member.org_id == Organization.id)
            .where(under, Member.active.is_(True), Member.kind.in_(PARTY_KINDS)).group_by(Organization.path)):
        branch = _branch_of(path, paths)
        if branch is not None:
            members[branch] += count
    kinds = list(settings.rhythm)
    activities: dict[tuple[int, str], list[tuple[int, datetime]]] = defaultdict(list)
    rows = session.execute(
        select(Activity.id, Activity.kind, Activity.starts_at, Organization.path)
        .join(Organization, Organization.id == Activity.org_id)
        .where(under, Activity.kind.in_(kinds), Activity.cancelled.is_(False),
               Activity.starts_at >= first, Activity.starts_at < last)
        .order_by(Activity.starts_at)).all()
    for activity_id, kind, starts_at, path in rows:
        branch = _branch_of(path, paths)
        if branch is not None:
            activities[(branch, kind)].append((activity_id, starts_at))
    ids = select(Activity.id).join(Organization, Organization.id == Activity.org_id).where(
        under, Activity.kind.in_(kinds), Activity.starts_at >= first, Activity.starts_at < last)
    checkins = dict(session.execute(select(CheckIn.activity_id, func.count()).where(CheckIn.activity_id.in_(ids))
                                    .group_by(CheckIn.activity_id)).all())
    recorded = set(session.scalars(select(MeetingRecord.activity_id).where(MeetingRecord.activity_id.in_(ids))))
    rules: dict[tuple[int, str], list[OrgLifeRule]] = defaultdict(list)
    for rule in session.scalars(select(OrgLifeRule).where(
            OrgLifeRule.org_id.in_(list(paths.values())), OrgLifeRule.active.is_(True))):
        rules[(rule.org_id, activity_kind(rule))].append(rule)
    return _Facts(branches, members, activities, checkins, recorded, rules)


def _cell(facts: _Facts, branch: Organization, kind: str, period: Period, now: datetime,
          settings: Settings) -> Cell:
    start, end = period.bounds(settings)
    members = facts.members.get(branch.id, 0)
    occasions = [(i, at) for i, at in facts.activities.get((branch.id, kind), ()) if start <= at < end]
    held = [Held(i, at, facts.checkins.get(i, 0) / members if members else None, i in facts.recorded)
            for i, at in occasions if at <= now]
    if held:
        return Cell(kind, period, HELD, held)
    planned = any(at > now for _, at in occasions) or any(
        moment is not None and start <= moment < end and moment > now
        for rule in facts.rules.get((branch.id, kind), ()) for moment in _rule_dates(rule, period, settings))
    if planned:
        return Cell(kind, period, SCHEDULED)
    return Cell(kind, period, MISSED if end <= now else DUE)


def _rule_dates(rule: OrgLifeRule, period: Period, settings: Settings) -> list[datetime | None]:
    """The occasions a rule schedules in a period (a quarterly rule once a quarter, a monthly one a month)."""
    if rule.period_kind == "quarter":
        return [scheduled_start(rule, Period.of("quarter", period.year, period.month).key, settings.tz)]
    return [scheduled_start(rule, f"{period.year}-{month:02d}", settings.tz)
            for month in range(period.month, period.last_month + 1)]


def rhythm_table(session: Session, actor: Member, org: Organization, year: int, now: datetime,
                 settings: Settings = DEFAULTS) -> list[BranchRow]:
    """Every branch at or below `org`: for each month of `year`, the required kinds whose period ends
    that month (monthly kinds every month, quarterly ones in the quarter's last month)."""
    authz.authorize(actor, authz.LIST_MEMBERS, org)
    first, _ = Period(year, 1, 12).bounds(settings)
    _, last = Period(year, 12, 1).bounds(settings)
    facts = _facts(session, org, first, last, settings)
    rows = []
    for branch in facts.branches:
        months: dict[int, list[Cell]] = {}
        for month in range(1, 13):
            months[month] = [
                _cell(facts, branch, kind, Period.of(every, year, month), now, settings)
                for kind, every in settings.rhythm.items() if Period.of(every, year, month).last_month == month]
        rows.append(BranchRow(branch, facts.members.get(branch.id, 0), months))
    return rows


# The note on RHYTHM_CHECK_DAY ---------------------------------------------------------------------
def send_rhythm_notes(session: Session, now: datetime, settings: Settings = DEFAULTS) -> int:
    """On RHYTHM_CHECK_DAY (local date), tell each branch's secretaries which required meetings of
    the month (and, in a quarter's last month, of the quarter) are neither held nor scheduled; once
    per branch and month (the outbox's unique source), however often the job runs that day. Return
    the notes queued; commit."""
    from models.wishes import secretaries_for  # the nearest secretaries of an organization

    today = now.astimezone(settings.tz).date()
    if today.day != settings.rhythm_check_day:
        return 0
    roots = session.scalars(select(Organization).where(Organization.parent_id.is_(None))).all()
    period = Period(today.year, today.month, 1)
    start, end = Period.of("quarter", today.year, today.month).bounds(settings)
    queued = 0
    for root in roots:
        facts = _facts(session, root, start, end, settings)
        for branch in facts.branches:
            due = [cell for kind, every in settings.rhythm.items()
                   if (cell := _cell(facts, branch, kind, Period.of(every, today.year, today.month), now, settings))
                   .status == DUE and cell.period.last_month == today.month]
            if not due:
                continue
            body = (f"{branch.name}{period.label}组织生活提醒：" + "、".join(
                f"{cell.kind}（{cell.period.label}）" for cell in due) + " 尚未开展也未安排，请尽快安排。")
            for secretary in secretaries_for(session, branch):
                queued += enqueue(session, source=f"rhythm:{branch.id}:{period.key}", kind="notice",
                                  title="组织生活提醒", body=body, member_id=secretary.id)
    session.commit()
    return queued


# The quarterly ranking ----------------------------------------------------------------------------
@dataclass
class RankRow:
    place: int
    branch: Organization
    score: float
    held: float  # share of the required meetings held
    attendance: float
    records: float
    wishes: float
    notices: float


def quarter_ranking(session: Session, actor: Member, org: Organization, year: int, quarter: int, now: datetime,
                    settings: Settings = DEFAULTS) -> list[RankRow]:
    """The branches at or below `org` ranked by a score of the quarter: the RANKING_WEIGHTS-weighted
    shares of required meetings held, attendance, records kept, wishes fulfilled and notices read."""
    authz.authorize(actor, authz.LIST_MEMBERS, org)
    quarter_period = Period(year, (quarter - 1) * 3 + 1, 3)
    start, end = quarter_period.bounds(settings)
    facts = _facts(session, org, start, end, settings)
    wishes = _branch_shares(session, facts, _wish_rows(org, start, end))
    notices = _branch_shares(session, facts, _notice_rows(org, start, end))
    weights, total = settings.weights, sum(settings.weights.values()) or 1.0
    rows = []
    for branch in facts.branches:
        cells = [_cell(facts, branch, kind, Period.of(every, year, month), now, settings)
                 for month in range(quarter_period.month, quarter_period.last_month + 1)
                 for kind, every in settings.rhythm.items() if Period.of(every, year, month).last_month == month]
        held = [h for c in cells for h in c.held]
        parts = {
            "held": _share(sum(c.status == HELD for c in cells), len(cells)),
            "attendance": _mean([h.attendance for h in held if h.attendance is not None]),
            "records": _share(sum(h.recorded for h in held), len(held)),
            "wishes": wishes.get(branch.id, 0.0), "notices": notices.get(branch.id, 0.0),
        }
        score = sum(weights.get(name, 0.0) * min(value, 1.0) for name, value in parts.items()) * 100 / total
        rows.append(RankRow(0, branch, round(score, 1), **{k: round(v, 3) for k, v in parts.items()}))
    rows.sort(key=lambda r: (-r.score, r.branch.path))
    for place, row in enumerate(rows, 1):
        row.place = place
    return rows


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _wish_rows(org: Organization, start: datetime, end: datetime):
    """(organization path, done?, count) of the wishes of the subtree created in the period."""
    from models.wishes import DONE, Wish

    return (select(Organization.path, Wish.status == DONE, func.count())
            .join(Organization, Organization.id == Wish.org_id)
            .where(Organization.path.startswith(org.path), Wish.created_at >= start, Wish.created_at < end)
            .group_by(Organization.path, Wish.status == DONE))


def _notice_rows(org: Organization, start: datetime, end: datetime):
    """(organization path, read?, count) of the notices delivered to the subtree's members in the period."""
    return (select(Organization.path, OutboxMessage.read_at.is_not(None), func.count())
            .join(Member, Member.id == OutboxMessage.member_id).join(Organization, Organization.id == Member.org_id)
            .where(Organization.path.startswith(org.path), OutboxMessage.kind == "notice",
                   OutboxMessage.source.startswith("notice:"),
                   OutboxMessage.created_at >= start, OutboxMessage.created_at < end)
            .group_by(Organization.path, OutboxMessage.read_at.is_not(None)))


def _branch_shares(session: Session, facts: _Facts, query) -> dict[int, float]:
    paths = {b.path: b.id for b in facts.branches}
    good: dict[int, int] = defaultdict(int)
    every: dict[int, int] = defaultdict(int)
    for path, ok, count in session.execute(query):
        branch = _branch_of(path, paths)
        if branch is not None:
            every[branch] += count
            good[branch] += count if ok else 0
    return {branch: good[branch] / every[branch] for branch in every}


# Spreadsheet --------------------------------------------------------------------------------------
def rhythm_xlsx(rows: list[BranchRow], year: int) -> bytes:
    header = ["支部", "党员数"] + [f"{month}月" for month in range(1, 13)]
    book, sheet = new_sheet(f"{year}年组织生活开展情况", header, widths=(36, 8, *([22] * 12)))
    for row in rows:
        append_row(sheet, [row.branch.full_name, row.members] + [
            "\n".join(_cell_text(cell) for cell in row.months[month]) for month in range(1, 13)])
    return to_bytes(book)


def _cell_text(cell: Cell) -> str:
    text = f"{cell.kind}：{cell.status_name}"
    if cell.held:
        rates = [f"{h.attendance:.0%}" for h in cell.held if h.attendance is not None]
        text += f"（出勤{'、'.join(rates) or '—'}，{'有' if all(h.recorded for h in cell.held) else '缺'}记录）"
    return text
