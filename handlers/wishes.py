"""微心愿 and 积分: 发布心愿, 许愿, 审核, 心愿, 我的心愿, 认领, 放弃, 完成 (+ a photo), 确认, 驳回, 撤回,
待办, 积分, 积分榜. Each command parses its arguments and calls one domain function."""

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from handlers.paging import (
    PAGE,
    REPLY_MAX_BYTES,
    Section,
    next_page_hint,
    no_page,
    page_number,
    page_reply,
    short,
    size,
    text_items,
    with_page,
)
from handlers.router import Context, Handlers, Incoming
from models import clock
from models.org import community_of
from models.points import ManualAward, balance, ranking, recent_entries
from models.wishes import (
    CATEGORIES,
    CLAIMED,
    FULFILLED,
    OPEN,
    Beneficiary,
    NewWish,
    Sole,
    Waiting,
    Wish,
    beneficiary_of,
    claim_wish,
    confirm_sole,
    confirm_wish,
    fulfil_wish,
    list_open_wishes,
    my_wishes,
    post_wish,
    propose_wish,
    release_wish,
    return_wish,
    review_sole,
    review_wish,
    view_wish,
    waiting_for,
    wish_history,
    withdraw_wish,
)

NUMBER = r"#?(\d{1,12})"  # "#12", "12"; the text is NFKC-folded, so "＃１２" arrives as "#12"
WITH_TEXT = NUMBER + r" ?(.*)"  # "#12 说明", "#12说明", "#12"
MY_WISHES_MAX = 100  # 我的心愿 pages through at most this many of the latest wishes


def wish_line(wish: Wish) -> str:
    return f"#{wish.id}【{wish.category}】{short(wish.title, 30)}（{short(wish.org.name, 20)}，{wish.points}积分）"


def wish_detail(ctx: Context, wish: Wish, page: int = 1) -> str:
    """心愿 #n [页]: the wish, its details and its whole history, in pages that fit (「心愿 #12 2」)."""
    viewer = ctx.member
    person = beneficiary_of(wish, viewer)
    lines = [f"状态：{wish.status}", f"类别：{wish.category}"]
    sections = [Section(lines)]
    if wish.details and wish.details != wish.title:
        sections.append(Section(text_items(wish.details), label="内容："))
    lines = []
    sections.append(Section(lines))
    if person["name"]:
        lines.append(f"受助人：{person['name']}")
    if person["address"]:
        lines.append(f"地址：{person['address']}")
    if person["phone"]:
        lines.append(f"电话：{person['phone']}")
    lines.append(f"组织：{wish.org.name}" + (f"（{wish.grid.name}）" if wish.grid else ""))
    lines.append(f"积分：{wish.points}")
    if wish.claimer is not None and wish.status in (CLAIMED, FULFILLED):
        lines.append(f"认领人：{wish.claimer.name}，{clock.month_day(wish.fulfil_by, ctx.settings.tz)} 前完成")
    if wish.fulfil_note and wish.status == FULFILLED:
        sections.append(Section(text_items(wish.fulfil_note), label="完成说明："))
    if wish.photos:
        sections.append(Section([f"照片：{len(wish.photos)} 张"]))
    events = []
    for e in wish_history(ctx.session, wish.id):
        who = e.actor.name if e.actor else "系统"
        step = f"{e.from_status}→{e.to_status}" if e.from_status else e.to_status
        note = f"：{e.note}" if e.note else ""
        events.append(f"· {clock.day_time(e.at, ctx.settings.tz)} {who} {e.action}（{step}）{note}")
    sections.append(Section(events, label="记录："))
    tail = f"发送「认领 #{wish.id}」认领这个心愿。" if wish.status == OPEN else ""
    return page_reply(f"心愿 #{wish.id}「{wish.title}」", sections, page, with_page(f"心愿 #{wish.id}"),
                      tail=tail)


# 发布心愿's optional fields, after the title and details: 「受助人:王奶奶 电话:138… 地址:… 类别:维修」
# (the text is NFKC-folded, so "：" arrives as ":"). A value runs to the next field or the end.
_FIELDS = {"受助人": "name", "受益人": "name", "联系电话": "phone", "电话": "phone", "手机": "phone",
           "手机号": "phone", "地址": "address", "住址": "address", "类别": "category", "分类": "category"}
_FIELD = re.compile("(" + "|".join(sorted(_FIELDS, key=len, reverse=True)) + ") ?:")
_FIELD_NAMES = {"name": "受助人", "phone": "电话", "address": "地址", "category": "类别"}
_BETWEEN_FIELDS = "，,、；; \u3000"  # what may separate the fields: not part of a value
POST_USAGE = ("发布心愿 标题 详情，可加 受助人:姓名 电话:号码 地址:住址 类别:" + "/".join(CATEGORIES)
              + "，例如：发布心愿 修水龙头 厨房水龙头漏水 受助人:王奶奶 电话:13800000000 地址:东湖小区3栋 类别:维修")


def _typed(ctx: Context, start: int, end: int) -> str:
    """The typed text of `ctx.rest[start:end]`, stripped (free text keeps what the user typed)."""
    tail = ctx.original(end) if end < len(ctx.rest) else ""
    text = ctx.original(start)
    return (text[:len(text) - len(tail)] if tail and text.endswith(tail) else text).strip()


def parse_post(ctx: Context) -> tuple[str, str, dict[str, str]] | str:
    """发布心愿's arguments: (title, details, fields), or what is wrong with them (a reply)."""
    rest = ctx.rest
    marks = list(_FIELD.finditer(rest))
    head_end = marks[0].start() if marks else len(rest)
    head = rest[:head_end].strip()
    if not head:
        return f"请写明心愿标题。用法：{POST_USAGE}"
    title = head.split(" ")[0]
    details = _typed(ctx, len(title), head_end).rstrip(_BETWEEN_FIELDS)
    fields: dict[str, str] = {}
    ends = [m.start() for m in marks[1:]] + [len(rest)] if marks else []
    for mark, end in zip(marks, ends, strict=True):
        name = _FIELDS[mark[1]]
        if name in fields:
            return f"「{_FIELD_NAMES[name]}」只能填写一次。用法：{POST_USAGE}"
        fields[name] = _typed(ctx, mark.end(), end).rstrip(_BETWEEN_FIELDS)
    if "category" in fields and fields["category"] not in CATEGORIES:
        return f"没有「{short(fields['category'], 10)}」这个类别，请从{'、'.join(CATEGORIES)}中选择，例如：类别:维修"
    return title, details, fields


def review_line(wish: Wish, tz: ZoneInfo) -> str:
    posted = clock.month_day(wish.created_at, tz)
    return f"#{wish.id} {short(wish.title, 30)}（{short(wish.poster.name, 10)}，{posted}提交）"


def confirm_line(wish: Wish, tz: ZoneInfo) -> str:
    who = short(wish.claimer.name, 10) if wish.claimer else ""
    done = clock.month_day(wish.fulfilled_at or wish.updated_at, tz)
    return f"#{wish.id} {short(wish.title, 30)}（{who}，{done}完成）"


def award_line(award: ManualAward) -> str:
    return (f"积分申请 #{award.id} {short(award.member.name, 10)} {award.amount:+d} {short(award.reason, 30)}"
            f"（{short(award.requested_by.name, 10)}录入）")


@dataclass(frozen=True)
class Block:
    """A head line (with the count), some of the items, how many there are in all, a hint line."""

    head: str
    items: list[str]
    total: int
    hint: str = ""


def capped(blocks: list[Block], tail: str = "", limit: int = REPLY_MAX_BYTES) -> str:
    """The blocks (those with anything in them) in one reply of at most `limit` bytes: every head
    and hint, the items in order as long as they fit, and 「……另有 N 项未列出。」 for the rest."""
    blocks = [b for b in blocks if b.total]
    fixed = sum(size(b.head) + 1 + (size(b.hint) + 1 if b.hint else 0) for b in blocks)
    fixed += (size(tail) + 1 if tail else 0) + size(_MORE.format(count=10**9)) + 1
    room = limit - fixed
    lines: list[str] = []
    shown = 0
    for block in blocks:
        lines.append(block.head)
        for item in block.items:
            if size(item) + 1 > room:
                room = -1  # keep the order: nothing after an item that did not fit
                break
            lines.append(item)
            room -= size(item) + 1
            shown += 1
        if block.hint:
            lines.append(block.hint)
    rest = sum(b.total for b in blocks) - shown
    if rest:
        lines.append(_MORE.format(count=rest))
    if tail:
        lines.append(tail)
    return "\n".join(lines)


_MORE = "……另有 {count} 项未列出。"
TODO_ITEMS = 10  # 待办 and a bare 确认/审核 list at most this many of each kind (the rest are counted)


def todo_reply(waiting: Waiting, tz: ZoneInfo) -> str:
    if not waiting.total:
        return "目前没有等待您处理的事项。"
    return capped([
        Block(f"待审核的心愿（{waiting.review_total} 个）：", [review_line(w, tz) for w in waiting.review],
              waiting.review_total, "发送「审核 #编号 通过」或「审核 #编号 不通过 理由」。"),
        Block(f"待确认的心愿（{waiting.confirm_total} 个）：", [confirm_line(w, tz) for w in waiting.confirm],
              waiting.confirm_total, "发送「确认 #编号」或「驳回 #编号 理由」，「心愿 #编号」查看详情。"),
        Block(f"待审批的积分申请（{waiting.awards_total} 个）：", [award_line(a) for a in waiting.awards],
              waiting.awards_total, "积分申请请在小程序中审批。"),
    ], tail=f"共 {waiting.total} 项待办。")


def _choose(sole: Sole, verb: str, none: str, line, hint: str, tz: ZoneInfo) -> str:
    """A bare 确认/审核 with none or several waiting: say so, or list them."""
    if not sole.total:
        return none
    return capped([Block(f"有 {sole.total} 个心愿等待您{verb}：", [line(w, tz) for w in sole.waiting],
                         sole.total)], tail=hint)


# Grid heads publish too (a flag, not a role), so the domain decides who may.


on = Handlers()


@on.command("发布心愿",
            summary="发布心愿 标题 详情 [受助人:… 电话:… 地址:… 类别:…] — 发布微心愿（书记、网格长）",
            pattern=r"\S.*", usage=POST_USAGE, needs_member=True, effect=True)
def post(message: Incoming, ctx: Context) -> str:
    parsed = parse_post(ctx)
    if isinstance(parsed, str):
        return parsed
    title, details, fields = parsed
    person = Beneficiary(fields.get("name", ""), fields.get("address", ""), fields.get("phone", ""))
    wish = post_wish(ctx.session, ctx.member, NewWish(title, details, fields.get("category"), beneficiary=person),
                     now=ctx.now, settings=ctx.settings)
    person = beneficiary_of(wish, ctx.member)
    contact = "，".join(p for p in (person["name"], person["address"], person["phone"]) if p)
    return (f"已发布心愿 #{wish.id}「{wish.title}」（{wish.category}，{wish.points}积分），等待认领。\n"
            + (f"受助人：{contact}\n" if contact else "")
            + f"发送「心愿 #{wish.id}」查看，「撤回 #{wish.id}」撤回。")


@on.command("许愿", summary="许愿 内容 — 提交一个微心愿，等待书记审核", pattern=r"(.+)",
            usage="许愿 内容，例如：许愿 家里水龙头漏水，希望有人帮忙修一下", needs_member=True, effect=True)
def propose(message: Incoming, ctx: Context) -> str:
    wish = propose_wish(ctx.session, ctx.member, ctx.text(1), now=ctx.now, settings=ctx.settings)
    return f"已提交心愿 #{wish.id}「{wish.title}」，等待支部书记审核，审核结果会通知您。"


@on.command("审核", summary="审核 #编号 通过/不通过 理由 — 审核心愿（书记；只有一个待审核时可省略编号）",
            pattern=r"(?:#?(\d{1,12}) ?)?(通过|不通过) ?(.*)",
            usage="审核 #12 通过，或 审核 #12 不通过 理由（只有一个待审核的心愿时可省略编号）",
            managers_only=True, effect=True)
def review(message: Incoming, ctx: Context) -> str:
    number, verdict, _ = ctx.match.groups()
    approve = verdict == "通过"
    if number:
        wish = review_wish(ctx.session, ctx.member, int(number), approve, ctx.text(3), now=ctx.now)
    else:
        sole = review_sole(ctx.session, ctx.member, approve, ctx.text(3), limit=TODO_ITEMS, now=ctx.now)
        if sole.done is None:
            return _choose(sole, "审核", "没有等待您审核的心愿。", review_line,
                           f"请发送「审核 #编号 {verdict}{' 理由' if not approve else ''}」指明要审核哪一个。",
                           ctx.settings.tz)
        wish = sole.done
    if approve:
        return f"心愿 #{wish.id}「{wish.title}」已通过审核，开放认领。"
    return f"心愿 #{wish.id}「{wish.title}」未通过审核，已通知提交人。"


@on.command("心愿", summary="心愿 — 查看可认领的心愿（心愿 2 翻页，心愿 #12 查看详情）",
            pattern=r"(?:#(\d{1,12})(?: (\d{1,3}))?|(?:第 ?)?(\d{1,12})(?: ?页)?)?",
            usage="心愿、心愿 2（第2页）或 心愿 #12（详情较长时：心愿 #12 2）")
def show(message: Incoming, ctx: Context) -> str:
    number, part, page = ctx.match.groups()
    if number:
        return wish_detail(ctx, view_wish(ctx.session, ctx.member, int(number)), page_number(part))
    page = int(page or 1)
    per_page = ctx.settings.wish_page_size
    wishes, total = list_open_wishes(ctx.session, ctx.member, page=page, per_page=per_page)
    if not total:
        return "目前没有待认领的心愿。"
    pages = (total + per_page - 1) // per_page
    if not wishes:
        return no_page(page, pages)
    lines = [f"待认领的心愿（第 {page}/{pages} 页，共 {total} 个）："]
    lines += [wish_line(w) for w in wishes]
    lines.append("发送「心愿 #编号」查看详情，「认领 #编号」认领。")
    if page < pages:
        lines.append(next_page_hint(f"心愿 {page + 1}"))
    return "\n".join(lines)


@on.command("我的心愿", summary="我的心愿 [页] — 我认领和提交的心愿", pattern=f"(?:{PAGE})?",
            usage="我的心愿 或 我的心愿 2（第2页）", needs_member=True)
def mine(message: Incoming, ctx: Context) -> str:
    wishes = my_wishes(ctx.session, ctx.member, limit=MY_WISHES_MAX)
    if not wishes:
        return "您还没有认领或提交过心愿。发送「心愿」看看可认领的心愿。"
    lines = []
    for w in wishes:
        role = "认领" if w.claimer_id == ctx.member.id else "提交"
        held = w.status == CLAIMED and w.claimer_id == ctx.member.id
        due = f"，{clock.month_day(w.fulfil_by, ctx.settings.tz)} 前完成" if held else ""
        lines.append(f"#{w.id} {short(w.title, 30)}（{role}·{w.status}{due}）")
    tail = "发送「心愿 #编号」查看详情。"
    if len(wishes) == MY_WISHES_MAX:
        tail += f"这里只列出最近的 {MY_WISHES_MAX} 个，更早的请在小程序「我的心愿」中查看。"
    return page_reply("我的心愿：", [Section(lines)], page_number(ctx.match["page"]), with_page("我的心愿"),
                      tail=tail)


@on.command("认领", summary="认领 #编号 — 认领心愿", pattern=NUMBER, usage="认领 #12",
            needs_member=True, effect=True)
def claim(message: Incoming, ctx: Context) -> str:
    wish = claim_wish(ctx.session, ctx.member, int(ctx.match[1]), now=ctx.now, settings=ctx.settings)
    person = beneficiary_of(wish, ctx.member)
    contact = "，".join(p for p in (person["name"], person["address"], person["phone"]) if p)
    due = clock.month_day(wish.fulfil_by, ctx.settings.tz)
    return (f"认领成功！心愿 #{wish.id}「{wish.title}」，请在 {due} 前完成。"
            + (f"\n受助人：{contact}" if contact else "")
            + f"\n完成后发送「完成 #{wish.id} 说明」，并可在10分钟内发送照片。")


@on.command("放弃", summary="放弃 #编号 — 放弃认领", pattern=WITH_TEXT, usage="放弃 #12",
            needs_member=True, effect=True)
def release(message: Incoming, ctx: Context) -> str:
    wish = release_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
    return f"已放弃心愿 #{wish.id}「{wish.title}」，它已重新开放认领。"


@on.command("完成", summary="完成 #编号 说明 — 提交心愿完成情况", pattern=WITH_TEXT,
            usage="完成 #12 说明，例如：完成 #12 已上门修好水龙头", needs_member=True, effect=True)
def fulfil(message: Incoming, ctx: Context) -> str:
    wish = fulfil_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
    minutes = ctx.settings.wish_photo_minutes
    return (f"已提交心愿 #{wish.id}「{wish.title}」的完成情况，等待确认。\n"
            f"{minutes}分钟内发送照片，会作为完成凭证附在心愿上。")


@on.command("确认", summary="确认 #编号 — 确认心愿已完成（书记/网格长/受助人；只有一个待确认时可省略编号）",
            pattern=f"(?:{NUMBER})?", usage="确认 #12（只有一个等待您确认的心愿时，发送「确认」即可）",
            needs_member=True, effect=True)
def confirm(message: Incoming, ctx: Context) -> str:
    if ctx.match[1]:
        wish = confirm_wish(ctx.session, ctx.member, int(ctx.match[1]), now=ctx.now)
    else:
        sole = confirm_sole(ctx.session, ctx.member, limit=TODO_ITEMS, now=ctx.now)
        if sole.done is None:
            return _choose(sole, "确认", "没有等待您确认的心愿。", confirm_line,
                           "请发送「确认 #编号」指明要确认哪一个。", ctx.settings.tz)
        wish = sole.done
    return f"已确认心愿 #{wish.id}「{wish.title}」完成，{wish.claimer.name} 获得 {wish.points} 积分。"


@on.command("待办", summary="待办 — 等待我审核、确认和审批的事项", needs_member=True)
def todo(message: Incoming, ctx: Context) -> str:
    return todo_reply(waiting_for(ctx.session, ctx.member, limit=TODO_ITEMS), ctx.settings.tz)


@on.command("驳回", summary="驳回 #编号 理由 — 退回心愿完成情况", pattern=WITH_TEXT,
            usage="驳回 #12 理由", needs_member=True, effect=True)
def reject(message: Incoming, ctx: Context) -> str:
    wish = return_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now, settings=ctx.settings)
    return f"已驳回心愿 #{wish.id}「{wish.title}」，已通知认领人 {wish.claimer.name}。"


@on.command("撤回", summary="撤回 #编号 理由 — 撤回心愿（书记）", pattern=WITH_TEXT,
            usage="撤回 #12 理由", managers_only=True, effect=True)
def withdraw(message: Incoming, ctx: Context) -> str:
    wish = withdraw_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
    return f"已撤回心愿 #{wish.id}「{wish.title}」。"


@on.command("积分", summary="积分 — 我的积分和最近记录", needs_member=True)
def points(message: Incoming, ctx: Context) -> str:
    m = ctx.member
    lines = [f"{m.name}，您的积分：{balance(ctx.session, m.id)}"]
    entries = recent_entries(ctx.session, m.id)
    if entries:
        lines.append("最近记录：")
        tz = ctx.settings.tz
        lines += [f"· {clock.month_day(e.created_at, tz)} {e.amount:+d} {short(e.reason, 60)}" for e in entries]
    else:
        lines.append("还没有积分记录。认领并完成心愿可以获得积分，发送「心愿」看看。")
    return "\n".join(lines)


@on.command("积分榜", summary="积分榜 — 本社区积分排名", needs_member=True)
def board(message: Incoming, ctx: Context) -> str:
    community = community_of(ctx.member.org)
    lines = [f"{short(community.name, 30)}积分榜"]
    for label, since in (("本月", clock.month_start(ctx.now, ctx.settings.tz)), ("总榜", None)):
        ranks = ranking(ctx.session, community, since=since)
        lines.append(f"【{label}】")
        lines += [f"{r.place}. {short(r.name, 12)} {r.points}" for r in ranks] or ["暂无"]
    return "\n".join(lines)


register = on.register
