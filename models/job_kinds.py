"""The kinds of background job (models/jobs.py): how each is started — asked of models/authz.py,
sized, queued — and what its worker does: `run(session, job, progress, settings)` calls the same
domain function the request would (thin: the work is theirs) and returns the Output to keep.

Kinds: a roster import (its result: the import's report, shown with the job) and the exports of a
subtree — members, wishes, the year's quota report, a period's attendance (their result: the .xlsx).
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz, directory, wishes
from models.activity import period_attendance, period_bounds
from models.base import DomainError, NotFound
from models.jobs import DONE, Job, Output, Tracker, enqueue, get_job, stored_result
from models.member import Member
from models.org import NewGrid, Organization
from models.quota import period_attendance_xlsx, quota_report, quota_xlsx, quotas_from_settings
from models.roster import (
    ImportReport,
    RosterFileError,
    RowError,
    export_members,
    import_members,
    read_roster,
    roster_fits,
)
from models.text import fits_id

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORT = "application/json"

IMPORT, MEMBERS_EXPORT, WISHES_EXPORT, QUOTA_EXPORT, ATTENDANCE_EXPORT = (
    "roster.import", "members.export", "wishes.export", "quota.export", "attendance.export")


@dataclass(frozen=True)
class Kind:
    label: str  # in Chinese, for the job lists
    run: Callable[[Session, Job, Tracker, Settings], Output]


# The import's report, kept as JSON and read back -------------------------------------------------
def report_json(report: ImportReport) -> bytes:
    values = asdict(report)
    return json.dumps(values, ensure_ascii=False).encode()


def report_from_json(data: bytes) -> ImportReport:
    values = json.loads(data)
    values["errors"] = [RowError(**error) for error in values["errors"]]
    values["new_grids"] = [NewGrid(**grid) for grid in values["new_grids"]]
    return ImportReport(**values)


def import_report(session: Session, job: Job) -> ImportReport | None:
    """The report of a done import job (None: another kind, or not done)."""
    if job.kind != IMPORT or job.status != DONE:
        return None
    data = stored_result(session, job)
    return report_from_json(data) if data is not None else None


# What the workers do -------------------------------------------------------------------------------
def _actor(session: Session, job: Job) -> Member | None:
    """Who asked, as they are now (None: the operator's CLI); an asker gone inactive is refused by
    the domain function like in a request."""
    return session.get(Member, job.requested_by_id) if job.requested_by_id is not None else None


def _org(session: Session, job: Job) -> Organization | None:
    return session.get(Organization, job.org_id) if job.org_id is not None else None


def _run_import(session: Session, job: Job, tracker: Tracker, settings: Settings) -> Output:
    params, actor = job.params, _actor(session, job)
    options = {"dry_run": bool(params.get("dry_run")), "create_orgs": bool(params.get("create_orgs"))}
    try:
        with session.no_autoflush:  # nothing written before the end: SQLite's progress writes get through
            if actor is None:  # the operator's CLI: the whole tree, no importer's subtree to keep to
                records = read_roster(job.payload, params["filename"], settings)
                tracker.set_total(len(records))
                report = import_members(session, records, progress=tracker.progress, **options)
            else:
                report = directory.import_roster(session, actor, job.payload, params["filename"], settings=settings,
                                                 progress=tracker, **options)
    except RosterFileError as exc:
        raise DomainError(str(exc), code="bad_file") from None
    return Output(report_json(report), None, REPORT, rows=report.total)


def _run_members_export(session: Session, job: Job, tracker: Tracker, settings: Settings) -> Output:
    actor = _actor(session, job)
    if actor is None:
        data = export_members(session, directory.members_in_subtree(session, _org(session, job)))
    else:
        data = directory.export_roster(session, actor)
    return Output(data, "名册.xlsx", XLSX)


def _run_wishes_export(session: Session, job: Job, tracker: Tracker, settings: Settings) -> Output:
    data = wishes.export_wishes(session, _actor(session, job), org=_org(session, job),
                                status=job.params.get("status"), settings=settings)
    return Output(data, "微心愿.xlsx", XLSX)


def _managed_org(session: Session, job: Job) -> Organization:
    """The job's subtree, if its asker still manages it."""
    org = _org(session, job)
    authz.authorize(_actor(session, job), authz.LIST_MEMBERS, org)
    return org


def _run_quota_export(session: Session, job: Job, tracker: Tracker, settings: Settings) -> Output:
    year = int(job.params["year"])
    rows = quota_report(session, _managed_org(session, job), year, quotas_from_settings(settings), settings)
    return Output(quota_xlsx(rows, year), f"{year}年度完成情况.xlsx", XLSX, rows=len(rows))


def _run_attendance_export(session: Session, job: Job, tracker: Tracker, settings: Settings) -> Output:
    first, last = date.fromisoformat(job.params["from"]), date.fromisoformat(job.params["to"])
    start, end = period_bounds(first, last, settings.tz)
    rows = period_attendance(session, _managed_org(session, job), start, end)
    return Output(period_attendance_xlsx(rows, settings), f"活动出勤汇总-{first:%Y%m%d}-{last:%Y%m%d}.xlsx", XLSX)


KINDS: dict[str, Kind] = {
    IMPORT: Kind("导入名册", _run_import),
    MEMBERS_EXPORT: Kind("导出名册", _run_members_export),
    WISHES_EXPORT: Kind("导出心愿", _run_wishes_export),
    QUOTA_EXPORT: Kind("导出年度完成情况", _run_quota_export),
    ATTENDANCE_EXPORT: Kind("导出活动出勤汇总", _run_attendance_export),
}


def work(session: Session, job: Job, tracker: Tracker, settings: Settings) -> Output:
    """The work of `job`, by its kind (models.jobs.run_claimed runs it)."""
    kind = KINDS.get(job.kind)
    if kind is None:
        raise DomainError("未知的任务类型。", code="unknown_job")
    return kind.run(session, job, tracker, settings)


# How big a request would be ------------------------------------------------------------------------
def members_in(session: Session, org: Organization) -> int:
    """The members of `org`'s subtree (what a subtree's export or report grows with)."""
    return session.scalar(select(func.count(Member.id)).join(Organization, Member.org_id == Organization.id)
                          .where(Organization.path.startswith(org.path))) or 0


def wishes_in(session: Session, org: Organization, status: str | None = None) -> int:
    query = (select(func.count(wishes.Wish.id)).join(Organization, Organization.id == wishes.Wish.org_id)
             .where(Organization.path.startswith(org.path)))
    if status:
        query = query.where(wishes.Wish.status == status)
    return session.scalar(query) or 0


def too_big(rows: int, settings: Settings = DEFAULTS) -> bool:
    """Whether work over `rows` rows leaves the request (JOB_INLINE_ROWS)."""
    return rows > int(settings.job_inline_rows)


# Starting ------------------------------------------------------------------------------------------
def start(session: Session, actor: Member | None, kind: str, org: Organization, *, action: str,
          params: dict | None = None, payload: bytes | None = None, total: int | None = None) -> Job:
    """Queue a job of `kind` on `org`'s subtree for `actor`, who must be allowed to start jobs there
    and to do the job's own `action` (member.import, wish.export …) to it (committed)."""
    authz.authorize(actor, authz.START_JOB, org)
    authz.authorize(actor, action, org)
    return enqueue(session, kind, params=params, payload=payload, requested_by=actor, org=org, total=total)


def start_import(session: Session, actor: Member, data: bytes, filename: str, *, dry_run: bool = False,
                 create_orgs: bool = False) -> Job:
    """Queue the import of a roster file into the actor's subtree (its rows are counted by the worker)."""
    return start(session, actor, IMPORT, actor.org, action=authz.IMPORT_MEMBERS, payload=data,
                 params={"filename": filename, "dry_run": dry_run, "create_orgs": create_orgs})


def visible_job(session: Session, actor: Member | None, job_id: int) -> Job:
    """A job the actor may see (their own, within their subtree); any other is not found."""
    job = get_job(session, job_id)
    if not authz.can(actor, authz.VIEW_JOB, job):
        raise NotFound("未找到该任务。")
    return job


def import_too_big(actor: Member | None, data: bytes, filename: str, settings: Settings = DEFAULTS) -> bool:
    """Whether a roster file the actor may import (refused first, like the import itself) holds
    more than JOB_INLINE_ROWS rows: only that many are read to tell."""
    authz.authorize(actor, authz.IMPORT_MEMBERS)
    return not roster_fits(data, filename, int(settings.job_inline_rows), settings)


def named_org(session: Session, actor: Member | None, org_id: int | None) -> Organization | None:
    """The organization `org_id` names (None: the actor's own; None too for an unknown id, left to
    the domain function to refuse in its words)."""
    if org_id is None:
        return actor.org if actor is not None else None
    return session.get(Organization, org_id) if fits_id(org_id) else None
