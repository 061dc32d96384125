"""The wish and activity jobs run from the scheduler, once per run time, whatever runs twice."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models import Member, OutboxMessage, Wish
from models.activity import NewActivity, create_activity
from models.wishes import CLAIMED, OPEN, NewWish, claim_wish, post_wish
from tests.conftest import BRANCH

NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


def rows(session, member):
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member.id)))


def test_wish_deadlines_are_reminded_once_then_released(session, make_member, make_scheduler):
    secretary = session.get(Member, make_member("李书记", role="书记", openid="o-sec").id)
    claimer = session.get(Member, make_member("王党员", openid="o-a").id)
    wish = post_wish(session, secretary, NewWish("修水龙头", "厨房水龙头漏水"), now=NOW)
    claim_wish(session, claimer, wish.id, now=NOW)
    before = len(rows(session, claimer))
    scheduler = make_scheduler(SEND_RATE_LIMIT=0)

    two_days_before = NOW + timedelta(days=12, hours=1)
    report = scheduler.run_due(two_days_before)
    assert report.ran["wishes"] == "1 deadline reminders, 0 claims released"
    scheduler.run_due(two_days_before)
    make_scheduler().run_due(two_days_before + timedelta(hours=1))
    reminders = [m for m in rows(session, claimer)[before:] if "remind" in m.source]
    assert len(reminders) == 1 and f"#{wish.id}" in reminders[0].body

    assert session.get(Wish, wish.id).status == CLAIMED
    report = scheduler.run_due(NOW + timedelta(days=14, hours=2))
    assert report.ran["wishes"] == "0 deadline reminders, 1 claims released"
    session.expire_all()
    assert session.get(Wish, wish.id).status == OPEN


def test_activity_reminders_from_the_scheduler(session, make_member, make_scheduler):
    secretary = session.get(Member, make_member("李书记", role="书记", openid="o-sec").id)
    member = session.get(Member, make_member("王党员", org=BRANCH, openid="o-a").id)
    starts = NOW + timedelta(days=2)
    activity = create_activity(session, secretary, NewActivity(kind="主题党日", title="学习交流", starts_at=starts),
                               now=NOW)
    scheduler = make_scheduler()
    report = scheduler.run_due(starts - timedelta(hours=23, minutes=58))
    assert report.ran["activity_reminders"].endswith("reminders queued")
    scheduler.run_due(starts - timedelta(hours=23, minutes=58))
    scheduler.run_due(starts - timedelta(minutes=58))
    reminders = [m for m in rows(session, member) if m.kind == "reminder" or "reminder" in m.source]
    assert len(reminders) == 2
    assert all(f"#{activity.id}" in m.body for m in reminders)
