"""Request and response schemas of the activities, sign-in, attendance and quota endpoints."""

from datetime import UTC, datetime

import marshmallow as ma
from flask import request
from marshmallow import ValidationError, fields, validate, validates_schema

from app.api.schemas import ID, LocalDateTime, Query, page_field, page_schema, per_page_field, text
from app.extensions import current_settings
from models.activity import AUDIENCES, KINDS, METHODS, REGISTERED, WAITING


class AwareDateTime(fields.DateTime):
    """An ISO 8601 time; with an offset as given, without one in the app's time zone (TIMEZONE)."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=current_settings().tz)
        try:
            moment = moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError("时间超出范围") from None
        if not datetime(2000, 1, 1, tzinfo=UTC) <= moment <= datetime(2100, 1, 1, tzinfo=UTC):
            raise ValidationError("时间超出范围")
        return moment


def page_url(activity) -> str:
    """The meeting-room page of an activity, on PUBLIC_BASE_URL (else this server's address)."""
    base = str(current_settings().public_base_url or request.host_url).rstrip("/")
    return f"{base}/checkin/{activity.token}"


def local_iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(current_settings().tz).isoformat(timespec="seconds")


# Listing and detail --------------------------------------------------------------------------------
class ActivityQuerySchema(Query):
    upcoming = fields.Boolean(load_default=True, metadata={"description": "1：只列未结束的活动（默认）；0：全部"})
    page = page_field()
    per_page = per_page_field()


class ActivitySchema(ma.Schema):
    id = fields.Integer(required=True)
    number = fields.String(required=True, metadata={"example": "#12"})
    kind = fields.String(required=True, metadata={"enum": list(KINDS)})
    title = fields.String(required=True)
    org = fields.Function(lambda a: {"id": a.org.id, "name": a.org.name, "full_name": a.org.full_name},
                          required=True, metadata={"type": "object"})
    audience = fields.String(required=True, metadata={"enum": list(AUDIENCES)})
    audience_text = fields.Function(lambda a: AUDIENCES[a.audience], required=True, metadata={"type": "string"})
    starts_at = LocalDateTime(required=True)
    ends_at = LocalDateTime(required=True)
    place = fields.String(required=True)
    latitude = fields.Float(required=True, allow_none=True)
    longitude = fields.Float(required=True, allow_none=True)
    radius_m = fields.Integer(required=True, allow_none=True)
    registration = fields.Boolean(required=True, metadata={"description": "需报名"})
    capacity = fields.Integer(required=True, allow_none=True)
    registered_count = fields.Integer(required=True)
    points = fields.Integer(required=True)
    rotating = fields.Boolean(required=True, metadata={"description": "签到码每分钟轮换"})


ActivityPageSchema = page_schema(ActivitySchema, "ActivityPage")


class ActivityDetailSchema(ma.Schema):
    activity = fields.Nested(ActivitySchema, required=True)
    registration = fields.String(required=True, allow_none=True, metadata={"enum": [REGISTERED, WAITING, None]})
    waiting_ahead = fields.Integer(required=True, allow_none=True, metadata={"description": "候补名单上排在前面的人数"})
    checked_in_at = fields.Method("_in", required=True, allow_none=True,
                                  metadata={"type": "string", "format": "date-time", "nullable": True})
    checked_out_at = fields.Method("_out", required=True, allow_none=True,
                                   metadata={"type": "string", "format": "date-time", "nullable": True})
    checked_in_count = fields.Integer(required=True, attribute="count")
    manager = fields.Method("_manager", required=True, allow_none=True, metadata={
        "type": "object", "nullable": True, "description": "签到码和签到页，仅本组织书记、管理员可见",
        "properties": {"code": {"type": "string", "nullable": True, "description": "固定签到码；轮换时为 null"},
                       "page_url": {"type": "string"}},
        "required": ["code", "page_url"]})

    def _manager(self, status):
        if not status.manager:
            return None
        return {"code": None if status.activity.rotating else status.activity.code,
                "page_url": page_url(status.activity)}

    def _in(self, status):
        return local_iso(status.checkin.checked_in_at if status.checkin else None)

    def _out(self, status):
        return local_iso(status.checkin.checked_out_at if status.checkin else None)


# Registration, sign-in, sign-out -----------------------------------------------------------------
class RegistrationResultSchema(ma.Schema):
    status = fields.String(required=True, metadata={"enum": [REGISTERED, WAITING]})
    message = fields.String(required=True)


class CheckInSchema(ma.Schema):
    code = text(12, min_length=1, required=True,
                         metadata={"description": "现场显示的签到码", "example": "123456"})
    latitude = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=-180, max=180))

    @validates_schema
    def _both(self, data, **kwargs):
        if (data.get("latitude") is None) != (data.get("longitude") is None):
            raise ValidationError("纬度和经度须同时提供", "latitude")


class CheckInResultSchema(ma.Schema):
    activity_id = fields.Integer(required=True)
    member_id = fields.Integer(required=True)
    name = fields.String(required=True)
    checked_in_at = LocalDateTime(required=True)
    method = fields.String(required=True, metadata={"enum": list(METHODS)})
    distance_m = fields.Float(required=True, allow_none=True)
    count = fields.Integer(required=True, metadata={"description": "当前已签到人数"})
    message = fields.String(required=True)


class ProxyCheckInSchema(ma.Schema):
    member_id = fields.Integer(required=True, validate=ID)


class CheckOutResultSchema(ma.Schema):
    activity_id = fields.Integer(required=True)
    checked_out_at = LocalDateTime(required=True)
    service_minutes = fields.Integer(required=True)
    points = fields.Integer(required=True)
    message = fields.String(required=True)


# Administration ----------------------------------------------------------------------------------
class ActivityCreateSchema(ma.Schema):
    kind = text(20, min_length=1, required=True,
                         metadata={"example": "主题党日", "description": "、".join(KINDS)})
    title = text(100, min_length=1, required=True)
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "组织 id；默认为本人所在组织"})
    audience = fields.String(load_default=None, validate=validate.OneOf(list(AUDIENCES)),
                             metadata={"description": "branch 本支部党员（默认）；subtree 下属全体党员；"
                                                      "open 党员和志愿者"})
    start = AwareDateTime(required=True, metadata={"example": "2026-12-04T15:00:00+08:00"})
    end = AwareDateTime(load_default=None, metadata={"description": "默认开始后 2 小时"})
    place = text(200, load_default="")
    latitude = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=-180, max=180))
    radius = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=10, max=100000),
                            metadata={"description": "签到范围（米）"})
    capacity = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=100000))
    registration = fields.Boolean(load_default=False, metadata={"description": "需报名（设名额时自动需要）"})
    points = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=10000))
    rotating = fields.Boolean(load_default=False, metadata={"description": "签到码每分钟轮换，防止转发代签"})

    @validates_schema
    def _position(self, data, **kwargs):
        if (data.get("latitude") is None) != (data.get("longitude") is None):
            raise ValidationError("纬度和经度须同时提供", "latitude")


class ActivityCreatedSchema(ma.Schema):
    activity = fields.Nested(ActivitySchema, required=True)
    number = fields.String(required=True, metadata={"example": "#12"})
    code = fields.String(required=True, metadata={"description": "签到码（轮换时为初始码，以签到页为准）"})
    page_url = fields.String(required=True, metadata={"description": "会议室大屏签到页（请勿转发）"})
    message = fields.String(required=True)


class AttendeeSchema(ma.Schema):
    member_id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    checked_in_at = LocalDateTime(required=True)
    method = fields.String(required=True, metadata={"enum": list(METHODS)})
    method_text = fields.String(required=True)
    proxy_by = fields.String(required=True, allow_none=True, metadata={"description": "代签人"})
    expected = fields.Boolean(required=True, metadata={"description": "在应到名单内"})
    checked_out_at = LocalDateTime(required=True, allow_none=True)
    service_minutes = fields.Integer(required=True, allow_none=True)
    late = fields.Boolean(required=True, metadata={"description": "迟到：开始后超过 LATE_GRACE_MINUTES 才签到"})


class AbsentSchema(ma.Schema):
    member_id = fields.Integer(required=True, attribute="id")
    name = fields.String(required=True)
    kind = fields.String(required=True)


class AttendanceSchema(ma.Schema):
    activity = fields.Nested(ActivitySchema, required=True)
    expected = fields.Integer(required=True, metadata={"description": "应到人数"})
    present = fields.Integer(required=True, metadata={"description": "实到：应到者中已签到人数"})
    attendees = fields.List(fields.Nested(AttendeeSchema), required=True)
    on_leave = fields.List(fields.Nested(AbsentSchema), required=True, metadata={"description": "请假（已准假）"})
    absent = fields.List(fields.Nested(AbsentSchema), required=True, metadata={"description": "缺席（未请假）"})


class YearQuerySchema(Query):
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100),
                          metadata={"description": "默认今年"})


class ReportQuerySchema(YearQuerySchema):
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "组织 id；默认为本人所在组织"})


class QuotaQuerySchema(ReportQuerySchema):
    page = page_field()
    per_page = per_page_field(50, 500)


class QuotaRowSchema(ma.Schema):
    member_id = fields.Function(lambda r: r.member.id, required=True, metadata={"type": "integer"})
    name = fields.Function(lambda r: r.member.name, required=True, metadata={"type": "string"})
    kind = fields.Function(lambda r: r.member.kind, required=True, metadata={"type": "string"})
    org = fields.Function(lambda r: r.member.org.full_name, required=True, metadata={"type": "string"})
    org_life = fields.Integer(required=True, metadata={"description": "组织生活次数"})
    org_life_quota = fields.Integer(required=True)
    volunteer = fields.Integer(required=True, metadata={"description": "志愿服务次数"})
    volunteer_quota = fields.Integer(required=True)
    shortfall = fields.Integer(required=True, metadata={"description": "差额"})
    behind = fields.Boolean(required=True, metadata={"description": "未达标"})


QuotaReportSchema = page_schema(QuotaRowSchema, "QuotaReport", order="未达标者在前", year=fields.Integer(required=True),
                                behind=fields.Integer(required=True, metadata={"description": "未达标人数"}))


class MyQuotaSchema(ma.Schema):
    year = fields.Integer(required=True)
    applies = fields.Boolean(required=True, metadata={"description": "本人类别是否有年度要求"})
    progress = fields.Nested(QuotaRowSchema, required=True, allow_none=True)


class PeriodQuerySchema(ma.Schema):
    from_ = fields.Date(required=True, data_key="from", metadata={"example": "2026-01-01"})
    to = fields.Date(required=True, metadata={"example": "2026-12-31"})
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "组织 id；默认为本人所在组织"})

    @validates_schema
    def _range(self, data, **kwargs):
        for key in ("from_", "to"):
            if key in data and not 2000 <= data[key].year <= 2100:
                raise ValidationError("日期超出范围", "from" if key == "from_" else key)


class CancelledSchema(ma.Schema):
    id = fields.Integer(required=True)
    message = fields.String(required=True)
