"""Request and response schemas of the 微心愿 and 积分 endpoints."""

import marshmallow as ma
from flask import g
from marshmallow import fields, validate

from app.api.schemas import ID, LocalDateTime, OrgRefSchema, Query, page_field, page_schema, per_page_field, text
from models import photos
from models.points import PERIODS
from models.wishes import CATEGORIES, STATES, beneficiary_of

NULLABLE_TIME = {"allow_none": True, "metadata": {"nullable": True}}


class PersonSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class WishSchema(ma.Schema):
    id = fields.Integer(required=True)
    number = fields.String(required=True, metadata={"example": "#12"})
    title = fields.String(required=True)
    category = fields.String(required=True, metadata={"enum": list(CATEGORIES)})
    status = fields.String(required=True, metadata={"enum": list(STATES)})
    org = fields.Nested(OrgRefSchema, required=True)
    grid = fields.Function(lambda w: w.grid.name if w.grid else None, required=True, allow_none=True,
                           metadata={"type": "string", "nullable": True})
    points = fields.Integer(required=True)
    poster = fields.Nested(PersonSchema, required=True)
    claimer = fields.Nested(PersonSchema, required=True, allow_none=True)
    beneficiary = fields.Method("_beneficiary", required=True,
                                metadata={"type": "object", "description": "受助人；无权查看时遮蔽"})
    fulfil_by = LocalDateTime(required=True, **NULLABLE_TIME)
    created_at = LocalDateTime(required=True)
    updated_at = LocalDateTime(required=True)

    def _beneficiary(self, wish):
        return beneficiary_of(wish, g.get("api_member"))


class PhotoSchema(ma.Schema):
    id = fields.Integer(required=True)
    source = fields.Function(lambda p: "upload" if photos.kept(p.media_id) else "wechat", required=True,
                             metadata={"type": "string", "enum": ["upload", "wechat"],
                                       "description": "upload：照片保存在本系统，可通过照片地址查看"
                                                      "（上传的，或从公众号取回的）；"
                                                      "wechat：通过公众号发送，尚未取回或已无法取回"})
    at = LocalDateTime(required=True)


class EventSchema(ma.Schema):
    action = fields.String(required=True, metadata={"example": "认领"})
    from_status = fields.String(required=True, allow_none=True, metadata={"nullable": True})
    to_status = fields.String(required=True)
    note = fields.String(required=True)
    actor = fields.Nested(PersonSchema, required=True, allow_none=True, metadata={"description": "null：系统"})
    at = LocalDateTime(required=True)


class WishDetailSchema(WishSchema):
    details = fields.String(required=True)
    fulfil_note = fields.String(required=True)
    claimed_at = LocalDateTime(required=True, **NULLABLE_TIME)
    fulfilled_at = LocalDateTime(required=True, **NULLABLE_TIME)
    completed_at = LocalDateTime(required=True, **NULLABLE_TIME)
    photos = fields.List(fields.Nested(PhotoSchema), required=True)
    history = fields.List(fields.Nested(EventSchema), required=True, attribute="events")


WishPageSchema = page_schema(WishSchema, "WishPage")


class WishListSchema(ma.Schema):
    items = fields.List(fields.Nested(WishSchema), required=True)


class WishQuerySchema(Query):
    status = fields.String(load_default=None, validate=validate.OneOf(STATES))
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "组织 id（含下级组织）"})
    category = fields.String(load_default=None, validate=validate.OneOf(CATEGORIES))
    page = page_field()
    per_page = per_page_field()


class WishCreateSchema(ma.Schema):
    title = text(100, min_length=1, required=True)
    details = text(2000, load_default="")
    category = fields.String(validate=validate.OneOf(CATEGORIES),
                             metadata={"description": "不填则按内容判断"})
    points = fields.Integer(validate=validate.Range(min=0, max=1000),
                            metadata={"description": "书记发布时可设；默认按系统设置"})
    beneficiary_name = text(100, metadata={"description": "受助人（书记发布时）"})
    beneficiary_address = text(200)
    beneficiary_phone = text(20)
    beneficiary_member_id = fields.Integer(validate=ID, metadata={"description": "受助人为已登记成员时"})
    org_id = fields.Integer(validate=ID, metadata={"description": "默认为本人所在组织"})
    grid_id = fields.Integer(validate=ID, metadata={"description": "默认为受助成员的网格"})


class ReasonSchema(ma.Schema):
    reason = text(500, load_default="", metadata={"description": "理由（必填）"})


class NoteSchema(ma.Schema):
    note = text(500, load_default="", metadata={"description": "说明（可选）"})


class PhotoFileSchema(ma.Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "JPEG、PNG 或 GIF 图片"})


class MyWishesQuerySchema(Query):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=50))


class ExportQuerySchema(Query):
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "默认为本人所在组织"})
    status = fields.String(load_default=None, validate=validate.OneOf(STATES))


# Points ------------------------------------------------------------------------------------------
class PointEntrySchema(ma.Schema):
    id = fields.Integer(required=True)
    amount = fields.Integer(required=True)
    reason = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": ["wish", "activity", "manual"]})
    created_at = LocalDateTime(required=True)


class StatementSchema(ma.Schema):
    balance = fields.Integer(required=True)
    entries = fields.List(fields.Nested(PointEntrySchema), required=True)


class RankingQuerySchema(Query):
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "默认为本人所在社区"})
    period = fields.String(load_default="month", validate=validate.OneOf(PERIODS))


class RankSchema(ma.Schema):
    place = fields.Integer(required=True)
    member_id = fields.Integer(required=True)
    name = fields.String(required=True)
    points = fields.Integer(required=True)


class BoardSchema(ma.Schema):
    org = fields.Nested(OrgRefSchema, required=True)
    period = fields.String(required=True, metadata={"enum": list(PERIODS)})
    since = LocalDateTime(required=True, **NULLABLE_TIME)
    ranks = fields.List(fields.Nested(RankSchema), required=True)


class AwardRequestSchema(ma.Schema):
    member_id = fields.Integer(required=True, validate=ID)
    amount = fields.Integer(required=True, validate=validate.Range(min=-10000, max=10000),
                            metadata={"description": "负数为更正"})
    reason = text(200, required=True)


class AwardQuerySchema(Query):
    status = fields.String(load_default="pending", validate=validate.OneOf(["pending"]))


class AwardDecisionSchema(ma.Schema):
    note = text(200, load_default="")


class AwardSchema(ma.Schema):
    id = fields.Integer(required=True)
    member_id = fields.Integer(required=True)
    member_name = fields.String(required=True, dump_only=True, attribute="member.name")  # a relationship, no query
    amount = fields.Integer(required=True)
    reason = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["待审批", "已批准", "已驳回"]})
    requested_by_id = fields.Integer(required=True)
    requested_at = LocalDateTime(required=True)
    decided_by_id = fields.Integer(required=True, allow_none=True, metadata={"nullable": True})
    decided_at = LocalDateTime(required=True, **NULLABLE_TIME)
    decision_note = fields.String(required=True)
