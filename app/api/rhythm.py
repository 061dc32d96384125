"""Each branch's rhythm of 三会一课 checked, and the quarterly ranking of branches, over the API
(secretaries and admins, for their subtree). The rules are models/rhythm.py's."""

import marshmallow as ma
from marshmallow import fields, validate

from app.api import PREFIX
from app.api.activity_schemas import ReportQuerySchema
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.files import xlsx_doc, xlsx_response
from app.api.schemas import LocalDateTime
from app.extensions import current_settings, db
from models import now_utc
from models.quota import report_org
from models.rhythm import STATUS_NAMES, quarter_ranking, rhythm_table, rhythm_xlsx

blp = Blueprint("rhythm", __name__, url_prefix=f"{PREFIX}/admin/reports",
                description="组织生活开展情况与季度排名（书记、管理员）")


class HeldSchema(ma.Schema):
    activity_id = fields.Integer(required=True)
    starts_at = LocalDateTime(required=True)
    attendance = fields.Float(required=True, allow_none=True, metadata={"description": "签到人数 / 支部党员数"})
    recorded = fields.Boolean(required=True, metadata={"description": "是否有会议记录"})


class CellSchema(ma.Schema):
    kind = fields.String(required=True)
    period = fields.Function(lambda c: c.period.key, required=True, metadata={"type": "string"})
    status = fields.String(required=True, metadata={"enum": list(STATUS_NAMES)})
    status_text = fields.String(required=True, attribute="status_name")
    held = fields.List(fields.Nested(HeldSchema), required=True)


class BranchRowSchema(ma.Schema):
    org_id = fields.Function(lambda r: r.branch.id, required=True, metadata={"type": "integer"})
    name = fields.Function(lambda r: r.branch.full_name, required=True, metadata={"type": "string"})
    members = fields.Integer(required=True)
    months = fields.Function(lambda r: [{"month": m, "cells": CellSchema(many=True).dump(cells)}
                                        for m, cells in r.months.items()], required=True,
                             metadata={"type": "array", "items": {"type": "object"}})


class RhythmSchema(ma.Schema):
    year = fields.Integer(required=True)
    branches = fields.List(fields.Nested(BranchRowSchema), required=True)


class RankingQuerySchema(ReportQuerySchema):
    quarter = fields.Integer(load_default=None, validate=validate.Range(min=1, max=4),
                             metadata={"description": "第几季度；默认为本季度"})


class RankRowSchema(ma.Schema):
    place = fields.Integer(required=True)
    org_id = fields.Function(lambda r: r.branch.id, required=True, metadata={"type": "integer"})
    name = fields.Function(lambda r: r.branch.full_name, required=True, metadata={"type": "string"})
    score = fields.Float(required=True, metadata={"description": "0–100，按 RANKING_WEIGHTS 加权"})
    held = fields.Float(required=True, metadata={"description": "应开会议的开展比例"})
    attendance = fields.Float(required=True)
    records = fields.Float(required=True, metadata={"description": "已开会议中有记录的比例"})
    wishes = fields.Float(required=True, metadata={"description": "本季度新心愿中已完成的比例"})
    notices = fields.Float(required=True, metadata={"description": "本季度通知的阅读率"})


class RankingSchema(ma.Schema):
    year = fields.Integer(required=True)
    quarter = fields.Integer(required=True)
    items = fields.List(fields.Nested(RankRowSchema), required=True)


def _today():
    return now_utc().astimezone(current_settings().tz)


def _table(args):
    year = args["year"] or _today().year
    org = report_org(db.session, current_member(), args["org"])
    return year, rhythm_table(db.session, current_member(), org, year, now_utc(), current_settings())


@blp.route("/rhythm", methods=["GET"])
@blp.arguments(ReportQuerySchema, location="query")
@blp.response(200, RhythmSchema)
@blp.doc(operationId="getOrgLifeRhythm", responses=errors(401, 403, 404, 422))
def rhythm(args):
    """各支部 × 各月：按节奏（ORGLIFE_RHYTHM）应开的三会一课、主题党日已开展（出勤率、有无记录）、已安排或未开展。"""
    year, rows = _table(args)
    return {"year": year, "branches": rows}


@blp.route("/rhythm.xlsx", methods=["GET"])
@blp.arguments(ReportQuerySchema, location="query")
@blp.doc(**xlsx_doc("各支部组织生活开展情况 .xlsx"))
@blp.doc(operationId="exportOrgLifeRhythm", responses=errors(401, 403, 404, 422))
def rhythm_export(args):
    """导出各支部 × 各月的组织生活开展情况（.xlsx）。"""
    year, rows = _table(args)
    return xlsx_response(rhythm_xlsx(rows, year), f"rhythm-{year}.xlsx", f"{year}年组织生活开展情况.xlsx")


@blp.route("/ranking", methods=["GET"])
@blp.arguments(RankingQuerySchema, location="query")
@blp.response(200, RankingSchema)
@blp.doc(operationId="getBranchRanking", responses=errors(401, 403, 404, 422))
def ranking(args):
    """支部季度排名（季排名）：按时开展、出勤、记录、心愿完成、通知阅读，权重见 RANKING_WEIGHTS。"""
    today = _today()
    year = args["year"] or today.year
    quarter = args["quarter"] or (today.month - 1) // 3 + 1
    org = report_org(db.session, current_member(), args["org"])
    items = quarter_ranking(db.session, current_member(), org, year, quarter, now_utc(), current_settings())
    return {"year": year, "quarter": quarter, "items": items}
