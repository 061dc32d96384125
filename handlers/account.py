"""帮助, 绑定, 解绑, 我的."""

from datetime import timedelta

from handlers.activities import my_progress_line
from handlers.router import Context, Incoming, Router
from models.birthdays import SINCE
from models.member import bind_openid, unbind_openid
from models.points import balance

BIND_EXAMPLE = "绑定 张三 13800000000"


def register(router: Router) -> None:
    @router.command("帮助", aliases=("help", "?", "菜单", "指令"), summary="帮助 — 查看可用指令")
    def help_(message: Incoming, ctx: Context) -> str:
        role = ctx.role
        if role not in help_texts:  # the same for everyone with one role: made once
            lines = ["您可以发送以下指令："]
            lines += [f"· {c.summary}" for c in ctx.router.visible_commands(role) if c.summary]
            if role is None:
                lines.append(f"首次使用请先绑定，例如：{BIND_EXAMPLE}")
            help_texts[role] = "\n".join(lines)
        return help_texts[role]

    help_texts: dict[str | None, str] = {}

    @router.command("绑定", summary="绑定 姓名 手机号 — 绑定党员/志愿者身份",
                    pattern=r"(\S+) (\S+)", usage=f"绑定 姓名 手机号，例如：{BIND_EXAMPLE}", effect=True)
    def bind(message: Incoming, ctx: Context) -> str:
        name, phone = ctx.match.groups()
        member = bind_openid(
            ctx.session, message.openid, name, phone, now=ctx.now,
            max_failures=int(ctx.settings.get("BIND_MAX_FAILURES", 5)),
            lockout=timedelta(seconds=int(ctx.settings.get("BIND_LOCKOUT_SECONDS", 3600))),
        )
        return (f"绑定成功！{member.name}，欢迎您。\n所属组织：{member.org.full_name}\n"
                "发送「帮助」查看可用指令。")

    @router.command("解绑", summary="解绑 — 解除微信与身份的绑定", needs_member=True, effect=True)
    def unbind(message: Incoming, ctx: Context) -> str:
        member = unbind_openid(ctx.session, message.openid)
        return f"已解除「{member.name}」与本微信号的绑定。"

    @router.command("我的", aliases=("个人信息",), summary="我的 — 查看我的身份、组织和积分",
                    needs_member=True)
    def me(message: Incoming, ctx: Context) -> str:
        m = ctx.member
        lines = [
            f"姓名：{m.name}",
            f"组织：{m.org.full_name}",
            f"类别：{m.kind}",
            f"角色：{m.role}",
        ]
        if m.grid:
            lines.append(f"网格：{m.grid.name}")
        # The political birthday is the date the greetings count from (BIRTHDAY_DATE_FIELD).
        field = ctx.settings.get("BIRTHDAY_DATE_FIELD", "join_date")
        field = field if field in SINCE else "join_date"
        birthday = getattr(m, field)
        if birthday:
            lines.append(f"政治生日：{birthday.month}月{birthday.day}日（{birthday.year}年{SINCE[field]}）")
        lines.append(f"积分：{balance(ctx.session, m.id)}")
        progress = my_progress_line(ctx)
        if progress:
            lines.append(progress)
        return "\n".join(lines)
