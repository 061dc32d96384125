"""The webhook's role cache and reply-path writes that skip Redis's answers (real Redis only).

With the in-process stand-in neither is used: there is no round trip to save.
"""

import os
import uuid

import pytest
import redis
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.extensions import get_redis
from app.fastpath import GEN_KEY, ReplyPathRedis, role_key
from models import Member

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"),
    reason="needs a real Redis (TEST_REDIS_URL): the role cache and CLIENT REPLY SKIP writes are used "
           "only with one; CI runs this file in its PostgreSQL + Redis pass",
)

SECRETARY_ONLY = "通知"


def test_help_answers_from_the_cache_and_a_binding_changes_it(app, wx, make_member, engine):
    make_member("李红梅", "13800000002", role="书记")
    assert SECRETARY_ONLY not in wx.text("o-li", "帮助").content  # not bound yet
    assert get_redis(app).get(role_key("o-li")) is not None
    # The cached "not bound" is not trusted after the binding commits.
    assert "成功" in wx.text("o-li", "绑定 李红梅 13800000002").content
    assert SECRETARY_ONLY in wx.text("o-li", "帮助").content
    cached = get_redis(app).get(role_key("o-li"))
    assert cached is not None and cached.endswith("|书记")
    # The next 帮助 is answered from the cache: a change behind SQLAlchemy's back (raw SQL, no
    # session) is not seen ...
    with engine.begin() as conn:
        conn.execute(update(Member).values(role="党员"))
    assert SECRETARY_ONLY in wx.text("o-li", "帮助").content
    # ... while any statement on members through a session invalidates every cached role.
    with Session(engine) as s:
        s.execute(update(Member).values(role="党员"))
        s.commit()
    assert SECRETARY_ONLY not in wx.text("o-li", "帮助").content


def test_a_role_changed_by_any_session_is_seen_at_once(app, wx, make_member, engine):
    member = make_member(role="书记", openid="o-sec")
    assert SECRETARY_ONLY in wx.text("o-sec", "帮助").content
    generation = get_redis(app).get(GEN_KEY)
    with Session(engine) as s:  # as an import, the API or an operator's script would
        s.get(Member, member.id).role = "党员"
        s.commit()
    assert get_redis(app).get(GEN_KEY) != generation
    assert SECRETARY_ONLY not in wx.text("o-sec", "帮助").content
    with Session(engine) as s:
        s.get(Member, member.id).active = False
        s.commit()
    assert "绑定" in wx.text("o-sec", "我的").content  # no longer a bound member


def test_an_unrelated_change_keeps_the_cache(app, wx, make_member, engine):
    member = make_member(role="书记", openid="o-keep")
    wx.text("o-keep", "帮助")
    generation = get_redis(app).get(GEN_KEY)
    with Session(engine) as s:
        s.get(Member, member.id).name = "改名"
        s.commit()
    assert get_redis(app).get(GEN_KEY) == generation


def test_retries_get_the_reply_written_without_waiting(app, wx):
    first = wx.text("o-retry", "帮助", msg_id=424242)
    again = wx.text("o-retry", "帮助", msg_id=424242)
    assert again.content == first.content
    assert app.extensions["redis_reply_path"].skip_replies  # the real Redis honours CLIENT REPLY SKIP


def test_quiet_writes_fall_back_where_the_server_refuses_client_reply(redis_url):
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    user = f"lx-test-{uuid.uuid4().hex[:8]}"
    admin.acl_setuser(user, enabled=True, nopass=True, keys=["*"], commands=["+@all", "-client"])
    client = redis.Redis.from_url(redis_url, username=user, password="", decode_responses=True)
    writer = ReplyPathRedis(client, shared=True)
    try:
        writer.send(("SET", "lx:test:quiet", "1", "EX", 60))
        assert not writer.skip_replies
        # Answers are not out of step afterwards.
        assert writer.call(("GET", "lx:test:quiet"), ("PING",)) == ["1", "PONG"]
        assert client.get("lx:test:quiet") == "1"
    finally:
        writer.close()
        client.close()
        admin.acl_deluser(user)
        admin.close()
