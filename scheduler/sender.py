"""The outbox sender: claims due rows, picks a channel per recipient, sends through WeChat's API.

Every row is claimed before it is touched (one UPDATE whose subquery uses FOR UPDATE SKIP LOCKED on
PostgreSQL; SQLite runs the same UPDATE as one atomic write), marked `sending` right before the
call and `sent`/`failed`/`pending` (retry later) right after it. A sender that dies leaves `claimed`
rows (no call made: released after a lease) and at most one `sending` row per thread (a call may
have reached WeChat: marked `unknown`, never resent). Throughput comes from threads, as measured in
WECHAT.md: each thread has its own HTTP connection and database session.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
import requests
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from models import Member, WechatUser
from models.base import now_utc
from models.outbox import (
    CHANNEL_NAMES,
    CLAIMED,
    CUSTOM,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SUBSCRIBE,
    TEMPLATE,
    UNKNOWN,
    OutboxMessage,
    SubscribeGrant,
)
from scheduler.wechat_api import SharedTokenClient, miniapp_client, official_account_client

log = logging.getLogger(__name__)

KINDS = ("notice", "reminder", "greeting", "wish", "activity")
CUSTOM_WINDOW = timedelta(hours=48)
CUSTOM_PER_WINDOW = 5
# Refusals that rule out one channel for one message; the next channel is tried.
PERMANENT = {
    40003: "openid 无效",
    40037: "模板ID无效",
    43004: "用户未关注公众号",
    43019: "用户已将公众号拉黑",
    43101: "用户拒绝接收或订阅授权已用完",
    45015: "已超过48小时互动窗口",
    45047: "48小时内客服消息条数已用完",
    47003: "模板参数不正确",
}
DAILY_QUOTA = 45009
# Worth trying again later: system busy, API frequency limit, token trouble, network and 5xx.
TRANSIENT = {
    -1: "微信系统繁忙", 45011: "接口调用过于频繁",
    40001: "access_token 无效", 40014: "access_token 无效", 42001: "access_token 已过期",
}


def last_message_key(openid: str) -> str:
    """Redis key holding when `openid` last wrote to the Official Account (epoch seconds).

    The webhook sets it; the sender reads it for the 48-hour customer-service window.
    """
    return f"lx:wx:last:{openid}"


def custom_count_key(openid: str) -> str:
    """Redis key counting customer-service messages sent in the current 48-hour window."""
    return f"lx:wx:cs:{openid}"


def open_custom_window(pipe, openid: str, at: float) -> None:
    """Queue on a Redis pipeline the commands that open a new customer-service window."""
    pipe.set(last_message_key(openid), int(at), ex=int(CUSTOM_WINDOW.total_seconds()))
    pipe.delete(custom_count_key(openid))


def record_user_message(store: redis.Redis, openid: str, at: float) -> None:
    """Open a new customer-service window for `openid` (one pipelined round trip)."""
    pipe = store.pipeline(transaction=False)
    open_custom_window(pipe, openid, at)
    pipe.execute()


def is_quiet(now: datetime, quiet: str, tz: ZoneInfo) -> bool:
    """Return whether `now` falls in the quiet hours "HH:MM-HH:MM" (local time; may wrap midnight)."""
    if not quiet:
        return False
    start_s, end_s = quiet.split("-")
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    start = int(start_s[:2]) * 60 + int(start_s[3:5])
    end = int(end_s[:2]) * 60 + int(end_s[3:5])
    return start <= minute < end if start <= end else (minute >= start or minute < end)


def quiet_ends(now: datetime, quiet: str, tz: ZoneInfo) -> datetime:
    """Return the end of the quiet hours that contain `now` (UTC)."""
    end_s = quiet.split("-")[1]
    local = now.astimezone(tz)
    end = local.replace(hour=int(end_s[:2]), minute=int(end_s[3:5]), second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)


class RateLimiter:
    """At most `per_second` sends per second across every process (a Redis counter per second)."""

    def __init__(self, store: redis.Redis, per_second: float, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, key: str = "lx:outbox:rate") -> None:
        self.store, self.per_second, self.clock, self.sleep, self.key = store, per_second, clock, sleep, key

    def acquire(self) -> None:
        if not self.per_second or self.per_second <= 0:
            return
        while True:
            now = self.clock()
            second = int(now)
            key = f"{self.key}:{second}"
            pipe = self.store.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 5)
            count = pipe.execute()[0]
            if count <= self.per_second:
                return
            self.sleep(max(0.001, second + 1 - now))


@dataclass
class DrainStats:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    deferred: int = 0
    by_channel: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: str, channel: str | None = None) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if channel:
                self.by_channel[channel] = self.by_channel.get(channel, 0) + 1


class _Outcome(Exception):
    """Internal: how one channel's call ended."""

    def __init__(self, kind: str, errcode, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.errcode, self.reason = kind, errcode, reason


class Sender:
    """Drains the outbox. Plain objects in: a session factory, a Redis client, the settings."""

    def __init__(self, session_factory: Callable[[], Session], store: redis.Redis, config: Mapping, *,
                 workers: int | None = None, rate_limiter: RateLimiter | None = None,
                 name: str | None = None) -> None:
        self.session_factory = session_factory
        self.store = store
        self.config = config
        self.workers = int(workers or config.get("OUTBOX_WORKERS", 8))
        self.batch = int(config.get("OUTBOX_BATCH", 20))
        self.max_attempts = int(config.get("OUTBOX_MAX_ATTEMPTS", 5))
        self.retry_base = float(config.get("OUTBOX_RETRY_BASE", 60))
        self.lease = timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 600)))
        self.quiet = config.get("QUIET_HOURS", "22:00-07:00")
        self.tz = ZoneInfo(config.get("TIMEZONE", "Asia/Shanghai"))
        self.limiter = rate_limiter or RateLimiter(store, float(config.get("SEND_RATE_LIMIT", 0)))
        self.name = name or f"sender-{uuid.uuid4().hex[:8]}"
        self._local = threading.local()

    # Clients (one per thread: each has its own HTTP connection pool) --------------------------
    def _oa(self) -> SharedTokenClient:
        if getattr(self._local, "oa", None) is None:
            self._local.oa = official_account_client(self.config, self.store)
        return self._local.oa

    def _mini(self) -> SharedTokenClient | None:
        if not hasattr(self._local, "mini"):
            self._local.mini = miniapp_client(self.config, self.store)
        return self._local.mini

    def _template_id(self, prefix: str, kind: str) -> str:
        return self.config.get(f"{prefix}_{kind.upper()}", "") if kind in KINDS else ""

    # Draining -------------------------------------------------------------------------------
    def drain(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> DrainStats:
        """Send every due message (as of `now`, default the real time) and return the counts."""
        stats = DrainStats()
        self.recover(now or now_utc())
        stop = stop or threading.Event()
        if self.workers <= 1:
            self._work(now, stop, stats)
        else:
            with ThreadPoolExecutor(self.workers, thread_name_prefix=self.name) as pool:
                for future in [pool.submit(self._work, now, stop, stats) for _ in range(self.workers)]:
                    future.result()
        if stats.sent or stats.failed or stats.retry or stats.deferred:
            log.info("outbox: %d sent %s, %d failed, %d to retry, %d deferred", stats.sent,
                     stats.by_channel, stats.failed, stats.retry, stats.deferred)
        return stats

    def recover(self, now: datetime) -> None:
        """Release rows of senders that died: unclaimed calls go back, interrupted ones are unknown."""
        stale = now - self.lease
        with self.session_factory() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == CLAIMED, OutboxMessage.claimed_at < stale)
                .values(status=PENDING, claimed_by=None)
            )
            lost = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < stale)
                .values(status=UNKNOWN,
                        last_error="发送过程中中断，无法确认是否送达；为避免重复，不再重发（已存入消息中心）")
            ).rowcount
            session.commit()
        if lost:
            log.warning("outbox: %d messages were interrupted mid-call; marked unknown, not resent", lost)

    def _work(self, now: datetime | None, stop: threading.Event, stats: DrainStats) -> None:
        with self.session_factory() as session:
            while not stop.is_set():
                current = now or now_utc()
                token, ids = self._claim(session, current)
                if not ids:
                    return
                for position, row_id in enumerate(ids):
                    if stop.is_set():
                        self._release(session, ids[position:], token)
                        return
                    try:
                        self._process(session, row_id, token, now or now_utc(), stats)
                    except Exception:
                        # A bug or a database hiccup: leave the row to the lease, keep going.
                        session.rollback()
                        log.exception("outbox: message %s could not be processed", row_id)

    def _claim(self, session: Session, now: datetime) -> tuple[str, list[int]]:
        token = f"{self.name}:{uuid.uuid4().hex[:8]}"
        due = [OutboxMessage.status == PENDING,
               or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now)]
        if is_quiet(now, self.quiet, self.tz):
            due.append(OutboxMessage.urgent.is_(True))
        candidates = select(OutboxMessage.id).where(and_(*due)).order_by(OutboxMessage.id).limit(self.batch)
        if session.get_bind().dialect.name == "postgresql":
            # Lock the batch first, then mark it. (As one UPDATE … WHERE id IN (SELECT … LIMIT n FOR
            # UPDATE SKIP LOCKED) PostgreSQL may rescan the subquery and mark far more than n rows.)
            locked = list(session.scalars(candidates.with_for_update(skip_locked=True)))
            target = OutboxMessage.id.in_(locked) if locked else None
        else:
            # SQLite: one UPDATE is one atomic write; nothing else can claim in between.
            target = OutboxMessage.id.in_(candidates.scalar_subquery())
        if target is not None:
            # `status = pending` again: a row is claimed by one sender only, on any database.
            session.execute(
                update(OutboxMessage)
                .where(target, OutboxMessage.status == PENDING)
                .values(status=CLAIMED, claimed_by=token, claimed_at=now)
                .execution_options(synchronize_session=False)
            )
        session.commit()
        ids = list(session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.claimed_by == token, OutboxMessage.status == CLAIMED)
            .order_by(OutboxMessage.id)
        ))
        session.commit()
        return token, ids

    def _release(self, session: Session, ids: list[int], token: str) -> None:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == token,
                   OutboxMessage.status == CLAIMED)
            .values(status=PENDING, claimed_by=None)
        )
        session.commit()

    def _set(self, session: Session, row_id: int, token: str, from_status: str, **values) -> bool:
        done = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.claimed_by == token,
                   OutboxMessage.status == from_status)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        return done == 1

    # One message ----------------------------------------------------------------------------
    def _process(self, session: Session, row_id: int, token: str, now: datetime,
                 stats: DrainStats) -> None:
        row = session.get(OutboxMessage, row_id, populate_existing=True)
        member = session.get(Member, row.member_id) if row.member_id else None
        refusals = [line for line in (row.refusals or "").splitlines() if line]
        refused = {line.split(":", 1)[0] for line in refusals}
        paused_until: datetime | None = None
        marked = False
        attempts = row.attempts
        for channel in self._channels(session, row, member, now):
            if channel in refused:
                continue
            pause = self._paused_until(channel, now)
            if pause is not None:
                paused_until = min(paused_until or pause, pause)
                continue
            if not row.urgent:
                self.limiter.acquire()
            if not marked:
                if not self._set(session, row_id, token, CLAIMED, status=SENDING, claimed_at=now):
                    return  # taken back (lease expired) by another sender
                marked = True
            attempts += 1
            try:
                self._send(session, channel, row, member)
            except _Outcome as outcome:
                if outcome.kind == "quota":
                    pause = self._pause(channel, now)
                    paused_until = min(paused_until or pause, pause)
                    log.warning("outbox: %s daily quota used up (45009); paused until %s",
                                CHANNEL_NAMES[channel], pause.astimezone(self.tz).isoformat())
                    continue
                if outcome.kind == "transient":
                    self._retry_or_fail(session, row_id, token, attempts, outcome.reason, refusals,
                                        now, stats)
                    return
                refusals.append(f"{channel}:{outcome.errcode}:{outcome.reason}")
                refused.add(channel)
                continue
            self._set(session, row_id, token, SENDING, status=SENT, channel=channel, sent_at=now_utc(),
                      attempts=attempts, refusals="\n".join(refusals), last_error=None, claimed_by=None)
            stats.add("sent", channel)
            return
        if not marked and not self._set(session, row_id, token, CLAIMED, status=SENDING,
                                        claimed_at=now):
            return
        if paused_until is not None:
            reason = "今日发送额度已用完（45009），该渠道暂停至次日，届时自动重发"
            self._set(session, row_id, token, SENDING, status=PENDING, next_attempt_at=paused_until,
                      attempts=attempts, refusals="\n".join(refusals), last_error=reason, claimed_by=None)
            stats.add("deferred")
            return
        reason = "；".join(
            f"{CHANNEL_NAMES[line.split(':')[0]]}：{line.split(':', 2)[2]}" for line in refusals
        ) or "无可用渠道（未关注公众号、未授权订阅消息、48小时内无互动），已存入消息中心"
        self._set(session, row_id, token, SENDING, status=FAILED, attempts=attempts,
                  refusals="\n".join(refusals), last_error=reason[:300], claimed_by=None)
        stats.add("failed")

    def _retry_or_fail(self, session, row_id, token, attempts, reason, refusals, now, stats) -> None:
        if attempts >= self.max_attempts:
            self._set(session, row_id, token, SENDING, status=FAILED, attempts=attempts,
                      refusals="\n".join(refusals), last_error=f"重试{attempts}次仍失败：{reason}"[:300],
                      claimed_by=None)
            stats.add("failed")
            return
        delay = timedelta(seconds=self.retry_base * 2 ** (attempts - 1))
        self._set(session, row_id, token, SENDING, status=PENDING, attempts=attempts,
                  next_attempt_at=now + delay, refusals="\n".join(refusals),
                  last_error=f"暂时失败，稍后重试：{reason}"[:300], claimed_by=None)
        stats.add("retry")

    def _channels(self, session: Session, row: OutboxMessage, member: Member | None,
                  now: datetime) -> list[str]:
        """Return the channels that can reach this recipient, in the order to try them."""
        found = []
        openid = member.openid if member is not None else row.openid
        if member is not None and member.active:
            follower = session.get(WechatUser, member.openid) if member.openid else None
            if member.openid and (follower is None or follower.subscribed) \
                    and self._template_id("WECHAT_TEMPLATE", row.kind):
                found.append(TEMPLATE)
            if member.miniapp_openid and self._template_id("MINIAPP_TEMPLATE", row.kind) \
                    and self.config.get("MINIAPP_APP_ID") and self._has_grant(session, member.id, row.kind):
                found.append(SUBSCRIBE)
        if openid and self._in_custom_window(openid, now):
            found.append(CUSTOM)
        return found

    def _has_grant(self, session: Session, member_id: int, kind: str) -> bool:
        remaining = session.scalar(select(SubscribeGrant.remaining).where(
            SubscribeGrant.member_id == member_id, SubscribeGrant.kind == kind))
        session.commit()
        return bool(remaining and remaining > 0)

    def _in_custom_window(self, openid: str, now: datetime) -> bool:
        pipe = self.store.pipeline(transaction=False)
        pipe.get(last_message_key(openid))
        pipe.get(custom_count_key(openid))
        last, count = pipe.execute()
        if last is None or now.timestamp() - float(last) > CUSTOM_WINDOW.total_seconds():
            return False
        return int(count or 0) < CUSTOM_PER_WINDOW

    def _paused_until(self, channel: str, now: datetime) -> datetime | None:
        value = self.store.get(f"lx:outbox:paused:{channel}")
        if value is None or float(value) <= now.timestamp():
            return None
        return datetime.fromtimestamp(float(value), tz=now.tzinfo)

    def _pause(self, channel: str, now: datetime) -> datetime:
        """Pause a channel until the next local midnight, when WeChat's daily quota resets."""
        local = now.astimezone(self.tz)
        until = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        until_utc = until.astimezone(now.tzinfo)
        self.store.set(f"lx:outbox:paused:{channel}", until_utc.timestamp(), ex=2 * 86400)
        return until_utc

    def _send(self, session: Session, channel: str, row: OutboxMessage, member: Member | None) -> None:
        title = row.title or {"notice": "通知", "reminder": "提醒", "greeting": "祝福"}.get(row.kind, "消息")
        try:
            if channel == TEMPLATE:
                client = self._oa()
                data = {"thing1": {"value": title[:20]}, "thing2": {"value": row.body[:20]},
                        "content": {"value": row.body}}
                client.call(lambda: client.message.send_template(
                    member.openid, self._template_id("WECHAT_TEMPLATE", row.kind), data))
            elif channel == SUBSCRIBE:
                self._send_subscribe(session, row, member, title)
            else:
                client = self._oa()
                openid = member.openid if member is not None else row.openid
                text = row.body if row.kind == "reply" else f"【{title}】\n{row.body}"
                client.call(lambda: client.message.send_text(openid, text))
                pipe = self.store.pipeline(transaction=False)
                pipe.incr(custom_count_key(openid))
                pipe.expire(custom_count_key(openid), int(CUSTOM_WINDOW.total_seconds()))
                pipe.execute()
        except WeChatClientException as exc:
            raise _classify(exc) from exc
        except requests.RequestException as exc:
            raise _Outcome("transient", None, f"网络错误：{type(exc).__name__}") from exc

    def _send_subscribe(self, session: Session, row: OutboxMessage, member: Member, title: str) -> None:
        client = self._mini()
        # Spend one consent before the call (a conditional update: two senders cannot spend one).
        spent = session.execute(
            update(SubscribeGrant)
            .where(SubscribeGrant.member_id == member.id, SubscribeGrant.kind == row.kind,
                   SubscribeGrant.remaining > 0)
            .values(remaining=SubscribeGrant.remaining - 1)
        ).rowcount
        session.commit()
        if spent != 1:
            raise _Outcome("permanent", 43101, "订阅授权已用完")
        data = {"thing1": {"value": title[:20]}, "thing2": {"value": row.body[:20]}}
        try:
            client.call(lambda: client.wxa.send_subscribe_message(
                member.miniapp_openid, self._template_id("MINIAPP_TEMPLATE", row.kind), data,
                page=f"pages/messages/detail?id={row.id}"))
        except WeChatClientException as exc:
            outcome = _classify(exc)
            if outcome.kind == "transient":
                # Not used after all: give the consent back for the retry.
                session.execute(update(SubscribeGrant).where(
                    SubscribeGrant.member_id == member.id, SubscribeGrant.kind == row.kind,
                ).values(remaining=SubscribeGrant.remaining + 1))
                session.commit()
            elif exc.errcode == 43101:
                session.execute(update(SubscribeGrant).where(
                    SubscribeGrant.member_id == member.id, SubscribeGrant.kind == row.kind,
                ).values(remaining=0))
                session.commit()
            raise outcome from exc


def _classify(exc: WeChatClientException) -> _Outcome:
    code = exc.errcode
    if code is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return _Outcome("transient", None, f"HTTP {status}" if status else "网络错误")
    code = int(code)
    if code == DAILY_QUOTA:
        return _Outcome("quota", code, "今日发送额度已用完")
    if code in TRANSIENT:
        return _Outcome("transient", code, f"{TRANSIENT[code]}（{code}）")
    return _Outcome("permanent", code, f"{PERMANENT.get(code, exc.errmsg or '发送被拒绝')}（{code}）")
