"""The outbox sender: claims due rows, picks a channel per recipient, sends through WeChat's API.

One dispatcher thread does all the database work in batches, a pool of threads makes the calls:
- claim: a batch of due rows is taken (one UPDATE after `FOR UPDATE SKIP LOCKED` on PostgreSQL;
  SQLite runs the UPDATE as one atomic write) and read with its recipient in one query, plus one
  Redis round trip for the customer-service windows and the channel pauses;
- mark: a thread first waits for the rate limiter, makes sure of its access token (and spends a
  customer-service send or a subscribe consent), then asks the dispatcher to mark its row `sending`;
  the dispatcher marks every row asked for since its last write in one UPDATE, and the thread makes
  its call at once;
- record: each finished call's outcome (`sent`, `failed`, `unknown`, `pending` to retry later) is
  written back together with the next marks, one UPDATE per distinct outcome.
Whatever fails before a call is made (Redis down: the limiter, the windows, the pauses, the token
lock) puts the row back to `pending`, untried; the drain waits OUTBOX_OUTAGE_PAUSE and goes on.
A call that never reached WeChat (connect error or timeout) is retried; one that may have (a read
timeout, a connection dropped after sending) is `unknown`, with its reason, and never resent blindly.
A sender that dies leaves `claimed` rows (no call made: released after a lease) and at most one
`sending` row per thread, whose call had begun (marked `unknown` after the lease).
"""

import logging
import queue
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
import requests
import urllib3
from sqlalchemy import Select, and_, case, or_, select, text, update
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from config import TEMPLATE_KINDS, Settings
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
from scheduler.wechat_api import SharedTokenClient, miniapp_client, official_account_client, template_data

log = logging.getLogger(__name__)

KINDS = TEMPLATE_KINDS  # the kinds of message that have template ids and field maps (config.py)
# Customer-service windows: 5 messages within 48 hours after the user writes; 3 within a minute
# after a menu click, a follow or a scan.
WRITE_WINDOW, WRITE_WINDOW_SENDS = timedelta(hours=48), 5
EVENT_WINDOW, EVENT_WINDOW_SENDS = timedelta(minutes=1), 3
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


def last_message_key(openid: str, event: bool = False) -> str:
    """Redis key holding when `openid` last wrote to the Official Account (or, with `event`, last
    clicked a menu, followed or scanned), in epoch seconds. The webhook sets it; the sender reads it.
    """
    return f"lx:wx:{'evt' if event else 'last'}:{openid}"


def custom_count_key(openid: str, event: bool, since: str) -> str:
    """Redis key counting customer-service messages sent in the window opened at `since` (the value
    of `last_message_key`): a new window starts a new count without the webhook resetting one."""
    return f"lx:wx:{'evtcs' if event else 'cs'}:{openid}:{since}"


def custom_window_commands(openid: str, at: float, event: bool = False) -> list[tuple]:
    """The Redis commands that open a new customer-service window for `openid` at `at`."""
    length = EVENT_WINDOW if event else WRITE_WINDOW
    return [("SET", last_message_key(openid, event), int(at), "EX", int(length.total_seconds()) + 1)]


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


class RateLimiter:
    """At most `per_second` sends per second across every process: a Redis counter per second hands
    out slots, and slot n of a second is used (n - 1) / per_second into it, so sends are spread
    evenly instead of bursting at the start of each second."""

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
            slot = pipe.execute()[0]
            if slot <= self.per_second:
                at = second + (slot - 1) / self.per_second
                if at > now:
                    self.sleep(at - now)
                return
            self.sleep(max(0.001, second + 1 - now))


# Set in the claim's transaction on PostgreSQL: see Sender._claim.
CLAIM_SETTING = "SET LOCAL enable_sort = off"


@dataclass
class DrainStats:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    deferred: int = 0
    unknown: int = 0  # the call may have reached WeChat, no answer came back: not resent
    postponed: int = 0  # a failure before the call (Redis): back to pending, untried
    by_channel: dict = field(default_factory=dict)


@dataclass
class _Job:
    """One claimed message with what the calls need to know of its recipient."""

    id: int
    kind: str
    title: str
    body: str
    urgent: bool
    attempts: int
    refusals: list[str]
    member_id: int | None
    openid: str | None  # the Official Account openid (template and customer-service messages)
    miniapp_openid: str | None
    channels: list[str]
    # The open customer-service window: (whether it is the one-minute one after an event, when it
    # opened), or None.
    window: tuple[bool, str] | None = None
    # What mapped template fields draw on: starts_at, place … (the row's data), created_at, name.
    values: dict = field(default_factory=dict)


@dataclass
class _Mark:
    """A thread's request to mark its row `sending`, answered by the dispatcher."""

    id: int
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


@dataclass
class _Result:
    id: int
    outcome: str  # sent, failed, retry, deferred, unknown, postponed
    values: dict  # the row's new column values
    channel: str | None = None


class _Outcome(Exception):
    """Internal: how one channel's call ended."""

    def __init__(self, kind: str, errcode, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.errcode, self.reason = kind, errcode, reason


class _Attempt:
    """One message's round through its channels (in a pool thread): the refusals so far, the
    attempts counted, the earliest end of a channel's pause."""

    def __init__(self, job: _Job, now: datetime, mark: Callable[[int], bool]) -> None:
        self.job, self.now, self.mark = job, now, mark
        self.refusals = list(job.refusals)
        self.refused = {line.split(":", 1)[0] for line in self.refusals}
        self.attempts = job.attempts
        self.paused_until: float | None = None
        self.marked = False

    def before_call(self) -> None:
        """Right before the request: the row is marked `sending` (once)."""
        if not self.marked:
            if not self.mark(self.job.id):
                raise _Outcome("lost", None, "")
            self.marked = True
        self.attempts += 1

    def pause(self, until: float) -> None:
        self.paused_until = min(self.paused_until or until, until)

    def refuse(self, channel: str, outcome: _Outcome) -> None:
        self.refusals.append(f"{channel}:{outcome.errcode}:{outcome.reason}")
        self.refused.add(channel)

    def values(self, **values) -> dict:
        """The row's new column values: these, the attempts and the refusals."""
        return dict(values, attempts=self.attempts, refusals="\n".join(self.refusals))

    def sent(self, channel: str, answer: dict | None) -> _Result:
        values = self.values(status=SENT, channel=channel, last_error=None)
        msgid = (answer or {}).get("msgid") if channel == TEMPLATE else None
        if msgid not in (None, ""):
            values["wx_msgid"] = str(msgid)[:32]
        return _Result(self.job.id, "sent", values, channel)

    def undelivered(self) -> _Result:
        """Every channel tried: deferred while one is paused (45009), else failed with the reasons."""
        if self.paused_until is not None:
            return _Result(self.job.id, "deferred", self.values(
                status=PENDING, next_attempt_at=datetime.fromtimestamp(self.paused_until, tz=self.now.tzinfo),
                last_error="今日发送额度已用完（45009），该渠道暂停至次日，届时自动重发"))
        reason = "；".join(
            f"{CHANNEL_NAMES[line.split(':')[0]]}：{line.split(':', 2)[2]}" for line in self.refusals
        ) or "无可用渠道（未关注公众号、未授权订阅消息、48小时内无互动），已存入消息中心"
        return _Result(self.job.id, "failed", self.values(status=FAILED, last_error=reason[:300]))


class Sender:
    """Drains the outbox. Plain objects in: a session factory, a Redis client, the settings."""

    def __init__(self, session_factory: Callable[[], Session], store: redis.Redis, settings: Settings, *,
                 workers: int | None = None, rate_limiter: RateLimiter | None = None,
                 name: str | None = None) -> None:
        self.session_factory = session_factory
        self.store = store
        self.settings = settings
        self.workers = int(workers or settings.outbox_workers)
        self.batch = int(settings.outbox_batch)
        self.max_attempts = int(settings.outbox_max_attempts)
        self.retry_base = float(settings.outbox_retry_base)
        self.lease = timedelta(seconds=float(settings.outbox_lease_seconds))
        self.outage_pause = float(settings.outbox_outage_pause)
        self.outage_give_up = float(settings.outbox_outage_give_up)
        self.quiet = settings.quiet_hours
        self.tz = settings.tz
        self.limiter = rate_limiter or RateLimiter(store, float(settings.send_rate_limit))
        self.name = name or f"sender-{uuid.uuid4().hex[:8]}"
        self._local = threading.local()
        self._paused: dict[str, float] = {}  # channel → epoch seconds (45009), refreshed per batch

    # Clients (one per thread: each has its own HTTP connection pool) --------------------------
    def _oa(self) -> SharedTokenClient:
        if getattr(self._local, "oa", None) is None:
            self._local.oa = official_account_client(self.settings, self.store)
        return self._local.oa

    def _mini(self) -> SharedTokenClient | None:
        if not hasattr(self._local, "mini"):
            self._local.mini = miniapp_client(self.settings, self.store)
        return self._local.mini

    def _template_id(self, prefix: str, kind: str) -> str:
        return getattr(self.settings, f"{prefix}_{kind}".lower()) if kind in KINDS else ""

    # Draining -------------------------------------------------------------------------------
    def drain(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> DrainStats:
        """Send every due message (as of `now`, default the real time) and return the counts."""
        self.recover(now or now_utc())
        run = _Drain(self, now, stop or threading.Event())
        with self.session_factory() as session, \
                ThreadPoolExecutor(self.workers, thread_name_prefix=self.name) as pool:
            run.loop(session, pool)
        stats = run.stats
        if stats.sent or stats.failed or stats.retry or stats.deferred or stats.unknown or stats.postponed:
            log.info("outbox: %d sent %s, %d failed, %d to retry, %d deferred, %d unknown, %d postponed",
                     stats.sent, stats.by_channel, stats.failed, stats.retry, stats.deferred, stats.unknown,
                     stats.postponed)
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
                .values(status=UNKNOWN, claimed_by=None,
                        last_error="发送过程中中断，无法确认是否送达；为避免重复，不再重发（已存入消息中心，可再提醒）")
            ).rowcount
            session.commit()
        if lost:
            log.warning("outbox: %d messages were interrupted mid-call; marked unknown, not resent", lost)

    def claim_query(self, now: datetime) -> Select:
        """The ids of the next batch of due rows, oldest first. It walks the partial index of the
        pending rows in id order (ix_outbox_pending) and stops after a batch: no sort of the backlog,
        whatever its size. (Rows passed over on the way: pending ones not yet due — a retry's wait,
        a paused channel — and in the quiet hours the ones not urgent.)"""
        due = [OutboxMessage.status == PENDING,
               or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now)]
        if is_quiet(now, self.quiet, self.tz):
            due.append(OutboxMessage.urgent.is_(True))
        return select(OutboxMessage.id).where(and_(*due)).order_by(OutboxMessage.id).limit(self.batch)

    def _claim(self, session: Session, token: str, now: datetime, held: set[int]) -> list[_Job]:
        """Claim a batch of due rows for `token` and return them ready to send (not those `held`
        already, claimed before and still waiting for a thread)."""
        candidates = self.claim_query(now)
        if session.get_bind().dialect.name == "postgresql":
            # The claim must walk ix_outbox_pending in id order. The planner would sort the backlog
            # instead whenever its statistics still say few rows are pending (the usual state, until
            # autovacuum's next ANALYZE after a district-wide notice): forbid the sort for this one
            # transaction (it ends with the commit below).
            session.execute(text(CLAIM_SETTING))
            # Lock the batch first, then mark it. (As one UPDATE … WHERE id IN (SELECT … LIMIT n FOR
            # UPDATE SKIP LOCKED) PostgreSQL may rescan the subquery and mark far more than n rows.)
            # The rows are this transaction's: FOR UPDATE rechecked `status = pending` on their
            # latest version and no one else can change them before the commit, so they are marked
            # by primary key alone (with the status in the WHERE too, stale statistics would make
            # the planner walk every pending row to find them). And read back by primary key.
            locked = list(session.scalars(candidates.with_for_update(skip_locked=True)))
            target = [OutboxMessage.id.in_(locked)] if locked else None
            claimed_now = [OutboxMessage.id.in_(locked)]
        else:
            # SQLite: one UPDATE is one atomic write; nothing else can claim in between. `status =
            # pending` again: a row is claimed by one sender only.
            target = [OutboxMessage.id.in_(candidates.scalar_subquery()), OutboxMessage.status == PENDING]
            claimed_now = []
        if target is not None:
            session.execute(
                update(OutboxMessage)
                .where(*target)
                .values(status=CLAIMED, claimed_by=token, claimed_at=now)
                .execution_options(synchronize_session=False)
            )
        session.commit()
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.title, OutboxMessage.body,
                   OutboxMessage.urgent, OutboxMessage.attempts, OutboxMessage.refusals,
                   OutboxMessage.member_id, OutboxMessage.openid, Member.openid.label("member_openid"),
                   Member.miniapp_openid, Member.active, WechatUser.subscribed, OutboxMessage.data,
                   OutboxMessage.created_at, Member.name)
            .outerjoin(Member, Member.id == OutboxMessage.member_id)
            .outerjoin(WechatUser, WechatUser.openid == Member.openid)
            .where(OutboxMessage.claimed_by == token, OutboxMessage.status == CLAIMED,
                   OutboxMessage.id.not_in(held), *claimed_now)
            .order_by(OutboxMessage.id)
        ).all()
        grants = set()
        if self.settings.miniapp_app_id and rows:
            grants = set(session.execute(select(SubscribeGrant.member_id, SubscribeGrant.kind).where(
                SubscribeGrant.member_id.in_({r.member_id for r in rows if r.member_id}),
                SubscribeGrant.remaining > 0)).all())
        session.commit()
        windows = self._windows({r.member_openid if r.member_id else r.openid for r in rows} - {None}, now)
        jobs = []
        for r in rows:
            openid = r.member_openid if r.member_id else r.openid
            channels = []
            if r.member_id and r.active:
                if r.member_openid and r.subscribed is not False \
                        and self._template_id("WECHAT_TEMPLATE", r.kind):
                    channels.append(TEMPLATE)
                if r.miniapp_openid and self._template_id("MINIAPP_TEMPLATE", r.kind) \
                        and (r.member_id, r.kind) in grants:
                    channels.append(SUBSCRIBE)
            window = windows.get(openid)
            if window is not None:
                channels.append(CUSTOM)
            values = {**(r.data or {}), "title": r.title, "body": r.body, "created_at": r.created_at,
                      "name": r.name or ""}
            if isinstance(values.get("starts_at"), str):
                values["starts_at"] = datetime.fromisoformat(values["starts_at"])
            jobs.append(_Job(r.id, r.kind, r.title, r.body, r.urgent, r.attempts,
                             [line for line in (r.refusals or "").splitlines() if line], r.member_id,
                             openid, r.miniapp_openid, channels, window, values))
        return jobs

    def _windows(self, openids: set[str], now: datetime) -> dict[str, tuple[bool, str]]:
        """Return, for each openid with an open customer-service window with sends left, whether it
        is the short one after an event and when it opened; also refresh the channel pauses. Two
        Redis round trips for the whole batch."""
        ordered = sorted(openids)
        pipe = self.store.pipeline(transaction=False)
        for channel in CHANNEL_NAMES:
            pipe.get(f"lx:outbox:paused:{channel}")
        for openid in ordered:
            for event in (False, True):
                pipe.get(last_message_key(openid, event))
        values = pipe.execute()
        pauses = zip(CHANNEL_NAMES, values[:len(CHANNEL_NAMES)], strict=True)
        self._paused = {channel: float(v) for channel, v in pauses if v is not None}
        open_windows = []  # (openid, event, since, sends allowed)
        for n, openid in enumerate(ordered):
            for event, length, sends in ((False, WRITE_WINDOW, WRITE_WINDOW_SENDS),
                                         (True, EVENT_WINDOW, EVENT_WINDOW_SENDS)):
                since = values[len(CHANNEL_NAMES) + 2 * n + event]
                if since is not None and now.timestamp() - float(since) <= length.total_seconds():
                    open_windows.append((openid, event, since, sends))
        if not open_windows:
            return {}
        pipe = self.store.pipeline(transaction=False)
        for openid, event, since, _ in open_windows:
            pipe.get(custom_count_key(openid, event, since))
        found = {}
        for (openid, event, since, sends), count in zip(open_windows, pipe.execute(), strict=True):
            if openid not in found and int(count or 0) < sends:
                found[openid] = (event, since)
        return found

    def _record(self, session: Session, token: str, results: list[_Result], marks: list[int],
                now: datetime) -> set[int]:
        """Write finished calls' outcomes and mark the rows asked for `sending`, in one transaction;
        return the ids marked (a row whose lease expired and went to another sender is not)."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        msgids: dict[tuple, dict[int, str]] = defaultdict(dict)
        for result in results:
            values = dict(result.values)
            msgid = values.pop("wx_msgid", None)
            key = tuple(sorted(values.items()))
            groups[key].append(result.id)
            if msgid:
                msgids[key][result.id] = msgid
        sent_at = now_utc()
        for key, ids in groups.items():
            values = dict(key)
            if values["status"] == SENT:
                values["sent_at"] = sent_at
            if msgids.get(key):
                values["wx_msgid"] = case(msgids[key], value=OutboxMessage.id, else_=None)
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == token,
                       OutboxMessage.status.in_((CLAIMED, SENDING)))
                .values(**values, claimed_by=None)
                .execution_options(synchronize_session=False)
            )
        marked = set()
        if marks:
            marked = set(session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(marks), OutboxMessage.claimed_by == token,
                       OutboxMessage.status == CLAIMED)
                .values(status=SENDING, claimed_at=now)
                .returning(OutboxMessage.id),
                execution_options={"synchronize_session": False},
            ))
        session.commit()
        return marked

    def _release(self, session: Session, ids: list[int], token: str) -> None:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == token,
                   OutboxMessage.status == CLAIMED)
            .values(status=PENDING, claimed_by=None)
        )
        session.commit()

    def _release_unheld(self, session: Session, token: str, held: set[int]) -> None:
        """Give back the rows just claimed (not those `held`, waiting for a thread)."""
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.claimed_by == token, OutboxMessage.status == CLAIMED,
                   OutboxMessage.id.not_in(held))
            .values(status=PENDING, claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()

    # One message (in a pool thread) ---------------------------------------------------------
    def _deliver(self, job: _Job, fixed_now: datetime | None, mark: Callable[[int], bool]) -> _Result | None:
        """Try the job's channels in turn; None: the lease ran out and another sender has the row."""
        attempt = _Attempt(job, fixed_now or now_utc(), mark)
        try:
            for channel in job.channels:
                if channel in attempt.refused:
                    continue
                pause = self._paused.get(channel)
                if pause is not None and pause > attempt.now.timestamp():
                    attempt.pause(pause)
                    continue
                if not job.urgent:
                    self.limiter.acquire()
                try:
                    answer = self._send(channel, job, attempt.before_call)
                except _Outcome as outcome:
                    if outcome.kind not in ("quota", "permanent"):
                        return self._ended(channel, attempt, outcome)
                    if outcome.kind == "quota":
                        attempt.pause(self._pause(channel, attempt.now))
                    else:
                        attempt.refuse(channel, outcome)
                    continue
                return attempt.sent(channel, answer)
        except redis.RedisError as exc:
            # Before any call of this round (the limiter, the token, a window, a pause): untried.
            log.warning("outbox: message %s postponed, Redis unavailable: %s", job.id, exc)
            return _Result(job.id, "postponed", attempt.values(
                status=PENDING, last_error=f"发送前 Redis 不可用，稍后自动重发：{type(exc).__name__}"[:300]))
        return attempt.undelivered()

    def _ended(self, channel: str, attempt: "_Attempt", outcome: _Outcome) -> _Result | None:
        """A call that ends the round: lost (None), transient (retry later), unknown (not resent)."""
        if outcome.kind == "lost":
            return None
        if outcome.kind == "transient":
            return self._retry_or_fail(attempt.job, attempt.attempts, outcome.reason, attempt.refusals,
                                       attempt.now)
        return _Result(attempt.job.id, "unknown", attempt.values(
            status=UNKNOWN, channel=channel, last_error=outcome.reason[:300]), channel)

    def _retry_or_fail(self, job: _Job, attempts: int, reason: str, refusals: list[str],
                       now: datetime) -> _Result:
        if attempts >= self.max_attempts:
            return _Result(job.id, "failed", dict(status=FAILED, attempts=attempts,
                                                  refusals="\n".join(refusals),
                                                  last_error=f"重试{attempts}次仍失败：{reason}"[:300]))
        delay = timedelta(seconds=self.retry_base * 2 ** (attempts - 1))
        return _Result(job.id, "retry", dict(status=PENDING, attempts=attempts, next_attempt_at=now + delay,
                                             refusals="\n".join(refusals),
                                             last_error=f"暂时失败，稍后重试：{reason}"[:300]))

    def _pause(self, channel: str, now: datetime) -> float:
        """Pause a channel until the next local midnight, when WeChat's daily quota resets."""
        local = now.astimezone(self.tz)
        until = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        self._paused[channel] = until
        self.store.set(f"lx:outbox:paused:{channel}", until, ex=2 * 86400)
        log.warning("outbox: %s daily quota used up (45009); paused until %s", CHANNEL_NAMES[channel],
                    datetime.fromtimestamp(until, tz=self.tz).isoformat())
        return until

    def _fields(self, prefix: str, kind: str):
        return self.settings.template_field_maps.get(f"{prefix}_{kind.upper()}_FIELDS") if kind in KINDS else None

    def _send(self, channel: str, job: _Job, before_call: Callable[[], None]) -> dict | None:
        """Make one channel's call: everything that may fail without WeChat hearing of it first,
        then `before_call()`, then the request. Return WeChat's answer."""
        title = job.title or {"notice": "通知", "reminder": "提醒", "greeting": "祝福"}.get(job.kind, "消息")
        try:
            if channel == TEMPLATE:
                return self._send_template(job, title, before_call)
            if channel == SUBSCRIBE:
                return self._send_subscribe(job, title, before_call)
            return self._send_custom(job, title, before_call)
        except WeChatClientException as exc:
            raise _classify(exc) from exc
        except requests.RequestException as exc:
            raise _network_outcome(exc) from exc

    def _link(self, job: _Job) -> tuple[str | None, dict | None]:
        """A mapped template message's link: a page under PUBLIC_BASE_URL, a mini-program page."""
        base = self.settings.public_base_url.rstrip("/")
        path = self.settings.message_link_path
        url = base + path.format(id=job.id) if base and path else None
        appid = self.settings.miniapp_app_id
        mini = {"appid": appid, "pagepath": self._page(job)} if appid else None
        return url, mini

    def _page(self, job: _Job) -> str:
        return self.settings.miniapp_message_page.format(id=job.id)

    def _send_template(self, job: _Job, title: str, before_call: Callable[[], None]) -> dict:
        client = self._oa()
        client.access_token  # noqa: B018 (fetched or read now, before the row is marked)
        fields = self._fields("WECHAT_TEMPLATE", job.kind)
        url = mini = None
        if fields:
            data = template_data(fields, job.values, self.tz)
            url, mini = self._link(job)
        else:
            data = {"thing1": {"value": title[:20]}, "thing2": {"value": job.body[:20]},
                    "content": {"value": job.body}}
        template_id = self._template_id("WECHAT_TEMPLATE", job.kind)
        before_call()
        return client.call(lambda: client.message.send_template(job.openid, template_id, data, url=url,
                                                                mini_program=mini))

    def _send_custom(self, job: _Job, title: str, before_call: Callable[[], None]) -> dict:
        # Take one of the window's sends before the call (several messages to one person may be
        # in flight at once), and give it back if the call fails.
        event, since = job.window
        key = custom_count_key(job.openid, event, since)
        client = self._oa()
        client.access_token  # noqa: B018
        pipe = self.store.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, int((EVENT_WINDOW if event else WRITE_WINDOW).total_seconds()) + 1)
        taken = pipe.execute()[0]
        try:
            if taken > (EVENT_WINDOW_SENDS if event else WRITE_WINDOW_SENDS):
                raise _Outcome("permanent", 45047, PERMANENT[45047])
            text = job.body if job.kind == "reply" else f"【{title}】\n{job.body}"
            before_call()
            return client.call(lambda: client.message.send_text(job.openid, text))
        except Exception as exc:
            if not (isinstance(exc, requests.RequestException) and _network_outcome(exc).kind == "unknown"):
                try:
                    self.store.decr(key)
                except redis.RedisError:
                    log.warning("outbox: could not give back a customer-service send of %s", job.openid)
            raise

    def _send_subscribe(self, job: _Job, title: str, before_call: Callable[[], None]) -> dict:
        client = self._mini()
        client.access_token  # noqa: B018
        grant = (SubscribeGrant.member_id == job.member_id, SubscribeGrant.kind == job.kind)
        fields = self._fields("MINIAPP_TEMPLATE", job.kind)
        data = template_data(fields, job.values, self.tz) if fields else \
            {"thing1": {"value": title[:20]}, "thing2": {"value": job.body[:20]}}
        template_id = self._template_id("MINIAPP_TEMPLATE", job.kind)
        with self.session_factory() as session:
            # Spend one consent before the call (a conditional update: two senders cannot spend one).
            spent = session.execute(update(SubscribeGrant).where(*grant, SubscribeGrant.remaining > 0)
                                    .values(remaining=SubscribeGrant.remaining - 1)).rowcount
            session.commit()
            if spent != 1:
                raise _Outcome("permanent", 43101, "订阅授权已用完")
            try:
                before_call()
                return client.call(lambda: client.wxa.send_subscribe_message(
                    job.miniapp_openid, template_id, data, page=self._page(job)))
            except WeChatClientException as exc:
                outcome = _classify(exc)
                if outcome.kind == "transient":
                    self._give_back(session, grant)
                elif exc.errcode == 43101:
                    session.execute(update(SubscribeGrant).where(*grant).values(remaining=0))
                    session.commit()
                raise outcome from exc
            except requests.RequestException as exc:
                if _network_outcome(exc).kind != "unknown":
                    self._give_back(session, grant)
                raise
            except (_Outcome, redis.RedisError):
                self._give_back(session, grant)  # no call was made
                raise

    @staticmethod
    def _give_back(session: Session, grant) -> None:
        """Not used after all: give the consent back for the retry."""
        session.execute(update(SubscribeGrant).where(*grant).values(remaining=SubscribeGrant.remaining + 1))
        session.commit()


class _Drain:
    """One drain: the dispatcher's loop (in the calling thread) over claims, marks and outcomes,
    with the pool threads that make the calls."""

    def __init__(self, sender: Sender, now: datetime | None, stop: threading.Event) -> None:
        self.sender, self.now, self.stop = sender, now, stop
        self.stats = DrainStats()
        self.token = f"{sender.name}:{uuid.uuid4().hex[:8]}"
        # Refill (and write outcomes) when this many threads are free: fewer, larger statements.
        self.group = max(1, sender.workers // 4)
        self.ready: deque[_Job] = deque()
        # Finished calls (a _Result, or the bare id: nothing to write) and mark requests.
        self.inbox: queue.SimpleQueue[_Result | _Mark | int] = queue.SimpleQueue()
        self.results: list[_Result] = []
        self.marks: list[_Mark] = []
        self.inflight = 0
        # Ids of the jobs given to threads, until their outcome is written (a row stays `claimed`
        # until marked, so the claim query must not take it again); a job that ended with nothing
        # to write stays here for the rest of the drain.
        self.running: set[int] = set()
        self.exhausted = False
        self.hold_until = 0.0  # monotonic time before which nothing is claimed or started (an outage)
        self.outage_since: float | None = None
        self.gave_up = False

    # In the pool threads ----------------------------------------------------------------------
    def mark(self, job_id: int) -> bool:
        request = _Mark(job_id)
        self.inbox.put(request)
        request.done.wait()
        return request.ok

    def run(self, job: _Job) -> None:
        try:
            result = self.sender._deliver(job, self.now, self.mark)
        except Exception:
            # A bug or a database hiccup: the row stays as it is (the lease deals with it).
            log.exception("outbox: message %s could not be processed", job.id)
            result = None
        self.inbox.put(result or job.id)

    # The dispatcher ---------------------------------------------------------------------------
    def loop(self, session: Session, pool: ThreadPoolExecutor) -> None:
        while True:
            current = self.now or now_utc()
            jobs = self._take(session, current)
            if self.marks or (self.results and (jobs or not self.inflight or len(self.results) >= self.group)):
                self._write(session, current)
            for job in jobs:
                self.running.add(job.id)
                pool.submit(self.run, job)
                self.inflight += 1
            if not self.inflight:
                if self.stop.is_set() or self.gave_up or (self.exhausted and not self.ready):
                    break
                if jobs:
                    continue
                wait = self.hold_until - time.monotonic()
                if wait > 0:
                    self.stop.wait(wait)
                continue
            self._collect()
        if self.ready:
            self.sender._release(session, [job.id for job in self.ready], self.token)

    def _take(self, session: Session, current: datetime) -> list[_Job]:
        """The jobs to start now: refilled from the outbox when threads are free, none in an outage."""
        free = self.sender.workers - self.inflight
        if self.stop.is_set() or self.gave_up or time.monotonic() < self.hold_until \
                or not (free >= self.group or not self.inflight):
            return []
        if len(self.ready) < free and not self.exhausted:
            self._refill(session, current)
        if time.monotonic() < self.hold_until:
            return []
        return [self.ready.popleft() for _ in range(min(free, len(self.ready)))]

    def _refill(self, session: Session, current: datetime) -> None:
        held = {job.id for job in self.ready} | self.running
        try:
            claimed = self.sender._claim(session, self.token, current, held=held)
        except redis.RedisError as exc:
            session.rollback()
            self.sender._release_unheld(session, self.token, held)
            log.warning("outbox: Redis unavailable while claiming (%s); waiting", exc)
            self._outage()
            return
        self.exhausted = not claimed
        self.ready.extend(claimed)

    def _outage(self) -> None:
        self.outage_since = self.outage_since or time.monotonic()
        self.hold_until = time.monotonic() + self.sender.outage_pause

    def _write(self, session: Session, current: datetime) -> None:
        """Write the outcomes that arrived and mark the rows asked for, in one transaction."""
        results, marks = self.results, self.marks
        granted = self.sender._record(session, self.token, results, [m.id for m in marks], current)
        for request in marks:
            request.ok = request.id in granted
            request.done.set()
        _count(self.stats, results)
        self.running.difference_update(r.id for r in results)
        if any(r.outcome == "postponed" for r in results):
            self.exhausted = False  # those rows are due again once the outage is over
            self._outage()
        elif results:
            self.outage_since = None
        if self.outage_since is not None and time.monotonic() - self.outage_since > self.sender.outage_give_up:
            if not self.gave_up:
                log.warning("outbox: Redis unavailable for %.0f s; leaving the rest to the next drain",
                            time.monotonic() - self.outage_since)
            self.gave_up = True
        self.results, self.marks = [], []

    def _collect(self) -> None:
        """Wait for a thread, then take whatever else has arrived meanwhile."""
        arrived = [self.inbox.get()]
        while not self.inbox.empty():
            arrived.append(self.inbox.get())
        for item in arrived:
            if isinstance(item, _Mark):
                self.marks.append(item)
            else:
                self.inflight -= 1
                if isinstance(item, _Result):
                    self.results.append(item)


def _network_outcome(exc: requests.RequestException) -> _Outcome:
    """A request that failed without an answer: retried when it cannot have reached WeChat (no
    connection was made), `unknown` when it may have (sent, then a read timeout or a dropped
    connection): resending it blindly could deliver it twice."""
    name = type(exc).__name__
    if _never_sent(exc):
        return _Outcome("transient", None, f"网络错误，未连上微信：{name}")
    return _Outcome("unknown", None, f"请求已发出但未收到微信答复（{name}），无法确认是否送达；为免重复未自动重发")


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                                   urllib3.exceptions.ConnectTimeoutError))
    return False


def _count(stats: DrainStats, results: list[_Result]) -> None:
    for result in results:
        setattr(stats, result.outcome, getattr(stats, result.outcome) + 1)
        if result.channel:
            stats.by_channel[result.channel] = stats.by_channel.get(result.channel, 0) + 1


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
