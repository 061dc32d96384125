"""Member administration for secretaries and admins, within their organization's subtree."""



from app.api import PREFIX
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.errors import ApiError
from app.api.files import limit_body, xlsx_doc, xlsx_response
from app.api.jobs import BACKGROUND, STARTED, started
from app.api.schemas import (
    ImportFileSchema,
    ImportQuerySchema,
    ImportReportSchema,
    MemberPageSchema,
    MemberQuerySchema,
    MemberSchema,
    MemberUpdateSchema,
    OrgNodeSchema,
    Query,
)
from app.extensions import current_settings, db
from models import authz, directory, job_kinds

blp = Blueprint("admin", __name__, url_prefix=f"{PREFIX}/admin", description="成员管理（书记、管理员）")


@blp.route("/members", methods=["GET"])
@blp.arguments(MemberQuerySchema, location="query")
@blp.response(200, MemberPageSchema)
@blp.doc(operationId="listMembers", responses=errors(401, 403, 404, 422))
def list_members(args):
    """分页列出管理范围内的成员（可按组织、类别、姓名或手机号筛选）。"""
    return directory.list_members(
        db.session, current_member(), org_id=args["org"], kind=args["kind"], q=args["q"],
        page=args["page"], per_page=args["per_page"],
    )


@blp.route("/members/<int:member_id>", methods=["GET"])
@blp.response(200, MemberSchema)
@blp.doc(operationId="getMember", responses=errors(401, 403, 404))
def get_member(member_id):
    """查看一名成员。"""
    return directory.get_member(db.session, current_member(), member_id)


@blp.route("/members/<int:member_id>", methods=["PATCH"])
@blp.arguments(MemberUpdateSchema)
@blp.response(200, MemberSchema)
@blp.doc(operationId="updateMember", responses=errors(400, 401, 403, 404, 409, 422))
def update_member(changes, member_id):
    """修改一名成员的信息（只修改给出的字段）。"""
    return directory.update_member(db.session, current_member(), member_id, changes)


@blp.route("/members/import", methods=["POST"])
@limit_body(lambda: current_settings().api_max_upload)
@blp.arguments(ImportQuerySchema, location="query")
@blp.arguments(ImportFileSchema, location="files")
@blp.response(200, ImportReportSchema)
@blp.alt_response(202, **STARTED)
@blp.doc(operationId="importMembers", responses=errors(400, 401, 403, 413, 422))
def import_members(query, files):
    """导入名册（.xlsx、.xls 或 .csv，全部成功或全部不导入），返回逐行报告和将新建的组织、网格；`dry_run=1` 只检查，
    `create_orgs=1` 在名称与已有组织或网格只差一两个字时仍然新建。超过 JOB_INLINE_ROWS 行的名册转入后台导入：
    返回 202 和任务，导入报告在任务完成后给出。"""
    upload = files["file"]
    settings = current_settings()
    data = upload.read(int(settings.api_max_upload) + 1)
    if len(data) > settings.api_max_upload:
        raise ApiError(413, "too_large", "文件过大。")
    actor, name = current_member(), upload.filename or ""
    if job_kinds.import_too_big(actor, data, name, settings):
        return started(job_kinds.start_import(db.session, actor, data, name, dry_run=query["dry_run"],
                                              create_orgs=query["create_orgs"]))
    return directory.import_roster(db.session, actor, data, name, dry_run=query["dry_run"],
                                   create_orgs=query["create_orgs"], settings=settings)


class ExportMembersQuerySchema(Query):
    background = BACKGROUND["background"]


@blp.route("/members/export", methods=["GET"])
@blp.arguments(ExportMembersQuerySchema, location="query")
@blp.doc(**xlsx_doc("管理范围内成员的 .xlsx 名册"))
@blp.alt_response(202, **STARTED)
@blp.doc(operationId="exportMembers", responses=errors(401, 403, 422))
def export_members(args):
    """导出管理范围内的成员名册（.xlsx，列与导入相同）；成员超过 JOB_INLINE_ROWS 人（或 `background=1`）时转入后台，
    返回 202 和任务。"""
    actor = current_member()
    if args["background"] or job_kinds.too_big(job_kinds.members_in(db.session, actor.org), current_settings()):
        return started(job_kinds.start(db.session, actor, job_kinds.MEMBERS_EXPORT, actor.org,
                                       action=authz.EXPORT_MEMBERS))
    data = directory.export_roster(db.session, actor)
    return xlsx_response(data, "members.xlsx", "名册.xlsx")


@blp.route("/orgs", methods=["GET"])
@blp.response(200, OrgNodeSchema)
@blp.doc(operationId="getOrgTree", responses=errors(401, 403))
def org_tree():
    """管理范围内的组织树，含各组织的成员数。"""
    return directory.org_tree(db.session, current_member())
