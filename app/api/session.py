"""POST /auth/login and /auth/logout: mini-program sessions."""

from flask import g
from marshmallow import fields
from webargs.flaskparser import FlaskParser

from app.api import PREFIX, limiter
from app.api.auth import Blueprint, code2session, issue_token, public, revoke
from app.api.docs import errors
from app.api.presenter import LOGGED_OUT
from app.api.schemas import LoginResultSchema, LoginSchema, MessageSchema
from app.extensions import current_settings, db
from models.member import login_miniapp


class _JsonOrFormParser(FlaskParser):
    """Reads a "json" body from a form-encoded one too (errors still under "json")."""

    def load_json(self, req, schema):
        if req.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return self.load_form(req, schema)
        return super().load_json(req, schema)


class _Blueprint(Blueprint):
    # A login body may come as JSON or form-encoded; documented as both (see login's doc).
    ARGUMENTS_PARSER = _JsonOrFormParser()


blp = _Blueprint("auth", __name__, url_prefix=f"{PREFIX}/auth", description="登录与退出")
IGNORED = "前端随 code 一起发送时接受，不使用"


class LoginRequestSchema(LoginSchema):
    """The code, and what front ends send beside it (wx.getUserProfile's answer): accepted, ignored.
    Other fields are still refused (422), so that a misspelt `code` is noticed."""

    encryptedData = fields.String(metadata={"description": IGNORED})  # noqa: N815 (WeChat's names)
    iv = fields.String(metadata={"description": IGNORED})
    rawData = fields.String(metadata={"description": IGNORED})  # noqa: N815
    signature = fields.String(metadata={"description": IGNORED})
    userInfo = fields.Raw(metadata={"description": IGNORED})  # noqa: N815
    cloudID = fields.String(metadata={"description": IGNORED})  # noqa: N815
    errMsg = fields.String(metadata={"description": IGNORED})  # noqa: N815


@blp.route("/login", methods=["POST"])
@public
@limiter.limit(lambda: current_settings().api_login_rate_limit)
@blp.arguments(LoginRequestSchema)
@blp.response(200, LoginResultSchema)
@blp.doc(requestBody={"content": {"application/x-www-form-urlencoded": {
    "schema": "LoginRequest"}}})
@blp.doc(operationId="login", responses=errors(400, 401, 422, 429, 502))
def login(args):
    """用 wx.login() 的 code 登录，得到访问令牌。

    请求体可为 JSON 或表单；`encryptedData`、`iv`、`userInfo`、`rawData`、`signature` 可一并发送（不使用）。
    令牌在 `Authorization: Bearer <token>` 中使用，每次使用后有效期顺延。
    """
    info = code2session(args["code"])
    member = login_miniapp(db.session, info["openid"], info.get("unionid"))
    g.api_member = member
    token = issue_token(info["openid"], info.get("unionid"), info.get("session_key", ""))
    return {"token": token, "expires_in": int(current_settings().api_token_ttl), "member": member}


@blp.route("/logout", methods=["POST"])
@blp.response(200, MessageSchema)
@blp.doc(operationId="logout", responses=errors(401))
def logout():
    """退出登录：令牌立即失效。"""
    revoke(g.api_session)
    return {"message": LOGGED_OUT}
