"""Each organizational-life occasion is an activity members sign in to: created once with the
occurrence, announced in the notice, moved with the occurrence (改期)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Activity, OrgLifeOccurrence, OutboxMessage
from models.orglife import ensure_activity, send_due_orglife
from tests.conftest import BRANCH, OTHER_BRANCH

TZ = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)


@pytest.fixture
def branch(cast, make_member, say):
    secretary, members = cast.branch(2)
    make_member("外支部", org=OTHER_BRANCH, openid="o-out")
    assert "已设置组织生活 1" in say("o-sec", "组织生活 每月第一个周五 15:00 主题党日", bj(2026, 9, 25, 10, 0))
    return secretary, members


def activities(session) -> list[Activity]:
    session.expire_all()
    return list(session.scalars(select(Activity).order_by(Activity.id)))


def test_the_job_creates_one_activity_per_rule_and_period(branch, session):
    # Three days before at 09:00 the occasion, its activity and the notice; reruns add nothing.
    for _ in range(2):
        send_due_orglife(session, bj(2026, 9, 29, 9, 5))
    send_due_orglife(session, bj(2026, 10, 2, 13, 0))  # the reminder on the day
    send_due_orglife(session, bj(2026, 10, 2, 13, 10))
    [activity] = activities(session)
    assert (activity.kind, activity.title, activity.org.full_name, activity.audience) == \
        ("主题党日", "主题党日", BRANCH, "subtree")
    assert activity.starts_at == bj(2026, 10, 2, 15, 0) and activity.created_by_id is None
    occurrence = session.scalars(select(OrgLifeOccurrence)).one()
    assert occurrence.activity_id == activity.id
    # The notice and the reminder name the activity and how to sign in.
    bodies = session.scalars(select(OutboxMessage.body).where(OutboxMessage.source.like("orglife:%"))).all()
    assert len(bodies) == 6  # 3 party members × (notice + reminder)
    assert all(f"活动 #{activity.id}" in body and "签到 签到码" in body for body in bodies)


def test_the_next_period_gets_its_own_activity(branch, session):
    send_due_orglife(session, bj(2026, 9, 29, 9, 5))
    send_due_orglife(session, bj(2026, 11, 3, 9, 5))  # 6 November is the first Friday
    assert [a.starts_at for a in activities(session)] == [bj(2026, 10, 2, 15, 0), bj(2026, 11, 6, 15, 0)]


def test_two_runs_racing_leave_one_activity(branch, session, engine):
    send_due_orglife(session, bj(2026, 9, 29, 9, 5))
    with Session(engine) as s:
        s.execute(OrgLifeOccurrence.__table__.update().values(activity_id=None))
        s.execute(Activity.__table__.delete())
        s.commit()
    # Both runs read the occurrence before either links an activity to it.
    first, second = Session(engine, expire_on_commit=False), Session(engine, expire_on_commit=False)
    try:
        occ1 = first.scalars(select(OrgLifeOccurrence)).one()
        occ2 = second.scalars(select(OrgLifeOccurrence)).one()
        assert occ1.activity_id is None and occ2.activity_id is None
        won = ensure_activity(first, occ1, bj(2026, 9, 29, 9, 5))
        kept = ensure_activity(second, occ2, bj(2026, 9, 29, 9, 5))
        assert won.id == kept.id
    finally:
        first.close()
        second.close()
    assert session.scalar(select(func.count(Activity.id))) == 1


def test_members_sign_in_to_the_occasion_in_its_window(branch, session, say):
    send_due_orglife(session, bj(2026, 9, 29, 9, 5))
    [activity] = activities(session)
    code = activity.code
    assert "尚未开始签到" in say("o-m0", f"签到 {code}", bj(2026, 10, 2, 14, 0))
    assert "签到成功！" in say("o-m0", f"签到 {code}", bj(2026, 10, 2, 14, 50))
    assert "已签到" in say("o-m0", f"签到 {code}", bj(2026, 10, 2, 15, 5))
    assert "签到成功！" not in say("o-out", f"签到 {code}", bj(2026, 10, 2, 15, 5))  # another branch


def test_moving_the_occurrence_moves_the_activity(branch, session, say):
    send_due_orglife(session, bj(2026, 9, 29, 9, 5))
    [activity] = activities(session)
    length = activity.ends_at - activity.starts_at
    reply = say("o-sec", "组织生活 改期 1 2026-10-09 15:00", bj(2026, 9, 30, 10, 0))
    assert "已将「主题党日」2026-10 的安排改到 10月9日（周五）15:00" in reply
    [activity] = activities(session)
    assert activity.starts_at == bj(2026, 10, 9, 15, 0) and activity.ends_at - activity.starts_at == length
    # The change notice names the activity; sign-in follows the new time.
    change = session.scalars(select(OutboxMessage.body).where(OutboxMessage.source.like("%moved%"))).first()
    assert f"活动 #{activity.id}" in change
    assert "尚未开始签到" in say("o-m1", f"签到 {activity.code}", bj(2026, 10, 2, 15, 0))
    assert "签到成功！" in say("o-m1", f"签到 {activity.code}", bj(2026, 10, 9, 15, 0))


def test_moving_before_the_job_ran_creates_the_activity_at_the_new_time(branch, session, say):
    say("o-sec", "组织生活 改期 1 2026-10-09 15:00", bj(2026, 9, 26, 10, 0))
    [activity] = activities(session)
    assert activity.starts_at == bj(2026, 10, 9, 15, 0)
    for _ in range(2):
        send_due_orglife(session, bj(2026, 10, 6, 9, 5))
    assert [a.id for a in activities(session)] == [activity.id]
    notice = session.scalars(select(OutboxMessage.body).where(OutboxMessage.source == "orglife:1:2026-10:notice")
                             ).first()
    assert "10月9日（周五）15:00" in notice and f"活动 #{activity.id}" in notice


def test_a_past_occasion_gets_no_activity(branch, session):
    from models.orglife import OrgLifeRule, ensure_occurrence

    rule = session.get(OrgLifeRule, 1)
    occurrence = ensure_occurrence(session, rule, "2026-09", bj(2026, 9, 4, 15, 0))
    session.commit()
    assert ensure_activity(session, occurrence, bj(2026, 9, 25, 10, 0)) is None
    assert activities(session) == []


def test_an_org_life_activity_gets_no_second_set_of_reminders(branch, session):
    from models.reminders import queue_activity_reminders

    send_due_orglife(session, bj(2026, 9, 29, 9, 5))
    # 24 hours and 1 hour before: the activity reminder rounds would be due, but the org-life rule
    # already sends its own reminder on the day.
    assert queue_activity_reminders(session, bj(2026, 10, 1, 15, 5)) == 0
    assert queue_activity_reminders(session, bj(2026, 10, 2, 14, 5)) == 0
    sources = session.scalars(select(OutboxMessage.source)).all()
    assert sources and all(s.startswith("orglife:") for s in sources)
