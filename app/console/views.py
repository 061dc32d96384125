"""The console's sign-in pages (the dashboard is app/console/dashboard.py)."""

from flask import redirect, render_template, url_for

from app.console import bp
from app.console.auth import current_manager, sign_out


@bp.get("/login")
def login():
    if current_manager() is not None:
        return redirect(url_for("console.dashboard"))
    return render_template("console/login.html")


@bp.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("console.login"))
