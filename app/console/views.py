"""The console's pages."""

from flask import redirect, render_template, url_for

from app.console import bp
from app.console.auth import current_manager, login_required, sign_out


@bp.get("/")
@login_required
def dashboard():
    return render_template("console/dashboard.html", manager=current_manager())


@bp.get("/login")
def login():
    if current_manager() is not None:
        return redirect(url_for("console.dashboard"))
    return render_template("console/login.html")


@bp.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("console.login"))
