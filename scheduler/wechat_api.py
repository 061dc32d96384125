"""wechatpy clients that reach WeChat's API at the configured base URL, with shared tokens."""

import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import redis
import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from config import Settings
from models import clock
from scheduler.locks import RedisLock

log = logging.getLogger(__name__)
# 40001 invalid credential, 40014 invalid access_token, 42001 access_token expired.
TOKEN_ERRORS = (40001, 40014, 42001)

OFFICIAL_BASE = "https://api.weixin.qq.com"
# wechatpy reads the shared token from Redis (two GETs) before every call. A token it hands out is
# good for at least another minute, and WeChat keeps a replaced token working for five minutes, so
# each client keeps its copy this long before reading again.
LOCAL_TOKEN_SECONDS = 30


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


class SharedTokenClient(WeChatClient):
    """A WeChatClient whose access_token is fetched under a Redis lock shared by every process.

    wechatpy fetches whenever its cached token is missing or stale, so N processes starting with an
    empty cache make N fetches, and each new token retires the previous one. Here a fetch takes the
    lock, then looks again: if another process stored a fresh token meanwhile, that one is used.
    A token WeChat rejects (40001/40014/42001) is refreshed once and the call retried once
    (wechatpy's own auto-retry would loop for ever on a persistent error, so it is off).
    """

    def __init__(self, appid: str, secret: str, *, store: redis.Redis, timeout: float) -> None:
        super().__init__(appid, secret, session=RedisStorage(store, prefix="lx:wechatpy"),
                         timeout=timeout, auto_retry=False)
        self.store = store
        self.fetches = 0  # token fetches made by this client (for logs and tests)
        self._kept: tuple[str | None, float] = (None, 0.0)  # (token, monotonic time to read again)

    @property
    def access_token(self) -> str:
        token, until = self._kept
        if token and time.monotonic() < until:
            return token
        token = super().access_token
        self._kept = (token, time.monotonic() + LOCAL_TOKEN_SECONDS)
        return token

    def _lock(self) -> RedisLock:
        return RedisLock(self.store, f"lx:wechatpy:{self.appid}:token-lock", ttl=30)

    def fetch_access_token(self, stale: str | None = None):
        """Fetch a token unless another process stored a fresh one that is not `stale`."""
        self._kept = (None, 0.0)
        with self._lock():
            current = self.session.get(self.access_token_key)
            expires_at = self.expires_at
            if current and current != stale and expires_at and expires_at - time.time() > 60:
                return {"access_token": current}
            self.fetches += 1
            log.info("fetching a new access_token for %s", self.appid)
            return super().fetch_access_token()

    def call(self, fn: Callable[[], dict]) -> dict:
        """Run one API call; on a rejected token, refresh it once and run the call again."""
        try:
            return fn()
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            self.fetch_access_token(stale=_token_of(exc))
            return fn()


def _token_of(exc: WeChatClientException) -> str | None:
    request = getattr(exc, "request", None)
    if request is None or not getattr(request, "url", None):
        return None
    return parse_qs(urlsplit(request.url).query).get("access_token", [None])[0]


def official_account_client(settings: Settings, store: redis.Redis) -> SharedTokenClient:
    """Return a client of the Official Account whose access_token is shared through Redis."""
    client = SharedTokenClient(settings.wechat_app_id, settings.wechat_app_secret, store=store,
                               timeout=settings.wechat_http_timeout)
    route_to_base(client._http, settings.wechat_api_base)
    return client


def miniapp_client(settings: Settings, store: redis.Redis) -> SharedTokenClient | None:
    """Return a client of the mini-program (its own token), or None when it is not configured."""
    if not settings.miniapp_app_id or not settings.miniapp_app_secret:
        return None
    client = SharedTokenClient(settings.miniapp_app_id, settings.miniapp_app_secret, store=store,
                               timeout=settings.wechat_http_timeout)
    route_to_base(client._http, settings.wechat_api_base)
    return client


# Template fields --------------------------------------------------------------------------------
# What one value of each type may hold (WeChat refuses the message otherwise, 47003).
_LIMITS = {"thing": 20, "name": 10, "phrase": 5, "character_string": 32, "number": 32}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ASCII_SYMBOLS = re.compile(r"[!-~]")
_DIGITS = re.compile(r"[0-9]")


def field_value(kind: str, value, tz: ZoneInfo) -> str:
    """One template field's value, cut to its type's rule: thing ≤ 20 characters, name ≤ 10, phrase
    ≤ 5 Chinese characters, character_string ≤ 32 letters/digits/symbols, number ≤ 32 digits, time
    and date in WeChat's Chinese form. Never empty (WeChat refuses empty values)."""
    if kind in ("time", "date"):
        return clock.full_date(value, tz, with_time=kind == "time")
    if isinstance(value, datetime):
        text = clock.full_date(value, tz, with_time=True)
    else:
        text = " ".join(str(value or "").split())
    if kind == "phrase":
        text = "".join(_CJK.findall(text))
    elif kind == "character_string":
        text = "".join(_ASCII_SYMBOLS.findall(text))
    elif kind == "number":
        text = "".join(_DIGITS.findall(text))
    limit = _LIMITS[kind]
    if len(text) > limit:
        # Free text shows that it was cut; codes and numbers are only truncated.
        text = text[:limit - 1] + "…" if kind in ("thing", "name") else text[:limit]
    return text or ("0" if kind == "number" else "-" if kind == "character_string" else "无")


def template_data(fields, values: Mapping, tz: ZoneInfo) -> dict:
    """The `data` of a template or subscribe message from a parsed mapping ((keyword, type, source),
    …) and the message's values by source; a missing moment falls back to when it was created."""
    data = {}
    for keyword, kind, source in fields:
        value = values.get(source)
        if kind in ("time", "date") and value is None:
            value = values["created_at"]
        data[keyword] = {"value": field_value(kind, value, tz)}
    return data
