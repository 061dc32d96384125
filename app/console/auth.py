"""Who is signed in to the console: the member id in the console's session, asked of authz on every
request (a secretary who lost the role loses the console at once)."""

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for

from app.console.sessions import MEMBER_FIELD, end_sessions_of
from app.extensions import db, get_redis
from models import Member, authz

SESSION_KEY = MEMBER_FIELD
CSRF_FIELD = "csrf_token"  # Flask-WTF's name of the token, in the session and in `g`


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
    """Start a console session for `member` (who may use the console: the caller asked authz),
    under a new session id (an id known before signing in is worth nothing after)."""
    session.clear()
    session[SESSION_KEY] = member.id
    session.rotate_id()
    _forget_csrf_token()
    request.console_manager = member


def sign_out() -> None:
    """End the console session, and every other session of the same member (every browser and
    phone they are signed in with)."""
    member_id = session.get(SESSION_KEY)
    if isinstance(member_id, int):
        end_sessions_of(get_redis(current_app), member_id)
    session.clear()
    _forget_csrf_token()
    request.console_manager = None


def _forget_csrf_token() -> None:
    """The session's CSRF token went with its data: Flask-WTF's copy for this request (in `g`) goes
    too, so that the next form gets a token of the new session."""
    g.pop(CSRF_FIELD, None)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a page of the console (never another site, never the login
    pages themselves); the dashboard otherwise."""
    target = (target or "").rstrip("?")
    inside = target == "/console" or target.startswith("/console/")
    if inside and "\\" not in target and not any(c < " " for c in target) \
            and not target.startswith(url_for("console.login")):
        return target
    return url_for("console.dashboard")


def login_required(view):
    """The view needs a signed-in manager: others go to the login page (GET) or get 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_manager() is None:
            if request.method == "GET":
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            abort(403)
        return view(*args, **kwargs)

    return wrapper
