"""Follow and unfollow, position reports, and the menu's buttons."""

from handlers.presenter import BIND_HOW, HELP_HINT
from handlers.router import Context, Handlers, Incoming
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


register = on.register
