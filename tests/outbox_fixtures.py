"""Fixtures shared by the sender, scheduler and notice tests (import them with `from … import *`)."""

import fakeredis
import pytest
import redis
from sqlalchemy.orm import sessionmaker

from config import load_config
from handlers import Incoming, build_router
from scheduler.sender import Sender
from scheduler.service import SchedulerService

__all__ = ["make_scheduler", "make_sender", "say", "settings", "store"]


@pytest.fixture
def store(redis_url):
    """The Redis the test's senders and schedulers share (a real one with TEST_REDIS_URL)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True) if redis_url else \
        fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def settings(wechat_api):
    return load_config({
        "WECHAT_API_BASE": wechat_api.base_url, "WECHAT_APP_ID": "wxoa", "WECHAT_APP_SECRET": "s",
        "MINIAPP_APP_ID": "wxmini", "MINIAPP_APP_SECRET": "s2",
        "WECHAT_TEMPLATE_NOTICE": "TPL-NOTICE", "WECHAT_TEMPLATE_REMINDER": "TPL-REMINDER",
        "WECHAT_TEMPLATE_GREETING": "TPL-GREETING", "MINIAPP_TEMPLATE_NOTICE": "SUB-NOTICE",
        "SEND_RATE_LIMIT": 0, "OUTBOX_WORKERS": 4, "OUTBOX_RETRY_BASE": 60, "OUTBOX_MAX_ATTEMPTS": 3,
    })


@pytest.fixture
def make_sender(engine, store, settings):
    factory = sessionmaker(engine, expire_on_commit=False)

    def build(**overrides):
        return Sender(factory, store, settings.replace(**overrides))

    return build


@pytest.fixture
def make_scheduler(engine, store, settings):
    factory = sessionmaker(engine, expire_on_commit=False)
    made = []

    def build(name=None, **overrides):
        service = SchedulerService(factory, store, settings.replace(**overrides), name=name)
        made.append(service)
        return service

    yield build
    for service in made:
        service.shutdown()


@pytest.fixture
def say(session, settings):
    """Send a text to the chatbot as `openid` at `now`; return the reply."""
    router = build_router()

    def send(openid, text, now):
        return router.dispatch(Incoming(openid=openid, msg_type="text", content=text), session, now, settings)

    return send
