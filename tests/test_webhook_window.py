"""The webhook opens the customer-service windows that the sender reads: 48 hours and 5 messages
after the user writes, one minute and 3 messages after a menu click, a follow or a scan."""

from datetime import timedelta

from sqlalchemy.orm import sessionmaker

from app.extensions import db, get_redis
from models import now_utc
from models.outbox import enqueue
from scheduler.sender import Sender, last_message_key


def test_a_text_message_opens_the_window_and_a_late_reply_goes_by_customer_service(app, wx, wechat_api):
    openid = "o-window"
    assert wx.text(openid, "帮助").status == 200
    store = get_redis(app)
    assert store.get(last_message_key(openid)) is not None
    # A reply that missed WeChat's deadline is queued as the webhook does, then sent.
    enqueue(db.session, source="late-reply:x", kind="reply", body="迟到的回复", openid=openid)
    db.session.commit()
    sender = Sender(sessionmaker(db.engine, expire_on_commit=False), store,
                    app.extensions["settings"].replace(SEND_RATE_LIMIT=0, QUIET_HOURS=""))
    assert sender.drain(now_utc()).sent == 1
    [call] = wechat_api.messages()
    assert call.path == "/cgi-bin/message/custom/send"
    assert call.body["touser"] == openid and call.body["text"]["content"] == "迟到的回复"


def test_a_follow_opens_a_one_minute_window_for_three_messages(app, wx, wechat_api):
    openid = "o-follow"
    assert wx.event(openid, "subscribe").status == 200
    store = get_redis(app)
    assert store.get(last_message_key(openid)) is None  # not the 48-hour window of a message
    for n in range(4):
        enqueue(db.session, source=f"late-reply:f{n}", kind="reply", body=f"回复{n}", openid=openid)
    db.session.commit()
    sender = Sender(sessionmaker(db.engine, expire_on_commit=False), store,
                    app.extensions["settings"].replace(SEND_RATE_LIMIT=0, QUIET_HOURS=""))
    stats = sender.drain(now_utc())
    assert (stats.sent, stats.failed) == (3, 1)
    assert len(wechat_api.messages()) == 3
    # A minute later the window is closed.
    enqueue(db.session, source="late-reply:f-later", kind="reply", body="晚了", openid=openid)
    db.session.commit()
    assert sender.drain(now_utc() + timedelta(seconds=61)).failed == 1
    assert len(wechat_api.messages()) == 3


def test_unsubscribe_and_location_open_no_window(app, wx):
    wx.event("o-evt", "unsubscribe")
    wx.event("o-evt", "LOCATION")
    store = get_redis(app)
    assert store.get(last_message_key("o-evt")) is None
    assert store.get(last_message_key("o-evt", event=True)) is None
