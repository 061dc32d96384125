"""The scheduler: run-due catch-up, political birthdays, the leader lock, the CLI."""

import threading
import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.interval import IntervalTrigger

from models.birthdays import is_anniversary
from scheduler.service import LEADER_KEY, Job

TZ = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)


def greetings(wechat_api):
    return [c for c in wechat_api.messages() if c.body.get("template_id") == "TPL-GREETING"]


def test_anniversaries_including_29_february():
    assert is_anniversary(date(2001, 7, 1), date(2026, 7, 1))
    assert not is_anniversary(date(2026, 7, 1), date(2026, 7, 1))  # joined today: no anniversary yet
    assert is_anniversary(date(2004, 2, 29), date(2027, 2, 28))
    assert not is_anniversary(date(2004, 2, 29), date(2028, 2, 28))
    assert is_anniversary(date(2004, 2, 29), date(2028, 2, 29))
    assert not is_anniversary(date(2004, 2, 28), date(2028, 2, 29))


def test_birthday_greetings_once_per_member_and_year(make_member, make_scheduler, wechat_api):
    make_member("张三", openid="o-zs", join_date=date(2000, 11, 23))
    make_member("李四", openid="o-ls", join_date=date(2004, 2, 29))
    make_member("王五", openid="o-ww", join_date=date(2010, 5, 4))
    make_member("群众", openid="o-qz", kind="群众", join_date=date(2000, 11, 23))
    scheduler = make_scheduler()
    scheduler.run_due(bj(2026, 11, 23, 8, 59))
    assert greetings(wechat_api) == []
    report = scheduler.run_due(bj(2026, 11, 23, 9, 0))
    assert report.ran["birthdays"] == "1 greetings queued"
    [call] = greetings(wechat_api)
    assert call.body["touser"] == "o-zs" and "入党26周年的政治生日" in call.body["data"]["content"]["value"]
    # Same time again, a later run the same day, another scheduler: no second greeting.
    scheduler.run_due(bj(2026, 11, 23, 9, 0))
    make_scheduler().run_due(bj(2026, 11, 23, 11, 0))
    assert len(greetings(wechat_api)) == 1
    # 29 February on 28 February in a common year, on 29 February in a leap year.
    scheduler.run_due(bj(2027, 2, 28, 9, 30))
    assert [c.body["touser"] for c in greetings(wechat_api)][1:] == ["o-ls"]
    scheduler.run_due(bj(2028, 2, 28, 9, 30))
    assert len(greetings(wechat_api)) == 2
    scheduler.run_due(bj(2028, 2, 29, 9, 30))
    assert len(greetings(wechat_api)) == 3


def test_missed_runs_catch_up_within_the_grace_window_only(make_member, make_scheduler, wechat_api):
    make_member("张三", openid="o-zs", join_date=date(2000, 11, 23))
    make_member("李四", openid="o-ls", join_date=date(2000, 11, 24))
    scheduler = make_scheduler(SCHEDULER_GRACE_HOURS=6)
    # Down from before 09:00 until 14:00: the 09:00 run still happens, once.
    report = scheduler.run_due(bj(2026, 11, 23, 14, 0))
    assert report.ran["birthdays"] == "1 greetings queued"
    # Down on the 24th until 16:00, beyond the grace window: that run is skipped.
    report = scheduler.run_due(bj(2026, 11, 24, 16, 0))
    assert "birthdays" not in report.ran
    assert len(greetings(wechat_api)) == 1


def test_exactly_one_of_two_instances_leads_and_another_takes_over(make_scheduler, store):
    first, second = make_scheduler("first"), make_scheduler("second")
    assert first.heartbeat() is True
    assert second.heartbeat() is False
    assert first.heartbeat() is True  # renewing
    store.delete(LEADER_KEY)  # the leader died and its lock ran out
    assert second.heartbeat() is True
    assert first.heartbeat() is False


def test_two_running_schedulers_run_each_job_on_one_instance(make_scheduler):
    runs = []
    lock = threading.Lock()

    def instance(name):
        service = make_scheduler(name, SCHEDULER_LEADER_TTL=0.9)

        def tick(now, at):
            with lock:
                runs.append(name)

        service.jobs = [Job("tick", IntervalTrigger(seconds=0.1), tick, catch_up=False)]
        return service

    a, b = instance("a"), instance("b")
    a.start()
    b.start()

    def wait_for(count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                if len(runs) >= count:
                    return
            time.sleep(0.05)
        raise AssertionError(f"only {len(runs)} runs")

    wait_for(8)
    with lock:
        leader = runs[0]
        assert set(runs) == {leader}
    (a if leader == "a" else b).shutdown()  # the leader stops; the other takes over
    with lock:
        before = len(runs)
    wait_for(before + 5)
    with lock:
        assert set(runs[before:]) == {"b" if leader == "a" else "a"}


def test_cli_run_due_twice_sends_once(app_factory, make_member, wechat_api):
    make_member("张三", openid="o-zs", join_date=date(2000, 11, 23))
    app = app_factory(WECHAT_TEMPLATE_GREETING="TPL-GREETING", SEND_RATE_LIMIT=0)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["scheduler", "run-due", "--now", "2026-11-23T09:00:00+08:00"])
    assert result.exit_code == 0, result.output
    assert "birthdays: 1 greetings queued" in result.output and "outbox: 1 sent" in result.output
    result = runner.invoke(args=["scheduler", "run-due", "--now", "2026-11-23T09:00:00+08:00"])
    assert result.exit_code == 0 and "outbox: 0 sent" in result.output
    assert "birthdays" not in result.output
    assert len(greetings(wechat_api)) == 1
    result = runner.invoke(args=["scheduler", "run-due", "--now", "yesterday"])
    assert result.exit_code != 0 and "ISO 8601" in result.output


def test_birthdays_count_from_the_full_member_date_when_configured(app_factory, make_member, wechat_api):
    make_member("张三", openid="o-zs", join_date=date(2000, 11, 23), full_member_date=date(2001, 11, 24))
    make_member("李四", openid="o-ls", join_date=date(2003, 6, 1), full_member_date=date(2004, 11, 23))
    make_member("王五", openid="o-ww", join_date=date(2005, 11, 23))  # no 转正日期 on the roster
    app = app_factory(WECHAT_TEMPLATE_GREETING="TPL-GREETING", SEND_RATE_LIMIT=0,
                      BIRTHDAY_DATE_FIELD="full_member_date")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["scheduler", "run-due", "--now", "2026-11-23T09:00:00+08:00"])
    assert result.exit_code == 0 and "birthdays: 1 greetings queued" in result.output, result.output
    [call] = greetings(wechat_api)
    assert call.body["touser"] == "o-ls" and "转正22周年的政治生日" in call.body["data"]["content"]["value"]
    result = runner.invoke(args=["scheduler", "run-due", "--now", "2026-11-24T09:00:00+08:00"])
    assert "birthdays: 1 greetings queued" in result.output
    assert [c.body["touser"] for c in greetings(wechat_api)] == ["o-ls", "o-zs"]
