"""Leave (请假) over the API: a member asks leave of an occasion; its secretaries list the
requests and approve or refuse them. The rules are models/activity/leave.py's, as for the chatbot."""

import marshmallow as ma
from marshmallow import fields

from app.api import PREFIX, presenter
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.schemas import LocalDateTime, text
from app.extensions import current_settings, db
from models import now_utc
from models.activity import decide_leave, get_activity, get_managed_activity, leaves_of, request_leave
from models.activity.leave import MAX_REASON, STATUS_NAMES

blp = Blueprint("leave", __name__, url_prefix=PREFIX, description="请假与批假")


class LeaveAskSchema(ma.Schema):
    reason = text(MAX_REASON, min_length=1, required=True,
                  metadata={"description": "请假理由", "example": "在外地出差"})


class LeaveDecisionSchema(ma.Schema):
    approve = fields.Boolean(required=True, metadata={"description": "true 准假，false 不准假"})


class LeaveSchema(ma.Schema):
    activity_id = fields.Integer(required=True)
    member_id = fields.Integer(required=True)
    name = fields.String(required=True, attribute="member.name")
    reason = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUS_NAMES)})
    status_text = fields.String(required=True, attribute="status_name")
    requested_at = LocalDateTime(required=True)
    decided_at = LocalDateTime(required=True, allow_none=True)


class LeaveResultSchema(ma.Schema):
    leave = fields.Nested(LeaveSchema, required=True)
    message = fields.String(required=True)


class LeaveListSchema(ma.Schema):
    items = fields.List(fields.Nested(LeaveSchema), required=True)


@blp.route("/activities/<int:activity_id>/leave", methods=["POST"])
@blp.arguments(LeaveAskSchema)
@blp.response(200, LeaveResultSchema)
@blp.doc(operationId="requestLeave", responses=errors(400, 401, 403, 404, 422))
def ask(args, activity_id):
    """向书记请假（活动开始前；已准假的不能再改）。书记审批后会通知本人。"""
    activity = get_activity(db.session, activity_id)
    leave = request_leave(db.session, activity, current_member(), args["reason"], now_utc(), current_settings())
    return {"leave": leave, "message": presenter.leave_requested(activity)}


@blp.route("/admin/activities/<int:activity_id>/leaves", methods=["GET"])
@blp.response(200, LeaveListSchema)
@blp.doc(operationId="listLeaves", responses=errors(401, 403, 404))
def list_leaves(activity_id):
    """一个活动的全部请假申请（书记、管理员），按申请时间先后。"""
    activity = get_managed_activity(db.session, activity_id, current_member())
    return {"items": leaves_of(db.session, activity)}


@blp.route("/admin/activities/<int:activity_id>/leaves/<int:member_id>", methods=["POST"])
@blp.arguments(LeaveDecisionSchema)
@blp.response(200, LeaveResultSchema)
@blp.doc(operationId="decideLeave", responses=errors(400, 401, 403, 404, 422))
def decide(args, activity_id, member_id):
    """准假或不准假（书记、管理员）；只能处理待审批的申请，本人会收到通知。"""
    activity = get_managed_activity(db.session, activity_id, current_member())
    leave = decide_leave(db.session, activity, current_member(), member_id, args["approve"], now_utc(),
                         current_settings())
    return {"leave": leave, "message": presenter.leave_decided(activity, leave)}
