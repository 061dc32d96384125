"""The console's pages."""

from flask import render_template

from app.console import bp
from app.console.auth import current_manager, login_required


@bp.get("/")
@login_required
def dashboard():
    return render_template("console/dashboard.html", manager=current_manager())
