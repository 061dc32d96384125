"""帮助, 绑定, 解绑, 我的."""

from datetime import timedelta

from handlers.activities import my_progress_line
from handlers.paging import Section, page_reply, short, with_page
from handlers.router import Context, Incoming, Router
from models.birthdays import SINCE
from models.member import bind_openid, unbind_openid
from models.points import balance

BIND_EXAMPLE = "绑定 张三 13800000000"


# 帮助's topics: the command words each one explains. A command in no topic is listed under 其他,
# so a new command is never left out of 帮助.
HELP_TOPICS = {
    "账号": ("帮助", "绑定", "解绑", "我的"),
    "心愿": ("心愿", "我的心愿", "许愿", "发布心愿", "审核", "认领", "放弃", "完成", "确认", "驳回", "撤回"),
    "积分": ("积分", "积分榜"),
    "活动": ("活动", "新活动", "报名", "取消报名", "签到", "代签", "签退", "出勤", "签到页", "轮换码",
             "活动位置", "提醒", "完成情况"),
    "消息": ("消息", "通知", "组织生活"),
}
OTHER_TOPIC = "其他"
TOPIC_ALIASES = {"账户": "账号", "身份": "账号", "微心愿": "心愿", "签到": "活动", "通知": "消息"}


def _topics(router: Router, role: str | None) -> dict[str, list]:
    """The topics with the commands a caller with `role` sees in each, in registration order."""
    topic_of = {word: topic for topic, words in HELP_TOPICS.items() for word in words}
    topics: dict[str, list] = {topic: [] for topic in (*HELP_TOPICS, OTHER_TOPIC)}
    for command in router.visible_commands(role):
        if command.summary:
            topics[topic_of.get(command.keyword, OTHER_TOPIC)].append(command)
    return {topic: commands for topic, commands in topics.items() if commands}


def _find_topic(router: Router, topics: dict[str, list], word: str) -> str | None:
    """The topic a word names: a topic, one of its other names, or a command word in it."""
    word = TOPIC_ALIASES.get(word, word)
    if word in topics:
        return word
    found = router.match(word)
    if found is not None and not found[1]:
        return next((t for t, commands in topics.items() if found[0] in commands), None)
    return None


def help_text(router: Router, role: str | None, rest: str) -> str:
    """帮助: an overview of the topics; 帮助 <主题> [页]: that topic's commands with their usage."""
    topics = _topics(router, role)
    words = rest.split()
    if words:
        page = int(words[-1]) if len(words) > 1 and words[-1].isdigit() else 1
        topic = _find_topic(router, topics, words[0])
        if topic is not None:
            sections = [Section([f"· {c.summary}" for c in topics[topic]])]
            return page_reply(f"{topic}类指令：", sections, page, with_page(f"帮助 {topic}"),
                              tail="发送「帮助」查看全部主题。")
        lead = f"没有「{short(words[0], 10)}」这个帮助主题。\n"
    else:
        lead = ""
    lines = [f"· 帮助 {topic}：{'、'.join(c.keyword for c in commands)}" for topic, commands in topics.items()]
    tail = "发送「帮助 主题」查看各指令的用法，例如：帮助 心愿"
    if role is None:
        tail += f"\n首次使用请先绑定：发送「绑定 姓名 手机号」，例如：{BIND_EXAMPLE}"
    return page_reply(lead + "可用指令（按主题）：", [Section(lines)], 1, with_page("帮助"), tail=tail)


def register(router: Router) -> None:
    @router.command("帮助", aliases=("help", "?", "菜单", "指令"), summary="帮助 [主题] — 查看可用指令和用法")
    def help_(message: Incoming, ctx: Context) -> str:
        role = ctx.role
        key = (role, ctx.rest)
        if key not in help_texts:  # the same for everyone with one role: made once
            if len(help_texts) > 1000:  # arbitrary texts after 帮助 must not grow it without end
                help_texts.clear()
            help_texts[key] = help_text(ctx.router, role, ctx.rest)
        return help_texts[key]

    help_texts: dict[tuple[str | None, str], str] = {}

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
