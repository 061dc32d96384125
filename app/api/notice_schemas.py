"""Request and response schemas of the notices, inbox, org-life rules and subscription endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from app.api import presenter
from app.api.activity_schemas import AwareDateTime
from app.api.schemas import ID, LocalDateTime, OrgRefSchema, Query, page_field, page_schema, per_page_field, text
from app.extensions import current_settings, db
from models import now_utc
from models.member import KINDS
from models.notices import RECEIPT_PER_PAGE
from models.orglife import next_start
from models.outbox import INBOX_KINDS

NULLABLE = {"allow_none": True, "metadata": {"nullable": True}}
RECEIPT_MOST = 1000  # names a receipt may list per group and page


class PageQuerySchema(Query):
    page = page_field()
    per_page = per_page_field()


class ReceiptQuerySchema(Query):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000),
                          metadata={"description": "姓名列表的第几页（每个列表各自分页）"})
    per_page = fields.Integer(load_default=RECEIPT_PER_PAGE, validate=validate.Range(min=1, max=RECEIPT_MOST),
                              metadata={"description": f"每个姓名列表每页的人数（默认 {RECEIPT_PER_PAGE}）"})


class InboxQuerySchema(PageQuerySchema):
    unread = fields.Boolean(load_default=False, metadata={"description": "1：只列未读消息"})


# Notices -------------------------------------------------------------------------------------------
class NoticeCreateSchema(ma.Schema):
    title = text(30, load_default="",
                          metadata={"description": "标题；不填则取正文第一行"})
    body = text(2000, min_length=1, required=True)
    org_id = fields.Integer(load_default=None, validate=ID,
                            metadata={"description": "发给哪个组织（含下级）；默认为本人所在组织"})
    kinds = fields.List(fields.String(validate=validate.OneOf(KINDS)), load_default=None,
                        validate=validate.Length(max=len(KINDS)),
                        metadata={"description": "只发给这些类别的成员；不填为全部"})
    grid_id = fields.Integer(load_default=None, validate=ID, metadata={"description": "只发给这个网格"})
    urgent = fields.Boolean(load_default=False, metadata={"description": "紧急：不受免打扰时段限制"})


class NoticeSchema(ma.Schema):
    id = fields.Integer(required=True)
    number = fields.Function(lambda n: f"#{n.id}", required=True, metadata={"type": "string", "example": "#7"})
    title = fields.String(required=True)
    body = fields.String(required=True)
    urgent = fields.Boolean(required=True)
    org = fields.Nested(OrgRefSchema, required=True)
    kinds = fields.Function(lambda n: [k for k in n.kinds.split(",") if k], required=True,
                            metadata={"type": "array", "items": {"type": "string"}})
    grid_id = fields.Integer(required=True, **NULLABLE)
    reminders = fields.Integer(required=True, metadata={"description": "已再提醒次数"})
    created_at = LocalDateTime(required=True)


class _Created:
    """A models.notices.Published seen as its notice with a recipient_count."""

    def __init__(self, published):
        self.recipient_count = published.recipients
        self._notice = published.notice

    def __getattr__(self, name):
        return getattr(self._notice, name)


class NoticeCreatedSchema(NoticeSchema):
    """A published notice (models.notices.Published): the notice's fields, how many it went to."""

    recipient_count = fields.Integer(required=True, metadata={"description": "收件人数"})
    message = fields.Function(lambda n: presenter.notice_published(n, n.recipient_count), required=True,
                              metadata={"type": "string"})

    @ma.pre_dump
    def _of_published(self, published, **kwargs):
        return _Created(published)


NoticePageSchema = page_schema(NoticeSchema, "NoticePage")


class FailureSchema(ma.Schema):
    count = fields.Integer(required=True)
    names = fields.List(fields.String(), required=True, metadata={"description": "本页的姓名"})


class ReceiptSchema(ma.Schema):
    id = fields.Integer(required=True)
    number = fields.Function(lambda r: f"#{r['id']}", required=True, metadata={"type": "string"})
    title = fields.String(required=True)
    total = fields.Integer(required=True, metadata={"description": "应发人数"})
    page = fields.Integer(required=True, metadata={"description": "姓名列表的页码"})
    per_page = fields.Integer(required=True, metadata={"description": "每个姓名列表每页的人数"})
    pages = fields.Integer(required=True, metadata={"description": "最长的姓名列表的页数"})
    delivered = fields.Integer(required=True, metadata={"description": "已送达（微信已接收，未报告失败）"})
    confirmed = fields.Integer(required=True, metadata={"description": "其中微信已报告送达成功"})
    refused = fields.Integer(required=True, metadata={"description": "用户拒收（微信报告 failed:user block）"})
    refused_names = fields.List(fields.String(), required=True)
    unknown = fields.Integer(required=True, metadata={"description": "状态未知：请求已发出但没有收到微信答复，"
                                                                     "未自动重发；再提醒会重发"})
    unknown_by_reason = fields.Dict(keys=fields.String(), values=fields.Nested(FailureSchema), required=True,
                                    metadata={"description": "状态未知的原因 → 人数和姓名"})
    pending = fields.Integer(required=True, metadata={"description": "待发送"})
    failed = fields.Integer(required=True, metadata={"description": "发送失败"})
    failed_by_reason = fields.Dict(keys=fields.String(), values=fields.Nested(FailureSchema), required=True,
                                   metadata={"description": "失败原因 → 人数和姓名"})
    unbound = fields.Integer(required=True, metadata={"description": "未绑定微信（公众号和小程序都未绑定，无法送达；"
                                                                     "不计入失败）"})
    unbound_names = fields.List(fields.String(), required=True)
    read = fields.Integer(required=True)
    unread = fields.Integer(required=True)
    read_names = fields.List(fields.String(), required=True)
    unread_names = fields.List(fields.String(), required=True)


class RemindedSchema(ma.Schema):
    id = fields.Integer(required=True)
    reminded = fields.Integer(required=True, metadata={"description": "再次发送的人数"})
    message = fields.String(required=True)


# The inbox -----------------------------------------------------------------------------------------
class InboxMessageSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"enum": list(INBOX_KINDS)})
    title = fields.String(required=True)
    body = fields.String(required=True)
    read = fields.Function(lambda m: m.read_at is not None, required=True, metadata={"type": "boolean"})
    read_at = LocalDateTime(required=True, **NULLABLE)
    created_at = LocalDateTime(required=True)


InboxPageSchema = page_schema(InboxMessageSchema, "InboxPage",
                              unread=fields.Integer(required=True, metadata={"description": "未读消息数"}))


# Org-life rules ------------------------------------------------------------------------------------
def _next_start(rule) -> str | None:
    tz = current_settings().tz
    moment = next_start(db.session, rule, now_utc(), tz)
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment else None


class RuleCreateSchema(ma.Schema):
    rule = text(100, min_length=1, required=True,
                         metadata={"example": "每月第一个周五 15:00 主题党日",
                                   "description": "与公众号「组织生活 …」的写法相同"})
    org_id = fields.Integer(load_default=None, validate=ID, metadata={"description": "默认为本人所在组织"})
    notice_days = fields.Integer(load_default=None, validate=validate.Range(min=0, max=30),
                                 metadata={"description": "提前几天通知；默认按系统设置"})


class RuleSchema(ma.Schema):
    id = fields.Integer(required=True)
    spec = fields.String(required=True, metadata={"example": "每月第一个周五"})
    start_time = fields.String(required=True, metadata={"example": "15:00"})
    title = fields.String(required=True)
    notice_days = fields.Integer(required=True)
    org = fields.Nested(OrgRefSchema, required=True)
    next_start = fields.Function(_next_start, required=True, allow_none=True,
                                 metadata={"type": "string", "format": "date-time", "nullable": True})
    created_at = LocalDateTime(required=True)


class RuleListSchema(ma.Schema):
    items = fields.List(fields.Nested(RuleSchema), required=True)


class MoveSchema(ma.Schema):
    starts_at = AwareDateTime(required=True, metadata={"example": "2026-10-09T15:00:00+08:00",
                                                       "description": "新的开始时间"})


class OccurrenceSchema(ma.Schema):
    id = fields.Integer(required=True)
    rule_id = fields.Integer(required=True)
    period = fields.String(required=True, metadata={"example": "2026-10"})
    starts_at = LocalDateTime(required=True)
    moved = fields.Boolean(required=True)
    message = fields.Function(lambda o: presenter.occurrence_moved(o, current_settings().tz), required=True,
                              metadata={"type": "string"})


# Subscriptions -------------------------------------------------------------------------------------
class SubscriptionSchema(ma.Schema):
    """What wx.requestSubscribeMessage answers, as is; or the older {"template": kind, "count": n}."""

    class Meta:
        unknown = ma.INCLUDE

    errMsg = fields.String(metadata={"example": "requestSubscribeMessage:ok",  # noqa: N815 (WeChat's name)
                                     "description": "wx.requestSubscribeMessage 的 errMsg"})
    errCode = fields.Integer(metadata={"description": "失败时微信给出的错误码"})  # noqa: N815
    template = fields.String(validate=validate.OneOf(INBOX_KINDS),
                             metadata={"description": "（旧写法）订阅消息的类别；与模板 id 写法二选一"})
    count = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100),
                           metadata={"description": "（旧写法）用户本次同意接收的次数"})


SUBSCRIPTION_BODY_DOC = {
    "description": "把 wx.requestSubscribeMessage 成功回调的结果原样提交：`errMsg` 加上每个模板 id → "
                   "`accept`（同意，可发送一条）、`reject`（拒绝）、`ban`（已被封禁）、`filter`（被过滤）。"
                   "模板 id 与消息类别的对应见 `GET /api/v1/config`。",
    "example": {"errMsg": "requestSubscribeMessage:ok", "tmpl-notice-id": "accept", "tmpl-wish-id": "reject"},
}


class SubscriptionStateSchema(ma.Schema):
    kind = fields.String(required=True, metadata={"enum": list(INBOX_KINDS)})
    name = fields.String(required=True, metadata={"example": "通知"})
    template_id = fields.String(required=True, allow_none=True, metadata={"nullable": True,
                                                                     "description": "未配置时为 null"})
    answer = fields.String(required=True, allow_none=True, metadata={
        "nullable": True, "enum": ["accept", "reject", "ban", "filter", None], "description": "本次的结果"})
    remaining = fields.Integer(required=True, metadata={"description": "可用的订阅次数"})
    refused = fields.String(required=True, allow_none=True, metadata={
        "nullable": True, "enum": ["reject", "ban", "filter", None],
        "description": "最近一次未同意的原因；之后再同意即清除"})
    refused_at = LocalDateTime(required=True, **NULLABLE)


class SubscriptionResultSchema(ma.Schema):
    items = fields.List(fields.Nested(SubscriptionStateSchema), required=True,
                        metadata={"description": "本次涉及的各类别"})
    unknown_templates = fields.List(fields.String(), required=True,
                                    metadata={"description": "本系统未配置的模板 id（未记录）"})
    message = fields.String(required=True)
    template = fields.String(metadata={"description": "（旧写法）类别"})
    remaining = fields.Integer(metadata={"description": "（旧写法）该类别可用的订阅次数"})


class SubscriptionListSchema(ma.Schema):
    items = fields.List(fields.Nested(SubscriptionStateSchema), required=True)
