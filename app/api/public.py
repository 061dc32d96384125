"""GET /api/v1/config: what a mini-program front end needs to know without logging in."""

import marshmallow as ma
from marshmallow import fields

from app.api import PREFIX
from app.api.auth import Blueprint, public
from app.extensions import current_settings
from models.outbox import INBOX_KINDS
from models.subscriptions import KIND_NAMES, template_ids

blp = Blueprint("public", __name__, url_prefix=PREFIX, description="公开配置")


class PublicConfigSchema(ma.Schema):
    subscribe_templates = fields.Dict(
        keys=fields.String(), values=fields.String(), required=True,
        metadata={"description": "订阅消息模板 id，按消息类别（未配置的类别不列出）",
                  "example": {"notice": "tmpl-notice-id", "activity": "tmpl-activity-id"}})
    subscribe_template_ids = fields.List(
        fields.String(), required=True,
        metadata={"description": "全部模板 id，可直接作为 wx.requestSubscribeMessage 的 tmplIds（每次最多 3 个）"})
    kinds = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"description": "消息类别 → 中文名", "example": {"notice": "通知"}})


@blp.route("/config", methods=["GET"])
@public
@blp.response(200, PublicConfigSchema)
@blp.doc(operationId="getPublicConfig")
def public_config():
    """公开配置（无需登录）：订阅消息的模板 id 按类别列出，前端不必写死。"""
    templates = template_ids(current_settings())
    return {"subscribe_templates": templates, "subscribe_template_ids": list(templates.values()),
            "kinds": {kind: KIND_NAMES[kind] for kind in INBOX_KINDS}}
