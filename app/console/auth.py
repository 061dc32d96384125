"""Who is signed in to the console: the member id in the console's session, asked of authz on every
request (a secretary who lost the role loses the console at once)."""

from functools import wraps

from flask import abort, redirect, request, session, url_for

from app.extensions import db
from models import Member, authz

SESSION_KEY = "member_id"


def current_manager() -> Member | None:
    """The signed-in member, when they may still use the console; None otherwise (looked up once
    per request)."""
    if not hasattr(request, "console_manager"):
        member_id = session.get(SESSION_KEY)
        member = db.session.get(Member, member_id) if isinstance(member_id, int) else None
        allowed = member is not None and authz.can(member, authz.USE_CONSOLE)
        request.console_manager = member if allowed else None
    return request.console_manager


def sign_in(member: Member) -> None:
    """Start a console session for `member` (who may use the console: the caller asked authz)."""
    session.clear()
    session[SESSION_KEY] = member.id
    request.console_manager = member


def sign_out() -> None:
    session.clear()
    request.console_manager = None


def login_required(view):
    """The view needs a signed-in manager: others go to the login page (GET) or get 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_manager() is None:
            if request.method == "GET":
                return redirect(url_for("console.login", next=request.full_path))
            abort(403)
        return view(*args, **kwargs)

    return wrapper
