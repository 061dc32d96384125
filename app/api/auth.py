"""Mini-program login: code2session with WeChat, opaque session tokens in Redis, the Bearer check.

A token is random and means nothing by itself; Redis keeps, under a hash of it, the mini-program
openid (and unionid, session_key) it stands for, with a sliding expiry. The member is looked up
on every request, so binding and unbinding take effect at once. `session_key` is kept only in Redis:
it is never returned, and never logged.
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass

import flask_smorest
import requests
from flask import current_app, g, request

from app.api.errors import ApiError
from app.api.presenter import NOT_BOUND
from app.extensions import current_settings, db, get_redis
from models.base import Forbidden
from models.member import Member, member_for_miniapp_openid
from scheduler.wechat_api import OFFICIAL_BASE, route_to_base

log = logging.getLogger(__name__)

TOKEN_PREFIX = "lx:api:token:"
# The OpenAPI security scheme of the token, and the security of an operation that needs it.
BEARER_SCHEME = "bearerAuth"
BEARER = [{BEARER_SCHEME: []}]
# WeChat's answers for a wx.login code that is unknown, used already, or blocked.
INVALID_CODE_ERRORS = {40029, 40163, 40226}
FREQUENCY_LIMITED = 45011


@dataclass
class ApiSession:
    token_key: str
    openid: str
    unionid: str | None


def _key(token: str) -> str:
    # Only a hash of the token is stored, so a look at Redis does not hand out live tokens.
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def code2session(code: str) -> dict:
    """Exchange a wx.login code for {"openid", "session_key", "unionid"?}, or raise ApiError."""
    cfg = current_settings()
    http = route_to_base(requests.Session(), cfg.wechat_api_base)
    try:
        answer = http.get(
            OFFICIAL_BASE + "/sns/jscode2session",
            params={"appid": cfg.miniapp_app_id, "secret": cfg.miniapp_app_secret,
                    "js_code": code, "grant_type": "authorization_code"},
            timeout=cfg.wechat_http_timeout,
        )
        answer.raise_for_status()
        data = answer.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("jscode2session failed: %s", type(exc).__name__)
        raise ApiError(502, "wechat_unavailable", "微信登录服务暂时不可用，请稍后再试。") from None
    finally:
        http.close()
    if not isinstance(data, dict):
        raise ApiError(502, "wechat_unavailable", "微信登录服务暂时不可用，请稍后再试。")
    errcode = data.get("errcode") or 0
    if errcode in INVALID_CODE_ERRORS:
        raise ApiError(401, "invalid_code", "登录凭证无效或已使用，请重新进入小程序登录。",
                       {"wechat_errcode": errcode})
    if errcode == FREQUENCY_LIMITED:
        raise ApiError(429, "rate_limited", "登录过于频繁，请稍后再试。", {"wechat_errcode": errcode})
    if errcode or not data.get("openid"):
        # Only the error code is logged: the answer may carry the session_key.
        log.warning("jscode2session answered errcode %s", errcode)
        raise ApiError(502, "wechat_error", "微信登录失败，请稍后再试。", {"wechat_errcode": errcode})
    return data


def issue_token(openid: str, unionid: str | None, session_key: str) -> str:
    """Create a session token for a mini-program user; return it."""
    token = secrets.token_urlsafe(32)
    key = _key(token)
    fields = {"openid": openid, "unionid": unionid or "", "session_key": session_key}
    store = get_redis(current_app)
    with store.pipeline() as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, int(current_settings().api_token_ttl))
        pipe.execute()
    return token


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def load_session(token: str) -> ApiSession | None:
    """Return the session of a token and extend its life (sliding expiry), or None."""
    key = _key(token)
    store = get_redis(current_app)
    with store.pipeline() as pipe:
        pipe.hmget(key, "openid", "unionid")
        pipe.expire(key, int(current_settings().api_token_ttl))
        (openid, unionid), _ = pipe.execute()
    if not openid:
        return None
    return ApiSession(key, openid, unionid or None)


def revoke(session: ApiSession) -> None:
    get_redis(current_app).delete(session.token_key)


def token_rate_key() -> str:
    """The rate-limit key of the caller's token (hashed), or of its address without one."""
    token = bearer_token()
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "ip:" + (request.remote_addr or "")


def current_viewer() -> Member | None:
    """The member the logged-in mini-program user is bound to, or None (not bound yet).

    Kept in `g.api_member` for the request: the schemas mask what this viewer may not see."""
    if "api_member" not in g:
        g.api_member = member_for_miniapp_openid(db.session, g.api_session.openid)
    return g.api_member


def current_member() -> Member:
    """The bound member calling, or 403 `not_bound`."""
    member = current_viewer()
    if member is None:
        raise Forbidden(NOT_BOUND, code="not_bound")
    return member


def require_login() -> None:
    """Admit only a request with a valid `Authorization: Bearer <token>` (else 401); keep its session
    in `g.api_session`."""
    token = bearer_token()
    if token is None:
        raise ApiError(401, "unauthorized", "请先登录。", headers={"WWW-Authenticate": "Bearer"})
    session = load_session(token)
    if session is None:
        raise ApiError(401, "token_invalid", "登录已失效，请重新登录。",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    g.api_session = session


def public(view):
    """Mark a view of a login-checking Blueprint as open to everyone (documented `security: []`)."""
    view.api_public = True
    view._apidoc = {**getattr(view, "_apidoc", {})}
    view._apidoc["manual_doc"] = {**view._apidoc.get("manual_doc", {}), "security": []}
    return view


class Blueprint(flask_smorest.Blueprint):
    """A blueprint of /api/v1 whose operations need a login, checked once for all of them before the
    view runs, and documented with the bearer security; a view marked `@public` is exempt."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(self._check_login)
        self._prepare_doc_cbks.append(self._prepare_security_doc)

    @staticmethod
    def _check_login() -> None:
        if request.method == "OPTIONS":  # Flask's automatic answer; it runs no view
            return
        view = current_app.view_functions.get(request.endpoint or "")
        if not getattr(view, "api_public", False):
            require_login()

    @staticmethod
    def _prepare_security_doc(doc, doc_info, **kwargs):
        doc["security"] = [dict(scheme) for scheme in BEARER]  # `@public` overrides it with [] (manual doc comes last)
        return doc
