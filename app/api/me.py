"""GET /me, POST /me/bind, DELETE /me/bind: the logged-in user's own identity."""


from flask import g

from app.api import PREFIX, limiter
from app.api.auth import Blueprint, current_viewer, token_rate_key
from app.api.docs import errors
from app.api.schemas import BindSchema, MeSchema
from app.extensions import current_settings, db
from models.member import bind_openid, unbind_miniapp

blp = Blueprint("me", __name__, url_prefix=f"{PREFIX}/me", description="我的身份")


def _me():
    member = current_viewer()
    return {"bound": member is not None, "member": member}


@blp.route("", methods=["GET"])
@blp.response(200, MeSchema)
@blp.doc(operationId="getMe", responses=errors(401))
def me():
    """查看我的信息，以及是否已绑定党员/志愿者身份。"""
    return _me()


@blp.route("/bind", methods=["POST"])
@limiter.limit(lambda: current_settings().api_bind_rate_limit)
@limiter.limit(lambda: current_settings().api_bind_rate_limit_per_token, key_func=token_rate_key)
@blp.arguments(BindSchema)
@blp.response(200, MeSchema)
@blp.doc(operationId="bindMe", responses=errors(400, 401, 422, 429))
def bind(args):
    """用姓名和手机号绑定身份（与公众号「绑定」规则相同，失败过多会被暂时锁定）。"""
    cfg = current_settings()
    session = g.api_session
    bind_openid(
        db.session, session.openid, args["name"], args["phone"],
        column="miniapp_openid", unionid=session.unionid, settings=cfg,
    )
    g.pop("api_member", None)
    return _me()


@blp.route("/bind", methods=["DELETE"])
@blp.response(200, MeSchema)
@blp.doc(operationId="unbindMe", responses=errors(400, 401))
def unbind():
    """解除小程序与身份的绑定。"""
    unbind_miniapp(db.session, g.api_session.openid)
    g.pop("api_member", None)
    return _me()
