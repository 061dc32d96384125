"""Organizational-life rules: parsing, the calendar, and notices/reminders once per rule and period."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from models import DomainError
from models.orglife import OrgLifeRule, occurrence_date, parse_rule, send_due_orglife
from tests.conftest import BRANCH, OTHER_BRANCH

TZ = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)


def rule_of(text: str) -> OrgLifeRule:
    spec = parse_rule(text)
    return OrgLifeRule(kind=spec.kind, nth=spec.nth, weekday=spec.weekday, day=spec.day,
                       quarter_month=spec.quarter_month, start_time=spec.start_time, title=spec.title)


@pytest.mark.parametrize(("text", "period", "expected"), [
    ("每月第一个周五 15:00 主题党日", "2026-10", date(2026, 10, 2)),
    ("每月第一个周五 15:00 主题党日", "2026-05", date(2026, 5, 1)),
    ("每月第二个星期三 15:00 党课", "2026-09", date(2026, 9, 9)),
    ("每月最后一个周五 15:00 党课", "2026-10", date(2026, 10, 30)),
    ("每月第五个周五 15:00 党课", "2026-11", None),  # November 2026 has four Fridays
    ("每月15日 09:30 组织生活日", "2026-02", date(2026, 2, 15)),
    ("每月31日 09:30 组织生活日", "2026-11", date(2026, 11, 30)),
    ("每月31日 09:30 组织生活日", "2026-02", date(2026, 2, 28)),
    ("每月30日 09:30 组织生活日", "2028-02", date(2028, 2, 29)),
    ("每月最后一天 09:30 组织生活日", "2026-04", date(2026, 4, 30)),
    ("每季度首月10日 14:00 支部党员大会", "2026-Q4", date(2026, 10, 10)),
    ("每季度第二个月31日 14:00 支部党员大会", "2026-Q2", date(2026, 5, 31)),
    ("每季度末月31日 14:00 支部党员大会", "2026-Q3", date(2026, 9, 30)),
])
def test_calendar(text, period, expected):
    assert occurrence_date(rule_of(text), period) == expected


def test_parsing():
    spec = parse_rule("每月第一个周五 15:00 主题党日")
    assert (spec.kind, spec.nth, spec.weekday, spec.start_time, spec.title, spec.spec) == \
        ("monthly_weekday", 1, 4, "15:00", "主题党日", "每月第一个周五")
    assert parse_rule("每月15日 9:30 组织生活日").start_time == "09:30"
    for bad in ("每周一 15:00 学习", "每月15日 25:00 学习", "每月40日 09:00 学习"):
        with pytest.raises(DomainError):
            parse_rule(bad)


@pytest.fixture
def branch(cast, make_member):
    secretary, members = cast.branch(3)
    make_member("群众甲", org=BRANCH, kind="群众", openid="o-mass")  # not a party member
    make_member("外支部", org=OTHER_BRANCH, openid="o-out")
    return secretary, members


def party_messages(wechat_api):
    return [c.body["touser"] for c in wechat_api.messages()]


def test_monthly_rule_notice_reminder_and_move(branch, say, make_scheduler, wechat_api, session):
    reply = say("o-sec", "组织生活 每月第一个周五 15:00 主题党日", bj(2026, 9, 25, 10, 0))
    assert "已设置组织生活 1" in reply and "10月2日（周五）15:00" in reply
    scheduler = make_scheduler()
    # Before the notice time: nothing.
    scheduler.run_due(bj(2026, 9, 28, 9, 0))
    assert wechat_api.messages() == []
    # Three days before at 09:00: the notice, to the four party members of the branch.
    report = scheduler.run_due(bj(2026, 9, 29, 9, 5))
    assert "4 notices" in report.ran["orglife"]
    assert sorted(party_messages(wechat_api)) == ["o-m0", "o-m1", "o-m2", "o-sec"]
    notice = wechat_api.messages()[0].body
    assert notice["template_id"] == "TPL-NOTICE"
    assert "10月2日（周五）15:00举行主题党日" in notice["data"]["content"]["value"]
    # Running again, or another scheduler for the same time: nothing new.
    scheduler.run_due(bj(2026, 9, 29, 9, 5))
    make_scheduler().run_due(bj(2026, 9, 29, 9, 30))
    assert send_due_orglife(session, bj(2026, 9, 29, 10, 0)).notices == 0
    assert len(wechat_api.messages()) == 4
    # 2 hours before: the reminder.
    scheduler.run_due(bj(2026, 10, 2, 13, 0))
    reminders = wechat_api.calls_to("/cgi-bin/message/template/send")[4:]
    assert len(reminders) == 4 and {c.body["template_id"] for c in reminders} == {"TPL-REMINDER"}
    scheduler.run_due(bj(2026, 10, 2, 14, 0))
    assert len(wechat_api.messages()) == 8

    # November's first Friday is moved off its date after the notice went out: a change notice,
    # and the reminder follows the new time.
    scheduler.run_due(bj(2026, 11, 3, 9, 0))  # notice for Friday 6 November
    assert len(wechat_api.messages()) == 12
    reply = say("o-sec", "组织生活 改期 1 2026-11-13 15:00", bj(2026, 11, 4, 10, 0))
    assert "改到 11月13日（周五）15:00" in reply
    scheduler.run_due(bj(2026, 11, 4, 10, 5))
    changes = wechat_api.messages()[12:]
    assert len(changes) == 4 and "改为11月13日" in changes[0].body["data"]["content"]["value"]
    scheduler.run_due(bj(2026, 11, 6, 13, 30))  # the old reminder time: nothing
    assert len(wechat_api.messages()) == 16
    scheduler.run_due(bj(2026, 11, 13, 13, 0))
    assert len(wechat_api.messages()) == 20

    listing = say("o-sec", "组织生活", bj(2026, 11, 20, 10, 0))
    assert "1. 每月第一个周五 15:00 主题党日" in listing and "12月4日（周五）15:00" in listing
    assert "已删除组织生活 1" in say("o-sec", "组织生活 删除 1", bj(2026, 11, 20, 10, 0))
    scheduler.run_due(bj(2026, 12, 1, 9, 0))
    assert len(wechat_api.messages()) == 20
    assert "尚未设置组织生活" in say("o-sec", "组织生活", bj(2026, 12, 1, 10, 0))


def test_only_secretaries_set_rules_and_bad_input_is_explained(branch, say):
    assert "仅限书记、管理员" in say("o-m0", "组织生活 每月15日 09:30 组织生活日", bj(2026, 9, 1, 9, 0))
    # The chat shows the command's examples; the domain's own message names no command.
    assert say("o-sec", "组织生活 每周一 09:30 学习", bj(2026, 9, 1, 9, 0)) == (
        "没看懂这条规则。例如：组织生活 每月第一个周五 15:00 主题党日；组织生活 每月15日 09:30 组织生活日；"
        "组织生活 每季度首月10日 14:00 支部党员大会")
    with pytest.raises(DomainError) as refused:
        parse_rule("每周一 09:30 学习")
    assert refused.value.message == "没看懂这条规则。"
    assert refused.value.data["forms"][0] == "每月第一个周五 15:00 主题党日"
    assert "没有编号为 9" in say("o-sec", "组织生活 删除 9", bj(2026, 9, 1, 9, 0))
    say("o-sec", "组织生活 每月15日 09:30 组织生活日", bj(2026, 9, 1, 9, 0))
    assert "不能改到已经过去" in say("o-sec", "组织生活 改期 1 2026-08-15 09:30", bj(2026, 9, 1, 9, 0))


def test_a_late_catch_up_sends_the_reminder_not_both(branch, say, make_scheduler, wechat_api):
    say("o-sec", "组织生活 每季度首月10日 14:00 支部党员大会", bj(2026, 9, 1, 9, 0))
    # The scheduler was down from before the notice time until after the reminder time.
    make_scheduler().run_due(bj(2026, 10, 10, 12, 30))
    assert {c.body["template_id"] for c in wechat_api.messages()} == {"TPL-REMINDER"}
    assert len(wechat_api.messages()) == 4


@pytest.mark.parametrize(("words", "start"), [
    ("下午3点", "15:00"), ("15点", "15:00"), ("3点半", "03:30"), ("下午2点半", "14:30"), ("晚上7点30", "19:30"),
    ("上午9点", "09:00"), ("9:30", "09:30"), ("15:00", "15:00"),
])
def test_a_rules_time_takes_the_words_of_a_new_activity(words, start):
    spec = parse_rule(f"每月第一个周五 {words} 主题党日")
    assert (spec.spec, spec.start_time, spec.title) == ("每月第一个周五", start, "主题党日")
    assert parse_rule(f"每月15日{words}组织生活日").start_time == start  # without spaces too


def test_a_rules_time_that_is_no_time_is_refused():
    assert parse_rule("每月第一个礼拜五 15:00 主题党日").weekday == 4  # 礼拜五, as 新活动's 礼拜五
    with pytest.raises(DomainError) as wrong:
        parse_rule("每月15日 下午25点 学习")
    assert wrong.value.message == "时间「下午25点」不存在。"
    with pytest.raises(DomainError):
        parse_rule("每月15日 3 学习")  # a bare number is no time: the rule is not understood
    with pytest.raises(DomainError):
        parse_rule("每月15日 学习")


def test_a_rule_typed_with_afternoon_words_in_chat_is_kept_and_announced_at_that_time(
        branch, say, session, make_scheduler, wechat_api):
    reply = say("o-sec", "组织生活 每月第一个周五 下午3点 主题党日 地点：社区会议室", bj(2026, 9, 25, 10, 0))
    assert reply.startswith("已设置组织生活 1：每月第一个周五 15:00 主题党日。下次：10月2日（周五）15:00。")
    rule = session.get(OrgLifeRule, 1)
    assert (rule.start_time, rule.title, rule.place) == ("15:00", "主题党日", "社区会议室")
    reply = say("o-sec", "组织生活 每季度首月10日 下午2点半 支部党员大会", bj(2026, 9, 25, 10, 0))
    assert "已设置组织生活 2：每季度首月10日 14:30 支部党员大会。下次：10月10日（周六）14:30。" in reply
    make_scheduler().run_due(bj(2026, 9, 29, 9, 5))  # three days before the Friday, at 09:00
    notice = wechat_api.messages()[0].body["data"]["content"]["value"]
    assert "10月2日（周五）15:00举行主题党日" in notice
    assert "1. 每月第一个周五 15:00 主题党日" in say("o-sec", "组织生活", bj(2026, 9, 25, 11, 0))
