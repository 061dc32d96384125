"""Leave (请假): asked by chat and API, decided by a secretary once, told to both sides, and
approved leave stops the reminders (SQLite and PostgreSQL)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import DomainError, Member, OutboxMessage
from models.activity import (
    Activity,
    LeaveRequest,
    NewActivity,
    SignIn,
    check_in,
    create_activity,
    decide_leave,
    request_leave,
)
from models.reminders import queue_activity_reminders
from tests.conftest import OTHER_BRANCH, RACE_START_TIMEOUT

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 10:00 in Shanghai
START = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)  # 4 December, 15:00 in Shanghai


@pytest.fixture
def branch(make_member):
    return {
        "sec": make_member("书记甲", role="书记", openid="o-sec"),
        "zhang": make_member("张三", openid="o-zhang"),
        "li": make_member("李四", openid="o-li"),
        "other_sec": make_member("书记乙", org=OTHER_BRANCH, role="书记", openid="o-other-sec"),
        "other": make_member("王五", org=OTHER_BRANCH, openid="o-wang"),
    }


def _activity(session, secretary, **kw):
    values = {"kind": "主题党日", "title": "学习党章", "starts_at": START}
    values.update(kw)
    return create_activity(session, session.get(Member, secretary.id), NewActivity(**values), now=NOW)


def _messages(session, member, title):
    return session.scalars(select(OutboxMessage.body).where(
        OutboxMessage.member_id == member.id, OutboxMessage.title == title).order_by(OutboxMessage.id)).all()


def test_a_member_asks_leave_by_chat_and_the_secretary_approves_it(session, say, branch):
    activity = _activity(session, branch["sec"])
    reply = say("o-zhang", f"请假 #{activity.id} 在外地出差", NOW)
    assert "已提交请假" in reply and "在外地出差" in reply
    asked = _messages(session, branch["sec"], "请假申请")
    assert len(asked) == 1 and "张三" in asked[0] and "在外地出差" in asked[0] and "12月4日" in asked[0]

    listing = say("o-sec", f"批假 #{activity.id}", NOW)
    assert "待审批的请假（1）" in listing and "张三：在外地出差" in listing

    assert "已同意张三" in say("o-sec", f"批假 #{activity.id} 张三 同意", NOW)
    told = _messages(session, branch["zhang"], "请假结果")
    assert len(told) == 1 and "已批准" in told[0]
    assert "已处理：已准假" in say("o-sec", f"批假 #{activity.id} 张三 不同意", NOW)
    assert len(_messages(session, branch["zhang"], "请假结果")) == 1
    assert "没有待审批的请假" in say("o-sec", f"批假 #{activity.id}", NOW)
    assert "已获批准" in say("o-zhang", f"请假 #{activity.id} 又有事", NOW)
    attendance = say("o-sec", f"出勤 #{activity.id}", NOW)
    assert "应到 3，实到 0，请假 1，缺席 2" in attendance and "请假：张三" in attendance
    assert "张三" not in attendance.split("缺席：")[1]


def test_a_refused_leave_can_be_asked_again(session, say, branch):
    activity = _activity(session, branch["sec"])
    say("o-zhang", f"请假 #{activity.id} 身体不适", NOW)
    assert "已不同意张三" in say("o-sec", f"批假 #{activity.id} 张三 不同意", NOW)
    assert "未获批准" in _messages(session, branch["zhang"], "请假结果")[0]
    say("o-zhang", f"请假 #{activity.id} 医院复查", NOW + timedelta(minutes=5))
    leave = session.scalars(select(LeaveRequest)).one()
    session.refresh(leave)
    assert (leave.status, leave.reason, leave.decided_by_id) == ("pending", "医院复查", None)
    assert len(_messages(session, branch["sec"], "请假申请")) == 2  # told of each request


def test_leave_is_refused_when_it_makes_no_sense(session, say, branch):
    activity = _activity(session, branch["sec"])
    assert "「批假」仅限书记、管理员使用" in say("o-zhang", f"批假 #{activity.id}", NOW)
    assert "无需请假" in say("o-wang", f"请假 #{activity.id} 有事", NOW)  # another branch's occasion
    assert "请假 #编号 理由" in say("o-zhang", f"请假 #{activity.id}", NOW)  # no reason: the usage
    assert "已经开始" in say("o-zhang", f"请假 #{activity.id} 迟到了", START + timedelta(minutes=1))
    check_in(session, activity, session.get(Member, branch["li"].id), SignIn(method="proxy",
             proxy_by=session.get(Member, branch["sec"].id)), now=START - timedelta(minutes=10))
    assert "已签到" in say("o-li", f"请假 #{activity.id} 有事", START - timedelta(minutes=5))
    assert "不在您管理的组织范围内" in say("o-other-sec", f"批假 #{activity.id}", NOW)
    say("o-zhang", f"请假 #{activity.id} 出差", NOW)
    assert "没有对活动" in say("o-sec", f"批假 #{activity.id} 李四 同意", NOW)
    assert session.scalars(select(LeaveRequest.member_id)).all() == [branch["zhang"].id]


def test_approved_leave_stops_the_reminders(session, say, branch, settings):
    activity = _activity(session, branch["sec"])
    say("o-zhang", f"请假 #{activity.id} 出差", NOW)
    say("o-li", f"请假 #{activity.id} 看病", NOW)
    say("o-sec", f"批假 #{activity.id} 张三 同意", NOW)
    say("o-sec", f"批假 #{activity.id} 李四 不同意", NOW)
    queue_activity_reminders(session, START - timedelta(hours=1), settings)
    reminded = set(session.scalars(select(OutboxMessage.member_id).where(OutboxMessage.kind == "reminder")))
    assert branch["li"].id in reminded and branch["sec"].id in reminded
    assert branch["zhang"].id not in reminded


def test_leave_over_the_api(api_client, api_login, session, branch):
    activity = _activity(session, branch["sec"])
    zhang, sec, other_sec = api_login(branch["zhang"]), api_login(branch["sec"]), api_login(branch["other_sec"])
    url = f"/api/v1/activities/{activity.id}/leave"
    assert api_client.post(url, json={"reason": ""}, headers=zhang).status_code == 422
    answer = api_client.post(url, json={"reason": "在外地出差"}, headers=zhang)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["leave"]["status"] == "pending" and "书记审批" in answer.get_json()["message"]

    admin = f"/api/v1/admin/activities/{activity.id}/leaves"
    assert api_client.get(admin, headers=zhang).status_code == 403
    assert api_client.get(admin, headers=other_sec).status_code == 403
    items = api_client.get(admin, headers=sec).get_json()["items"]
    assert [(i["name"], i["reason"], i["status_text"]) for i in items] == [("张三", "在外地出差", "待审批")]

    decision = f"{admin}/{branch['zhang'].id}"
    assert api_client.post(decision, json={"approve": True}, headers=other_sec).status_code == 403
    assert api_client.post(f"{admin}/{branch['li'].id}", json={"approve": True}, headers=sec).status_code == 404
    done = api_client.post(decision, json={"approve": True}, headers=sec)
    assert done.status_code == 200 and done.get_json()["leave"]["status"] == "approved"
    again = api_client.post(decision, json={"approve": False}, headers=sec)
    assert again.status_code == 400 and "已处理" in again.get_json()["message"]
    assert len(_messages(session, branch["zhang"], "请假结果")) == 1


def test_two_secretaries_deciding_at_once_decide_once(race_engine, make_member):
    secretaries = [make_member(f"书记{i}", phone=f"1880000000{i}", role="书记") for i in range(2)]
    member = make_member("张三", phone="13900000009")
    with Session(race_engine, expire_on_commit=False) as s:
        activity = _activity(s, secretaries[0])
        request_leave(s, activity, s.get(Member, member.id), "出差", NOW)
    barrier = threading.Barrier(2, timeout=RACE_START_TIMEOUT)
    outcomes = []

    def decide(i):
        with Session(race_engine) as s:
            barrier.wait()
            try:
                decide_leave(s, s.get(Activity, activity.id), s.get(Member, secretaries[i].id), member.id,
                             approve=i == 0, now=NOW)
                outcomes.append("decided")
            except DomainError as refused:
                outcomes.append(refused.code)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["decided", "leave_decided"]
    with Session(race_engine) as s:
        results = s.scalars(select(OutboxMessage.id).where(
            OutboxMessage.member_id == member.id, OutboxMessage.title == "请假结果")).all()
        assert len(results) == 1


def test_after_the_occasion_the_absent_without_leave_get_a_note(session, say, branch, make_scheduler):
    activity = _activity(session, branch["sec"])
    service = _activity(session, branch["sec"], kind="志愿服务", title="清扫楼道", audience="open")
    say("o-zhang", f"请假 #{activity.id} 出差", NOW)
    say("o-sec", f"批假 #{activity.id} 张三 同意", NOW)
    check_in(session, activity, session.get(Member, branch["li"].id),
             SignIn(method="proxy", proxy_by=session.get(Member, branch["sec"].id)), now=START)
    after = START + timedelta(hours=3)
    make_scheduler().run_due(after)
    make_scheduler().run_due(after + timedelta(hours=1))  # a rerun adds nothing
    notes = session.execute(select(OutboxMessage.member_id, OutboxMessage.source).where(
        OutboxMessage.title == "缺席提醒")).all()
    assert notes == [(branch["sec"].id, f"activity:{activity.id}:absent")]  # not 张三 (leave), not 李四
    assert service.id not in {int(source.split(":")[1]) for _, source in notes}  # volunteers: off by default
    body = session.scalars(select(OutboxMessage.body).where(OutboxMessage.title == "缺席提醒")).one()
    assert "也没有请假" in body and "学习党章" in body
    make_scheduler(ABSENCE_NOTE_VOLUNTEER=1).run_due(after + timedelta(hours=2))
    told = set(session.scalars(select(OutboxMessage.member_id).where(
        OutboxMessage.source == f"activity:{service.id}:absent")))
    assert branch["zhang"].id in told and branch["other"].id not in told  # the community's, not another's
