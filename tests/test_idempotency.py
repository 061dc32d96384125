"""Nothing twice when Redis misbehaves: every action with an effect is idempotent by its message,
through a unique key in the database (models.handled), whether Redis is dead throughout, dies
between the first delivery and the retry, forgets, or the deliveries run at the same time.

Redis here is a real `redis-server` subprocess, killed for real."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app.simulator import Simulator, requests_poster
from models import HandledMessage, Notice, OutboxMessage, WechatUser, Wish
from tests.conftest import RACE_START_TIMEOUT, TOKEN, flask_poster


@pytest.fixture
def branch(cast):
    """A secretary and seven members in one branch: a notice's audience is seven (not its author)."""
    return cast.branch(7)


@pytest.fixture
def app_on(app_factory, redis_process):
    return app_factory(REDIS_URL=redis_process.url, REDIS_TIMEOUT=0.2)


def _counts(session) -> dict:
    session.expire_all()
    return {
        "wishes": session.scalar(select(func.count(Wish.id))),
        "notices": session.scalar(select(func.count(Notice.id))),
        "notice outbox rows": session.scalar(select(func.count(OutboxMessage.id))
                                             .where(OutboxMessage.source.like("notice:%"))),
        "outbox rows": session.scalar(select(func.count(OutboxMessage.id))),
        "handled keys": session.scalar(select(func.count()).select_from(HandledMessage)),
    }


def _deliver_three(sim, openid, text, msg_id, between=None) -> list[str]:
    fields = sim.text_fields(openid, text, msg_id=msg_id)
    replies = []
    for n in range(3):
        reply = sim.send(fields)
        assert reply.status == 200
        replies.append(reply.content)
        if n == 0 and between is not None:
            between()
    return replies


def _expect_once(session, wish_replies, notice_replies, label) -> None:
    counts = _counts(session)
    print(f"\n{label}: {counts}")
    assert counts["wishes"] == 1 and counts["notices"] == 1
    assert counts["notice outbox rows"] == 7  # the audience, once
    assert "已提交心愿 #1" in wish_replies[0] and wish_replies[1:] == wish_replies[:1] * 2
    assert "通知 #1 已发布" in notice_replies[0] and "共 7 人" in notice_replies[0]
    assert notice_replies[1:] == notice_replies[:1] * 2


def test_redis_dead_throughout(app_on, redis_process, branch, session):
    redis_process.kill()
    with pytest.raises(redis.ConnectionError):
        app_on.extensions["redis"].ping()
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))
    wishes = _deliver_three(sim, "o-m0", "许愿 家里水龙头漏水，希望有人帮忙", 7001)
    notices = _deliver_three(sim, "o-sec", "通知 周六上午9点小区环境整治", 7002)
    _expect_once(session, wishes, notices, "Redis dead throughout, 3 deliveries each")
    # The proposal told the secretary once too.
    assert _counts(session)["outbox rows"] == 7 + 1


def test_redis_dies_between_the_first_delivery_and_the_retries(app_on, redis_process, branch, session):
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))
    wishes = _deliver_three(sim, "o-m0", "许愿 楼道灯坏了", 7101, between=redis_process.kill)
    redis_process.start()  # back again, but empty: it has forgotten the first delivery
    notices = _deliver_three(sim, "o-sec", "通知 明天停水", 7102, between=redis_process.kill)
    _expect_once(session, wishes, notices, "Redis died after delivery 1")


def test_redis_that_forgot_between_deliveries(app_on, redis_process, branch, session):
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))

    def forget():
        redis.Redis.from_url(redis_process.url).flushall()

    wishes = _deliver_three(sim, "o-m0", "许愿 想学用智能手机", 7201, between=forget)
    notices = _deliver_three(sim, "o-sec", "通知 周五学习", 7202, between=forget)
    _expect_once(session, wishes, notices, "Redis flushed after delivery 1")


@pytest.fixture
def live_app(app_on):
    """The app on a real socket, threaded, as gunicorn's threads would serve it."""
    server = make_server("127.0.0.1", 0, app_on, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app_on, f"http://127.0.0.1:{server.server_port}/wechat"
    server.shutdown()


@pytest.mark.parametrize("redis_alive", [False, True], ids=["redis-dead", "redis-alive"])
def test_concurrent_deliveries_run_once(live_app, redis_process, branch, session, redis_alive):
    app, url = live_app
    if not redis_alive:
        redis_process.kill()
    sim = Simulator(url, TOKEN, post=requests_poster())
    results: dict[str, list] = {"wish": [], "notice": []}

    def burst(kind, openid, text, msg_id, n=6):
        fields = sim.text_fields(openid, text, msg_id=msg_id)
        barrier = threading.Barrier(n, timeout=RACE_START_TIMEOUT)

        def deliver():
            barrier.wait()
            reply = sim.send(fields)
            results[kind].append((reply.status, reply.content))

        threads = [threading.Thread(target=deliver) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)

    burst("wish", "o-m1", "许愿 希望有人陪老人聊聊天", 7301)
    burst("notice", "o-sec", "通知 今晚8点线上学习", 7302)
    counts = _counts(session)
    print(f"\nconcurrent, Redis {'alive' if redis_alive else 'dead'}, 6 deliveries each: {counts}")
    assert counts["wishes"] == 1 and counts["notices"] == 1 and counts["notice outbox rows"] == 7
    for kind, done in (("wish", "已提交心愿 #1"), ("notice", "通知 #1 已发布")):
        statuses = [status for status, _ in results[kind]]
        texts = [text for _, text in results[kind]]
        assert statuses == [200] * 6
        # Each delivery answers the first one's reply or, while it is not stored yet, success.
        assert all(text in ("", texts[0]) or done in text for text in texts) and any(done in t for t in texts)


def test_a_refused_action_is_not_remembered_so_the_retry_redoes_it(app_on, redis_process, branch, session):
    redis_process.kill()
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))
    claim = sim.text_fields("o-m2", "认领 #1", msg_id=7401)
    assert "未找到心愿 #1" in sim.send(claim).content
    assert _counts(session)["handled keys"] == 0  # the refusal was rolled back with its key
    assert "已发布心愿 #1" in sim.text("o-sec", "发布心愿 修水龙头 东湖小区3栋").content
    retry = sim.send(claim)  # the same message again: now it has something to do
    assert "认领成功" in retry.content
    assert sim.send(claim).content == retry.content
    session.expire_all()
    assert session.get(Wish, 1).claimer_id is not None


def test_a_refusal_committed_by_the_domain_counts_once(app_on, redis_process, session):
    # A failed bind counts against the lockout (the domain commits the count, then refuses): a
    # retry of that message answers the same refusal and does not count again.
    redis_process.kill()
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))
    replies = _deliver_three(sim, "o-x", "绑定 不存在 13900000000", 7501)
    assert "未找到" in replies[0] and replies == replies[:1] * 3
    session.expire_all()
    assert session.get(WechatUser, "o-x").failed_binds == 1
    assert "未找到" in sim.text("o-x", "绑定 不存在 13900000000").content  # a new message counts
    session.expire_all()
    assert session.get(WechatUser, "o-x").failed_binds == 2


def test_read_only_commands_write_no_key(app_on, redis_process, branch, session):
    redis_process.kill()
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))
    for text in ("帮助", "心愿", "我的", "我的心愿", "积分", "活动", "提醒", "消息"):
        assert sim.text("o-m3", text).status == 200
    for text in ("组织生活", "通知"):  # without arguments they only show
        assert sim.text("o-sec", text).status == 200
    assert _counts(session)["handled keys"] == 0


def test_the_scheduler_purges_keys_older_than_a_day(app_on, redis_process, branch, session):
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app_on.test_client()))
    sim.text("o-m0", "许愿 想要一本字典")
    session.add(HandledMessage(key="lx:wx:o-old:m1", reply="旧的", created_at=datetime.now(UTC) - timedelta(days=2)))
    session.commit()
    assert _counts(session)["handled keys"] == 2
    now = datetime.now(UTC).replace(minute=55, second=0, microsecond=0)
    result = app_on.test_cli_runner().invoke(args=["scheduler", "run-due", "--now", now.isoformat()])
    assert result.exit_code == 0, result.output
    assert "handled_messages: 1 handled-message keys purged" in result.output
    session.expire_all()
    kept = session.scalars(select(HandledMessage.key)).all()
    assert len(kept) == 1 and kept[0].startswith("lx:wx:o-m0:m")
