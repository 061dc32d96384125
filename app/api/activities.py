"""Activities for members (list, view, register, sign in, sign out, my quota) and for secretaries
(create, cancel, attendance, proxy sign-in, quota and period reports).

Each view validates, calls the domain function the chatbot calls (models/activity.py,
models/quota.py) with the same settings, and serializes: the rules are the domain's, the
`message` of an answer is worded in app/api/presenter.py.
"""



from app.api import PREFIX, presenter
from app.api.activity_schemas import (
    ActivityCreatedSchema,
    ActivityCreateSchema,
    ActivityDetailSchema,
    ActivityPageSchema,
    ActivityQuerySchema,
    AttendanceSchema,
    CancelledSchema,
    CheckInResultSchema,
    CheckInSchema,
    CheckOutResultSchema,
    MyQuotaSchema,
    PeriodQuerySchema,
    ProxyCheckInSchema,
    QuotaQuerySchema,
    QuotaReportSchema,
    RegistrationResultSchema,
    ReportQuerySchema,
    YearQuerySchema,
    page_url,
)
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.files import xlsx_doc, xlsx_response
from app.api.jobs import BACKGROUND, STARTED, started
from app.extensions import current_settings, db
from models import authz, job_kinds, now_utc
from models.activity import (
    METHODS,
    REGISTERED,
    NewActivity,
    activities_for,
    activity_status,
    attendance,
    cancel_activity,
    cancel_registration,
    check_in_by_code,
    check_out,
    create_activity,
    get_activity,
    get_managed_activity,
    hours_text,
    period_attendance,
    period_bounds,
    proxy_check_in_member,
    served_minutes,
    waiting_ahead,
)
from models.activity import register as register_for
from models.base import NotFound
from models.org import Organization
from models.quota import (
    attendance_xlsx,
    member_progress,
    period_attendance_xlsx,
    quota_page,
    quota_report,
    quota_xlsx,
    quotas_from_settings,
    report_org,
)

blp = Blueprint("activities", __name__, url_prefix=PREFIX, description="活动、报名与签到")
admin_blp = Blueprint("admin_activities", __name__, url_prefix=f"{PREFIX}/admin",
                      description="活动管理与出勤统计（书记、管理员）")


def _year(args) -> int:
    return args["year"] or now_utc().astimezone(current_settings().tz).year


# Members ---------------------------------------------------------------------------------------
@blp.route("/activities", methods=["GET"])
@blp.arguments(ActivityQuerySchema, location="query")
@blp.response(200, ActivityPageSchema)
@blp.doc(operationId="listActivities", responses=errors(401, 403, 404, 422))
def list_activities(args):
    """我可以参加的活动（默认只列未结束的，最近的在前），分页。"""
    return activities_for(db.session, current_member(), now_utc(), upcoming=args["upcoming"], page=args["page"],
                          per_page=args["per_page"])


@blp.route("/activities/<int:activity_id>", methods=["GET"])
@blp.response(200, ActivityDetailSchema)
@blp.doc(operationId="getActivity", responses=errors(401, 403, 404))
def show_activity(activity_id):
    """查看一个活动，以及我的报名、签到情况；书记、管理员还能看到签到码和签到页。"""
    return activity_status(db.session, activity_id, current_member())


@blp.route("/activities/<int:activity_id>/register", methods=["POST"])
@blp.response(200, RegistrationResultSchema)
@blp.doc(operationId="registerForActivity", responses=errors(400, 401, 403, 404))
def register(activity_id):
    """报名参加活动；名额已满时进入候补名单。"""
    session = db.session
    activity = get_activity(session, activity_id)
    reg = register_for(session, activity, current_member(), now_utc())
    if reg.status == REGISTERED:
        return {"status": reg.status, "message": presenter.registered(activity)}
    return {"status": reg.status, "message": presenter.waiting(activity, waiting_ahead(session, activity, reg) + 1)}


@blp.route("/activities/<int:activity_id>/register", methods=["DELETE"])
@blp.response(200, CancelledSchema)
@blp.doc(operationId="cancelRegistration", responses=errors(400, 401, 403, 404))
def unregister(activity_id):
    """取消报名；候补名单上的第一位自动递补。"""
    activity = get_activity(db.session, activity_id)
    cancel_registration(db.session, activity, current_member(), now_utc(), current_settings())
    return {"id": activity.id, "message": presenter.registration_cancelled(activity)}


def _checkin_result(result, message: str) -> dict:
    checkin = result.checkin
    return {"activity_id": result.activity.id, "member_id": checkin.member_id, "name": checkin.member.name,
            "checked_in_at": checkin.checked_in_at, "method": checkin.method, "distance_m": checkin.distance_m,
            "count": result.count, "message": message}


@blp.route("/activities/<int:activity_id>/checkin", methods=["POST"])
@blp.arguments(CheckInSchema)
@blp.response(200, CheckInResultSchema)
@blp.doc(operationId="checkIn", responses=errors(400, 401, 403, 404, 409, 422))
def checkin(args, activity_id):
    """小程序签到：现场签到码，可附带位置（设有活动地点时核对距离）。

    与扫码、公众号「签到」同一规则：签到时间、参加范围、签到码、距离；重复签到返回 409「已签到」。
    """
    position = (args["latitude"], args["longitude"]) if args["latitude"] is not None else None
    result = check_in_by_code(db.session, current_member(), args["code"], now=now_utc(), method="app",
                              activity_id=activity_id, position=position, settings=current_settings())
    return _checkin_result(result, presenter.checked_in(result.activity, result.count))


@blp.route("/activities/<int:activity_id>/checkout", methods=["POST"])
@blp.response(200, CheckOutResultSchema)
@blp.doc(operationId="checkOut", responses=errors(400, 401, 403, 404))
def checkout(activity_id):
    """志愿服务签退：记录服务时长（不超过活动时长），积分只记一次。"""
    activity = get_activity(db.session, activity_id)
    settings = current_settings()
    done = check_out(db.session, activity, current_member(), now=now_utc(), settings=settings)
    served = served_minutes(activity, done.checked_in_at, done.checked_out_at)
    short = settings.service_min_minutes if served < settings.service_min_minutes else None
    return {"activity_id": activity.id, "checked_out_at": done.checked_out_at,
            "service_minutes": done.service_minutes or 0, "points": activity.points if short is None else 0,
            "message": presenter.checked_out(activity, hours_text(served), short)}


@blp.route("/me/quota", methods=["GET"])
@blp.arguments(YearQuerySchema, location="query")
@blp.response(200, MyQuotaSchema)
@blp.doc(operationId="getMyQuota", responses=errors(401, 403, 404, 422))
def my_quota(args):
    """我本年度（或指定年份）的组织生活、志愿服务完成情况。"""
    year = _year(args)
    settings = current_settings()
    row = member_progress(db.session, current_member(), year, quotas_from_settings(settings), settings)
    return {"year": year, "applies": row is not None, "progress": row}


# Secretaries -----------------------------------------------------------------------------------
def _org(org_id: int | None) -> Organization | None:
    if org_id is None:
        return None
    org = db.session.get(Organization, org_id)
    if org is None:
        raise NotFound("没有这个组织。")
    return org


@admin_blp.route("/activities", methods=["POST"])
@admin_blp.arguments(ActivityCreateSchema)
@admin_blp.response(200, ActivityCreatedSchema)
@admin_blp.doc(operationId="createActivity", responses=errors(400, 401, 403, 404, 422))
def create(args):
    """发布活动（本组织或下级组织），返回活动编号、签到码和会议室签到页链接。"""
    activity = create_activity(db.session, current_member(), NewActivity(
        kind=args["kind"], title=args["title"], starts_at=args["start"],
        ends_at=args["end"], place=args["place"], org=_org(args["org"]), audience=args["audience"],
        capacity=args["capacity"], registration=args["registration"], points=args["points"],
        rotating=args["rotating"], latitude=args["latitude"], longitude=args["longitude"],
        radius_m=args["radius"]), now=now_utc(), settings=current_settings(),
    )
    return {"activity": activity, "number": activity.number, "code": activity.code,
            "page_url": page_url(activity), "message": presenter.activity_created(activity)}


@admin_blp.route("/activities/<int:activity_id>", methods=["DELETE"])
@admin_blp.response(200, CancelledSchema)
@admin_blp.doc(operationId="cancelActivity", responses=errors(401, 403, 404))
def cancel(activity_id):
    """取消活动（本组织或下级组织的）。"""
    activity = cancel_activity(db.session, get_managed_activity(db.session, activity_id, current_member()))
    return {"id": activity.id, "message": presenter.activity_cancelled(activity)}


@admin_blp.route("/activities/<int:activity_id>/attendance", methods=["GET"])
@admin_blp.response(200, AttendanceSchema)
@admin_blp.doc(operationId="getAttendance", responses=errors(401, 403, 404))
def show_attendance(activity_id):
    """出勤：应到、实到、请假、缺席人数和名单（含代签、迟到、范围外签到）。"""
    report = attendance(db.session, get_managed_activity(db.session, activity_id, current_member()),
                        current_settings())
    expected_ids = {m.id for m in report.expected}
    attendees = [{
        "member_id": c.member_id, "name": c.member.name, "kind": c.member.kind, "checked_in_at": c.checked_in_at,
        "method": c.method, "method_text": METHODS[c.method],
        "proxy_by": c.proxy_by.name if c.proxy_by is not None else None,
        "expected": c.member_id in expected_ids, "checked_out_at": c.checked_out_at,
        "service_minutes": c.service_minutes, "late": c.member_id in report.late,
    } for c in report.present]
    return {"activity": report.activity, "expected": len(report.expected),
            "present": report.came, "attendees": attendees, "on_leave": report.on_leave,
            "absent": report.absent}


@admin_blp.route("/activities/<int:activity_id>/attendance.xlsx", methods=["GET"])
@admin_blp.doc(**xlsx_doc("一个活动的出勤表 .xlsx"))
@admin_blp.doc(operationId="exportAttendance", responses=errors(401, 403, 404))
def attendance_export(activity_id):
    """导出一个活动的出勤表（.xlsx）。"""
    activity = get_managed_activity(db.session, activity_id, current_member())
    return xlsx_response(attendance_xlsx(db.session, activity, current_settings()), f"attendance-{activity.id}.xlsx",
                 f"出勤-{activity.id}.xlsx")


@admin_blp.route("/activities/<int:activity_id>/proxy-checkin", methods=["POST"])
@admin_blp.arguments(ProxyCheckInSchema)
@admin_blp.response(200, CheckInResultSchema)
@admin_blp.doc(operationId="proxyCheckIn", responses=errors(400, 401, 403, 404, 409, 422))
def proxy_checkin(args, activity_id):
    """代签：为没有智能手机的成员签到，记录为代签。"""
    member = current_member()
    activity = get_managed_activity(db.session, activity_id, member)
    result = proxy_check_in_member(db.session, activity, member, args["member_id"], now=now_utc(),
                                   settings=current_settings())
    message = presenter.proxy_checked_in(activity, result.checkin, result.count, current_settings().tz)
    return _checkin_result(result, message)


@admin_blp.route("/reports/quota", methods=["GET"])
@admin_blp.arguments(QuotaQuerySchema, location="query")
@admin_blp.response(200, QuotaReportSchema)
@admin_blp.doc(operationId="getQuotaReport", responses=errors(401, 403, 404, 422))
def quota(args):
    """年度完成情况：管理范围内每名党员的组织生活、志愿服务次数与要求，未达标者在前（分页）。"""
    org = report_org(db.session, current_member(), args["org"])
    year = _year(args)
    listing = quota_page(db.session, org, year, quotas_from_settings(current_settings()), current_settings(),
                         page=args["page"], per_page=args["per_page"])
    return {"year": year, "behind": listing.behind, "items": listing.items, "total": listing.total,
            "page": args["page"], "per_page": listing.per_page, "pages": listing.pages}


class QuotaExportQuerySchema(ReportQuerySchema):
    background = BACKGROUND["background"]


class PeriodExportQuerySchema(PeriodQuerySchema):
    background = BACKGROUND["background"]


def _in_background(args, org: Organization) -> bool:
    """Whether a subtree's report leaves the request: asked for, or more members than JOB_INLINE_ROWS."""
    return args["background"] or job_kinds.too_big(job_kinds.members_in(db.session, org), current_settings())


@admin_blp.route("/reports/quota.xlsx", methods=["GET"])
@admin_blp.arguments(QuotaExportQuerySchema, location="query")
@admin_blp.doc(**xlsx_doc("年度完成情况 .xlsx"))
@admin_blp.alt_response(202, **STARTED)
@admin_blp.doc(operationId="exportQuotaReport", responses=errors(401, 403, 404, 422))
def quota_export(args):
    """导出年度完成情况（.xlsx，未达标者在前）；成员超过 JOB_INLINE_ROWS 人（或 `background=1`）时转入后台，
    返回 202 和任务。"""
    member = current_member()
    org = report_org(db.session, member, args["org"])
    year = _year(args)
    if _in_background(args, org):
        return started(job_kinds.start(db.session, member, job_kinds.QUOTA_EXPORT, org, action=authz.LIST_MEMBERS,
                                       params={"year": year}))
    rows = quota_report(db.session, org, year, quotas_from_settings(current_settings()), current_settings())
    return xlsx_response(quota_xlsx(rows, year), f"quota-{year}.xlsx", f"{year}年度完成情况.xlsx")


@admin_blp.route("/reports/attendance.xlsx", methods=["GET"])
@admin_blp.arguments(PeriodExportQuerySchema, location="query")
@admin_blp.doc(**xlsx_doc("一段时间内各活动出勤汇总 .xlsx"))
@admin_blp.alt_response(202, **STARTED)
@admin_blp.doc(operationId="exportAttendanceReport", responses=errors(400, 401, 403, 404, 422))
def period_export(args):
    """导出一段时间（按开始日期，含首尾两天）内管理范围各活动的出勤汇总（.xlsx）；成员超过 JOB_INLINE_ROWS 人
    （或 `background=1`）时转入后台，返回 202 和任务。"""
    member = current_member()
    org = report_org(db.session, member, args["org"])
    start, end = period_bounds(args["from_"], args["to"], current_settings().tz)
    if _in_background(args, org):
        return started(job_kinds.start(db.session, member, job_kinds.ATTENDANCE_EXPORT, org,
                                       action=authz.LIST_MEMBERS,
                                       params={"from": args["from_"].isoformat(), "to": args["to"].isoformat()}))
    rows = period_attendance(db.session, org, start, end)
    return xlsx_response(period_attendance_xlsx(rows, current_settings()), "attendance.xlsx",
                 f"活动出勤汇总-{args['from_']:%Y%m%d}-{args['to']:%Y%m%d}.xlsx")
