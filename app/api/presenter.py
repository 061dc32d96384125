"""The API door's words: the `message` of a JSON answer, and how a domain error is worded for a
mini-program client.

The domain returns data and raises errors with a code (models/); the chatbot words them in
handlers/presenter.py, the API here. No schema and no view builds a sentence of its own.
"""

import re

from models import clock

# The one answer for a logged-in mini-program user who has not bound a member yet (403 not_bound).
NOT_BOUND = "请先绑定党员/志愿者身份。"
LOGGED_OUT = "已退出登录。"

# Domain error code → the API's wording, only where the domain's message does not suit a REST client
# (none today: the domain's messages name no chat command; the chatbot adds its hints by code).
API_MESSAGES: dict[str, str] = {}
# A chat command in a message (「发送「绑定 …」」): words for the chatbot, never passed to a REST client.
CHAT_COMMAND = re.compile(r"发送「|回复「")


def error_message(code: str, message: str, fallback: str) -> str:
    """What the API says for a domain error: its own wording of the code if it has one, else the
    domain's message unless that tells the user to type a chat command (then `fallback`)."""
    if code in API_MESSAGES:
        return API_MESSAGES[code]
    if CHAT_COMMAND.search(message):
        return fallback
    return message


# Activities ----------------------------------------------------------------------------------------
def _named(activity) -> str:
    return f"{activity.number}「{activity.title}」"


def registered(activity) -> str:
    return f"报名成功！活动 {_named(activity)}。"


def waiting(activity, place: int) -> str:
    """`place`: the member's place on the waiting list (1: next to move up)."""
    return f"活动 {activity.number} 名额已满，您已进入候补名单，排第 {place} 位，有人取消报名时按顺序递补。"


def registration_cancelled(activity) -> str:
    return f"已取消活动 {_named(activity)}的报名。"


def checked_in(activity, count: int) -> str:
    return f"签到成功！{_named(activity)}，当前已签到：{count}人"


def proxy_checked_in(activity, checkin, count: int, tz) -> str:
    return (f"已为「{checkin.member.name}」代签活动 {activity.number}"
            f"（{clock.day_time(checkin.checked_in_at, tz)}，记录为代签）。当前已签到：{count}人")


def checked_out(activity, hours: str, short_of: int | None = None) -> str:
    """`hours`: the service time in words (models.activity.hours_text); `short_of`: the minimum it
    fell below (SERVICE_MIN_MINUTES), when it did."""
    if short_of is not None:
        return f"签退成功！服务时长 {hours}，不足 {short_of} 分钟，不计服务时长和积分。"
    message = f"签退成功！服务时长：{hours}"
    if activity.points:
        message += f"，获得积分：{activity.points}分"
    return message


def activity_created(activity) -> str:
    rotating = "（已开启每分钟轮换，请在签到页查看当前签到码）" if activity.rotating else ""
    return f"活动已发布！{_named(activity)}签到码 {activity.code}{rotating}"


def leave_requested(activity) -> str:
    return f"已提交活动 {_named(activity)}的请假，书记审批后会通知您。"


def leave_decided(activity, leave) -> str:
    return f"{leave.member.name}在活动 {_named(activity)}的请假：{leave.status_name}，已通知本人。"


def activity_cancelled(activity) -> str:
    return f"活动 {_named(activity)}已取消。"


# Notices and org life ------------------------------------------------------------------------------
def notice_published(notice, recipients: int) -> str:
    return f"通知 #{notice.id} 已发布到「{notice.org.name}」，共 {recipients} 人，正在发送。"


def reminded(notice_id: int, count: int) -> str:
    return f"已向 {count} 位未读成员再次发送通知 #{notice_id}。"


def rule_deleted(rule) -> str:
    return f"已删除组织生活 {rule.id}：{rule.spec} {rule.start_time} {rule.title}。"


def occurrence_moved(occurrence, tz) -> str:
    when = occurrence.starts_at.astimezone(tz)
    return f"已将「{occurrence.rule.title}」{occurrence.period} 的安排改到 {when:%Y-%m-%d %H:%M}。"
