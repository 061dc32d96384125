"""Request and response schemas of /api/v1 (the OpenAPI document is generated from these)."""

import re

import marshmallow as ma
from flask import g
from marshmallow import ValidationError, fields, pre_load, validate

from app.extensions import current_settings
from models import authz
from models.member import KINDS, ROLES
from models.text import (
    MAX_GRID,
    MAX_INT,
    MAX_NAME,
    MAX_PHONE_TYPED,
    MAX_QUERY,
    SAFE_PATTERN,
    bad_character,
    describe_character,
)

# An id in a body or a query: what an id column holds (a URL's ids are bounded by app.api's converter).
ID = validate.Range(min=1, max=MAX_INT)


class SafeText(validate.Validator):
    """Refuse the characters no stored text may hold (models.text): control characters, NUL, DEL,
    U+FFFE/U+FFFF, lone surrogates. The OpenAPI document shows the rule as `pattern`."""

    regex = re.compile(SAFE_PATTERN)  # what apispec documents; the check itself is models.text's

    def __call__(self, value):
        char = bad_character(value) if isinstance(value, str) else None
        if char is not None:
            raise ValidationError(f"不能包含控制字符（{describe_character(char)}）")
        return value


SAFE_TEXT = SafeText()


def text(max_length: int, *, min_length: int | None = None, **kwargs) -> fields.String:
    """A text field: at most `max_length` characters (at least `min_length`), no control characters."""
    return fields.String(validate=[validate.Length(min=min_length, max=max_length), SAFE_TEXT], **kwargs)


class Query(ma.Schema):
    """A query string's schema: a filter left blank ("?org=&q=", as a form sends it) is not given."""

    @pre_load
    def _drop_empty(self, data, **kwargs):
        if not hasattr(data, "keys"):
            return data
        return {key: data[key] for key in data if data[key] != ""}


def page_field() -> fields.Integer:
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))


def per_page_field(default: int = 20, most: int = 100) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=most))


def page_schema(item: type[ma.Schema], name: str, *, order: str | None = None,
                **extra: fields.Field) -> type[ma.Schema]:
    """The schema of one page of `item`s: {items, total, page, per_page, pages} and any `extra`
    fields; documented as the component `name` (the class is `<name>Schema`). `order`: how the
    items are sorted, for the document."""
    items = fields.List(fields.Nested(item), required=True, metadata={"description": order} if order else {})
    fields_ = {"items": items, "total": fields.Integer(required=True),
               **extra, "page": fields.Integer(required=True), "per_page": fields.Integer(required=True),
               "pages": fields.Integer(required=True)}
    return ma.Schema.from_dict(fields_, name=f"{name}Schema")


class LocalDateTime(fields.DateTime):
    """An aware timestamp shown in the app's time zone: 2026-11-24T09:30:00+08:00."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(current_settings().tz).isoformat(timespec="seconds")


class ErrorSchema(ma.Schema):
    code = fields.String(required=True, metadata={"description": "机器可读的错误代码", "example": "invalid"})
    message = fields.String(required=True, metadata={"description": "中文说明"})
    details = fields.Dict(required=True, metadata={"description": "细节，如出错的字段"})


class OrgRefSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    full_name = fields.String(required=True)
    level = fields.Integer(required=True)
    level_name = fields.String(required=True)


class MemberSchema(ma.Schema):
    """A member as the caller may see them: phone and political birthday masked unless responsible."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    phone = fields.Method("_phone", required=True, metadata={"type": "string", "example": "138****5678"})
    masked = fields.Method("_masked", required=True, metadata={"type": "boolean"})
    kind = fields.String(required=True, metadata={"enum": list(KINDS)})
    role = fields.String(required=True, metadata={"enum": list(ROLES)})
    join_date = fields.Method("_join_date", required=True, allow_none=True,
                              metadata={"type": "string", "format": "date", "nullable": True,
                                        "description": "入党日期"})
    full_member_date = fields.Method("_full_member_date", required=True, allow_none=True,
                                     metadata={"type": "string", "format": "date", "nullable": True,
                                               "description": "转正日期"})
    org = fields.Nested(OrgRefSchema, required=True)
    grid = fields.Function(lambda m: m.grid.name if m.grid else None, required=True, allow_none=True,
                           metadata={"type": "string", "nullable": True})
    grid_head = fields.Boolean(required=True, metadata={"description": "网格长"})
    active = fields.Boolean(required=True)
    wechat_bound = fields.Function(lambda m: m.openid is not None, required=True,
                                   metadata={"type": "boolean", "description": "公众号已绑定"})
    miniapp_bound = fields.Function(lambda m: m.miniapp_openid is not None, required=True,
                                    metadata={"type": "boolean", "description": "小程序已绑定"})
    created_at = LocalDateTime(required=True)
    updated_at = LocalDateTime(required=True)

    @staticmethod
    def _private(member) -> bool:
        return authz.can(g.get("api_member"), authz.VIEW_PRIVATE, member)

    def _phone(self, member):
        return authz.visible_phone(g.get("api_member"), member)

    def _masked(self, member):
        return not self._private(member)

    def _join_date(self, member):
        return self._private_date(member, member.join_date)

    def _full_member_date(self, member):
        return self._private_date(member, member.full_member_date)

    def _private_date(self, member, value):
        if value is None or not self._private(member):
            return None
        return value.isoformat()


class LoginSchema(ma.Schema):
    code = text(128, min_length=1, required=True, metadata={"description": "wx.login() 得到的 code"})


class LoginResultSchema(ma.Schema):
    token = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "秒；每次使用后顺延"})
    member = fields.Nested(MemberSchema, required=True, allow_none=True)


class MessageSchema(ma.Schema):
    message = fields.String(required=True)


class MeSchema(ma.Schema):
    bound = fields.Boolean(required=True)
    member = fields.Nested(MemberSchema, required=True, allow_none=True)


class BindSchema(ma.Schema):
    name = text(MAX_NAME, min_length=1, required=True)
    phone = text(MAX_PHONE_TYPED, min_length=1, required=True, metadata={"example": "13800000000"})


class MemberQuerySchema(Query):
    org = fields.Integer(load_default=None, validate=ID, metadata={"description": "组织 id；默认为本人所在组织"})
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    q = text(MAX_QUERY, load_default=None, metadata={"description": "按姓名或手机号搜索"})
    page = page_field()
    per_page = per_page_field()


MemberPageSchema = page_schema(MemberSchema, "MemberPage")


class MemberUpdateSchema(ma.Schema):
    name = text(MAX_NAME, min_length=1)
    phone = text(MAX_PHONE_TYPED, min_length=1)
    kind = fields.String(validate=validate.OneOf(KINDS))
    role = fields.String(validate=validate.OneOf(ROLES))
    join_date = fields.Date(allow_none=True, metadata={"description": "入党日期"})
    full_member_date = fields.Date(allow_none=True, metadata={"description": "转正日期；null 表示清除"})
    org_id = fields.Integer(validate=ID)
    grid = text(MAX_GRID, allow_none=True,
                metadata={"description": "网格名；空字符串或 null 表示清除"})
    grid_head = fields.Boolean(metadata={"description": "是否为所在网格的网格长（须已设置网格）"})
    active = fields.Boolean()


class ImportQuerySchema(ma.Schema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "1：只检查，不写入"})
    create_orgs = fields.Boolean(load_default=False, metadata={
        "description": "1：组织或网格名称与已有的只差一两个字时仍然新建（默认视为笔误，该行报错）"})


class ImportFileSchema(ma.Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": ".xlsx、.xls 或 .csv 名册"})


class RowErrorSchema(ma.Schema):
    row = fields.Integer(required=True, metadata={"description": "表格中的行号（表头为第1行）"})
    reason = fields.String(required=True)
    code = fields.String(required=True, metadata={
        "description": "org_typo / grid_typo：疑似写错的组织或网格名称（可用 create_orgs=1 仍然新建）；其他为空"})


class NewGridSchema(ma.Schema):
    org = fields.String(required=True, metadata={"description": "网格所属社区的完整名称"})
    name = fields.String(required=True)


class ImportReportSchema(ma.Schema):
    ok = fields.Boolean(required=True)
    dry_run = fields.Boolean(required=True)
    total = fields.Integer(required=True)
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    summary = fields.Function(lambda r: r.summary(), required=True, metadata={"type": "string"})
    errors = fields.List(fields.Nested(RowErrorSchema), required=True)
    new_orgs = fields.List(fields.String(), required=True,
                           metadata={"description": "导入新建（试运行、有错误时：将新建）的组织，完整名称，上级在前"})
    new_grids = fields.List(fields.Nested(NewGridSchema), required=True,
                            metadata={"description": "导入新建（将新建）的网格"})


class OrgNodeSchema(ma.Schema):
    id = fields.Function(lambda n: n.org.id, required=True, metadata={"type": "integer"})
    name = fields.Function(lambda n: n.org.name, required=True, metadata={"type": "string"})
    full_name = fields.Function(lambda n: n.org.full_name, required=True, metadata={"type": "string"})
    level = fields.Function(lambda n: n.org.level, required=True, metadata={"type": "integer"})
    level_name = fields.Function(lambda n: n.org.level_name, required=True, metadata={"type": "string"})
    members = fields.Integer(required=True, metadata={"description": "本组织直属成员数"})
    total_members = fields.Integer(required=True, metadata={"description": "含下级组织的成员数"})
    children = fields.List(fields.Nested(lambda: OrgNodeSchema()), required=True)
