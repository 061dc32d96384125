"""The reply path's speed tricks (app/fastpath.py): each does what the plain code would, only faster.

The Redis ones run against a redis-server of the test's own (tests/redis_process.py), so they run
in every pass, not only with TEST_REDIS_URL.
"""

import uuid
from functools import partial

import fakeredis
import pytest
import redis
from flask import Blueprint, Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import fastpath
from app.fastpath import GEN_KEY, ReplyPathRedis, RoleCache, encode, hook_limiter_to, is_limiter_hook
from models import Member

COMMANDS = [
    ("SET", "lx:wx:o-1:m42", "\x00pending", "NX", "EX", 300),
    ("GET", "lx:wx:nonce:1700000000:123"),
    ("MGET", "lx:roles:gen", "lx:role:o-1"),
    ("SET", "lx:role:o-1", "7|书记", "EX", 300),
    ("SET", b"raw\r\nbytes", "", "EX", 1),
    ("INCRBYFLOAT", "k", 1.5),
    ("SET", "reply", "您可以发送以下指令：\n帮助、我的、心愿 " * 40),
    ("PING",),
]


# The RESP encoder ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_the_encoder_writes_what_redis_py_writes(command):
    assert encode([command]) == b"".join(redis.Connection().pack_commands([command]))


def test_the_encoder_packs_several_commands_into_one_write():
    assert encode(COMMANDS) == b"".join(redis.Connection().pack_commands(COMMANDS))
    assert encode([]) == b""


# ReplyPathRedis ----------------------------------------------------------------------------------
def test_calls_answer_in_order_and_sends_skip_the_answers(redis_process):
    client = redis.Redis.from_url(redis_process.url, decode_responses=True)
    fast = ReplyPathRedis(client, shared=True)
    try:
        assert fast.call(("SET", "a", "1", "NX", "EX", 60), ("SET", "a", "2", "NX", "EX", 60),
                         ("GET", "a"), ("MGET", "a", "none")) == ["OK", None, "1", ["1", None]]
        fast.send(("SET", "b", "written", "EX", 60), ("INCR", "n"))
        assert fast.skip_replies  # a plain redis-server honours CLIENT REPLY SKIP
        # Nothing unread is left on the connection: the next call gets its own answers.
        assert fast.call(("GET", "b"), ("GET", "n"), ("PING",)) == ["written", "1", "PONG"]
    finally:
        fast.close()
        client.close()


def test_sends_wait_for_their_answers_where_client_reply_is_refused(redis_process):
    admin = redis.Redis.from_url(redis_process.url, decode_responses=True)
    user = f"lx-test-{uuid.uuid4().hex[:8]}"
    admin.acl_setuser(user, enabled=True, nopass=True, keys=["*"], commands=["+@all", "-client"])
    client = redis.Redis.from_url(redis_process.url, username=user, password="", decode_responses=True)
    fast = ReplyPathRedis(client, shared=True)
    try:
        fast.send(("SET", "quiet", "1", "EX", 60))
        assert not fast.skip_replies
        fast.send(("SET", "quiet", "2", "EX", 60))  # waited, in step
        assert fast.call(("GET", "quiet"), ("PING",)) == ["2", "PONG"]
    finally:
        fast.close()
        client.close()
        admin.close()


def test_a_failed_connection_is_dropped_not_reused_out_of_step(redis_process):
    client = redis.Redis.from_url(redis_process.url, decode_responses=True, socket_timeout=0.5)
    fast = ReplyPathRedis(client, shared=True)
    try:
        assert fast.call(("PING",)) == ["PONG"]
        redis_process.kill()
        with pytest.raises(redis.RedisError):
            fast.call(("PING",))
        redis_process.start()
        assert fast.call(("SET", "x", "1"), ("GET", "x")) == ["OK", "1"]
    finally:
        fast.close()
        client.close()


def test_with_the_in_process_stand_in_calls_are_pipelines():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    fast = ReplyPathRedis(client, shared=False)
    assert not fast.direct and not fast.skip_replies
    fast.send(("SET", "k", "v"))
    assert fast.call(("GET", "k"), ("INCR", "n")) == ["v", 1]


def test_the_app_gets_a_role_cache_only_with_a_real_redis():
    app = Flask(__name__)
    fastpath.install(app, fakeredis.FakeRedis(decode_responses=True), shared=False)
    assert app.extensions["roles"] is None
    assert not app.extensions["redis_reply_path"].direct


# The role cache's listeners -------------------------------------------------------------------------
@pytest.fixture
def roles():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    cache = RoleCache(client)
    fastpath.install_role_listeners()
    fastpath.install_role_listeners()  # once per process, however often asked
    return cache


def _generation(cache: RoleCache) -> int:
    return int(cache.client.get(GEN_KEY) or 0)


def test_a_member_added_or_its_role_changed_invalidates_every_cached_role(roles, make_member, engine):
    member = make_member(role="书记", openid="o-gen")
    assert _generation(roles) == 1  # the insert, once however often the listeners were installed
    with Session(engine) as s:
        s.get(Member, member.id).role = "党员"
        s.commit()
    assert _generation(roles) == 2
    with Session(engine) as s:
        s.execute(update(Member).where(Member.id == member.id).values(active=False))
        s.commit()
    assert _generation(roles) == 3


def test_an_unrelated_change_or_a_rollback_keeps_the_cached_roles(roles, make_member, engine):
    member = make_member(openid="o-keep")
    before = _generation(roles)
    with Session(engine) as s:
        s.get(Member, member.id).name = "改名"
        s.commit()
    with Session(engine) as s:
        s.get(Member, member.id).role = "书记"
        s.flush()
        s.rollback()
    assert _generation(roles) == before


def test_a_cached_role_is_read_only_in_its_generation():
    entry = RoleCache.entry("o-1", "4", "书记")
    assert RoleCache.read(["4", entry[2]]) == (True, "书记")
    assert RoleCache.read(["5", entry[2]]) == (False, None)
    assert RoleCache.read([None, RoleCache.entry("o-2", None, None)[2]]) == (True, None)  # not bound
    assert RoleCache.read(None) == (False, None)


# The limiter's hooks -------------------------------------------------------------------------------
class _Limiter:
    def before(self):
        pass

    def after(self, response):
        return response


def test_the_limiter_hooks_move_to_the_limited_blueprints_only():
    limiter = _Limiter()
    app = Flask(__name__)

    def own_hook():
        pass

    app.before_request(limiter.before)
    app.before_request(own_hook)
    app.after_request(partial(_Limiter.after, limiter))
    bp = Blueprint("limited", __name__)
    app.register_blueprint(bp)
    hook_limiter_to(app, limiter, ["limited"])
    assert app.before_request_funcs[None] == [own_hook]
    assert app.after_request_funcs[None] == []
    assert app.before_request_funcs["limited"] == [limiter.before]
    assert all(is_limiter_hook(limiter, f) for f in app.after_request_funcs["limited"])
    assert not is_limiter_hook(limiter, own_hook)
