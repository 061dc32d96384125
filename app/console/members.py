"""The console's member pages: search and filter, view and edit, free a WeChat binding, import a
roster with a preview of what it changes, export, the template workbook. Every action calls the
domain function the API and the chatbot call (models.directory, models.bindings,
models.roster_preview); every refusal comes from models/authz.py and is shown on the page.
"""

import base64
import io
import json
import secrets
from datetime import date

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for

from app.console import bp
from app.console import jobs as jobs_pages
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db, get_redis
from models import authz, directory, job_kinds, roster_preview
from models.base import DomainError
from models.bindings import release_binding
from models.member import KINDS, ROLES
from models.org import grid_labels, grids_for
from models.roster import RosterFileError

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOUND_CHOICES = {"yes": True, "no": False}
EDITED_TEXT = ("name", "kind", "role", "grid")
PER_PAGE = 20


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _orgs(manager) -> list[tuple[int, str]]:
    """The organizations of the manager's subtree, indented by depth, for a select."""
    root = directory.org_tree(db.session, manager)
    options = []

    def walk(node, depth):
        options.append((node.org.id, "　" * depth + node.org.name))
        for child in node.children:
            walk(child, depth + 1)

    walk(root, 0)
    return options


def _page_error(error: DomainError):
    """A refusal of a page (not an action): the page's status and the words."""
    abort(error.status if error.status in (403, 404) else 400, description=error.message)


@bp.get("/members")
@login_required
def members():
    manager = current_manager()
    args = request.args
    filters = {"org_id": _int(args.get("org")), "kind": args.get("kind") if args.get("kind") in KINDS else None,
               "q": args.get("q") or None,
               "more": directory.MemberFilters(_int(args.get("grid")), BOUND_CHOICES.get(args.get("bound", "")))}
    try:
        page = directory.list_members(db.session, manager, page=_int(args.get("page")) or 1, per_page=PER_PAGE,
                                      **filters)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("console.members"))
    grids = grids_for(db.session, manager.org)
    return render_template(
        "console/members.html", manager=manager, page=page, args=args, orgs=_orgs(manager), kinds=KINDS,
        grids=list(zip([g.id for g in grids], grid_labels(grids), strict=True)),
        phone_of=lambda m: authz.visible_phone(manager, m),
    )


@bp.get("/members/<int:member_id>")
@login_required
def members_view(member_id: int):
    manager = current_manager()
    try:
        member = directory.get_member(db.session, manager, member_id)
    except DomainError as error:
        _page_error(error)
    return _member_page(manager, member)


def _member_page(manager, member, errors: dict | None = None, status: int = 200):
    private = authz.can(manager, authz.VIEW_PRIVATE, member)
    return render_template(
        "console/member.html", manager=manager, member=member, private=private, errors=errors or {},
        phone=authz.visible_phone(manager, member), kinds=KINDS, roles=ROLES, orgs=_orgs(manager),
        may_update=authz.can(manager, authz.UPDATE_MEMBER, member),
        may_release=authz.can(manager, authz.RELEASE_BINDING, member),
    ), status


def _changes(form, member, private: bool) -> dict:
    """The edit form's fields that differ from the member's record, read for update_member."""
    changes = {key: form.get(key, "").strip() for key in EDITED_TEXT if key in form}
    phone = form.get("phone", "").strip()
    if phone and phone != authz.visible_phone(current_manager(), member):
        changes["phone"] = phone  # a masked phone shown unchanged is no edit
    if private:
        for key in ("join_date", "full_member_date"):
            if key in form:
                text = form.get(key, "").strip()
                try:
                    changes[key] = date.fromisoformat(text) if text else None
                except ValueError:
                    raise DomainError("日期格式不对，请按 2020-07-01 填写。", code="bad_date", status=422) from None
    org_id = _int(form.get("org_id"))
    if org_id is not None:
        changes["org_id"] = org_id
    changes["grid_head"] = form.get("grid_head") == "1"
    changes["active"] = form.get("active") == "1"
    return changes


@bp.post("/members/<int:member_id>")
@login_required
def members_update(member_id: int):
    manager = current_manager()
    try:
        member = directory.get_member(db.session, manager, member_id)
    except DomainError as error:
        _page_error(error)
    try:
        changes = _changes(request.form, member, authz.can(manager, authz.VIEW_PRIVATE, member))
        directory.update_member(db.session, manager, member_id, changes)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        member = directory.get_member(db.session, manager, member_id)
        return _member_page(manager, member, status=error.status if error.status in (403, 409, 422) else 400)
    flash("已保存。", "success")
    return redirect(url_for("console.members_view", member_id=member_id))


@bp.post("/members/<int:member_id>/unbind")
@login_required
def members_unbind(member_id: int):
    manager = current_manager()
    try:
        member = directory.get_member(db.session, manager, member_id)
    except DomainError as error:
        _page_error(error)
    reason = request.form.get("reason", "").strip()
    if not reason:
        flash("请填写解除绑定的原因。", "error")
        return redirect(url_for("console.members_view", member_id=member_id))
    try:
        release_binding(db.session, manager, member.name, member.phone, reason=reason, settings=current_settings())
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        flash(f"已解除「{member.name}」的微信绑定，并已通知本人。", "success")
    return redirect(url_for("console.members_view", member_id=member_id))


# Import: upload → preview → apply --------------------------------------------------------------
def _upload_key(manager, token: str) -> str:
    return f"console:import:{manager.id}:{token}"


def _keep(manager, data: bytes, filename: str) -> str:
    """Keep the uploaded file server-side (Redis, CONSOLE_IMPORT_TTL) for the manager: a token."""
    token = secrets.token_urlsafe(16)
    value = json.dumps({"name": filename, "data": base64.b64encode(data).decode("ascii")})
    get_redis(current_app).set(_upload_key(manager, token), value, ex=current_settings().console_import_ttl)
    return token


def _kept(manager, token: str) -> tuple[bytes, str] | None:
    value = get_redis(current_app).get(_upload_key(manager, token)) if token else None
    if value is None:
        return None
    kept = json.loads(value)
    return base64.b64decode(kept["data"]), kept["name"]


@bp.get("/members/import")
@login_required
def members_import():
    manager = current_manager()
    if not roster_preview.may_import(manager):
        abort(403, description=authz.refusal(manager, authz.IMPORT_MEMBERS).message)
    return render_template("console/members_import.html", manager=manager, preview=None, token=None)


@bp.post("/members/import")
@login_required
def members_preview():
    manager = current_manager()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("请选择要导入的名册文件（.xlsx、.xls 或 .csv）。", "error")
        return redirect(url_for("console.members_import"))
    limit = current_settings().api_max_upload
    data = upload.read(limit + 1)
    if len(data) > limit:
        flash(f"文件过大（最大 {limit // (1024 * 1024)} MB）。", "error")
        return redirect(url_for("console.members_import"))
    try:
        if job_kinds.import_too_big(manager, data, upload.filename, current_settings()):
            return _check_in_background(manager, data, upload.filename)
        preview = roster_preview.preview_import(db.session, manager, data, upload.filename,
                                                settings=current_settings())
    except (DomainError, RosterFileError) as error:
        db.session.rollback()
        flash(str(getattr(error, "message", error)), "error")
        return redirect(url_for("console.members_import"))
    token = _keep(manager, data, upload.filename) if preview.applicable else None
    return render_template("console/members_import.html", manager=manager, preview=preview, token=token,
                           filename=upload.filename)


def _check_in_background(manager, data: bytes, filename: str):
    """A roster too large to preview in the request: a trial import (dry run) in the background, whose
    page shows the report and offers the import of the kept file."""
    token = _keep(manager, data, filename)
    job = job_kinds.start_import(db.session, manager, data, filename, dry_run=True)
    jobs_pages.keep_upload_token(job, token)
    return jobs_pages.started(job)


@bp.post("/members/import/apply")
@login_required
def members_apply():
    manager = current_manager()
    token = request.form.get("token", "")
    kept = _kept(manager, token)
    if kept is None:
        flash("上传的文件已过期，请重新上传。", "error")
        return redirect(url_for("console.members_import"))
    data, filename = kept
    create_orgs = request.form.get("create_orgs") == "1"
    try:
        if job_kinds.import_too_big(manager, data, filename, current_settings()):
            job = job_kinds.start_import(db.session, manager, data, filename, create_orgs=create_orgs)
            get_redis(current_app).delete(_upload_key(manager, token))
            return jobs_pages.started(job)
        report = directory.import_roster(db.session, manager, data, filename,
                                         create_orgs=create_orgs, settings=current_settings())
    except (DomainError, RosterFileError) as error:
        db.session.rollback()
        flash(str(getattr(error, "message", error)), "error")
        return redirect(url_for("console.members_import"))
    if not report.ok:
        preview = roster_preview.preview_import(db.session, manager, data, filename, settings=current_settings())
        flash(("有组织或网格的名称与已有的只差一两个字，未导入任何数据。请确认后勾选「确认新建」再导入。"
               if report.typos else report.summary()), "error")
        return render_template("console/members_import.html", manager=manager, preview=preview, token=token,
                               filename=filename), 422
    get_redis(current_app).delete(_upload_key(manager, token))
    flash(report.summary(), "success")
    return redirect(url_for("console.members"))


@bp.get("/members/export")
@login_required
def members_export():
    manager = current_manager()
    try:
        if job_kinds.too_big(job_kinds.members_in(db.session, manager.org), current_settings()):
            return jobs_pages.started(job_kinds.start(db.session, manager, job_kinds.MEMBERS_EXPORT, manager.org,
                                                      action=authz.EXPORT_MEMBERS))
        data = directory.export_roster(db.session, manager)
    except DomainError as error:
        _page_error(error)
    return send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True, download_name="党员名册.xlsx")


@bp.get("/members/template")
@login_required
def members_template():
    return send_file(io.BytesIO(roster_preview.template_workbook()), mimetype=XLSX, as_attachment=True,
                     download_name="党员名册模板.xlsx")
