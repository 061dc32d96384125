"""Nothing lost, nothing twice: a sender process really killed mid-batch under the default rate
limit, and Redis really stopped mid-drain and started again. Counts are printed (pytest -s)."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from models.outbox import OutboxMessage, enqueue_many
from scheduler.sender import Sender

TEMPLATE = "/cgi-bin/message/template/send"
DAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def people(session, make_member, n, prefix):
    members = [make_member(openid=f"{prefix}{i}") for i in range(n)]
    enqueue_many(session, [m.id for m in members], source="notice:1", kind="notice", title="通知", body="正文")
    session.commit()
    return members


def tally(label, members, fake, session):
    """Print and return (sent, lost, duplicated) as recipients see it: calls that reached WeChat.

    `lost` is a recipient never pushed whose row does not say so. A sender killed between marking a
    row `sending` and its request leaving leaves a row in 状态未知 (`unknown`: whether WeChat got it
    cannot be known, so it is not resent blindly; receipts show it and 再提醒 resends it): such a
    recipient is counted apart, as `unknown, not pushed`."""
    pushed = Counter(c.body["touser"] for c in fake.calls_to(TEMPLATE))
    session.expire_all()
    status_of = dict(session.execute(select(OutboxMessage.member_id, OutboxMessage.status)).all())
    sent = sum(1 for m in members if pushed[m.openid])
    unpushed_unknown = sum(1 for m in members if not pushed[m.openid] and status_of.get(m.id) == "unknown")
    lost = sum(1 for m in members if not pushed[m.openid]) - unpushed_unknown
    duplicated = sum(count - 1 for count in pushed.values() if count > 1)
    statuses = Counter(status_of.values())
    print(f"\n{label}: {len(members)} recipients, sent {sent}, lost {lost}, duplicated {duplicated}, "
          f"unknown, not pushed {unpushed_unknown}; rows {dict(statuses)}")
    return sent, lost, duplicated, unpushed_unknown


def test_sender_killed_mid_batch_under_the_rate_limit_loses_and_repeats_nothing(
        session, make_member, wechat_api, database_url, redis_url, tmp_path):
    members = people(session, make_member, 120, "o-kill")
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "WECHAT_API_BASE": wechat_api.base_url, "WECHAT_APP_ID": "wxoa", "WECHAT_APP_SECRET": "s",
           "WECHAT_TEMPLATE_NOTICE": "TPL-NOTICE", "SEND_RATE_LIMIT": "20", "OUTBOX_WORKERS": "16",
           "OUTBOX_BATCH": "100", "SECRET_KEY": "x", "LOG_LEVEL": "WARNING", "PYTHONPATH": ROOT}
    command = [sys.executable, "-m", "flask", "--app", "app", "scheduler", "run-due", "--now"]
    wechat_api.latency = 0.05
    try:
        with open(tmp_path / "first.log", "w") as log:
            proc = subprocess.Popen([*command, DAY.isoformat()], env=env, cwd=tmp_path, stdout=log, stderr=log)
            while len(wechat_api.messages()) < 40 and proc.poll() is None:
                time.sleep(0.01)
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        time.sleep(0.3)  # calls in flight at the kill still reach the fake server
        at_kill = len(wechat_api.messages())
        assert 40 <= at_kill < 120
        # A new drain after the lease: the claimed rows go out, the ones in mid-call are unknown.
        later = (DAY + timedelta(minutes=11)).isoformat()
        done = subprocess.run([*command, later], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    finally:
        wechat_api.latency = 0
    sent, lost, duplicated, unknown = tally(f"SIGKILL after {at_kill} calls", members, wechat_api, session)
    # Every recipient pushed once, except one whose call the kill cut between its mark and its
    # request (a window of microseconds; at most one per sending thread): marked 状态未知, not lost.
    assert (lost, duplicated) == (0, 0) and sent + unknown == 120 and unknown <= 16
    statuses = Counter(session.scalars(select(OutboxMessage.status)))
    assert set(statuses) <= {"sent", "unknown"} and statuses["unknown"] <= 16


def test_redis_stopped_mid_drain_and_started_again_loses_and_repeats_nothing(
        session, make_member, wechat_api, engine, settings, redis_process, caplog):
    members = people(session, make_member, 100, "o-redis")
    store = redis.Redis(port=redis_process.port, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5)
    config = settings.replace(SEND_RATE_LIMIT=20, OUTBOX_WORKERS=16, QUIET_HOURS="", OUTBOX_OUTAGE_PAUSE=0.5)
    sender = Sender(sessionmaker(engine, expire_on_commit=False), store, config)
    outcome = {}
    wechat_api.latency = 0.02
    caplog.set_level(logging.WARNING, logger="scheduler.sender")

    def felt():  # the sender noticed: a send postponed or a claim waiting
        return sum("Redis unavailable" in r.getMessage() for r in caplog.records)

    drain = threading.Thread(target=lambda: outcome.setdefault("stats", sender.drain()))
    try:
        drain.start()
        while len(wechat_api.messages()) < 30:
            time.sleep(0.01)
        redis_process.kill()
        stopped_at = len(wechat_api.messages())
        # Redis stays down until the sender has felt it (however loaded the machine) and a while after
        deadline = time.monotonic() + 60
        while not felt() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)
        during, warnings = len(wechat_api.messages()), felt()
        redis_process.start()  # the same port, empty
        drain.join(120)
        assert not drain.is_alive()
    finally:
        wechat_api.latency = 0
        store.close()
    stats = outcome["stats"]
    print(f"\nRedis down after {stopped_at} calls ({during - stopped_at} calls meanwhile, {warnings} warnings); "
          f"drain: sent {stats.sent}, postponed {stats.postponed}, unknown {stats.unknown}")
    assert warnings > 0, "the sender never noticed that Redis was down"
    sent, lost, duplicated, unknown = tally("Redis outage", members, wechat_api, session)
    assert (sent, lost, duplicated, unknown) == (100, 0, 0, 0)
    assert stats.sent == 100
    assert set(session.scalars(select(OutboxMessage.status))) == {"sent"}
