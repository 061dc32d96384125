"""The console's points page: a manual award (a member of the subtree, an amount, a reason) filed
for a second manager's approval, the awards waiting for this manager's decision (approve or
reject), the awards this manager filed, and the subtree's ranking.

Each view calls the function of models/points.py the API calls (request_award, pending_awards,
decide_award, ranking_for); every permission — the requester never approves their own award — is
asked of models/authz.py by them and its refusal shown on the page.
"""

from flask import flash, redirect, render_template, request, url_for

from app.console import bp
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db
from models import authz, clock, directory
from models.base import DomainError
from models.points import PERIODS, decide_award, pending_awards, ranking_for, request_award, requested_awards

CANDIDATES = 50  # members offered in the award form at once; a search narrows a larger subtree
RANKED = 20


def _period() -> str:
    period = request.args.get("period", "month")
    return period if period in PERIODS else "month"


def _page(*, error: str | None = None, status: int = 200):
    """The points page, with `error` (a refusal of the last action) shown above the forms."""
    manager = current_manager()
    q = (request.values.get("q") or "").strip()
    try:
        found = directory.list_members(db.session, manager, q=q or None, per_page=CANDIDATES)
    except DomainError as refusal:  # a search text the domain refuses (too long, a control character)
        found, error, status = directory.list_members(db.session, manager, per_page=CANDIDATES), refusal.message, 400
    candidates = [m for m in found.items if authz.can(manager, authz.AWARD_POINTS, m)]
    period = _period()
    return render_template(
        "console/points.html", manager=manager, q=q, candidates=candidates, found=found, error=error,
        form=request.form if request.method == "POST" else {}, pending=pending_awards(db.session, manager),
        mine=requested_awards(db.session, manager), period=period,
        board=ranking_for(db.session, manager, manager.org_id, period=period, limit=RANKED,
                          settings=current_settings()),
        tz=current_settings().tz, clock=clock,
    ), status


@bp.get("/points")
@login_required
def points():
    return _page()


class FormError(DomainError):
    """A form field that cannot be read."""


def _member_id() -> int:
    raw = (request.form.get("member_id") or "").strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise FormError("请选择要录入积分的成员。")
    return int(raw)


def _amount() -> int:
    raw = (request.form.get("amount") or "").strip().replace("＋", "+").replace("－", "-")
    if not (raw.isascii() and raw.lstrip("+-").isdigit()) or len(raw) > 10 or raw.count("-") + raw.count("+") > 1:
        raise FormError("积分数应为整数（扣减请写负数，例如 -5）。")
    return int(raw)


@bp.post("/points/awards")
@login_required
def points_request():
    try:
        award = request_award(db.session, current_manager(), _member_id(), _amount(), request.form.get("reason", ""))
    except DomainError as error:
        db.session.rollback()
        return _page(error=error.message, status=error.status)
    flash(f"已提交积分申请 #{award.id}：{award.member.name} {award.amount:+d} 分，"
          "须由另一位书记或管理员批准后计入。", "success")
    return redirect(url_for("console.points"))


def _decide(award_id: int, approve: bool):
    try:
        award = decide_award(db.session, current_manager(), award_id, approve, request.form.get("note", ""))
    except DomainError as error:
        db.session.rollback()
        return _page(error=error.message, status=error.status)
    verdict = "已批准，积分已计入" if approve else "已驳回"
    flash(f"积分申请 #{award.id}（{award.member.name} {award.amount:+d} 分）{verdict}。", "success")
    return redirect(url_for("console.points"))


@bp.post("/points/awards/<int:award_id>/approve")
@login_required
def points_approve(award_id: int):
    return _decide(award_id, True)


@bp.post("/points/awards/<int:award_id>/reject")
@login_required
def points_reject(award_id: int):
    return _decide(award_id, False)
