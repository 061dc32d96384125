"""Follow and unfollow, position reports, the menu's buttons, and the console's login QR code."""

from handlers.presenter import BIND_HOW, HELP_HINT
from handlers.router import Context, Handlers, Incoming
from models import Forbidden, clock
from models.console_login import SCENE_PREFIX as LOGIN_SCENE
from models.console_login import confirm_login
from models.member import record_location, set_subscribed

# Menu button keys (configured in the Official Account's menu) → the command they stand for.
MENU = {
    "MENU_HELP": "帮助",
    "MENU_ME": "我的",
}


on = Handlers()
for key, text in MENU.items():
    on.click(key, text)


@on.event("subscribe")
def subscribe(message: Incoming, ctx: Context) -> str:
    set_subscribed(ctx.session, message.openid, True)
    if ctx.member is not None:
        return f"{ctx.member.name}，欢迎回到连心！" + HELP_HINT
    return "欢迎关注连心！这里可以认领微心愿、参加组织生活、接收支部通知。\n请先绑定身份：" + BIND_HOW


@on.event("unsubscribe")
def unsubscribe(message: Incoming, ctx: Context) -> None:
    set_subscribed(ctx.session, message.openid, False)


@on.event("location")
def location(message: Incoming, ctx: Context) -> None:
    if message.latitude is not None and message.longitude is not None:
        record_location(ctx.session, message.openid, message.latitude, message.longitude, ctx.now)


@on.scene(LOGIN_SCENE)
def console_login(message: Incoming, ctx: Context) -> str:
    """A login QR code of the console scanned: confirms that browser's login (secretaries and admins)."""
    try:
        confirm_login(ctx.session, ctx.member, ctx.rest, now=ctx.now)
    except Forbidden as refusal:
        if refusal.code == "not_bound":
            return "您还没有绑定党员身份，没有连心管理后台的访问权限，未登录。\n如需绑定：" + BIND_HOW
        raise
    return (f"已登录连心管理后台（{clock.full_date(ctx.now, ctx.settings.tz, with_time=True)}）。\n"
            "如非本人操作，请从公众号菜单打开管理后台并点「退出」：您在各处的登录都会结束。")


register = on.register
