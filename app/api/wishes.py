"""微心愿 and 积分 over /api/v1: each view validates, calls one function of models/, serializes.

The rules are the domain's (handlers/wishes.py calls the same functions); the login is checked once
for each blueprint (app.api.auth.Blueprint).
"""

from flask import Response

from app.api import PREFIX
from app.api.auth import Blueprint, current_member, current_viewer
from app.api.docs import errors
from app.api.errors import ApiError
from app.api.files import limit_body, xlsx_doc, xlsx_response
from app.api.jobs import BACKGROUND, STARTED, started
from app.api.wish_schemas import (
    AwardDecisionSchema,
    AwardQuerySchema,
    AwardRequestSchema,
    AwardSchema,
    BoardSchema,
    ExportQuerySchema,
    MyWishesQuerySchema,
    NoteSchema,
    PhotoFileSchema,
    RankingQuerySchema,
    ReasonSchema,
    StatementSchema,
    WishCreateSchema,
    WishDetailSchema,
    WishListSchema,
    WishPageSchema,
    WishQuerySchema,
)
from app.extensions import current_settings, db
from models import authz, job_kinds, photos, points, wishes
from models.base import NotFound

blp = Blueprint("wishes", __name__, url_prefix=PREFIX, description="微心愿")
points_blp = Blueprint("points", __name__, url_prefix=PREFIX, description="积分")

# Wishes ------------------------------------------------------------------------------------------
@blp.route("/wishes", methods=["GET"])
@blp.arguments(WishQuerySchema, location="query")
@blp.response(200, WishPageSchema)
@blp.doc(operationId="listWishes", responses=errors(401, 404, 422))
def list_wishes(args):
    """分页列出心愿（可按状态、组织、类别筛选）；待审核、未通过和已撤回的只有相关人员可见。"""
    items, total = wishes.browse_wishes(
        db.session, current_viewer(), status=args["status"], org_id=args["org"], category=args["category"],
        page=args["page"], per_page=args["per_page"])
    return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"],
            "pages": (total + args["per_page"] - 1) // args["per_page"]}


@blp.route("/wishes", methods=["POST"])
@blp.arguments(WishCreateSchema)
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="createWish", responses=errors(400, 401, 403, 404, 422))
def create_wish(args):
    """发布心愿：书记、管理员直接发布（待认领）；其他人提交的心愿等待书记审核（待审核）。"""
    return wishes.create_wish(db.session, current_member(), wishes.NewWish.of(**args), settings=current_settings())


@blp.route("/wishes/<int:wish_id>", methods=["GET"])
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="getWish", responses=errors(401, 404))
def get_wish(wish_id):
    """查看一个心愿及其记录；受助人信息仅对认领人、发布人、受助人和上级书记完整显示。"""
    return wishes.view_wish(db.session, current_viewer(), wish_id)


@blp.route("/wishes/<int:wish_id>/approve", methods=["POST"])
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="approveWish", responses=errors(400, 401, 403, 404, 409))
def approve(wish_id):
    """审核通过（书记）：待审核 → 待认领。"""
    return wishes.review_wish(db.session, current_member(), wish_id, True)


@blp.route("/wishes/<int:wish_id>/reject", methods=["POST"])
@blp.arguments(ReasonSchema)
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="rejectWish", responses=errors(400, 401, 403, 404, 409, 422))
def reject(args, wish_id):
    """审核不通过（书记），须写明理由：待审核 → 未通过。"""
    return wishes.review_wish(db.session, current_member(), wish_id, False, args["reason"])


@blp.route("/wishes/<int:wish_id>/claim", methods=["POST"])
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="claimWish", responses=errors(400, 401, 403, 404, 409))
def claim(wish_id):
    """认领心愿：每个心愿只有一位认领人；每人同时最多认领若干个。"""
    return wishes.claim_wish(db.session, current_member(), wish_id, settings=current_settings())


@blp.route("/wishes/<int:wish_id>/release", methods=["POST"])
@blp.arguments(NoteSchema)
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="releaseWish", responses=errors(400, 401, 403, 404, 409, 422))
def release(args, wish_id):
    """放弃认领（认领人）：已认领 → 待认领。"""
    return wishes.release_wish(db.session, current_member(), wish_id, args["note"])


@blp.route("/wishes/<int:wish_id>/fulfil", methods=["POST"])
@blp.arguments(NoteSchema)
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="fulfilWish", responses=errors(400, 401, 403, 404, 409, 422))
def fulfil(args, wish_id):
    """提交完成情况（认领人）：已认领 → 待确认。"""
    return wishes.fulfil_wish(db.session, current_member(), wish_id, args["note"])


@blp.route("/wishes/<int:wish_id>/confirm", methods=["POST"])
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="confirmWish", responses=errors(401, 403, 404, 409))
def confirm(wish_id):
    """确认完成（上级书记、网格长或受助人本人）：待确认 → 已完成，认领人获得积分（只发一次）。"""
    return wishes.confirm_wish(db.session, current_member(), wish_id)


@blp.route("/wishes/<int:wish_id>/return", methods=["POST"])
@blp.arguments(ReasonSchema)
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="returnWish", responses=errors(400, 401, 403, 404, 409, 422))
def return_(args, wish_id):
    """驳回完成情况，须写明理由：待确认 → 已认领。"""
    return wishes.return_wish(db.session, current_member(), wish_id, args["reason"], settings=current_settings())


@blp.route("/wishes/<int:wish_id>/withdraw", methods=["POST"])
@blp.arguments(NoteSchema)
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="withdrawWish", responses=errors(400, 401, 403, 404, 409, 422))
def withdraw(args, wish_id):
    """撤回心愿（书记）：未完成的心愿 → 已撤回。"""
    return wishes.withdraw_wish(db.session, current_member(), wish_id, args["note"])


@blp.route("/wishes/<int:wish_id>/photos", methods=["POST"])
@limit_body(lambda: current_settings().wish_photo_max_bytes)
@blp.arguments(PhotoFileSchema, location="files")
@blp.response(200, WishDetailSchema)
@blp.doc(operationId="uploadWishPhoto", responses=errors(401, 403, 404, 409, 413, 415, 422))
def upload_photo(files, wish_id):
    """上传完成凭证照片（认领人；JPEG、PNG 或 GIF，按内容识别，大小有上限）。"""
    member = current_member()
    limit = current_settings().wish_photo_max_bytes
    data = files["file"].read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"照片不能超过 {limit // (1024 * 1024) or 1} MB。")
    folder = current_settings().photo_dir
    media_id = photos.save_photo(folder, data)  # by the content's first bytes, under a name of ours
    if media_id is None:
        raise ApiError(415, "unsupported_media_type", "只支持 JPEG、PNG 或 GIF 图片。")
    try:
        return wishes.add_photo(db.session, member, wish_id, media_id)
    except Exception:
        photos.discard_photo(folder, media_id)  # refused (or failed): keep no orphan file
        raise


@blp.route("/wishes/<int:wish_id>/photos/<int:photo_id>", methods=["GET"])
@blp.doc(responses={"200": {
    "description": "照片（JPEG、PNG 或 GIF）",
    "content": {f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
                for kind in ("jpeg", "png", "gif")},
}})
@blp.doc(operationId="getWishPhoto", responses=errors(401, 403, 404))
def get_photo(wish_id, photo_id):
    """查看心愿的一张照片（认领人、发布人、受助人和上级书记）。"""
    return photo_response(wishes.photo_of(db.session, current_viewer(), wish_id, photo_id))


def photo_response(photo: photos.Photo) -> Response:
    """The bytes of a kept photo (the caller asked who may see it); NotFound with the reason for a
    photo sent in chat and not fetched from WeChat yet, one WeChat no longer had, or a file gone.
    The console serves photos through this too."""
    if photos.gone(photo.media_id):
        raise NotFound(photos.PHOTO_GONE)
    if not photos.kept(photo.media_id):
        raise NotFound("这张照片是通过公众号发送的，正在从微信取回，请稍后再看。")
    found = photos.read_photo(current_settings().photo_dir, photo.media_id)
    if found is None:
        raise NotFound("照片文件已不存在。")
    data, mimetype = found
    # The type we recognised when it was kept, and no sniffing: never read as HTML or script.
    return Response(data, mimetype=mimetype,
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


@blp.route("/me/wishes", methods=["GET"])
@blp.arguments(MyWishesQuerySchema, location="query")
@blp.response(200, WishListSchema)
@blp.doc(operationId="listMyWishes", responses=errors(401, 403, 404, 422))
def my_wishes(args):
    """我认领和提交的心愿，最近的在前。"""
    return {"items": wishes.my_wishes(db.session, current_member(), limit=args["limit"])}


class WishExportQuerySchema(ExportQuerySchema):
    background = BACKGROUND["background"]


@blp.route("/admin/wishes/export", methods=["GET"])
@blp.arguments(WishExportQuerySchema, location="query")
@blp.doc(**xlsx_doc("管理范围内心愿的 .xlsx（状态、认领人、时间、积分）"))
@blp.alt_response(202, **STARTED)
@blp.doc(operationId="exportWishes", responses=errors(401, 403, 404, 422))
def export(args):
    """导出管理范围内的心愿（.xlsx）；超过 JOB_INLINE_ROWS 个（或 `background=1`）时转入后台，返回 202 和任务。"""
    actor, settings = current_member(), current_settings()
    org = job_kinds.named_org(db.session, actor, args["org"])
    if org is not None and (args["background"] or job_kinds.too_big(
            job_kinds.wishes_in(db.session, org, args["status"]), settings)):
        return started(job_kinds.start(db.session, actor, job_kinds.WISHES_EXPORT, org, action=authz.EXPORT_WISHES,
                                       params={"status": args["status"]}))
    data = wishes.export_wishes(db.session, actor, org_id=args["org"], status=args["status"], settings=settings)
    return xlsx_response(data, "wishes.xlsx", "微心愿.xlsx")


# Points ------------------------------------------------------------------------------------------
@points_blp.route("/me/points", methods=["GET"])
@points_blp.response(200, StatementSchema)
@points_blp.doc(operationId="getMyPoints", responses=errors(401, 403, 404))
def my_points():
    """我的积分余额和最近记录。"""
    return points.statement(db.session, current_member().id)


@points_blp.route("/points/ranking", methods=["GET"])
@points_blp.arguments(RankingQuerySchema, location="query")
@points_blp.response(200, BoardSchema)
@points_blp.doc(operationId="getPointsRanking", responses=errors(401, 403, 404, 422))
def ranking(args):
    """积分榜：默认为本社区本月；period=all 为总榜。"""
    return points.ranking_for(db.session, current_member(), args["org"], period=args["period"],
                              settings=current_settings())


@points_blp.route("/admin/points/awards", methods=["POST"])
@points_blp.arguments(AwardRequestSchema)
@points_blp.response(200, AwardSchema)
@points_blp.doc(operationId="requestAward", responses=errors(400, 401, 403, 404, 422))
def request_award(args):
    """录入积分（奖励或更正，须写明原因）；经另一位书记或管理员批准后才计入。"""
    return points.request_award(db.session, current_member(), args["member_id"], args["amount"], args["reason"])


@points_blp.route("/admin/points/awards", methods=["GET"])
@points_blp.arguments(AwardQuerySchema, location="query")
@points_blp.response(200, AwardSchema(many=True))
@points_blp.doc(operationId="listAwards", responses=errors(401, 403, 404, 422))
def pending_awards(args):
    """待我审批的积分录入（不含本人录入的）。"""
    return points.pending_awards(db.session, current_member())


@points_blp.route("/admin/points/awards/<int:award_id>/approve", methods=["POST"])
@points_blp.arguments(AwardDecisionSchema)
@points_blp.response(200, AwardSchema)
@points_blp.doc(operationId="approveAward", responses=errors(400, 401, 403, 404, 409, 422))
def approve_award(args, award_id):
    """批准积分录入（须由录入人以外的上级书记或管理员批准），积分随即计入。"""
    return points.decide_award(db.session, current_member(), award_id, True, args["note"])


@points_blp.route("/admin/points/awards/<int:award_id>/reject", methods=["POST"])
@points_blp.arguments(AwardDecisionSchema)
@points_blp.response(200, AwardSchema)
@points_blp.doc(operationId="rejectAward", responses=errors(400, 401, 403, 404, 409, 422))
def reject_award(args, award_id):
    """驳回积分录入。"""
    return points.decide_award(db.session, current_member(), award_id, False, args["note"])
