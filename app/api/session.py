"""POST /auth/login and /auth/logout: mini-program sessions."""

from flask import current_app, g
from flask_smorest import Blueprint

from app.api import PREFIX, limiter
from app.api.auth import code2session, issue_token, login_required, revoke
from app.api.schemas import LoginResultSchema, LoginSchema, MessageSchema
from app.extensions import db
from models.member import login_miniapp

blp = Blueprint("auth", __name__, url_prefix=f"{PREFIX}/auth", description="登录与退出")
BEARER = [{"bearerAuth": []}]


@blp.route("/login", methods=["POST"])
@limiter.limit(lambda: current_app.config["API_LOGIN_RATE_LIMIT"])
@blp.arguments(LoginSchema)
@blp.response(200, LoginResultSchema)
@blp.doc(security=[])
def login(args):
    """用 wx.login() 的 code 登录，得到访问令牌。

    令牌在 `Authorization: Bearer <token>` 中使用，每次使用后有效期顺延。
    """
    info = code2session(args["code"])
    member = login_miniapp(db.session, info["openid"], info.get("unionid"))
    g.api_member = member
    token = issue_token(info["openid"], info.get("unionid"), info.get("session_key", ""))
    return {"token": token, "expires_in": int(current_app.config["API_TOKEN_TTL"]), "member": member}


@blp.route("/logout", methods=["POST"])
@login_required
@blp.response(200, MessageSchema)
@blp.doc(security=BEARER)
def logout():
    """退出登录：令牌立即失效。"""
    revoke(g.api_session)
    return {"message": "已退出登录。"}
