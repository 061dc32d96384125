"""The console's error pages, in Chinese and in the console's layout: a form whose CSRF token is
missing or stale (400), a page the manager may not see (403), an unknown page (404), a domain
error no page caught (its own status and message), and anything else HTTP can say."""

import logging

from flask import abort, render_template, session
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.console import bp
from app.extensions import db
from models import DomainError

log = logging.getLogger(__name__)

# status → (title, message)
WORDS = {
    400: ("请求有误", "请求有误，请返回上一页重试。"),
    403: ("没有权限", "您没有权限访问该页面。"),
    404: ("页面不存在", "没有找到这个页面，请检查地址，或返回首页。"),
    405: ("无法执行", "该页面不支持这种操作，请返回上一页重试。"),
    409: ("数据已变化", "数据已被其他人修改，请刷新后重试。"),
    413: ("文件过大", "上传的文件过大。"),
    429: ("操作过于频繁", "操作过于频繁，请稍后再试。"),
    500: ("出错了", "服务器出了点问题，请稍后再试。"),
    502: ("微信暂时不可用", "微信服务暂时不可用，请稍后再试。"),
    503: ("暂时不可用", "服务暂时不可用，请稍后再试。"),
}
CSRF_EXPIRED = "页面已过期，请刷新后重试。"
SESSIONS_DOWN = "服务暂时不可用（登录状态无法读取），请稍后再试。"


def _manager():
    """The signed-in manager for the layout, if that can still be known (not after a database failure)."""
    from app.console.auth import current_manager

    try:
        return current_manager()
    except Exception:  # noqa: BLE001 - the error page must render whatever failed
        db.session.rollback()
        return None


def error_page(status: int, message: str | None = None, title: str | None = None):
    """A Chinese error page with `status`."""
    default_title, default_message = WORDS.get(status, WORDS[500 if status >= 500 else 400])
    html = render_template("console/error.html", status=status, title=title or default_title,
                           message=message or default_message, manager=_manager())
    return html, status, {"Cache-Control": "no-store"}


@bp.before_request
def sessions_available():
    """Redis, which keeps the sessions, cannot be reached: say so rather than seem signed out."""
    if getattr(session, "unavailable", False):
        return error_page(503, SESSIONS_DOWN)


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError):
    return error_page(400, CSRF_EXPIRED, "页面已过期")


@bp.errorhandler(DomainError)
def domain_error(error: DomainError):
    """A refusal of the domain that the page did not show itself: its words, its status."""
    db.session.rollback()
    return error_page(error.status if error.status in WORDS else 400, error.message)


def http_error(error: HTTPException):
    if error.code is None or error.code < 400:
        return error
    if isinstance(error, InternalServerError):
        db.session.rollback()
    return error_page(error.code)


# By class for any HTTP error, and by code for those the app handles itself (home.py's 404): a
# handler of the app registered for a code comes before a blueprint's registered for a class.
bp.register_error_handler(HTTPException, http_error)
for _code in WORDS:
    bp.register_error_handler(_code, http_error)


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown(rest: str):
    """Any other address under /console: the console's own 404 page."""
    abort(404)
