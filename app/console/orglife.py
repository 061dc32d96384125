"""The console's 组织生活 pages: each branch's rhythm of 三会一课 (branches × months, held with the
attendance rate and whether a record exists, scheduled, missed) with its .xlsx; the quarterly
ranking (季排名) with the parts of its score; the leave queue of the subtree with 准假 / 不准假; one
occasion's meeting record (read, write, rewrite; its photos; the attendance from the sign-ins); and
a branch's record book for a year as Word and .xlsx.

Each view calls the function the API calls (app/api/rhythm.py, app/api/leave.py,
app/api/records.py) and words the answer; every permission is asked of models/authz.py by those
functions (report_org, get_managed_activity, pending_leaves_for, decide_leave, record_photo).
"""

import logging

import requests
from flask import Response, current_app, flash, redirect, render_template, request, url_for
from wechatpy.exceptions import WeChatClientException

from app.api.files import DOCX, xlsx_response
from app.api.wishes import photo_response
from app.console import bp
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db, get_redis
from models import Forbidden, NotFound, clock, now_utc, photos
from models.activity import attendance, decide_leave, get_managed_activity, pending_leaves_for
from models.base import DomainError
from models.quota import report_org
from models.records import (
    MAX_CONTENT,
    MAX_DECISIONS,
    MAX_NAME,
    MAX_TOPIC,
    RecordText,
    record_book,
    record_book_docx,
    record_book_xlsx,
    record_of,
    record_photo,
    write_record,
)
from models.rhythm import DUE, HELD, MISSED, SCHEDULED, quarter_ranking, rhythm_table, rhythm_xlsx
from scheduler.wechat_api import official_account_client

log = logging.getLogger(__name__)

PER_PAGE = 20
# A rhythm cell's status → the badge it wears.
BADGES = {HELD: "text-bg-success", SCHEDULED: "text-bg-info", MISSED: "text-bg-danger", DUE: "text-bg-secondary"}
# The parts of the ranking's score, in the order shown (RANKING_WEIGHTS names them).
RANK_PARTS = (("held", "按时开展"), ("attendance", "出勤"), ("records", "记录"), ("wishes", "心愿完成"),
              ("notices", "通知阅读"))
PHOTO_UNREACHABLE = "暂时无法从微信取回这张照片，请稍后再试。"


def _refused(error: DomainError, back: str):
    """A domain refusal on a page: its Chinese words, with its status (403, 404 …)."""
    return render_template("console/activities_error.html", manager=current_manager(), message=error.message,
                           back=back), error.status


def _today():
    return now_utc().astimezone(current_settings().tz)


def _year() -> int:
    year = request.args.get("year", type=int)
    this_year = _today().year
    return year if year and 2000 <= year <= this_year + 1 else this_year


def _quarter(default: int | None) -> int | None:
    quarter = request.args.get("quarter", type=int)
    return quarter if quarter in (1, 2, 3, 4) else default


def _org():
    """The organization the page is about: ?org=<id> if the manager manages it, their own otherwise."""
    return report_org(db.session, current_manager(), request.args.get("org", type=int))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


# The rhythm table ----------------------------------------------------------------------------------
@bp.get("/orglife")
@login_required
def orglife():
    try:
        org = _org()
    except DomainError as error:
        return _refused(error, url_for("console.dashboard"))
    year, quarter = _year(), _quarter(None)
    rows = rhythm_table(db.session, current_manager(), org, year, now_utc(), current_settings())
    months = list(range((quarter - 1) * 3 + 1, quarter * 3 + 1)) if quarter else list(range(1, 13))
    return render_template("console/orglife.html", manager=current_manager(), org=org, year=year, quarter=quarter,
                           rows=rows, months=months, badges=BADGES, percent=_percent,
                           rhythm=current_settings().rhythm)


@bp.get("/orglife/rhythm.xlsx")
@login_required
def orglife_rhythm_xlsx():
    try:
        org = _org()
    except DomainError as error:
        return _refused(error, url_for("console.orglife"))
    year = _year()
    rows = rhythm_table(db.session, current_manager(), org, year, now_utc(), current_settings())
    return xlsx_response(rhythm_xlsx(rows, year), f"rhythm-{year}.xlsx", f"{year}年组织生活开展情况.xlsx")


# The quarterly ranking -----------------------------------------------------------------------------
@bp.get("/orglife/ranking")
@login_required
def orglife_ranking():
    try:
        org = _org()
    except DomainError as error:
        return _refused(error, url_for("console.orglife"))
    year = _year()
    quarter = _quarter((_today().month - 1) // 3 + 1)
    items = quarter_ranking(db.session, current_manager(), org, year, quarter, now_utc(), current_settings())
    return render_template("console/orglife_ranking.html", manager=current_manager(), org=org, year=year,
                           quarter=quarter, items=items, parts=RANK_PARTS, weights=current_settings().weights,
                           percent=_percent)


# The leave queue -------------------------------------------------------------------------------------
@bp.get("/orglife/leaves")
@login_required
def orglife_leaves():
    page = max(1, request.args.get("page", 1, type=int) or 1)
    try:
        queue = pending_leaves_for(db.session, current_manager(), page=page, per_page=PER_PAGE)
    except DomainError as error:
        return _refused(error, url_for("console.dashboard"))
    return render_template("console/orglife_leaves.html", manager=current_manager(), queue=queue,
                           tz=current_settings().tz, clock=clock, now=now_utc())


@bp.post("/orglife/leaves/<int:activity_id>/<int:member_id>")
@login_required
def orglife_leave_decide(activity_id: int, member_id: int):
    """准假 or 不准假 (the form's `decision`); back to the activity's page or to the queue."""
    back = (url_for("console.activity", activity_id=activity_id) if request.form.get("back") == "activity"
            else url_for("console.orglife_leaves"))
    decision = request.form.get("decision")
    if decision not in ("approve", "refuse"):
        flash("请选择准假或不准假。", "warning")
        return redirect(back)
    try:
        activity = get_managed_activity(db.session, activity_id, current_manager())
        leave = decide_leave(db.session, activity, current_manager(), member_id, decision == "approve",
                             now_utc(), current_settings())
    except (Forbidden, NotFound) as error:
        db.session.rollback()
        return _refused(error, back)
    except DomainError as error:  # decided meanwhile by someone else
        db.session.rollback()
        flash(error.message, "warning")
        return redirect(back)
    flash(f"{leave.member.name} 对活动 {activity.number}「{activity.title}」的请假：{leave.status_name}，"
          "已通知本人。", "success")
    return redirect(back)


# One occasion's meeting record ---------------------------------------------------------------------
def _record_page(activity, *, status: int = 200, values=None, error: str | None = None):
    settings = current_settings()
    record = record_of(db.session, activity.id)
    if values is None:
        values = {"topic": record.topic, "chair": record.chair, "recorder": record.recorder,
                  "content": record.content, "decisions": record.decisions} if record else {}
    report = attendance(db.session, activity, settings)
    late = [c.member.name for c in report.present if c.member_id in report.late]
    limits = {"topic": MAX_TOPIC, "name": MAX_NAME, "content": MAX_CONTENT, "decisions": MAX_DECISIONS}
    return render_template("console/orglife_record.html", manager=current_manager(), activity=activity,
                           record=record, values=values, error=error, report=report, late=late, limits=limits,
                           photo_minutes=settings.record_photo_minutes,
                           tz=settings.tz, clock=clock), status


def _lines(text: str) -> str:
    """A textarea's text with the line breaks the chat and the API send (browsers submit CRLF)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@bp.route("/orglife/records/<int:activity_id>", methods=["GET", "POST"])
@login_required
def orglife_record(activity_id: int):
    try:
        activity = get_managed_activity(db.session, activity_id, current_manager())
    except DomainError as error:
        return _refused(error, url_for("console.orglife_book"))
    if request.method == "GET":
        return _record_page(activity)
    form = request.form
    text = RecordText(content=_lines(form.get("content", "")), topic=form.get("topic", ""),
                      chair=form.get("chair", ""), recorder=form.get("recorder", ""),
                      decisions=_lines(form.get("decisions", "")))
    try:
        write_record(db.session, activity, current_manager(), text, now_utc())
    except DomainError as error:
        db.session.rollback()
        return _record_page(activity, status=error.status, values=form, error=error.message)
    flash(f"已保存{activity.number}「{activity.title}」的会议记录。", "success")
    return redirect(url_for("console.orglife_record", activity_id=activity.id))


@bp.get("/orglife/records/<int:activity_id>/photos/<int:photo_id>")
@login_required
def orglife_record_photo(activity_id: int, photo_id: int):
    """A photo of a record: the copy kept here, or (in the minutes before the scheduler keeps one)
    fetched from WeChat, where photos sent to the Official Account in chat arrive."""
    back = url_for("console.orglife_record", activity_id=activity_id)
    try:
        activity = get_managed_activity(db.session, activity_id, current_manager())
        photo = record_photo(db.session, current_manager(), activity, photo_id)
        if photos.kept(photo.media_id) or photos.gone(photo.media_id):
            return photo_response(photo)
    except DomainError as error:
        return _refused(error, back)
    media_id = photo.media_id
    db.session.rollback()  # nothing to write: no transaction left open during the call to WeChat
    client = official_account_client(current_settings(), get_redis(current_app))
    try:
        answer = client.call(lambda: client.media.download(media_id))
    except WeChatClientException as exc:  # 40007: the temporary media expired (or never existed)
        log.info("record photo %s: WeChat answered %s", photo_id, exc)
        return _refused(NotFound(photos.PHOTO_GONE), back)
    except requests.RequestException as exc:
        log.warning("record photo %s: WeChat unreachable: %s", photo_id, exc)
        return render_template("console/activities_error.html", manager=current_manager(),
                               message=PHOTO_UNREACHABLE, back=back), 502
    data = answer.content if isinstance(answer, requests.Response) else b""
    kind = photos.image_kind(data)
    if kind is None:  # not an image we know: never served as whatever WeChat called it
        return _refused(NotFound(photos.PHOTO_GONE), back)
    return Response(data, mimetype=photos.IMAGE_TYPES[kind],
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


# The record book ---------------------------------------------------------------------------------
def _book():
    org, year = _org(), _year()
    return org, year, record_book(db.session, current_manager(), org, year, now_utc(), current_settings())


@bp.get("/orglife/book")
@login_required
def orglife_book():
    try:
        org, year, entries = _book()
    except DomainError as error:
        return _refused(error, url_for("console.orglife"))
    return render_template("console/orglife_book.html", manager=current_manager(), org=org, year=year,
                           entries=entries, tz=current_settings().tz, clock=clock)


@bp.get("/orglife/book.docx")
@login_required
def orglife_book_docx():
    try:
        org, year, entries = _book()
    except DomainError as error:
        return _refused(error, url_for("console.orglife_book"))
    return xlsx_response(record_book_docx(entries, org, year, current_settings()), f"records-{year}.docx",
                         f"{org.name}{year}年会议记录.docx", DOCX)


@bp.get("/orglife/book.xlsx")
@login_required
def orglife_book_xlsx():
    try:
        org, year, entries = _book()
    except DomainError as error:
        return _refused(error, url_for("console.orglife_book"))
    return xlsx_response(record_book_xlsx(entries, org, year, current_settings()), f"records-{year}.xlsx",
                         f"{org.name}{year}年会议记录.xlsx")
