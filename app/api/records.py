"""Meeting records (会议记录) and a branch's record book over the API (secretaries and admins). The
rules are models/records.py's, as for the chatbot."""

import marshmallow as ma
from marshmallow import fields

from app.api import PREFIX
from app.api.activity_schemas import ReportQuerySchema
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.files import DOCX, xlsx_doc, xlsx_response
from app.api.schemas import LocalDateTime, text
from app.extensions import current_settings, db
from models import NotFound, now_utc
from models.activity import get_managed_activity
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
    write_record,
)

blp = Blueprint("records", __name__, url_prefix=f"{PREFIX}/admin", description="会议记录与记录本（书记、管理员）")


class RecordWriteSchema(ma.Schema):
    topic = text(MAX_TOPIC, load_default="", metadata={"description": "议题；默认为活动标题"})
    chair = text(MAX_NAME, load_default="", metadata={"description": "主持人"})
    recorder = text(MAX_NAME, load_default="", metadata={"description": "记录人；默认为本人"})
    content = text(MAX_CONTENT, min_length=1, required=True,
                   metadata={"description": "会议内容"})
    decisions = text(MAX_DECISIONS, load_default="", metadata={"description": "决议"})


class RecordSchema(ma.Schema):
    activity_id = fields.Integer(required=True)
    topic = fields.String(required=True)
    chair = fields.String(required=True)
    recorder = fields.String(required=True)
    content = fields.String(required=True)
    decisions = fields.String(required=True)
    photos = fields.Function(lambda r: len(r.photos), required=True,
                             metadata={"type": "integer", "description": "照片张数"})
    written_at = LocalDateTime(required=True)


def _year(args) -> int:
    return args["year"] or now_utc().astimezone(current_settings().tz).year


@blp.route("/activities/<int:activity_id>/record", methods=["PUT"])
@blp.arguments(RecordWriteSchema)
@blp.response(200, RecordSchema)
@blp.doc(operationId="writeMeetingRecord", responses=errors(400, 401, 403, 404, 422))
def write(args, activity_id):
    """写入（或改写）一次组织生活的会议记录：议题、主持人、记录人、内容、决议。活动开始后才能记录。"""
    activity = get_managed_activity(db.session, activity_id, current_member())
    return write_record(db.session, activity, current_member(), RecordText(**args), now_utc())


@blp.route("/activities/<int:activity_id>/record", methods=["GET"])
@blp.response(200, RecordSchema)
@blp.doc(operationId="getMeetingRecord", responses=errors(401, 403, 404))
def show(activity_id):
    """查看一次组织生活的会议记录。"""
    activity = get_managed_activity(db.session, activity_id, current_member())
    record = record_of(db.session, activity.id)
    if record is None:
        raise NotFound(f"活动 {activity.number} 还没有会议记录。", data={"what": "record"})
    return record


def _book(args):
    settings = current_settings()
    org = report_org(db.session, current_member(), args["org"])
    year = _year(args)
    return org, year, record_book(db.session, current_member(), org, year, now_utc(), settings)


@blp.route("/reports/record-book.docx", methods=["GET"])
@blp.arguments(ReportQuerySchema, location="query")
@blp.doc(**xlsx_doc("一个组织一年的会议记录本 .docx", DOCX))
@blp.doc(operationId="exportRecordBookDocx", responses=errors(401, 403, 404, 422))
def book_docx(args):
    """导出一个组织一年的会议记录本（Word）：每次组织生活一节，按日期先后，含出勤名单和记录。"""
    org, year, entries = _book(args)
    return xlsx_response(record_book_docx(entries, org, year, current_settings()), f"records-{year}.docx",
                         f"{org.name}{year}年会议记录.docx", DOCX)


@blp.route("/reports/record-book.xlsx", methods=["GET"])
@blp.arguments(ReportQuerySchema, location="query")
@blp.doc(**xlsx_doc("一个组织一年的会议记录 .xlsx"))
@blp.doc(operationId="exportRecordBookXlsx", responses=errors(401, 403, 404, 422))
def book_xlsx(args):
    """导出一个组织一年的会议记录（.xlsx），每次组织生活一行。"""
    org, year, entries = _book(args)
    return xlsx_response(record_book_xlsx(entries, org, year, current_settings()), f"records-{year}.xlsx",
                         f"{org.name}{year}年会议记录.xlsx")
