"""帮助, 绑定, 解绑, 我的."""

from weakref import WeakKeyDictionary

from handlers.paging import REPLY_MAX_BYTES, Section, clip, page_reply, short, with_page
from handlers.presenter import BIND_EXAMPLE, BIND_HOW, HELP_HINT, progress_line
from handlers.router import Context, Handlers, Incoming, Router
from models import authz, clock
from models.authz import visible_phone
from models.base import DomainError, Forbidden
from models.bindings import AmbiguousMember, release_binding
from models.birthdays import SINCE
from models.member import bind_openid, unbind_openid
from models.points import balance
from models.quota import member_progress, quotas_from_settings

RELEASE_USAGE = "解绑 姓名 [手机号] [原因]"
# A phone as people type it: digits with spaces, dashes or brackets, maybe "+86" (the text is folded
# to half-width with single spaces before it is matched). A name has no digits.
_PHONE = r"[+(]?\d[\d ()\-]*\d"
_NAME = r"[^\d+()\-]"
# 绑定: name then phone, or phone then name ("绑定 13800000004 张三"), with or without a space.
BIND_PATTERN = (rf"(?P<name>{_NAME}+?) ?(?P<phone>{_PHONE})"
                rf"|(?P<phone2>{_PHONE}) ?(?P<name2>{_NAME}+)")
# 解绑 alone (one's own binding), or 解绑 姓名 [手机号] [原因] (a manager frees a member's binding).
# The reason follows the phone, or a space after the name.
RELEASE_PATTERN = (rf"(?:(?P<name>{_NAME}+?)(?: ?(?P<phone>{_PHONE})(?: ?(?P<reason>.+))?"
                   rf"|(?: (?P<reason2>.+))?))?")
PHONE_MIN_DIGITS = 7  # fewer digits after the name are the start of a reason, not a phone
AMBIGUOUS_SHOWN = 10  # namesakes listed when a name alone is not enough


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
        tail += "\n首次使用请先绑定：" + BIND_HOW
    return page_reply(lead + "可用指令（按主题）：", [Section(lines)], 1, with_page("帮助"), tail=tail)


on = Handlers()


@on.command("帮助", aliases=("help", "?", "菜单", "指令"), summary="帮助 [主题] — 查看可用指令和用法")
def help_(message: Incoming, ctx: Context) -> str:
    role = ctx.role
    key = (role, ctx.rest)
    texts = _help_texts.setdefault(ctx.router, {})  # per router: a test's router may hold other commands
    if key not in texts:  # the same for everyone with one role: made once
        if len(texts) > 1000:  # arbitrary texts after 帮助 must not grow it without end
            texts.clear()
        texts[key] = help_text(ctx.router, role, ctx.rest)
    return texts[key]


_help_texts: WeakKeyDictionary = WeakKeyDictionary()


@on.command("绑定", summary="绑定 姓名 手机号 — 绑定党员/志愿者身份",
            pattern=BIND_PATTERN, usage=f"绑定 姓名 手机号，例如：{BIND_EXAMPLE}", effect=True)
def bind(message: Incoming, ctx: Context) -> str:
    # Name and phone in either order; the phone may carry spaces, dashes or +86.
    name = ctx.match.group("name") or ctx.match.group("name2")
    phone = ctx.match.group("phone") or ctx.match.group("phone2")
    member = bind_openid(ctx.session, message.openid, name.strip(), phone, now=ctx.now, settings=ctx.settings)
    return f"绑定成功！{member.name}，欢迎您。\n所属组织：{member.org.full_name}\n" + HELP_HINT


@on.command("解绑", summary=f"解绑 — 解除本微信的绑定（书记、管理员：{RELEASE_USAGE}）",
            pattern=RELEASE_PATTERN, usage=f"解绑（解除本微信的绑定）；书记、管理员：{RELEASE_USAGE}",
            needs_member=True, effect=True)
def unbind(message: Incoming, ctx: Context) -> str:
    if not ctx.match.group("name"):
        member = unbind_openid(ctx.session, message.openid)
        return f"已解除「{member.name}」与本微信号的绑定。"
    return release(ctx)

def release(ctx: Context) -> str:
    """解绑 姓名 [手机号] [原因]: a manager frees a member's binding."""
    name, phone = ctx.match.group("name").strip(), ctx.match.group("phone")
    reason = ctx.text("reason") or ctx.text("reason2")
    if phone and sum(c.isdigit() for c in phone) < PHONE_MIN_DIGITS:
        # A few digits after the name start the reason ("解绑 张三 3次输错"), not a phone.
        phone, reason = None, ctx.text("phone")
    try:
        done = release_binding(ctx.session, ctx.member, name, phone, reason=reason, now=ctx.now,
                               settings=ctx.settings)
    except AmbiguousMember as exc:
        lines = [f"· {m.name}（{m.org.name}，{visible_phone(ctx.member, m)}）"
                 for m in exc.candidates[:AMBIGUOUS_SHOWN]]
        if len(exc.candidates) > AMBIGUOUS_SHOWN:
            lines.append(f"……共{len(exc.candidates)}位")
        example = f"解绑 {short(name, 10)} {exc.candidates[0].phone}"
        return clip(f"{exc.message}\n" + "\n".join(lines) + f"\n例如：{example}", REPLY_MAX_BYTES)
    except Forbidden as exc:
        if ctx.member is not None and not authz.is_manager(ctx.member):
            raise DomainError(f"{exc.message}如需解除您自己的绑定，请只发送「解绑」。") from None
        if ctx.member is not None and name == ctx.member.name:
            raise DomainError(f"{exc.message}解除您自己的绑定请只发送「解绑」。") from None
        raise
    member = done.member
    because = f"\n原因：{done.reason}" if done.reason else ""
    return clip(f"已解除「{member.name}」（{member.org.name}）的{'、'.join(done.channels)}绑定。{because}\n"
                f"已通知本人；本人可用自己的微信重新绑定。", REPLY_MAX_BYTES)


@on.command("我的", aliases=("个人信息",), summary="我的 — 查看我的身份、组织和积分",
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
    field = ctx.settings.birthday_date_field
    field = field if field in SINCE else "join_date"
    birthday = getattr(m, field)
    if birthday:
        lines.append(f"政治生日：{clock.month_day(birthday)}（{birthday.year}年{SINCE[field]}）")
    lines.append(f"积分：{balance(ctx.session, m.id)}")
    year = ctx.now.astimezone(ctx.settings.tz).year
    progress = member_progress(ctx.session, m, year, quotas_from_settings(ctx.settings), ctx.settings)
    if progress is not None:
        lines.append(progress_line(year, progress))
    return "\n".join(lines)


register = on.register
