"""新活动, 活动, 报名, 取消报名, 签到 (and the sign-in QR scene), 代签, 签退, 出勤, 签到页, 轮换码, 活动位置, 提醒."""

import re
from datetime import timedelta

from handlers.paging import PAGE, Section, page_number, page_reply, short, with_page
from handlers.presenter import BIND_HOW
from handlers.router import Context, Handlers, Incoming
from handlers.when import parse_when
from models import authz, clock
from models.activity import (
    AUDIENCES,
    KINDS,
    REGISTERED,
    SCENE_PREFIX,
    Activity,
    ActivityChanges,
    NewActivity,
    attendance,
    cancel_activity_report,
    cancel_registration,
    check_in_by_code,
    check_in_by_scene,
    check_out,
    checked_in_count,
    create_activity,
    decide_leave,
    edit_activity,
    find_requester,
    get_activity,
    get_managed_activity,
    get_visible_activity,
    hours_text,
    pending_leaves,
    proxy_check_in,
    registration_of,
    registration_text,
    request_leave,
    served_minutes,
    set_rotating,
    set_venue,
    upcoming_for,
    waiting_ahead,
)
from models.activity import (
    register as register_for,
)
from models.member import WechatUser
from models.quota import quota_report, quotas_from_settings
from models.reminders import set_reminders, upcoming_reminders
from models.text import parse_number

NEW_USAGE = ("新活动 类型 标题 日期 时间 [地点]，例如：新活动 主题党日 学习二十大精神 12月4日 15:00 社区会议室\n"
             f"类型：{'、'.join(KINDS)}；时间可写 15:00-17:00；地点后可加：名额30、报名、全体、开放、积分10、轮换码")
LIST_MAX = 100  # 活动 pages through at most this many upcoming activities
# A title with spaces is written in 「」 or quotes: 新活动 主题党日 「学习 党章」 12月4日 15:00.
QUOTED = r"「[^」]+」|“[^”]+”|\"[^\"]+\""


def unquote(text: str) -> str:
    return text[1:-1].strip() if re.fullmatch(QUOTED, text) else text


def _options(rest: str) -> tuple[str, dict]:
    """Split "社区会议室 名额30 轮换码" into the place and the options."""
    words, options = [], {}
    for word in (rest or "").split():
        if m := re.fullmatch(r"名额(\d+)人?", word):
            options["capacity"] = parse_number(m[1], "名额")
        elif word == "报名":
            options["registration"] = True
        elif word in ("全体", "下属全体"):
            options["audience"] = "subtree"
        elif word in ("开放", "志愿者"):
            options["audience"] = "open"
        elif m := re.fullmatch(r"积分(\d+)", word):
            options["points"] = parse_number(m[1], "积分")
        elif word in ("轮换码", "动态码"):
            options["rotating"] = True
        else:
            words.append(word)
    return " ".join(words), options


def page_link(activity: Activity, ctx: Context) -> str:
    base = str(ctx.settings.public_base_url or "").rstrip("/")
    return f"{base}/checkin/{activity.token}"


def describe(activity: Activity, ctx: Context, *, full: bool = False) -> str:
    member = ctx.member
    end = clock.clock_time(activity.ends_at, ctx.settings.tz)
    lines = [f"{activity.number} 【{activity.kind}】{activity.title}",
             f"时间：{clock.day_time(activity.starts_at, ctx.settings.tz)}-{end}"]
    if activity.place:
        lines.append(f"地点：{activity.place}")
    if not full:
        return "\n".join(lines)
    lines.append(f"组织：{activity.org.name}；参加范围：{AUDIENCES[activity.audience]}")
    if activity.registration:
        cap = str(activity.registered_count) + (f"/{activity.capacity}" if activity.capacity else "")
        lines.append(f"报名：{cap}人")
        reg = registration_of(ctx.session, activity.id, member.id)
        if reg is not None and reg.status != "cancelled":
            lines.append(registration_text(ctx.session, activity, reg))
        else:
            lines.append(f"发送「报名 {activity.number}」报名。")
    if activity.is_volunteer and activity.points:
        lines.append(f"志愿服务积分：{activity.points}分（签到并签退后记入）")
    lines.append(f"已签到：{checked_in_count(ctx.session, activity.id)}人")
    if authz.can(member, authz.MANAGE_ACTIVITY, activity.org):
        code = "每分钟轮换，见签到页" if activity.rotating else activity.code
        lines.append(f"签到码：{code}")
        lines.append(f"签到页（会议室大屏打开）：{page_link(activity, ctx)}")
    return "\n".join(lines)


def _number(ctx: Context) -> int:
    return int(ctx.match["n"])


def _checkin_reply(result, ctx: Context) -> str:
    activity = result.activity
    lines = [f"签到成功！{activity.number}「{activity.title}」",
             f"签到时间：{clock.day_time(result.checkin.checked_in_at, ctx.settings.tz)}",
             f"当前已签到：{result.count}人"]
    if activity.is_volunteer:
        lines.append(f"服务结束时请发送「签退 {activity.number}」记录服务时长。")
    return "\n".join(lines)


on = Handlers()


@on.command("新活动", aliases=("发布活动",), summary="新活动 类型 标题 日期 时间 [地点] — 发布活动（书记）",
            pattern=r"(?P<kind>\S+) (?P<title>" + QUOTED + r"|\S+) (?P<date>\S+) (?P<time>\S+)(?: (?P<rest>.+))?",
            usage=NEW_USAGE, managers_only=True, effect=True)
def new_activity(message: Incoming, ctx: Context) -> str:
    starts_at, ends_at = parse_when(ctx.match["date"], ctx.match["time"], ctx.now, ctx.settings)
    if ends_at is not None and ends_at <= starts_at:
        ends_at += timedelta(days=1)
    place, options = _options(ctx.match["rest"])
    activity = create_activity(
        ctx.session, ctx.member, NewActivity(kind=ctx.match["kind"], title=unquote(ctx.match["title"]),
                                             starts_at=starts_at,
                                             ends_at=ends_at, place=place, **options),
        now=ctx.now, settings=ctx.settings,
    )
    lines = ["活动已发布！", describe(activity, ctx), f"参加范围：{AUDIENCES[activity.audience]}"]
    if activity.capacity:
        lines.append(f"名额：{activity.capacity}人（满员后进入候补）")
    elif activity.registration:
        lines.append("需报名参加")
    rotating = "（已开启每分钟轮换，请在签到页查看当前签到码）" if activity.rotating else ""
    lines.append(f"签到码 {activity.code}{rotating}")
    lines.append(f"签到页（会议室大屏打开）：{page_link(activity, ctx)}")
    return "\n".join(lines)


@on.command("取消活动", summary="取消活动 #编号 [原因] — 取消活动，通知报名者并撤回未发的提醒（书记）",
            pattern=r"#?(?P<n>\d{1,12})(?: (?P<reason>.+))?", usage="取消活动 #编号 原因，例如：取消活动 #3 暴雨改期",
            managers_only=True, effect=True)
def cancel_one(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    done = cancel_activity_report(ctx.session, activity, reason=ctx.match["reason"] or "", by=ctx.member,
                                  now=ctx.now, settings=ctx.settings)
    return (f"已取消活动 {activity.number}「{activity.title}」，已通知 {done.told} 人，"
            f"撤回未发送的提醒 {done.withdrawn} 条。")


EDIT_USAGE = ("修改活动 #编号 时间 日期 时间、修改活动 #编号 地点 新地点 或 修改活动 #编号 标题 新标题，"
              "例如：修改活动 #3 时间 12月11日 下午3点")


@on.command("修改活动", summary="修改活动 #编号 时间|地点|标题 新内容 — 修改活动并通知参加者（书记）",
            pattern=r"#?(?P<n>\d{1,12}) (?P<what>时间|地点|标题) (?P<value>.+)", usage=EDIT_USAGE,
            managers_only=True, effect=True)
def edit(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    what, value = ctx.match["what"], ctx.match["value"].strip()
    if what == "时间":
        words = value.split()
        if len(words) != 2:
            return f"请写日期和时间，例如：修改活动 {activity.number} 时间 12月11日 下午3点"
        starts_at, ends_at = parse_when(words[0], words[1], ctx.now, ctx.settings)
        changes = ActivityChanges(starts_at=starts_at, ends_at=ends_at)
    elif what == "地点":
        changes = ActivityChanges(place=value)
    else:
        changes = ActivityChanges(title=unquote(value))
    told = edit_activity(ctx.session, activity, changes, by=ctx.member, now=ctx.now, settings=ctx.settings)
    notice = f"已通知 {told} 人。" if told else ""
    return f"已修改活动：\n{describe(activity, ctx)}\n{notice}".rstrip()


@on.command("活动", summary="活动 [#编号] — 查看近期活动或某个活动（活动 第2页 翻页）",
            pattern=r"(?:第 ?(?P<page>\d{1,3}) ?页?|#?(?P<n>\d{1,12}))?",
            usage="活动、活动 第2页 或 活动 #编号", needs_member=True)
def show(message: Incoming, ctx: Context) -> str:
    if ctx.match["n"]:
        activity = get_visible_activity(ctx.session, _number(ctx), ctx.member)
        return describe(activity, ctx, full=True)
    upcoming = upcoming_for(ctx.session, ctx.member, ctx.now, limit=LIST_MAX)
    if not upcoming:
        return "近期没有您可以参加的活动。"
    return page_reply("近期活动：", [Section([describe(a, ctx) for a in upcoming])],
                      page_number(ctx.match["page"]), lambda p: "活动" if p == 1 else f"活动 第{p}页",
                      tail="发送「活动 #编号」查看详情。")


@on.command("报名", summary="报名 #编号 — 报名参加活动", pattern=r"#?(?P<n>\d{1,12})", usage="报名 #编号",
            needs_member=True, effect=True)
def sign_up(message: Incoming, ctx: Context) -> str:
    activity = get_activity(ctx.session, _number(ctx))
    reg = register_for(ctx.session, activity, ctx.member, ctx.now)
    if reg.status == REGISTERED:
        return f"报名成功！{describe(activity, ctx)}\n届时请扫码或发送「签到 签到码」签到。"
    place = waiting_ahead(ctx.session, activity, reg) + 1
    return f"活动 {activity.number} 名额已满，您已进入候补名单，排第 {place} 位，有人取消报名时按顺序递补。"


@on.command("取消报名", summary="取消报名 #编号 — 取消报名（候补者自动递补）",
            pattern=r"#?(?P<n>\d{1,12})", usage="取消报名 #编号",
            needs_member=True, effect=True)
def cancel(message: Incoming, ctx: Context) -> str:
    activity = get_activity(ctx.session, _number(ctx))
    cancel_registration(ctx.session, activity, ctx.member, ctx.now, ctx.settings)
    return f"已取消活动 {activity.number}「{activity.title}」的报名。"


@on.command("请假", summary="请假 #编号 理由 — 不能参加时向书记请假",
            pattern=r"#?(?P<n>\d{1,12}) (?P<reason>.+)", usage="请假 #编号 理由，例如：请假 #3 在外地出差",
            needs_member=True, effect=True)
def ask_leave(message: Incoming, ctx: Context) -> str:
    activity = get_activity(ctx.session, _number(ctx))
    leave = request_leave(ctx.session, activity, ctx.member, ctx.match["reason"], ctx.now, ctx.settings)
    return (f"已提交请假：{activity.number}「{activity.title}」，理由：{leave.reason}。"
            "书记审批后会通知您，批准前请仍按时参加。")


VERDICTS = {"同意": True, "批准": True, "不同意": False, "不批准": False}


@on.command("批假", summary="批假 #编号 [姓名 同意|不同意] — 查看或审批请假（书记）",
            pattern=r"#?(?P<n>\d{1,12})(?: " + PAGE + r"| (?P<name>\S+) (?P<verdict>同意|批准|不同意|不批准))?",
            usage="批假 #编号 查看待批请假；批假 #编号 姓名 同意（或 不同意）", managers_only=True, effect=True)
def decide(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    if ctx.match["name"] is None:
        waiting = pending_leaves(ctx.session, activity)
        if not waiting:
            return f"{activity.number}「{activity.title}」没有待审批的请假。"
        lines = [f"{leave.member.name}：{leave.reason}" for leave in waiting]
        return page_reply(f"{activity.number}「{activity.title}」待审批的请假（{len(waiting)}）：",
                          [Section(lines)], page_number(ctx.match["page"]), with_page(f"批假 {activity.number}"),
                          tail=f"发送「批假 {activity.number} 姓名 同意」或「… 不同意」。")
    leave = find_requester(ctx.session, activity, ctx.match["name"])
    approve = VERDICTS[ctx.match["verdict"]]
    decide_leave(ctx.session, activity, ctx.member, leave.member_id, approve, ctx.now, ctx.settings)
    verdict = "同意" if approve else "不同意"
    return f"已{verdict}{leave.member.name}对{activity.number}「{activity.title}」的请假，已通知本人。"


@on.command("签到", summary="签到 签到码 — 活动签到（也可扫描现场二维码）",
            pattern=r"(?:#?(?P<n>\d{1,12}) )?(?P<code>\d{1,12})", usage="签到 签到码，例如：签到 123456",
            needs_member=True, effect=True)
def sign_in(message: Incoming, ctx: Context) -> str:
    activity_id = int(ctx.match["n"]) if ctx.match["n"] else None
    result = check_in_by_code(ctx.session, ctx.member, ctx.match["code"], now=ctx.now,
                              activity_id=activity_id, settings=ctx.settings)
    return _checkin_reply(result, ctx)


@on.scene(SCENE_PREFIX)
def scanned(message: Incoming, ctx: Context) -> str:
    if ctx.member is None:
        return "请先绑定身份再扫码签到：" + BIND_HOW
    result = check_in_by_scene(ctx.session, ctx.member, ctx.rest, now=ctx.now, settings=ctx.settings)
    return _checkin_reply(result, ctx)


@on.command("代签", summary="代签 #编号 姓名 — 为无智能手机的党员签到（书记）",
            pattern=r"#?(?P<n>\d{1,12}) (?P<name>\S+)", usage="代签 #编号 姓名", managers_only=True,
            effect=True)
def proxy(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    result = proxy_check_in(ctx.session, activity, ctx.member, ctx.match["name"], now=ctx.now,
                            settings=ctx.settings)
    return (f"已为「{result.checkin.member.name}」代签活动 {activity.number}"
            f"（{clock.day_time(result.checkin.checked_in_at, ctx.settings.tz)}，记录为代签）。"
            f"当前已签到：{result.count}人")


@on.command("签退", summary="签退 #编号 — 志愿服务结束签退，记录时长和积分",
            pattern=r"#?(?P<n>\d{1,12})", usage="签退 #编号", needs_member=True, effect=True)
def sign_out(message: Incoming, ctx: Context) -> str:
    activity = get_activity(ctx.session, _number(ctx))
    checkin = check_out(ctx.session, activity, ctx.member, now=ctx.now, settings=ctx.settings)
    lines = [f"签退成功！{activity.number}「{activity.title}」"]
    served = served_minutes(activity, checkin.checked_in_at, checkin.checked_out_at)
    if served < ctx.settings.service_min_minutes:
        lines.append(f"服务时长 {hours_text(served)}，不足 {ctx.settings.service_min_minutes} 分钟"
                     "（从活动开始或签到起算，到活动结束或签退为止），不计服务时长和积分。")
        return "\n".join(lines)
    lines.append(f"服务时长：{hours_text(checkin.service_minutes)}")
    if activity.points:
        lines.append(f"获得积分：{activity.points}分")
    return "\n".join(lines)


@on.command("出勤", summary="出勤 #编号 [页] — 查看活动出勤（书记）",
            pattern=r"#?(?P<n>\d{1,12})(?: " + PAGE + ")?", usage="出勤 #编号，名单较长时：出勤 #编号 2",
            managers_only=True)
def show_attendance(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    report = attendance(ctx.session, activity, ctx.settings)
    expected_ids = {m.id for m in report.expected}
    head = (f"{activity.number}「{activity.title}」出勤：应到 {len(report.expected)}，实到 {report.came}，"
            f"请假 {len(report.on_leave)}，缺席 {len(report.absent)}")
    sections = [
        Section([c.member.name for c in report.present if c.member_id in report.late], label="迟到：", sep="、"),
        Section([c.member.name for c in report.present if c.method == "proxy"], label="其中代签：", sep="、"),
        Section([c.member.name for c in report.present if c.member_id not in expected_ids],
                label="范围外签到：", sep="、"),
        Section([m.name for m in report.on_leave], label="请假：", sep="、"),
        Section([m.name for m in report.absent], label="缺席：", sep="、", empty="无"),
    ]
    return page_reply(head, sections, page_number(ctx.match["page"]), with_page(f"出勤 {activity.number}"))


@on.command("签到页", summary="签到页 #编号 — 会议室大屏签到页链接（书记）", pattern=r"#?(?P<n>\d{1,12})",
            usage="签到页 #编号", managers_only=True)
def page(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    return (f"{activity.number}「{activity.title}」签到页（请勿转发，仅在会议室大屏打开）：\n"
            f"{page_link(activity, ctx)}")


@on.command("轮换码", summary="轮换码 #编号 [关闭] — 签到码每分钟轮换，防止转发代签（书记）",
            pattern=r"#?(?P<n>\d{1,12})(?: (?P<off>关闭|开启))?", usage="轮换码 #编号 [关闭]",
            managers_only=True, effect=True)
def rotate(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    on = ctx.match["off"] != "关闭"
    set_rotating(ctx.session, activity, on)
    if on:
        return (f"活动 {activity.number} 已开启轮换签到码：签到码和二维码每分钟更换，"
                f"请在会议室大屏打开签到页：{page_link(activity, ctx)}")
    return f"活动 {activity.number} 已关闭轮换，签到码恢复为 {activity.code}。"


@on.command("活动位置", summary="活动位置 #编号 [半径米] — 以我最近上报的位置作为签到地点（书记）",
            pattern=r"#?(?P<n>\d{1,12})(?: (?P<radius>\d{1,12})米?)?", usage="活动位置 #编号 [半径米]",
            managers_only=True, effect=True)
def venue(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, _number(ctx), ctx.member)
    user = ctx.session.get(WechatUser, message.openid)
    if user is None or user.latitude is None:
        return "还没有收到您的位置。请在公众号中允许「提供位置信息」后重新进入，再发送本指令。"
    radius = int(ctx.match["radius"]) if ctx.match["radius"] else None
    set_venue(ctx.session, activity, user.latitude, user.longitude, radius, ctx.settings)
    return f"活动 {activity.number} 的签到地点已设为您当前位置，签到范围 {activity.radius_m} 米。"


@on.command("提醒", summary="提醒 [关闭|开启] — 查看或开关活动提醒", pattern=f"(?:(?P<op>关闭|开启)|{PAGE})?",
            usage="提醒、提醒 关闭 或 提醒 开启", needs_member=True, effect="args")
def reminders(message: Incoming, ctx: Context) -> str:
    if ctx.match["op"]:
        on = ctx.match["op"] == "开启"
        set_reminders(ctx.session, ctx.member, on, ctx.now)
        return "已开启活动提醒。" if on else "已关闭活动提醒，发送「提醒 开启」可重新开启。"
    enabled, rows = upcoming_reminders(ctx.session, ctx.member, ctx.now, ctx.settings)
    if not enabled:
        return "您已关闭活动提醒。发送「提醒 开启」重新开启。"
    if not rows:
        return "近期没有需要提醒的活动。发送「提醒 关闭」可关闭活动提醒。"
    lines = [f"{a.number}「{short(a.title, 30)}」{clock.day_time(a.starts_at, ctx.settings.tz)}，"
             f"提醒时间：{'、'.join(clock.day_time(t, ctx.settings.tz) for t in times)}" for a, times in rows]
    return page_reply("将提醒您的活动：", [Section(lines)], page_number(ctx.match["page"]), with_page("提醒"),
                      tail="发送「提醒 关闭」可关闭活动提醒。")


@on.command("完成情况", summary="完成情况 [年份] [页] — 在职党员年度组织生活和志愿服务完成情况（书记）",
            pattern=r"(?:(?P<year>\d{4})年?)?(?: ?" + PAGE + ")?",
            usage="完成情况、完成情况 2026 或 完成情况 2026 2（第2页）", managers_only=True)
def quota(message: Incoming, ctx: Context) -> str:
    year = int(ctx.match["year"] or ctx.now.astimezone(ctx.settings.tz).year)
    rows = quota_report(ctx.session, ctx.member.org, year, quotas_from_settings(ctx.settings), ctx.settings)
    if not rows:
        return f"{year}年：您管理的范围内没有需要统计的党员。"
    behind = [r for r in rows if r.behind]
    head = f"{year}年完成情况：{len(rows) - len(behind)}/{len(rows)}人已达标。"
    lines = [f"· {r.member.name}（{r.member.kind}）{r.org_life}/{r.org_life_quota}，"
             f"{r.volunteer}/{r.volunteer_quota}" for r in behind]
    return page_reply(head, [Section(lines, label="未达标（组织生活/志愿服务）：")],
                      page_number(ctx.match["page"]), with_page(f"完成情况 {year}"))


register = on.register
