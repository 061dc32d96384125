"""Notices with receipts, the inbox, org-life rules and subscribe consents over /api/v1.

Each view validates, calls the one function of models/ the chatbot calls (handlers/notices.py),
and serializes: the rules are the domain's, the `message` of an answer is worded in
app/api/presenter.py.
"""


from app.api import PREFIX, presenter
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.notice_schemas import (
    SUBSCRIPTION_BODY_DOC,
    InboxMessageSchema,
    InboxPageSchema,
    InboxQuerySchema,
    MoveSchema,
    NoticeCreatedSchema,
    NoticeCreateSchema,
    NoticePageSchema,
    OccurrenceSchema,
    PageQuerySchema,
    ReceiptQuerySchema,
    ReceiptSchema,
    RemindedSchema,
    RuleCreateSchema,
    RuleListSchema,
    RuleSchema,
    SubscriptionListSchema,
    SubscriptionResultSchema,
    SubscriptionSchema,
)
from app.api.schemas import MessageSchema
from app.extensions import current_settings, db
from models import now_utc
from models.notices import notice_receipt, notices_page, publish_notice, remind_unread
from models.orglife import create_rule, delete_rule, list_rules, move_occurrence
from models.outbox import inbox_page, open_message
from models.subscriptions import (
    record_consents,
    record_subscribe_answer,
    subscription_states,
)

blp = Blueprint("notices", __name__, url_prefix=PREFIX, description="通知、消息、组织生活与订阅消息")


# Notices (secretaries, admins) -------------------------------------------------------------------
@blp.route("/admin/notices", methods=["POST"])
@blp.arguments(NoticeCreateSchema)
@blp.response(200, NoticeCreatedSchema)
@blp.doc(operationId="publishNotice", responses=errors(400, 401, 403, 404, 422))
def publish(args):
    """发布通知到本组织及下级（可限定组织、成员类别、网格；紧急通知不受免打扰时段限制）。"""
    return publish_notice(db.session, current_member(), args["body"], title=args["title"], kinds=args["kinds"],
                          grid_id=args["grid_id"], urgent=args["urgent"], org_id=args["org_id"])


@blp.route("/admin/notices", methods=["GET"])
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, NoticePageSchema)
@blp.doc(operationId="listNotices", responses=errors(401, 403, 404, 422))
def list_notices(args):
    """管理范围内的通知，最新的在前，分页。"""
    return notices_page(db.session, current_member(), page=args["page"], per_page=args["per_page"])


@blp.route("/admin/notices/<int:notice_id>", methods=["GET"])
@blp.arguments(ReceiptQuerySchema, location="query")
@blp.response(200, ReceiptSchema)
@blp.doc(operationId="getNoticeReceipt", responses=errors(401, 403, 404, 422))
def receipt(args, notice_id):
    """通知回执：应发、已送达、待发送、失败（按原因）、已读和未读的人数，以及各姓名列表的一页
    （按成员顺序，page、per_page 分页；人数总是全部）。"""
    return notice_receipt(db.session, notice_id, current_member(), page=args["page"],
                          per_page=args["per_page"]).as_dict()


@blp.route("/admin/notices/<int:notice_id>/remind", methods=["POST"])
@blp.response(200, RemindedSchema)
@blp.doc(operationId="remindNotice", responses=errors(400, 401, 403, 404))
def remind(notice_id):
    """再提醒：向尚未阅读的成员再次发送通知。"""
    count = remind_unread(db.session, notice_id, current_member(), now=now_utc(), settings=current_settings())
    return {"id": notice_id, "reminded": count, "message": presenter.reminded(notice_id, count)}


# My inbox ------------------------------------------------------------------------------------------
@blp.route("/me/messages", methods=["GET"])
@blp.arguments(InboxQuerySchema, location="query")
@blp.response(200, InboxPageSchema)
@blp.doc(operationId="listMyMessages", responses=errors(401, 403, 404, 422))
def my_messages(args):
    """我的消息（通知、提醒、问候……），最新的在前，分页。"""
    return inbox_page(db.session, current_member().id, page=args["page"], per_page=args["per_page"],
                      unread_only=args["unread"])


@blp.route("/me/messages/<int:message_id>", methods=["GET"])
@blp.response(200, InboxMessageSchema)
@blp.doc(operationId="openMyMessage", responses=errors(401, 403, 404))
def open_my_message(message_id):
    """阅读一条消息（记为已读，计入通知回执）。"""
    return open_message(db.session, current_member().id, message_id, now_utc())


@blp.route("/me/subscriptions", methods=["POST"])
@blp.arguments(SubscriptionSchema, description=SUBSCRIPTION_BODY_DOC["description"],
               example=SUBSCRIPTION_BODY_DOC["example"])
@blp.response(200, SubscriptionResultSchema)
@blp.doc(operationId="recordSubscriptions", responses=errors(400, 401, 403, 422))
def subscribe(args):
    """记录 wx.requestSubscribeMessage 的结果（原样提交）：每个「accept」可发送一条，拒绝也会记下。"""
    member = current_member()
    if "template" in args:  # the older body: {"template": kind, "count": n}
        outcome = record_consents(db.session, member.id, args["template"], args["count"], current_settings())
        return {"template": args["template"], "remaining": outcome.items[0].remaining, "items": outcome.items,
                "unknown_templates": [], "message": outcome.message}
    args.pop("count", None)
    outcome = record_subscribe_answer(db.session, member.id, args, current_settings(), now=now_utc())
    return {"items": outcome.items, "unknown_templates": outcome.unknown, "message": outcome.message}


@blp.route("/me/subscriptions", methods=["GET"])
@blp.response(200, SubscriptionListSchema)
@blp.doc(operationId="listMySubscriptions", responses=errors(401, 403))
def subscriptions():
    """我的订阅消息：各类别的模板 id、可用次数，以及最近一次未同意的原因。"""
    return {"items": subscription_states(db.session, current_member().id, current_settings())}


# Org-life rules (secretaries, admins) -----------------------------------------------------------
@blp.route("/admin/rules", methods=["GET"])
@blp.response(200, RuleListSchema)
@blp.doc(operationId="listRules", responses=errors(401, 403, 404))
def rules():
    """管理范围内的组织生活规则，以及每条的下次时间。"""
    return {"items": list_rules(db.session, current_member())}


@blp.route("/admin/rules", methods=["POST"])
@blp.arguments(RuleCreateSchema)
@blp.response(200, RuleSchema)
@blp.doc(operationId="createRule", responses=errors(400, 401, 403, 404, 422))
def add_rule(args):
    """设置组织生活规则，如「每月第一个周五 15:00 主题党日」「每季度首月10日 14:00 支部党员大会」。"""
    return create_rule(db.session, current_member(), args["rule"], notice_days=args["notice_days"],
                       org_id=args["org_id"], settings=current_settings())


@blp.route("/admin/rules/<int:rule_id>", methods=["DELETE"])
@blp.response(200, MessageSchema)
@blp.doc(operationId="deleteRule", responses=errors(401, 403, 404))
def remove_rule(rule_id):
    """删除组织生活规则（已有的安排保留）。"""
    rule = delete_rule(db.session, rule_id, current_member())
    return {"message": presenter.rule_deleted(rule)}


@blp.route("/admin/rules/<int:rule_id>/move", methods=["POST"])
@blp.arguments(MoveSchema)
@blp.response(200, OccurrenceSchema)
@blp.doc(operationId="moveRuleOccurrence", responses=errors(400, 401, 403, 404, 422))
def move(args, rule_id):
    """改期：把新时间所在月份（或季度）的那一次组织生活改到新时间；已通知的会告知党员。"""
    return move_occurrence(db.session, rule_id, current_member(), args["starts_at"], now=now_utc(),
                           tz=current_settings().tz)
