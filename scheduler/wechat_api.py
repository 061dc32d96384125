"""wechatpy clients that reach WeChat's API at the configured base URL, with shared tokens."""

from collections.abc import Mapping

import redis
import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient
from wechatpy.session.redisstorage import RedisStorage

OFFICIAL_BASE = "https://api.weixin.qq.com"


class BaseURLAdapter(HTTPAdapter):
    """Sends requests meant for WeChat's API host to another base URL (a proxy, or a fake in tests).

    wechatpy hard-codes some URLs (the token endpoint among them), so changing API_BASE_URL alone
    would not reach every call; rewriting at the transport does.
    """

    def __init__(self, base: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base = base.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs):
        if request.url.startswith(OFFICIAL_BASE):
            request.url = self.base + request.url[len(OFFICIAL_BASE):]
        return super().send(request, **kwargs)


def route_to_base(http: requests.Session, base: str) -> requests.Session:
    """Make `http` send WeChat API requests to `base` instead of WeChat's host."""
    if base.rstrip("/") != OFFICIAL_BASE:
        http.mount(OFFICIAL_BASE + "/", BaseURLAdapter(base))
    return http


def official_account_client(config: Mapping, store: redis.Redis) -> WeChatClient:
    """Return a client of the Official Account whose access_token is shared through Redis."""
    client = WeChatClient(
        config["WECHAT_APP_ID"], config["WECHAT_APP_SECRET"],
        session=RedisStorage(store, prefix="lx:wechatpy"), timeout=config["WECHAT_HTTP_TIMEOUT"],
    )
    route_to_base(client._http, config["WECHAT_API_BASE"])
    return client
