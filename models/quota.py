"""Yearly quotas: how often each member took part in organizational life and volunteer service."""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, joinedload

from config import DEFAULTS, Settings
from models import clock
from models.activity import METHODS, VOLUNTEER, Activity, CheckIn, attendance
from models.base import Page
from models.member import Member
from models.org import Organization
from models.sheets import append_row, new_sheet, to_bytes
from models.text import clamp_page, fits_id


@dataclass
class QuotaRow:
    member: Member
    org_life: int
    volunteer: int
    org_life_quota: int
    volunteer_quota: int

    @property
    def shortfall(self) -> int:
        return max(0, self.org_life_quota - self.org_life) + max(0, self.volunteer_quota - self.volunteer)

    @property
    def behind(self) -> bool:
        return self.shortfall > 0


def quotas_from_settings(settings: Settings) -> dict[str, tuple[int, int]]:
    """{member kind: (organizational-life count, volunteer-service count)} for a year.

    QUOTA_ORG_LIFE / QUOTA_VOLUNTEER are 在职党员's; QUOTAS (JSON, e.g. {"直管党员": [12, 2]})
    sets other kinds.
    """
    quotas = {"在职党员": (settings.quota_org_life, settings.quota_volunteer)}
    extra = settings.quotas
    if extra:
        for kind, pair in json.loads(extra).items():
            quotas[kind] = (int(pair[0]), int(pair[1]))
    return quotas


def _positive(value):
    return case((value > 0, value), else_=0)


def _quota_select(org: Organization, year: int, quotas: Mapping[str, tuple[int, int]], settings: Settings):
    """(Member, org_life, volunteer, shortfall) for each active member of `org`'s subtree whose kind
    has a quota: the subtree first (members of the subtree's organizations, by ix_members_org_id),
    then only their sign-ins at the year's activities, grouped by member (ix_activity_checkins_member_id)."""
    start, end = clock.year_bounds(year, settings.tz)
    members = (Member.active.is_(True), Member.kind.in_(list(quotas)),
               Member.org_id.in_(select(Organization.id).where(Organization.path.startswith(org.path))))
    counts = (
        select(CheckIn.member_id.label("member_id"),
               func.count(case((Activity.kind != VOLUNTEER, 1))).label("org_life"),
               func.count(case((Activity.kind == VOLUNTEER, 1))).label("volunteer"))
        .join(Activity, Activity.id == CheckIn.activity_id)
        .where(CheckIn.member_id.in_(select(Member.id).where(*members)), Activity.cancelled.is_(False),
               Activity.starts_at >= start, Activity.starts_at < end)
        .group_by(CheckIn.member_id)
    ).subquery()
    org_life = func.coalesce(counts.c.org_life, 0)
    volunteer = func.coalesce(counts.c.volunteer, 0)
    org_life_quota = case({kind: q[0] for kind, q in quotas.items()}, value=Member.kind, else_=0)
    volunteer_quota = case({kind: q[1] for kind, q in quotas.items()}, value=Member.kind, else_=0)
    shortfall = (_positive(org_life_quota - org_life) + _positive(volunteer_quota - volunteer)).label("shortfall")
    return (select(Member, org_life.label("org_life"), volunteer.label("volunteer"), shortfall)
            .outerjoin(counts, counts.c.member_id == Member.id).where(*members))


def _rows(session: Session, stmt, quotas: Mapping[str, tuple[int, int]]) -> list[QuotaRow]:
    shortfall = stmt.selected_columns.shortfall
    stmt = stmt.order_by(shortfall.desc(), Member.id).options(joinedload(Member.org))
    return [QuotaRow(m, org_life, volunteer, *quotas[m.kind]) for m, org_life, volunteer, _ in session.execute(stmt)]


def quota_report(session: Session, org: Organization, year: int, quotas: Mapping[str, tuple[int, int]],
                 settings: Settings = DEFAULTS) -> list[QuotaRow]:
    """Each member of the subtree whose kind has a quota, with the year's counts; the most behind first.

    One statement: counted and sorted in SQL, each member's organization in the same statement."""
    if not quotas:
        return []
    return _rows(session, _quota_select(org, year, quotas, settings), quotas)


@dataclass
class QuotaPage(Page):
    behind: int = 0  # members of the whole report (not only of this page) below their quota


def quota_page(session: Session, org: Organization, year: int, quotas: Mapping[str, tuple[int, int]],
               settings: Settings = DEFAULTS, *, page: int = 1, per_page: int = 50) -> QuotaPage:
    """One page of `quota_report`, paged in SQL, with the report's total and how many are behind:
    two statements, whatever the size of the subtree."""
    page = clamp_page(page)
    if not quotas:
        return QuotaPage([], 0, page, per_page, 0)
    stmt = _quota_select(org, year, quotas, settings)
    inner = stmt.subquery()
    total, behind = session.execute(
        select(func.count(), func.count(case((inner.c.shortfall > 0, 1))))).one()
    items = _rows(session, stmt.limit(per_page).offset((page - 1) * per_page), quotas)
    return QuotaPage(items, total, page, per_page, behind)


HEADERS = ("姓名", "类别", "所属组织", "组织生活次数", "组织生活应达", "志愿服务次数", "志愿服务应达", "差额",
           "是否达标")


def quota_xlsx(rows: list[QuotaRow], year: int) -> bytes:
    """The report as an Excel workbook (Chinese headers)."""
    book, sheet = new_sheet(f"{year}年度完成情况", HEADERS)
    for r in rows:
        append_row(sheet, [r.member.name, r.member.kind, r.member.org.full_name, r.org_life, r.org_life_quota,
                           r.volunteer, r.volunteer_quota, r.shortfall, "否" if r.behind else "是"])
    return to_bytes(book)


def attendance_xlsx(session: Session, activity: Activity, settings: Settings = DEFAULTS) -> bytes:
    """One activity's attendance as an Excel workbook."""
    report = attendance(session, activity, settings)
    book, sheet = new_sheet("出勤")
    append_row(sheet, ["活动", f"{activity.number} {activity.kind} {activity.title}"])
    append_row(sheet, ["时间", clock.day_time(activity.starts_at, settings.tz)])
    append_row(sheet, ["应到", len(report.expected), "实到", report.came, "请假", len(report.on_leave),
                       "缺席", len(report.absent)])
    append_row(sheet, [])
    append_row(sheet, ["姓名", "类别", "状态", "签到时间", "签到方式", "服务时长（分钟）"])
    for c in report.present:
        state = "迟到" if c.member_id in report.late else "已签到"
        append_row(sheet, [c.member.name, c.member.kind, state, clock.day_time(c.checked_in_at, settings.tz),
                           METHODS[c.method], c.service_minutes])
    for m in report.on_leave:
        append_row(sheet, [m.name, m.kind, "请假", "", "", None])
    for m in report.absent:
        append_row(sheet, [m.name, m.kind, "缺席", "", "", None])
    return to_bytes(book)


def member_progress(session: Session, member: Member, year: int, quotas: Mapping[str, tuple[int, int]],
                    settings: Settings = DEFAULTS) -> QuotaRow | None:
    """One member's counts for the year against the quota of their kind (None: no quota applies)."""
    if member.kind not in quotas:
        return None
    start, end = clock.year_bounds(year, settings.tz)
    counts = dict(session.execute(
        select(Activity.kind == VOLUNTEER, func.count(CheckIn.id))
        .join(Activity, Activity.id == CheckIn.activity_id)
        .where(CheckIn.member_id == member.id, Activity.cancelled.is_(False), Activity.starts_at >= start,
               Activity.starts_at < end)
        .group_by(Activity.kind == VOLUNTEER)
    ).all())
    counts = {bool(k): v for k, v in counts.items()}
    return QuotaRow(member, counts.get(False, 0), counts.get(True, 0), *quotas[member.kind])


def period_attendance_xlsx(rows: list[tuple[Activity, int, int]], settings: Settings = DEFAULTS) -> bytes:
    """A period's activities and their attendance as an Excel workbook."""

    book, sheet = new_sheet("活动出勤汇总", ["编号", "类型", "标题", "组织", "时间", "签到人数", "应到人数", "出勤率"])
    for activity, present, expected in rows:
        rate = f"{present / expected:.0%}" if expected else ""
        append_row(sheet, [activity.number, activity.kind, activity.title, activity.org.full_name,
                           clock.day_time(activity.starts_at, settings.tz), present, expected, rate])
    return to_bytes(book)


def report_org(session: Session, actor: Member | None, org_id: int | None = None) -> Organization:
    """The organization whose report `actor` asks for (their own by default), if they manage it."""
    from models import authz
    from models.base import NotFound

    org = actor.org if actor is not None and org_id is None else None
    if org_id is not None:
        org = session.get(Organization, org_id) if fits_id(org_id) else None
        if org is None:
            raise NotFound("没有这个组织。")
    authz.authorize(actor, authz.LIST_MEMBERS, org)
    return org
