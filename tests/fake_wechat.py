"""The fake WeChat API server lives in app/fake_wechat.py (also served by `flask wechat fake-api`)."""

from app.fake_wechat import ERRMSG, MESSAGE_PATHS, Call, FakeWeChat

__all__ = ["ERRMSG", "MESSAGE_PATHS", "Call", "FakeWeChat"]
