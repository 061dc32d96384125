"""The console's notices pages: the list, compose (audience: a node of the subtree, a grid, member
kinds; urgent) with the number of recipients shown before sending, send, the receipt with read and
unread names, and 再提醒 of the unread (at most once per NOTICE_REMIND_HOURS; the page says when
the next is allowed).

Each view calls the function of models/notices.py the API calls (publish_notice, notices_page,
notice_receipt, remind_unread); every permission is asked of models/authz.py by them.
"""

from flask import flash, redirect, render_template, request, url_for

from app.console import bp
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db
from models import clock, now_utc
from models.base import DomainError
from models.directory import org_tree
from models.member import KINDS
from models.notices import (
    next_remind_at,
    notice_receipt,
    notices_page,
    publish_notice,
    recipient_count,
    remind_unread,
)
from models.org import grid_labels, grids_for

PER_PAGE = 20


def refused(error: DomainError):
    return render_template("console/notices_error.html", manager=current_manager(), message=error.message,
                           back=url_for("console.notices")), error.status


@bp.get("/notices")
@login_required
def notices():
    try:
        listing = notices_page(db.session, current_manager(), page=request.args.get("page", 1, type=int) or 1,
                               per_page=PER_PAGE)
    except DomainError as error:
        return refused(error)
    return render_template("console/notices.html", manager=current_manager(), listing=listing,
                           tz=current_settings().tz, clock=clock)


# Compose, preview, send --------------------------------------------------------------------------
def _flatten(node, depth: int = 0) -> list[tuple[int, str]]:
    rows = [(node.org.id, "　" * depth + node.org.name)]
    for child in node.children:
        rows.extend(_flatten(child, depth + 1))
    return rows


def _choices() -> dict:
    manager = current_manager()
    grids = grids_for(db.session, manager.org)
    return {"orgs": _flatten(org_tree(db.session, manager)),
            "grids": list(zip((g.id for g in grids), grid_labels(grids), strict=True)), "kinds": KINDS}


class _Draft:
    """The compose form as publish_notice's arguments."""

    def __init__(self, form) -> None:
        self.title = (form.get("title") or "").strip()
        self.body = form.get("body") or ""
        self.kinds = [k for k in form.getlist("kinds") if k]
        self.urgent = form.get("urgent") == "1"
        self.org_id = _int(form.get("org_id"))
        self.grid_id = _int(form.get("grid_id"))

    def audience(self) -> dict:
        return {"kinds": self.kinds or None, "grid_id": self.grid_id, "org_id": self.org_id}


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 12 else None


def _compose(draft: _Draft | None, *, status: int = 200, error: str | None = None, count: int | None = None):
    return render_template("console/notices_form.html", manager=current_manager(), draft=draft, error=error,
                           count=count, **_choices()), status


@bp.get("/notices/new")
@login_required
def new_notice():
    try:
        return _compose(None)
    except DomainError as error:
        return refused(error)


@bp.post("/notices/preview")
@login_required
def preview_notice():
    """The first step of sending: the form checked and the number of recipients shown."""
    draft = _Draft(request.form)
    try:
        return _compose(draft, count=recipient_count(db.session, current_manager(), **draft.audience()))
    except DomainError as error:
        return _compose(draft, status=400, error=error.message)


@bp.post("/notices/send")
@login_required
def send_notice():
    draft = _Draft(request.form)
    try:
        published = publish_notice(db.session, current_manager(), draft.body, title=draft.title,
                                   urgent=draft.urgent, **draft.audience())
    except DomainError as error:
        db.session.rollback()
        return _compose(draft, status=400, error=error.message)
    flash(f"通知 #{published.notice.id} 已发送给 {published.recipients} 人。", "success")
    return redirect(url_for("console.notice_page", notice_id=published.notice.id))


# Receipts and reminders --------------------------------------------------------------------------
@bp.get("/notices/<int:notice_id>")
@login_required
def notice_page(notice_id: int):
    settings = current_settings()
    try:
        receipt = notice_receipt(db.session, notice_id, current_manager())
    except DomainError as error:
        return refused(error)
    next_at = next_remind_at(receipt.notice, settings)
    return render_template("console/notices_receipt.html", manager=current_manager(), receipt=receipt,
                           notice=receipt.notice, tz=settings.tz, clock=clock,
                           next_at=next_at if next_at is not None and next_at > now_utc() else None,
                           every=settings.notice_remind_hours)


@bp.post("/notices/<int:notice_id>/remind")
@login_required
def notice_remind(notice_id: int):
    try:
        count = remind_unread(db.session, notice_id, current_manager(), now=now_utc(), settings=current_settings())
    except DomainError as error:
        db.session.rollback()
        if error.status in (403, 404):
            return refused(error)
        flash(error.message, "warning")
    else:
        flash(f"已再次提醒 {count} 位未读成员。", "success")
    return redirect(url_for("console.notice_page", notice_id=notice_id))
