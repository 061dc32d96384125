"""Signing in to the console, and out.

- On the desktop, by scanning: the login page shows a temporary QR code of the Official Account
  (scene "login_<token>", models/console_login.py); the secretary scans it with WeChat, the webhook's
  SCAN event confirms the attempt (handlers/events.py), and the page, asking every
  CONSOLE_LOGIN_POLL_SECONDS (static/login.js; without JavaScript a link), finds it confirmed and
  enters. The attempt is kept in this browser's session: only the browser that showed the QR code
  can be signed in by it.
- Inside WeChat's browser (User-Agent with MicroMessenger): WeChat's web authorization (OAuth 2,
  snsapi_base) gives the openid without typing; `state` ties the answer to this browser.
- Signing out ends every session of the member (app/console/sessions.py).
"""

import hmac
import logging
import secrets
from urllib.parse import urlencode

import requests
from flask import current_app, flash, jsonify, redirect, render_template, request, session, url_for

from app.checkin_page import qr_data_uri
from app.console import bp
from app.console.auth import current_manager, safe_next, sign_in, sign_out
from app.console.errors import error_page
from app.extensions import current_settings, db, get_redis
from models import Forbidden, now_utc
from models.console_login import (
    DONE,
    EXPIRED,
    REFUSED,
    USED,
    WAITING,
    ConsoleLogin,
    console_member,
    poll_login,
    remember_qr,
    start_login,
)
from scheduler.wechat_api import OFFICIAL_BASE, official_account_client

log = logging.getLogger(__name__)

# The session's fields of a login under way.
ATTEMPT_FIELD = "login_attempt"  # the ConsoleLogin this browser shows
NEXT_FIELD = "login_next"  # where to go once signed in
STATE_FIELD = "oauth_state"  # the `state` sent to WeChat's authorization

# What the page says about a refused scan, by authz's refusal code.
REFUSALS = {
    "not_bound": "扫码的微信号还没有绑定党员身份，没有连心管理后台的访问权限。",
    "forbidden": "扫码的微信号没有连心管理后台的访问权限（仅限书记和管理员）。",
}
REFUSED_ELSE = "扫码的微信号没有连心管理后台的访问权限。"
STATES = {
    WAITING: "扫码后本页会自动进入管理后台。",
    REFUSED: "{refusal}请用书记或管理员的微信扫码。",
    EXPIRED: "二维码已过期，请刷新二维码后重新扫描。",
    USED: "该二维码已被使用，请刷新二维码。",
    DONE: "登录成功，正在进入管理后台……",
}
NOT_SCANNED = "还没有收到扫码。请用微信扫描二维码，再点「已扫码，进入管理后台」。"
NO_OFFICIAL_ACCOUNT = "尚未配置微信公众号（WECHAT_APP_ID、WECHAT_APP_SECRET），无法生成登录二维码。"
QR_FAILED = "暂时无法生成登录二维码（微信接口没有响应），请稍后刷新本页。"
OAUTH_STALE = "登录页面已过期，请从公众号菜单重新打开管理后台。"
OAUTH_NO_CODE = "没有得到微信的授权，无法登录。请从公众号菜单重新打开管理后台。"
OAUTH_FAILED = "微信授权暂时失败，请从公众号菜单重新打开管理后台。"
OAUTH_REFUSALS = {
    "not_bound": "您的微信号还没有绑定党员身份，没有连心管理后台的访问权限。请先在公众号中绑定身份。",
    "forbidden": "连心管理后台仅限书记和管理员使用，您没有访问权限。",
}


class OAuthFailed(Exception):
    """WeChat did not give an openid for the authorization code."""


def in_wechat() -> bool:
    """The page is opened in WeChat's own browser."""
    return "MicroMessenger" in request.headers.get("User-Agent", "")


def refusal_words(code: str | None) -> str:
    return REFUSALS.get(code or "", REFUSED_ELSE)


@bp.get("/login")
def login():
    target = safe_next(request.args.get("next"))
    if current_manager() is not None:
        return redirect(target)
    notice = "您已退出登录。" if request.args.get("out") else None
    if in_wechat():
        if notice:  # just signed out: no automatic sign-in again
            return render_template("console/login.html", wechat=True, notice=notice, next=target)
        return _authorize(target)
    return _scan_page(target, notice)


def _scan_page(target: str, notice: str | None):
    settings = current_settings()
    now = now_utc()
    attempt = start_login(db.session, now, settings, reuse_id=_int(session.get(ATTEMPT_FIELD)))
    session[ATTEMPT_FIELD] = attempt.id
    session[NEXT_FIELD] = target
    url, problem = _qr_url(attempt, now)
    html = render_template(
        "console/login.html", qr=qr_data_uri(url) if url else None, qr_url=url, problem=problem,
        poll=settings.console_login_poll_seconds, minutes=max(1, settings.console_login_seconds // 60),
        local=settings.wechat_api_base != OFFICIAL_BASE, notice=notice, next=target)
    return html, 200, {"Cache-Control": "no-store"}


def _int(value) -> int | None:
    return value if isinstance(value, int) else None


def _qr_url(attempt: ConsoleLogin, now) -> tuple[str | None, str | None]:
    """The attempt's QR code (its content, a URL), made by WeChat's API once and kept; or the
    reason there is none."""
    if attempt.qr_url:
        return attempt.qr_url, None
    settings = current_settings()
    if not settings.wechat_app_secret:
        return None, NO_OFFICIAL_ACCOUNT
    client = official_account_client(settings, get_redis(current_app))
    request_body = {
        "expire_seconds": max(60, int((attempt.expires_at - now).total_seconds())),
        "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": attempt.scene}},
    }
    try:
        url = client.call(lambda: client.qrcode.create(request_body))["url"]
    except Exception:  # noqa: BLE001 - any failure of WeChat's: the page says so and can be reloaded
        db.session.rollback()
        log.exception("creating the console login QR code failed")
        return None, QR_FAILED
    remember_qr(db.session, attempt, url)
    return url, None


def _poll() -> tuple[str, str, str]:
    """The state of this browser's login attempt (taking it and signing in when it is confirmed):
    (state, what the page says, where to go)."""
    target = safe_next(session.get(NEXT_FIELD))
    if current_manager() is not None:
        return DONE, STATES[DONE], target
    found = poll_login(db.session, _int(session.get(ATTEMPT_FIELD)), now_utc())
    if found.state == DONE:
        sign_in(found.member)
    return found.state, STATES[found.state].format(refusal=refusal_words(found.refused)), target


@bp.get("/login/status")
def login_status():
    state, message, target = _poll()
    response = jsonify(state=state, message=message, next=target if state == DONE else None)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/login/enter")
def login_enter():
    """The login page's link for a browser without JavaScript: enter if the scan came."""
    state, message, target = _poll()
    if state == DONE:
        return redirect(target)
    flash(NOT_SCANNED if state == WAITING else message, "danger" if state == REFUSED else "warning")
    return redirect(url_for("console.login", next=target))


# Inside WeChat: web authorization -------------------------------------------------------------
def _callback_url() -> str:
    base = current_settings().public_base_url.rstrip("/") or request.url_root.rstrip("/")
    return base + url_for("console.login_oauth")


def _authorize(target: str):
    """Send WeChat's browser to WeChat's authorization page (snsapi_base: no prompt), which comes
    back to /console/login/oauth with a code and our `state`."""
    settings = current_settings()
    if not settings.wechat_app_secret:
        return error_page(503, NO_OFFICIAL_ACCOUNT)
    state = secrets.token_urlsafe(16)
    session[STATE_FIELD] = state
    session[NEXT_FIELD] = target
    query = urlencode({"appid": settings.wechat_app_id, "redirect_uri": _callback_url(), "response_type": "code",
                       "scope": "snsapi_base", "state": state})
    return redirect(f"{settings.wechat_open_base}/connect/oauth2/authorize?{query}#wechat_redirect")


def openid_for_code(code: str) -> str:
    """Exchange a web authorization code for the user's openid (sns/oauth2/access_token)."""
    settings = current_settings()
    try:
        answer = requests.get(f"{settings.wechat_api_base}/sns/oauth2/access_token", params={
            "appid": settings.wechat_app_id, "secret": settings.wechat_app_secret, "code": code,
            "grant_type": "authorization_code"}, timeout=settings.wechat_http_timeout).json()
    except (requests.RequestException, ValueError) as exc:
        raise OAuthFailed(str(exc)) from None
    if not isinstance(answer, dict) or not answer.get("openid"):
        raise OAuthFailed(str(answer))
    return str(answer["openid"])


@bp.get("/login/oauth")
def login_oauth():
    expected = session.pop(STATE_FIELD, None)
    state = request.args.get("state", "")
    if not isinstance(expected, str) or not hmac.compare_digest(state.encode(), expected.encode()):
        return error_page(400, OAUTH_STALE, "页面已过期")
    code = request.args.get("code", "")
    if not code:
        return error_page(403, OAUTH_NO_CODE)
    try:
        member = console_member(db.session, openid_for_code(code))
    except OAuthFailed as exc:
        log.warning("web authorization failed: %s", exc)
        return error_page(502, OAUTH_FAILED)
    except Forbidden as refusal:
        return error_page(403, OAUTH_REFUSALS.get(refusal.code, refusal.message), "没有访问权限")
    target = safe_next(session.get(NEXT_FIELD))
    sign_in(member)
    return redirect(target)


# Signing out -----------------------------------------------------------------------------------
@bp.post("/logout")
def logout():
    """Sign out here and wherever else the member is signed in."""
    sign_out()
    return redirect(url_for("console.login", out=1))
