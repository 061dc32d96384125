"""The console's first page: the figures of the manager's subtree, and for a street or community
the comparison of the organizations below it (models/dashboard.py computes them)."""

from flask import render_template, request

from app.console import bp, charts
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db
from models import dashboard as figures

COMPARED_ON_DASHBOARD = 12  # organizations compared on the first page; the rest on /communities


@bp.get("/")
@login_required
def dashboard():
    manager = current_manager()
    settings = current_settings()
    board = figures.dashboard(db.session, manager, settings=settings)
    units = None
    if figures.compares_units(manager):
        units = figures.compare_units(db.session, manager, sort=_sort(), descending=_descending(),
                                      settings=settings)
    return render_template(
        "console/dashboard.html", manager=manager, board=board, units=units, tz=settings.tz,
        compared=COMPARED_ON_DASHBOARD, wish_states=figures.WISH_FIGURES,
        charts={"attendance": charts.attendance_chart(board.months), "wishes": charts.wishes_chart(board.months),
                "quota": charts.quota_chart(board.quota) if board.quota and board.quota.members else None},
    )


@bp.get("/communities")
@login_required
def communities():
    manager = current_manager()
    units = []
    if figures.compares_units(manager):
        units = figures.compare_units(db.session, manager, sort=_sort(), descending=_descending(),
                                      settings=current_settings())
    return render_template("console/communities.html", manager=manager, units=units)


def _sort() -> str:
    sort = request.args.get("sort", "name")
    return sort if sort in figures.SORT_KEYS else "name"


def _descending() -> bool:
    return request.args.get("dir") == "desc"
