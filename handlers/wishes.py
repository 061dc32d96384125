"""微心愿 and 积分: 发布心愿, 许愿, 审核, 心愿, 我的心愿, 认领, 放弃, 完成 (+ a photo), 确认, 驳回, 撤回,
积分, 积分榜. Each command parses its arguments and calls one domain function."""

from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.paging import PAGE, Section, page_number, page_reply, short, text_items, with_page
from handlers.router import Context, Incoming, Router
from models.member import MANAGER_ROLES, Member
from models.org import community_of
from models.points import balance, month_start, ranking, recent_entries
from models.wishes import (
    CLAIMED,
    FULFILLED,
    OPEN,
    Wish,
    attach_photo,
    beneficiary_of,
    claim_wish,
    confirm_wish,
    fulfil_wish,
    list_open_wishes,
    my_wishes,
    post_wish,
    propose_wish,
    release_wish,
    return_wish,
    review_wish,
    view_wish,
    wish_history,
    withdraw_wish,
)

LOCAL = ZoneInfo("Asia/Shanghai")
NUMBER = r"#?(\d{1,12})"  # "#12", "12"; the text is NFKC-folded, so "＃１２" arrives as "#12"
WITH_TEXT = NUMBER + r" ?(.*)"  # "#12 说明", "#12说明", "#12"
MY_WISHES_MAX = 100  # 我的心愿 pages through at most this many of the latest wishes


def _setting(ctx: Context, name: str, default: int) -> int:
    return int(ctx.settings.get(name, default))


def _when(moment: datetime, with_time: bool = False) -> str:
    local = moment.astimezone(LOCAL)
    text = f"{local.month}月{local.day}日"
    return text + f" {local:%H:%M}" if with_time else text


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
        lines.append(f"认领人：{wish.claimer.name}，{_when(wish.fulfil_by)} 前完成")
    if wish.fulfil_note and wish.status == FULFILLED:
        sections.append(Section(text_items(wish.fulfil_note), label="完成说明："))
    if wish.photos:
        sections.append(Section([f"照片：{len(wish.photos)} 张"]))
    events = []
    for e in wish_history(ctx.session, wish.id):
        who = e.actor.name if e.actor else "系统"
        step = f"{e.from_status}→{e.to_status}" if e.from_status else e.to_status
        note = f"：{e.note}" if e.note else ""
        events.append(f"· {_when(e.at, True)} {who} {e.action}（{step}）{note}")
    sections.append(Section(events, label="记录："))
    tail = f"发送「认领 #{wish.id}」认领这个心愿。" if wish.status == OPEN else ""
    return page_reply(f"心愿 #{wish.id}「{wish.title}」", sections, page, with_page(f"心愿 #{wish.id}"),
                      tail=tail)


def register(router: Router) -> None:
    # Grid heads publish too (a flag, not a role), so the domain decides who may.
    @router.command("发布心愿", summary="发布心愿 标题 详情 — 发布微心愿（书记、网格长）", pattern=r"(\S+) ?(.*)",
                    usage="发布心愿 标题 详情，例如：发布心愿 修水龙头 东湖小区3栋王奶奶家水龙头漏水",
                    needs_member=True, effect=True)
    def post(message: Incoming, ctx: Context) -> str:
        wish = post_wish(ctx.session, ctx.member, ctx.match[1], ctx.text(2), now=ctx.now,
                         points=_setting(ctx, "WISH_DEFAULT_POINTS", 10))
        return (f"已发布心愿 #{wish.id}「{wish.title}」（{wish.category}，{wish.points}积分），等待认领。\n"
                f"发送「心愿 #{wish.id}」查看，「撤回 #{wish.id}」撤回。")

    @router.command("许愿", summary="许愿 内容 — 提交一个微心愿，等待书记审核", pattern=r"(.+)",
                    usage="许愿 内容，例如：许愿 家里水龙头漏水，希望有人帮忙修一下", needs_member=True, effect=True)
    def propose(message: Incoming, ctx: Context) -> str:
        wish = propose_wish(ctx.session, ctx.member, ctx.text(1), now=ctx.now,
                            points=_setting(ctx, "WISH_DEFAULT_POINTS", 10))
        return f"已提交心愿 #{wish.id}「{wish.title}」，等待支部书记审核，审核结果会通知您。"

    @router.command("审核", summary="审核 #编号 通过/不通过 理由 — 审核心愿（书记）",
                    pattern=NUMBER + r" ?(通过|不通过) ?(.*)", usage="审核 #12 通过，或 审核 #12 不通过 理由",
                    roles=MANAGER_ROLES, effect=True)
    def review(message: Incoming, ctx: Context) -> str:
        number, verdict, _ = ctx.match.groups()
        wish = review_wish(ctx.session, ctx.member, int(number), verdict == "通过", ctx.text(3), now=ctx.now)
        if verdict == "通过":
            return f"心愿 #{wish.id}「{wish.title}」已通过审核，开放认领。"
        return f"心愿 #{wish.id}「{wish.title}」未通过审核，已通知提交人。"

    @router.command("心愿", summary="心愿 — 查看可认领的心愿（心愿 2 翻页，心愿 #12 查看详情）",
                    pattern=r"(?:#(\d{1,12})(?: (\d{1,3}))?|(?:第 ?)?(\d{1,12})(?: ?页)?)?",
                    usage="心愿、心愿 2（第2页）或 心愿 #12（详情较长时：心愿 #12 2）")
    def show(message: Incoming, ctx: Context) -> str:
        number, part, page = ctx.match.groups()
        if number:
            return wish_detail(ctx, view_wish(ctx.session, ctx.member, int(number)), page_number(part))
        page = int(page or 1)
        per_page = _setting(ctx, "WISH_PAGE_SIZE", 5)
        wishes, total = list_open_wishes(ctx.session, ctx.member, page=page, per_page=per_page)
        if not total:
            return "目前没有待认领的心愿。"
        pages = (total + per_page - 1) // per_page
        if not wishes:
            return f"没有第 {page} 页，共 {pages} 页。"
        lines = [f"待认领的心愿（第 {page}/{pages} 页，共 {total} 个）："]
        lines += [wish_line(w) for w in wishes]
        lines.append("发送「心愿 #编号」查看详情，「认领 #编号」认领。")
        if page < pages:
            lines.append(f"发送「心愿 {page + 1}」看下一页。")
        return "\n".join(lines)

    @router.command("我的心愿", summary="我的心愿 [页] — 我认领和提交的心愿", pattern=f"(?:{PAGE})?",
                    usage="我的心愿 或 我的心愿 2（第2页）", needs_member=True)
    def mine(message: Incoming, ctx: Context) -> str:
        wishes = my_wishes(ctx.session, ctx.member, limit=MY_WISHES_MAX)
        if not wishes:
            return "您还没有认领或提交过心愿。发送「心愿」看看可认领的心愿。"
        lines = []
        for w in wishes:
            role = "认领" if w.claimer_id == ctx.member.id else "提交"
            held = w.status == CLAIMED and w.claimer_id == ctx.member.id
            due = f"，{_when(w.fulfil_by)} 前完成" if held else ""
            lines.append(f"#{w.id} {short(w.title, 30)}（{role}·{w.status}{due}）")
        tail = "发送「心愿 #编号」查看详情。"
        if len(wishes) == MY_WISHES_MAX:
            tail += f"这里只列出最近的 {MY_WISHES_MAX} 个，更早的请在小程序「我的心愿」中查看。"
        return page_reply("我的心愿：", [Section(lines)], page_number(ctx.match["page"]), with_page("我的心愿"),
                          tail=tail)

    @router.command("认领", summary="认领 #编号 — 认领心愿", pattern=NUMBER, usage="认领 #12",
                    needs_member=True, effect=True)
    def claim(message: Incoming, ctx: Context) -> str:
        wish = claim_wish(ctx.session, ctx.member, int(ctx.match[1]), now=ctx.now,
                          max_open=_setting(ctx, "WISH_MAX_OPEN_CLAIMS", 3),
                          fulfil_days=_setting(ctx, "WISH_FULFIL_DAYS", 14))
        person = beneficiary_of(wish, ctx.member)
        contact = "，".join(p for p in (person["name"], person["address"], person["phone"]) if p)
        return (f"认领成功！心愿 #{wish.id}「{wish.title}」，请在 {_when(wish.fulfil_by)} 前完成。"
                + (f"\n受助人：{contact}" if contact else "")
                + f"\n完成后发送「完成 #{wish.id} 说明」，并可在10分钟内发送照片。")

    @router.command("放弃", summary="放弃 #编号 — 放弃认领", pattern=WITH_TEXT, usage="放弃 #12",
                    needs_member=True, effect=True)
    def release(message: Incoming, ctx: Context) -> str:
        wish = release_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
        return f"已放弃心愿 #{wish.id}「{wish.title}」，它已重新开放认领。"

    @router.command("完成", summary="完成 #编号 说明 — 提交心愿完成情况", pattern=WITH_TEXT,
                    usage="完成 #12 说明，例如：完成 #12 已上门修好水龙头", needs_member=True, effect=True)
    def fulfil(message: Incoming, ctx: Context) -> str:
        wish = fulfil_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
        minutes = _setting(ctx, "WISH_PHOTO_MINUTES", 10)
        return (f"已提交心愿 #{wish.id}「{wish.title}」的完成情况，等待确认。\n"
                f"{minutes}分钟内发送照片，会作为完成凭证附在心愿上。")

    @router.command("确认", summary="确认 #编号 — 确认心愿已完成（书记/网格长/受助人）", pattern=NUMBER,
                    usage="确认 #12", needs_member=True, effect=True)
    def confirm(message: Incoming, ctx: Context) -> str:
        wish = confirm_wish(ctx.session, ctx.member, int(ctx.match[1]), now=ctx.now)
        return f"已确认心愿 #{wish.id}「{wish.title}」完成，{wish.claimer.name} 获得 {wish.points} 积分。"

    @router.command("驳回", summary="驳回 #编号 理由 — 退回心愿完成情况", pattern=WITH_TEXT,
                    usage="驳回 #12 理由", needs_member=True, effect=True)
    def reject(message: Incoming, ctx: Context) -> str:
        wish = return_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
        return f"已驳回心愿 #{wish.id}「{wish.title}」，已通知认领人 {wish.claimer.name}。"

    @router.command("撤回", summary="撤回 #编号 理由 — 撤回心愿（书记）", pattern=WITH_TEXT,
                    usage="撤回 #12 理由", roles=MANAGER_ROLES, effect=True)
    def withdraw(message: Incoming, ctx: Context) -> str:
        wish = withdraw_wish(ctx.session, ctx.member, int(ctx.match[1]), ctx.text(2), now=ctx.now)
        return f"已撤回心愿 #{wish.id}「{wish.title}」。"

    @router.command("积分", summary="积分 — 我的积分和最近记录", needs_member=True)
    def points(message: Incoming, ctx: Context) -> str:
        m = ctx.member
        lines = [f"{m.name}，您的积分：{balance(ctx.session, m.id)}"]
        entries = recent_entries(ctx.session, m.id)
        if entries:
            lines.append("最近记录：")
            lines += [f"· {_when(e.created_at)} {e.amount:+d} {short(e.reason, 60)}" for e in entries]
        else:
            lines.append("还没有积分记录。认领并完成心愿可以获得积分，发送「心愿」看看。")
        return "\n".join(lines)

    @router.command("积分榜", summary="积分榜 — 本社区积分排名", needs_member=True)
    def board(message: Incoming, ctx: Context) -> str:
        community = community_of(ctx.member.org)
        lines = [f"{short(community.name, 30)}积分榜"]
        for label, since in (("本月", month_start(ctx.now)), ("总榜", None)):
            ranks = ranking(ctx.session, community, since=since)
            lines.append(f"【{label}】")
            lines += [f"{r.place}. {short(r.name, 12)} {r.points}" for r in ranks] or ["暂无"]
        return "\n".join(lines)

    @router.media("image")
    def photo(message: Incoming, ctx: Context) -> str:
        member: Member | None = ctx.member
        minutes = _setting(ctx, "WISH_PHOTO_MINUTES", 10)
        wish = attach_photo(ctx.session, member, message.media_id, window_minutes=minutes,
                            now=ctx.now) if member else None
        if wish is None:
            return (f"已收到图片。如需作为心愿完成凭证，请先发送「完成 #编号 说明」，"
                    f"再在{minutes}分钟内发送照片。")
        return f"照片已附在心愿 #{wish.id}「{wish.title}」上，共 {len(wish.photos)} 张。"
