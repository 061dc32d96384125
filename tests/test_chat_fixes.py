"""What secretaries and members asked for when trying the chatbot: date and time words everywhere,
quoted titles, 取消活动 and 修改活动, 组织生活 for members, and a rule's place (SQLite and PostgreSQL)."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from handlers.when import parse_time
from models import Activity, CheckIn, Member, OutboxMessage, PointEntry
from models.activity import NewActivity, create_activity, register
from models.orglife import send_due_orglife

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 10:00 in Shanghai


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)


@pytest.mark.parametrize(("text", "start", "end"), [
    ("15:00", time(15), None), ("15点", time(15), None), ("下午3点", time(15), None),
    ("晚上7点半", time(19, 30), None), ("3点半", time(3, 30), None), ("中午12点", time(12), None),
    ("下午3点-5点", time(15), time(17)), ("上午9:30-11点", time(9, 30), time(11)),
    ("15:00-17:00", time(15), time(17)),
])
def test_time_words(text, start, end):
    assert parse_time(text) == (start, end)


@pytest.fixture
def people(make_member):
    return {"sec": make_member("书记甲", role="书记", openid="o-sec"),
            "zhang": make_member("张三", openid="o-zhang")}


def test_a_quoted_title_keeps_its_spaces(session, say, people):
    reply = say("o-sec", "新活动 主题党日 「学习 党章」 12月4日 下午3点 社区会议室", NOW)
    assert "活动已发布" in reply
    activity = session.scalars(select(Activity)).one()
    assert (activity.title, activity.place) == ("学习 党章", "社区会议室")
    assert activity.starts_at == bj(2026, 12, 4, 15, 0)


def test_cancel_and_edit_an_activity_by_chat(session, say, people):
    secretary = session.get(Member, people["sec"].id)
    activity = create_activity(session, secretary, NewActivity(kind="志愿服务", title="清扫楼道",
                               starts_at=bj(2026, 12, 5, 9, 0), registration=True), now=NOW)
    register(session, activity, session.get(Member, people["zhang"].id), NOW)
    assert "「修改活动」仅限书记、管理员使用" in say("o-zhang", f"修改活动 #{activity.id} 地点 楼下", NOW)
    edited = say("o-sec", f"修改活动 #{activity.id} 时间 12月6日 上午9点-11点", NOW)
    assert "已修改活动" in edited and "已通知 1 人" in edited and "12月6日" in edited
    session.refresh(activity)
    assert (activity.starts_at, activity.ends_at) == (bj(2026, 12, 6, 9, 0), bj(2026, 12, 6, 11, 0))
    assert "地点：3号楼下" in say("o-sec", f"修改活动 #{activity.id} 地点 3号楼下", NOW)

    cancelled = say("o-sec", f"取消活动 #{activity.id} 暴雨", NOW)
    assert "已取消活动" in cancelled and "已通知 1 人" in cancelled
    told = session.scalars(select(OutboxMessage.body).where(
        OutboxMessage.member_id == people["zhang"].id, OutboxMessage.source == f"activity:{activity.id}:cancelled"))
    assert "暴雨" in told.one()
    assert "没有编号为" in say("o-sec", f"取消活动 #{activity.id}", NOW)


def test_members_see_their_coming_occasions_and_rules_carry_a_place(session, say, people, settings):
    reply = say("o-sec", "组织生活 每月第一个周五 15:00 主题党日 地点：党群服务中心", bj(2026, 11, 20, 10, 0))
    assert "已设置组织生活 1" in reply
    assert "地点：党群服务中心" in say("o-sec", "组织生活", bj(2026, 11, 20, 10, 0))
    send_due_orglife(session, bj(2026, 12, 1, 10, 0), settings=settings)  # the notice goes 3 days before
    activity = session.scalars(select(Activity)).one()
    assert (activity.place, activity.starts_at.astimezone(TZ).date()) == ("党群服务中心", date(2026, 12, 4))
    notice = session.scalars(select(OutboxMessage.body).where(OutboxMessage.member_id == people["zhang"].id)).one()
    assert "地点：党群服务中心" in notice

    listing = say("o-zhang", "组织生活", bj(2026, 12, 1, 10, 0))
    assert "近期组织生活" in listing and "主题党日" in listing and "地点：党群服务中心" in listing
    assert "请假 #编号" in listing
    assert "「组织生活 设置」仅限书记、管理员使用" in say("o-zhang", "组织生活 删除 1", bj(2026, 12, 1, 10, 0))

    moved = say("o-sec", "组织生活 改期 1 12月11日 下午3点", bj(2026, 12, 1, 10, 0))
    assert "改到" in moved and "12月11日" in moved


def test_proxy_sign_in_follows_the_rules_of_signing_in_oneself(session, say, people, make_member):
    secretary = session.get(Member, people["sec"].id)
    make_member("李四", openid="o-li")
    activity = create_activity(session, secretary, NewActivity(kind="主题党日", title="学习",
                               starts_at=bj(2026, 12, 1, 10, 20), registration=True), now=NOW)
    register(session, activity, session.get(Member, people["zhang"].id), NOW)
    assert "李四尚未报名" in say("o-sec", f"代签 #{activity.id} 李四", NOW)
    assert "已为「张三」代签" in say("o-sec", f"代签 #{activity.id} 张三", NOW)
    assert "张三已签到" in say("o-sec", f"代签 #{activity.id} 张三", NOW)


def test_a_service_below_the_minimum_earns_neither_hours_nor_points(session, say, people):
    secretary = session.get(Member, people["sec"].id)
    service = create_activity(session, secretary, NewActivity(
        kind="志愿服务", title="清扫楼道", starts_at=bj(2026, 12, 1, 9, 0), ends_at=bj(2026, 12, 1, 11, 0),
        points=5, audience="open"), now=bj(2026, 11, 30, 9, 0))
    say("o-sec", f"代签 #{service.id} 张三", bj(2026, 12, 1, 10, 50))  # signed in late
    reply = say("o-zhang", f"签退 #{service.id}", bj(2026, 12, 1, 11, 30))  # after the end: 10 minutes
    assert "服务时长 10分钟，不足 15 分钟" in reply and "不计服务时长和积分" in reply
    checkin = session.scalars(select(CheckIn).where(CheckIn.activity_id == service.id)).one()
    assert checkin.service_minutes == 0
    assert session.scalars(select(PointEntry).where(PointEntry.member_id == people["zhang"].id)).all() == []

    other = create_activity(session, secretary, NewActivity(
        kind="志愿服务", title="陪老人买菜", starts_at=bj(2026, 12, 2, 9, 0), ends_at=bj(2026, 12, 2, 11, 0),
        points=5, audience="open"), now=bj(2026, 11, 30, 9, 0))
    say("o-sec", f"代签 #{other.id} 张三", bj(2026, 12, 2, 8, 40))  # early: counted from the start
    reply = say("o-zhang", f"签退 #{other.id}", bj(2026, 12, 2, 10, 0))
    assert "服务时长：1小时0分钟" in reply and "获得积分：5分" in reply
