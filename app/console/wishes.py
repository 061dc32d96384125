"""The console's wishes pages: the to-do queues (待审核, 待确认) of the manager's subtree and a browse
of its wishes by state; one wish with its beneficiary (as this manager may see them), history and
photos; review (approve, or reject with a reason), confirm (the claimer is credited) and return
(with a reason, back to the claimer); the .xlsx export.

Each view calls the function of models/wishes.py the API and the chatbot call (waiting_for,
browse_wishes, review_wish, confirm_wish, return_wish, photo_of, export_wishes); every permission
is asked of models/authz.py by them.
"""

from flask import flash, redirect, render_template, request, url_for

from app.api.files import xlsx_response
from app.api.wishes import photo_response
from app.console import bp
from app.console import jobs as jobs_pages
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db
from models import authz, clock, job_kinds
from models.base import DomainError, Page
from models.text import clamp_page
from models.wishes import (
    FULFILLED,
    PENDING,
    STATES,
    beneficiary_of,
    browse_wishes,
    confirm_wish,
    export_wishes,
    managed_wish,
    photo_of,
    return_wish,
    review_wish,
    waiting_for,
    wish_history,
)

PER_PAGE = 20
QUEUE = 10  # the first of each to-do queue on the wishes page; the rest are browsed by state


def refused(error: DomainError):
    """A wish that is not this manager's (or gone): the domain's words, its status (403, 404)."""
    return render_template("console/notices_error.html", manager=current_manager(), message=error.message,
                           back=url_for("console.wishes")), error.status


def _state() -> str | None:
    state = request.args.get("status") or None
    return state if state in STATES else None


@bp.get("/wishes")
@login_required
def wishes():
    manager = current_manager()
    state = _state()
    page = clamp_page(request.args.get("page", 1, type=int) or 1)
    waiting = waiting_for(db.session, manager, limit=QUEUE, with_awards=False)
    items, total = browse_wishes(db.session, manager, status=state, org_id=manager.org_id, page=page,
                                 per_page=PER_PAGE)
    return render_template("console/wishes.html", manager=manager, waiting=waiting, state=state, states=STATES,
                           listing=Page(items, total, page, PER_PAGE), args=request.args,
                           tz=current_settings().tz, clock=clock)


def _detail(wish_id: int, *, error: str | None = None, status: int = 200, form=None):
    """One wish's page (or the refusal when it is not this manager's)."""
    manager = current_manager()
    try:
        wish = managed_wish(db.session, manager, wish_id)
    except DomainError as refusal:
        return refused(refusal)
    return render_template(
        "console/wishes_detail.html", manager=manager, wish=wish, beneficiary=beneficiary_of(wish, manager),
        history=wish_history(db.session, wish.id), error=error, form=form or {}, tz=current_settings().tz,
        clock=clock, may_review=wish.status == PENDING and authz.can(manager, authz.REVIEW_WISH, wish),
        may_confirm=wish.status == FULFILLED and authz.can(manager, authz.CONFIRM_WISH, wish),
        may_return=wish.status == FULFILLED and authz.can(manager, authz.RETURN_WISH, wish),
    ), status


@bp.get("/wishes/<int:wish_id>")
@login_required
def wishes_detail(wish_id: int):
    return _detail(wish_id)


def _act(wish_id: int, action):
    """Run `action()` (a domain function of the wish, returning what to say); on success go back to
    the queues with its words; a refusal shows on the wish's page with its status."""
    try:
        done = action()
    except DomainError as error:
        db.session.rollback()
        if error.status == 404:
            return refused(error)
        return _detail(wish_id, error=error.message, status=error.status, form=request.form)
    flash(done, "success")
    return redirect(url_for("console.wishes"))


@bp.post("/wishes/<int:wish_id>/review")
@login_required
def wishes_review(wish_id: int):
    approve = request.form.get("decision") == "approve"
    reason = request.form.get("reason", "")

    def review() -> str:
        wish = review_wish(db.session, current_manager(), wish_id, approve, reason)
        if approve:
            return f"心愿 #{wish_id}「{wish.title}」已通过审核，等待志愿者认领。"
        return f"心愿 #{wish_id}「{wish.title}」未通过审核，已告知提交人。"

    return _act(wish_id, review)


@bp.post("/wishes/<int:wish_id>/confirm")
@login_required
def wishes_confirm(wish_id: int):
    def confirm() -> str:
        wish = confirm_wish(db.session, current_manager(), wish_id)
        gained = f"，{wish.claimer.name} 获得 {wish.points} 积分" if wish.claimer is not None and wish.points else ""
        return f"已确认心愿 #{wish_id}「{wish.title}」完成{gained}。"

    return _act(wish_id, confirm)


@bp.post("/wishes/<int:wish_id>/return")
@login_required
def wishes_return(wish_id: int):
    reason = request.form.get("reason", "")

    def send_back() -> str:
        wish = return_wish(db.session, current_manager(), wish_id, reason, settings=current_settings())
        return f"已驳回心愿 #{wish_id}「{wish.title}」的完成情况，已告知认领人。"

    return _act(wish_id, send_back)


@bp.get("/wishes/<int:wish_id>/photos/<int:photo_id>")
@login_required
def wishes_photo(wish_id: int, photo_id: int):
    """A photo's bytes, for those the domain lets see it (photo_of: who may see the beneficiary)."""
    try:
        return photo_response(photo_of(db.session, current_manager(), wish_id, photo_id))
    except DomainError as error:
        return refused(error)


@bp.get("/wishes/export")
@login_required
def wishes_export():
    manager, settings = current_manager(), current_settings()
    if job_kinds.too_big(job_kinds.wishes_in(db.session, manager.org, _state()), settings):
        return jobs_pages.started(job_kinds.start(db.session, manager, job_kinds.WISHES_EXPORT, manager.org,
                                                  action=authz.EXPORT_WISHES, params={"status": _state()}))
    data = export_wishes(db.session, manager, status=_state(), settings=settings)
    return xlsx_response(data, "wishes.xlsx", "微心愿.xlsx")
