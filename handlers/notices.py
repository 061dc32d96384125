"""通知 (ad-hoc notices and their receipts), 消息 (my inbox), 组织生活 (regular meetings)."""

import re
from dataclasses import dataclass, field

from handlers.paging import (
    PAGE,
    REPLY_MAX_BYTES,
    Section,
    clip,
    next_page_hint,
    no_page,
    page_number,
    page_reply,
    short,
    size,
    text_items,
    with_page,
)
from handlers.presenter import MANAGERS_ONLY, RULE_EXAMPLES
from handlers.router import Context, Handlers, Incoming
from handlers.when import parse_when
from models import DomainError, NotFound, authz, clock
from models.activity import upcoming_for
from models.member import KINDS
from models.notices import notice_receipt, publish_notice, remind_unread
from models.org import Grid, describe_grids, find_grid, grids_for
from models.orglife import (
    create_rule,
    delete_rule,
    list_rules,
    move_occurrence,
    next_start,
)
from models.outbox import inbox_number, inbox_page, mark_all_read
from models.text import parse_number

_NOTICE_OP = re.compile(r"#?(\d+) ?(回执|再提醒)")
_MOVE = re.compile(r"改期 ?#?(\d{1,12}) (\S+) (\S+)")
MOVE_EXAMPLE = "组织生活 改期 编号 12月11日 下午3点"
_DELETE = re.compile(r"删除 ?#?(\d{1,12})")
_LIST_PAGE = re.compile(PAGE)  # 组织生活 2, 组织生活 第2页: a page of the list
INBOX_PAGE_SIZE = 10  # 消息 lists this many messages a page

# 通知's audience words, typed before the text: 紧急, 网格 <名称>, and member kinds.
URGENT_WORD = "紧急"
GRID_WORD = "网格"
NOTICE_USAGE = ("通知 内容；通知 网格 网格名 内容；通知 在职党员 内容；通知 紧急 内容；"
                "通知 编号 回执；通知 编号 再提醒")
# "在职、离退休党员", "在职,离退休", "在职和离退休党员" (full-width commas are folded to ",").
_KIND_SEPARATORS = re.compile(r"[、,/和及与]")
_KIND_STEMS = {kind.removesuffix("党员"): kind for kind in KINDS}  # 在职 → 在职党员, 群众 → 群众


on = Handlers()


@on.command("通知", summary="通知 [紧急] [网格 网格名] [党员类别] 内容 — 向本组织及下级发通知；"
            "通知 编号 回执 / 再提醒",
            usage=NOTICE_USAGE, managers_only=True, effect="args")
def notice(message: Incoming, ctx: Context) -> str:
    if not ctx.rest:
        return _notice_help(ctx)
    op = _NOTICE_OP.fullmatch(ctx.rest)
    if op:
        number = parse_number(op[1])
        if op[2] == "回执":
            return _receipt_text(notice_receipt(ctx.session, number, ctx.member, per_page=RECEIPT_NAMES))
        count = remind_unread(ctx.session, number, ctx.member, now=ctx.now, settings=ctx.settings)
        return f"已向 {count} 位未读成员再次发送通知 #{number}。"
    audience, body = _parse_audience(ctx)
    if not body:
        return "请写上通知内容。\n" + _notice_help(ctx)
    body = ctx.original(len(ctx.rest) - len(body))  # as typed: punctuation, paragraphs
    published = publish_notice(ctx.session, ctx.member, body, kinds=audience.kinds or None,
                               grid_id=audience.grid.id if audience.grid else None, urgent=audience.urgent)
    sent = published.notice
    head = "紧急通知" if audience.urgent else "通知"
    tail = "正在发送（紧急通知在免打扰时段也会送达）" if audience.urgent else "正在发送"
    return (f"{head} #{sent.id} 已发布到{audience.describe(sent.org.name)}，共 {published.recipients} 人，"
            f"{tail}。\n查看回执：通知 {sent.id} 回执")


@on.command("消息", aliases=("我的消息",),
            summary="消息 — 查看我的消息（消息 第2页 翻页）；消息 编号 — 阅读一条；消息 全部已读",
            pattern=r"(?:第 ?(?P<list>\d{1,3}) ?页?|(?P<listed>\d{1,3}) ?页|(?P<all>全部已读|全部标为已读)"
                    r"|#?(?P<number>\d{1,6})(?: " + PAGE + ")?)?",
            usage="消息；消息 第2页；消息 编号（如 消息 3，第3条）；长消息：消息 3 2；消息 全部已读",
            needs_member=True, effect="args")
def inbox(message: Incoming, ctx: Context) -> str:
    member = ctx.member
    if ctx.match["all"]:
        count = mark_all_read(ctx.session, member.id, ctx.now)
        return f"已将 {count} 条消息标为已读。" if count else "没有未读消息。"
    if ctx.match["number"]:
        number = int(ctx.match["number"])
        msg = inbox_number(ctx.session, member.id, number, ctx.now)
        # A long notice (up to 2,000 characters) is read in pages: 消息 3, 消息 3 2 …
        return page_reply(f"【{short(msg.title or '消息', 30)}】", [Section(text_items(msg.body))],
                          page_number(ctx.match["page"]), with_page(f"消息 {number}"),
                          tail=f"（{clock.weekday_time(msg.created_at, ctx.settings.tz)}）")
    return _inbox_listing(ctx, page_number(ctx.match["list"] or ctx.match["listed"]))


@on.command("组织生活", summary="组织生活 — 查看本支部近期组织生活；书记：查看/设置安排（每月、每季度）",
            usage=f"组织生活；{RULE_EXAMPLES}；组织生活 删除 编号；{MOVE_EXAMPLE}",
            needs_member=True, effect="args")
def orglife(message: Incoming, ctx: Context) -> str:
    rest = ctx.rest
    listing = _LIST_PAGE.fullmatch(rest)
    page = page_number(listing["page"] if listing else None)
    if not authz.can(ctx.member, authz.MANAGE_ORGLIFE):
        if rest and not listing:
            return MANAGERS_ONLY.format(keyword="组织生活 设置")
        return _coming_occasions(ctx, page)
    if not rest or listing:
        return _rules_listing(ctx, page)
    deleting = _DELETE.fullmatch(rest)
    if deleting:
        rule = delete_rule(ctx.session, int(deleting[1]), ctx.member)
        return f"已删除组织生活 {rule.id}：{rule.spec} {rule.start_time} {rule.title}。"
    moving = _MOVE.fullmatch(rest)
    if moving:
        return _move(ctx, int(moving[1]), moving[2], moving[3])
    if rest.startswith(("删除", "改期")):
        return f"用法：组织生活 删除 编号；{MOVE_EXAMPLE}"
    tz = ctx.settings.tz
    rule = create_rule(ctx.session, ctx.member, rest, settings=ctx.settings)
    upcoming = next_start(ctx.session, rule, ctx.now, tz)
    after = f"下次：{clock.weekday_time(upcoming, tz)}。" if upcoming else ""
    return (f"已设置组织生活 {rule.id}：{rule.spec} {rule.start_time} {rule.title}。{after}"
            f"将提前{rule.notice_days}天通知党员，当天提前{ctx.settings.orglife_reminder_hours}"
            "小时提醒。")


def _coming_occasions(ctx: Context, page: int) -> str:
    """A member's 组织生活: the coming organizational-life occasions they are expected at."""
    tz = ctx.settings.tz
    coming = [a for a in upcoming_for(ctx.session, ctx.member, ctx.now, limit=50) if not a.is_volunteer]
    if not coming:
        return "近期没有需要您参加的组织生活。"
    lines = [f"{clock.weekday_time(a.starts_at, tz)} {a.kind}「{short(a.title, 20)}」{a.number}"
             + (f"，地点：{short(a.place, 20)}" if a.place else "") for a in coming]
    return page_reply("近期组织生活：", [Section(lines)], page, with_page("组织生活"),
                      tail="不能参加请发送「请假 #编号 理由」。")


def _rules_listing(ctx: Context, page: int) -> str:
    tz = ctx.settings.tz
    rules = list_rules(ctx.session, ctx.member)
    if not rules:
        return f"尚未设置组织生活。例如：{RULE_EXAMPLES}"
    lines = []
    for rule in rules:
        upcoming = next_start(ctx.session, rule, ctx.now, tz)
        after = f"，下次：{clock.weekday_time(upcoming, tz)}" if upcoming else ""
        place = f"，地点：{short(rule.place, 20)}" if rule.place else ""
        lines.append(f"{rule.id}. {rule.spec} {rule.start_time} {rule.title}"
                     f"（{short(rule.org.name, 20)}）{place}{after}")
    return page_reply("组织生活安排：", [Section(lines)], page, with_page("组织生活"),
                      tail=f"删除：组织生活 删除 编号；改期：{MOVE_EXAMPLE}")


def _move(ctx: Context, rule_id: int, date_text: str, time_text: str) -> str:
    tz = ctx.settings.tz
    new_start, _ = parse_when(date_text, time_text, ctx.now, ctx.settings)
    occurrence = move_occurrence(ctx.session, rule_id, ctx.member, new_start, now=ctx.now, tz=tz)
    return f"已将「{occurrence.rule.title}」{occurrence.period} 的安排改到 {clock.weekday_time(new_start, tz)}。"


def _inbox_listing(ctx: Context, page: int) -> str:
    """One page of 消息: each message numbered for this member (1 = the newest), its date and its
    first words."""
    listing = inbox_page(ctx.session, ctx.member.id, page=max(page, 1), per_page=INBOX_PAGE_SIZE)
    if not listing.total:
        return "您还没有消息。"
    pages = (listing.total + INBOX_PAGE_SIZE - 1) // INBOX_PAGE_SIZE
    if not listing.items or page < 1:
        return no_page(page, pages, "消息")
    head = f"您有 {listing.unread} 条未读消息：" if listing.unread else "您的消息（均已读）："
    if pages > 1:
        head += f"（第 {page}/{pages} 页）"
    tz = ctx.settings.tz
    lines = [head]
    first = (page - 1) * INBOX_PAGE_SIZE + 1
    for number, item in enumerate(listing.items, start=first):
        mark = "" if item.read_at else "[未读] "
        lines.append(f"{number}. {mark}{clock.month_day(item.created_at, tz)} {short(item.title or item.body, 20)}")
    lines.append(f"发送「消息 编号」阅读全文，如「消息 {first}」。")
    if listing.unread:
        lines.append("全部标为已读：消息 全部已读")
    if page < pages:
        lines.append(next_page_hint(f"消息 第{page + 1}页"))
    return clip("\n".join(lines), REPLY_MAX_BYTES)


RECEIPT_NAMES = 20  # names the receipt reply lists of each group, at most


def _receipt_text(receipt) -> str:
    """The receipt as one reply of at most REPLY_MAX_BYTES bytes (UTF-8): the counts always, then the
    first names of each group, as many as fit."""
    n, count = receipt.notice, receipt.count
    head = [f"通知 #{n.id}「{n.title}」回执：",
            f"应发 {receipt.total} 人，已送达 {count('delivered')}，待发送 {count('pending')}，"
            f"失败 {count('failed')}"
            + (f"，未绑定 {count('unbound')}" if count("unbound") else "")
            + f"；已读 {count('read')}，未读 {count('unread')}。"]
    if count("refused") or count("unknown"):
        head.append(f"用户拒收 {count('refused')}，状态未知 {count('unknown')}（未收到微信答复，未自动重发）。")
    tail = [f"再提醒未读成员：通知 {n.id} 再提醒"] if count("unread") else []
    groups = [("用户拒收", receipt.refused, count("refused"))]
    groups += [(f"状态未知（{reason}）", receipt.unknown.get(reason, []), number)
               for reason, number in receipt.reasons.get("unknown", {}).items()]
    groups += [(f"失败（{reason}）", receipt.failed.get(reason, []), number)
               for reason, number in receipt.reasons.get("failed", {}).items()]
    groups += [("未绑定微信（无法送达）", receipt.unbound, count("unbound"))]
    groups += [("未读", receipt.unread, count("unread"))]
    lines = list(head)
    budget = REPLY_MAX_BYTES - size("\n".join(head + tail)) - 1
    for label, names, number in groups:
        if not number:
            continue
        line = _names_line(label, names, number, budget - 1)
        if line is None:
            break
        lines.append(line)
        budget -= size(line) + 1
    return "\n".join(lines + tail)


def _names_line(label: str, names: list[str], count: int, budget: int, most: int = RECEIPT_NAMES) -> str | None:
    """"label：甲、乙 等N人" with as many of the first `most` names (of `count`) as fit in `budget` bytes."""
    for shown in range(min(most, len(names)), -1, -1):
        more = f" 等{count}人" if shown < count else ""
        line = f"{label[:60]}：{'、'.join(names[:shown])}{more}"
        if size(line) <= budget:
            return line
    return None


@dataclass
class _Audience:
    """Who a notice goes to besides the secretary's subtree, as typed before its text."""

    urgent: bool = False
    kinds: list[str] = field(default_factory=list)
    grid: Grid | None = None

    def describe(self, org_name: str) -> str:
        """「东湖社区第一党支部」东湖一网格的在职党员、离退休党员"""
        text = f"「{org_name}」"
        if self.grid is not None:
            name = self.grid.name
            text += name if name.endswith(GRID_WORD) else name + GRID_WORD
        if self.kinds:
            text += "的" + "、".join(sorted(self.kinds, key=KINDS.index))
        return text


def _kinds_in(word: str) -> list[str] | None:
    """The member kinds a word names ("在职党员", "离退休", "在职、离退休党员"), or None when it names
    none or a part of it fits more than one kind (then the word is the notice's text)."""
    parts = [part for part in _KIND_SEPARATORS.split(word) if part]
    if not parts:
        return None
    kinds = []
    for part in parts:
        stem = part.removesuffix("党员")
        # An exact stem, or a part of one of at least two characters ("退休" → 离退休党员).
        found = [kind for s, kind in _KIND_STEMS.items() if stem == s or (len(stem) >= 2 and stem in s)]
        if len(found) != 1:
            return None
        if found[0] not in kinds:
            kinds.append(found[0])
    return kinds


def _parse_audience(ctx: Context) -> tuple[_Audience, str]:
    """Read the audience words at the start of 通知's text, in any order; return them and the text."""
    audience = _Audience()
    words = ctx.rest.split(" ")
    while words:
        word = words[0]
        if word == URGENT_WORD:
            audience.urgent = True
            words.pop(0)
            continue
        if word == GRID_WORD or word.startswith(GRID_WORD + ":"):  # "网格 东湖一网格", "网格：东湖一网格"
            words.pop(0)
            name = word[len(GRID_WORD) + 1:] or (words.pop(0) if words else "")
            if not name:
                raise DomainError("请写明网格名称。" + describe_grids(grids_for(ctx.session, ctx.member.org)))
            if audience.grid is not None:
                raise DomainError("一条通知只能发给一个网格。")
            try:
                audience.grid = find_grid(ctx.session, ctx.member.org, name)
            except NotFound as exc:
                raise NotFound(f"{exc.message}\n发送方式：通知 网格 网格名 内容") from None
            continue
        kinds = _kinds_in(word)
        if kinds is None:
            break
        audience.kinds += [kind for kind in kinds if kind not in audience.kinds]
        words.pop(0)
    return audience, " ".join(words)


def _notice_help(ctx: Context) -> str:
    grids = grids_for(ctx.session, ctx.member.org)
    grid = grids[0].name if grids else "一网格"
    return "\n".join([
        "用法：",
        "通知 内容 — 发给本组织及下级全体成员",
        f"通知 网格 {grid} 内容 — 只发给一个网格的成员",
        "通知 在职党员 内容 — 只发给某类成员（在职、离退休、流动、直管党员，或群众；"
        "可写多类，如「在职、离退休」）",
        "通知 紧急 内容 — 紧急通知，免打扰时段也发送",
        f"可以组合，如：通知 紧急 网格 {grid} 离退休 明天上午停水",
        "通知 编号 回执 — 查看谁已送达、已读",
        "通知 编号 再提醒 — 再次提醒未读的成员",
    ])


register = on.register
