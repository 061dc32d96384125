"""The webhook opens the 48-hour customer-service window that the sender reads."""

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
                    {**app.config, "SEND_RATE_LIMIT": 0, "QUIET_HOURS": ""})
    assert sender.drain(now_utc()).sent == 1
    [call] = wechat_api.messages()
    assert call.path == "/cgi-bin/message/custom/send"
    assert call.body["touser"] == openid and call.body["text"]["content"] == "迟到的回复"


def test_events_do_not_open_the_window(app, wx):
    wx.event("o-evt", "subscribe")
    assert get_redis(app).get(last_message_key("o-evt")) is None
