"""The console's activities pages: the list, create, edit, cancel (the registered are told, unsent
reminders withdrawn), one activity's attendance (names, late sign-ins, proxies) with its .xlsx, its
leave requests (decided through app/console/orglife.py) and the link to its meeting record, the
meeting-room screen link, and the yearly quota report with its .xlsx.

Each view reads the form, calls the domain function the API and the chatbot call, and words the
answer; every permission is asked of models/authz.py by those functions (get_managed_activity,
create_activity, report_org).
"""

from datetime import datetime

from flask import flash, redirect, render_template, request, url_for

from app.api.files import xlsx_response
from app.console import bp
from app.console import jobs as jobs_pages
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db
from models import authz, clock, job_kinds, now_utc
from models.activity import (
    AUDIENCES,
    KINDS,
    METHODS,
    ActivityChanges,
    NewActivity,
    activities_for,
    attendance,
    cancel_activity_report,
    create_activity,
    edit_activity,
    get_managed_activity,
    leaves_of,
)
from models.base import DomainError
from models.quota import attendance_xlsx, quota_page, quota_report, quota_xlsx, quotas_from_settings, report_org

PER_PAGE = 20


def refused(error: DomainError):
    """A domain refusal on a page: its Chinese words, with its status (403, 404 …)."""
    return render_template("console/activities_error.html", manager=current_manager(), message=error.message,
                           back=url_for("console.activities")), error.status


def _page_number() -> int:
    return request.args.get("page", 1, type=int) or 1


# The list ----------------------------------------------------------------------------------------
@bp.get("/activities")
@login_required
def activities():
    manager = current_manager()
    upcoming = request.args.get("all") != "1"
    listing = activities_for(db.session, manager, now_utc(), upcoming=upcoming, page=_page_number(),
                             per_page=PER_PAGE)
    manageable = {a.id for a in listing.items if authz.can(manager, authz.MANAGE_ACTIVITY, a.org)}
    return render_template("console/activities.html", manager=manager, listing=listing, upcoming=upcoming,
                           manageable=manageable, tz=current_settings().tz, clock=clock, audiences=AUDIENCES)


# Create and edit ---------------------------------------------------------------------------------
class FormError(DomainError):
    """A form field that cannot be read (a date, a number)."""


def _moment(field: str, label: str, *, required: bool = True) -> datetime | None:
    raw = (request.form.get(field) or "").strip()
    if not raw:
        if required:
            raise FormError(f"请填写{label}。")
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise FormError(f"{label}的格式不对，例如 2026-12-04 15:00。") from None
    return moment.replace(tzinfo=current_settings().tz) if moment.tzinfo is None else moment


def _number(field: str, label: str) -> int | None:
    raw = (request.form.get(field) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise FormError(f"{label}应为整数。")
    return int(raw)


def _local_input(moment: datetime | None) -> str:
    """A moment as a datetime-local input's value, in local time."""
    return f"{moment.astimezone(current_settings().tz):%Y-%m-%dT%H:%M}" if moment else ""


def _form_page(template: str, *, status: int = 200, **context):
    return render_template(template, manager=current_manager(), kinds=KINDS, audiences=AUDIENCES,
                           form=request.form, **context), status


@bp.route("/activities/new", methods=["GET", "POST"])
@login_required
def new_activity():
    if request.method == "GET":
        return _form_page("console/activities_form.html", activity=None, values={"kind": KINDS[0]})
    form = request.form
    try:
        capacity = _number("capacity", "名额")
        activity = create_activity(db.session, current_manager(), NewActivity(
            kind=form.get("kind", ""), title=form.get("title", ""), starts_at=_moment("starts_at", "开始时间"),
            ends_at=_moment("ends_at", "结束时间", required=False), place=form.get("place", ""),
            audience=form.get("audience") or None, capacity=capacity,
            registration=form.get("registration") == "1" or capacity is not None,
            points=_number("points", "积分")), now=now_utc(), settings=current_settings())
    except DomainError as error:
        db.session.rollback()
        return _form_page("console/activities_form.html", status=400, activity=None, values=form,
                          error=error.message)
    flash(f"已发布活动 {activity.number}「{activity.title}」，签到码 {activity.code}。", "success")
    return redirect(url_for("console.activity", activity_id=activity.id))


@bp.route("/activities/<int:activity_id>/edit", methods=["GET", "POST"])
@login_required
def activity_edit(activity_id: int):
    try:
        activity = get_managed_activity(db.session, activity_id, current_manager())
    except DomainError as error:
        return refused(error)
    if request.method == "GET":
        values = {"title": activity.title, "place": activity.place, "starts_at": _local_input(activity.starts_at),
                  "ends_at": _local_input(activity.ends_at)}
        return _form_page("console/activities_form.html", activity=activity, values=values)
    form = request.form
    try:
        told = edit_activity(db.session, activity, ActivityChanges(
            title=form.get("title", ""), place=form.get("place", ""), starts_at=_moment("starts_at", "开始时间"),
            ends_at=_moment("ends_at", "结束时间", required=False)), by=current_manager(), now=now_utc(),
            settings=current_settings())
    except DomainError as error:
        db.session.rollback()
        return _form_page("console/activities_form.html", status=400, activity=activity, values=form,
                          error=error.message)
    flash(f"已保存活动 {activity.number} 的修改" + (f"，已通知 {told} 人。" if told else "。"), "success")
    return redirect(url_for("console.activity", activity_id=activity.id))


@bp.post("/activities/<int:activity_id>/cancel")
@login_required
def activity_cancel(activity_id: int):
    try:
        activity = get_managed_activity(db.session, activity_id, current_manager())
        done = cancel_activity_report(db.session, activity, reason=request.form.get("reason", ""),
                                      by=current_manager(), now=now_utc(), settings=current_settings())
    except DomainError as error:
        db.session.rollback()
        return refused(error)
    flash(f"已取消活动 {done.activity.number}「{done.activity.title}」，已通知 {done.told} 人，"
          f"撤回未发送的提醒 {done.withdrawn} 条。", "success")
    return redirect(url_for("console.activities"))


# One activity: attendance ------------------------------------------------------------------------
@bp.get("/activities/<int:activity_id>")
@login_required
def activity(activity_id: int):
    try:
        found = get_managed_activity(db.session, activity_id, current_manager())
    except DomainError as error:
        return refused(error)
    report = attendance(db.session, found, current_settings())
    expected_ids = {m.id for m in report.expected}
    rows = [{"checkin": c, "late": c.member_id in report.late, "expected": c.member_id in expected_ids,
             "method": METHODS.get(c.method, c.method)} for c in report.present]
    present = report.came
    return render_template("console/activities_detail.html", manager=current_manager(), activity=found,
                           report=report, rows=rows, present=present, late=sum(1 for r in rows if r["late"]),
                           proxies=sum(1 for c in report.present if c.proxy_by_id is not None),
                           screen_url=url_for("checkin_page.page", token=found.token, _external=True),
                           tz=current_settings().tz, clock=clock, audiences=AUDIENCES,
                           cancellable=found.ends_at > now_utc(), leaves=leaves_of(db.session, found))


@bp.get("/activities/<int:activity_id>/attendance.xlsx")
@login_required
def activity_attendance_xlsx(activity_id: int):
    try:
        found = get_managed_activity(db.session, activity_id, current_manager())
    except DomainError as error:
        return refused(error)
    return xlsx_response(attendance_xlsx(db.session, found, current_settings()), f"attendance-{found.id}.xlsx",
                         f"出勤-{found.id}.xlsx")


# The yearly quota report -------------------------------------------------------------------------
def _year() -> int:
    year = request.args.get("year", type=int)
    this_year = now_utc().astimezone(current_settings().tz).year
    return year if year and 2000 <= year <= this_year + 1 else this_year


@bp.get("/quota")
@login_required
def activities_quota():
    settings = current_settings()
    year = _year()
    try:
        org = report_org(db.session, current_manager(), None)
    except DomainError as error:
        return refused(error)
    listing = quota_page(db.session, org, year, quotas_from_settings(settings), settings,
                         page=max(1, _page_number()), per_page=PER_PAGE)
    return render_template("console/activities_quota.html", manager=current_manager(), org=org, year=year,
                           listing=listing, behind=listing.behind)


@bp.get("/quota.xlsx")
@login_required
def activities_quota_xlsx():
    settings = current_settings()
    year = _year()
    try:
        org = report_org(db.session, current_manager(), None)
        if job_kinds.too_big(job_kinds.members_in(db.session, org), settings):
            return jobs_pages.started(job_kinds.start(db.session, current_manager(), job_kinds.QUOTA_EXPORT, org,
                                                      action=authz.LIST_MEMBERS, params={"year": year}))
    except DomainError as error:
        return refused(error)
    rows = quota_report(db.session, org, year, quotas_from_settings(settings), settings)
    return xlsx_response(quota_xlsx(rows, year), f"quota-{year}.xlsx", f"{year}年度完成情况.xlsx")
