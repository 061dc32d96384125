"""The WeChat reply path's speed tricks, in one place, each with what it buys, measured.

WeChat gives a passive reply 5 seconds, but the reply path is also the one that takes every message
of every user: its cost per message is the server's capacity. The plain code (redis-py's pool and
pipelines, a role lookup per message, Flask-Limiter's hooks on every request) spends more time on
machinery than on the message.

Measured with `bench/fastpath.py` (CPU µs per `帮助` from a bound secretary through the whole
webhook in-process, SQLite, a local Redis; each trick undone alone by bench/variants.py) on the
2-core development machine while it was busy with other work (load average ~15), so read the
figures as sizes, not to the µs: all tricks 616 µs a message.

1. `ReplyPathRedis`, direct (`--without direct`: +196 µs, +32%): the webhook's Redis calls on a
   connection of each thread's own, the commands of a round trip packed into one write, instead of
   checking a connection out of redis-py's pool and building a pipeline for each round trip.
2. The RESP encoder `encode` (`--without resp`: +7 µs, +1% on the busy machine; on the quiet one,
   454 µs a message with it, 491 µs with redis-py's `pack_commands` in its place, +8%): byte for
   byte redis-py's packing, without its per-argument type dispatch.
3. `CLIENT REPLY SKIP` (`--without skip`: no CPU, one Redis round trip of wall time): the reply's
   cache write (and a role looked up) goes out without waiting for Redis's answers, so a message
   waits for one round trip, not two; a sync worker is blocked while it waits. Checked on first
   use: a server that does not honour it (an ACL, a proxy) gets waited writes.
4. The role cache (`RoleCache`, `--without roles`: +212 µs, +34%): the caller's role comes in the
   same Redis round trip as the de-duplication claim instead of a database query (two on
   PostgreSQL, with pool_pre_ping). Session listeners on every SQLAlchemy session
   (`install_role_listeners`, at app creation, once per process) make every cached role stale
   when members change.
5. Flask-Limiter's hooks on the API's blueprints only (`hook_limiter_to`, `--without limiter`:
   +92 µs, +15%): Flask-Limiter hooks every request of the app; the webhook has no limits.

End to end, `bench/webhook.py` (gunicorn and wrk; `--without NAME` too) compares the webhook's
throughput with a bare Flask app's. Only with a real Redis (`REDIS_URL`): with the in-process
stand-in `ReplyPathRedis` is made of ordinary pipelines and there is no role cache (the stand-in
is no faster than the database, and is not shared with a CLI import).
"""

import logging
import os
import threading
import time
import weakref
from functools import partial

import redis
from flask import Flask
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from models import Member

log = logging.getLogger(__name__)


def install(app: Flask, client: redis.Redis, shared: bool) -> None:
    """Put the reply path's Redis and role cache on the app (`shared`: a real Redis, not the stand-in)."""
    app.extensions["redis_reply_path"] = ReplyPathRedis(client, shared=shared)
    app.extensions["roles"] = RoleCache(client) if shared else None
    if shared:
        install_role_listeners()


# 1, 2. The reply path's Redis --------------------------------------------------------------------
def encode(commands) -> bytes:
    """Encode commands (tuples of str, bytes or numbers) in RESP, the Redis protocol: byte for byte
    what redis-py's packer writes, at a fraction of its cost on this path."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ReplyPathRedis:
    """The webhook's Redis calls, lean: on this path redis-py's pool and pipeline machinery (checking
    a connection out and in, a pipeline's command stack and reset) costs more than the round trip.

    Each thread keeps one connection of its own, made with the client's settings (its short
    timeouts). `call` packs commands into one write and reads their answers: one round trip.
    `send` writes commands after `CLIENT REPLY SKIP` and waits for nothing; the first use checks
    that the server honours it (an ACL or a proxy may not, and unread answers would then pile up),
    else `send` waits like `call`. A connection that fails is dropped, never reused out of step.
    With the in-process stand-in both are ordinary pipelines.
    """

    IDLE = 60.0  # seconds after which a connection is made anew (a server may drop idle clients)

    def __init__(self, client: redis.Redis, shared: bool) -> None:
        self.client = client
        self.direct = shared
        self.skip_replies = shared
        self._checked = False
        self._local = threading.local()

    def call(self, *commands: tuple) -> list:
        """Run the commands (tuples such as ("SET", key, value, "EX", 60)); return their answers."""
        if not self.direct:
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute()
        return self._exchange(commands, len(commands))

    def send(self, *commands: tuple) -> None:
        """Run the commands without waiting for their answers."""
        if self.direct and not self._checked:
            self._check()
        if not self.skip_replies:
            self.call(*commands)
            return
        self._exchange([part for command in commands for part in (("CLIENT", "REPLY", "SKIP"), command)], 0)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.disconnect()
            self._local.conn = None

    def _check(self) -> None:
        self._checked = True
        try:
            answers = self._exchange(
                [("CLIENT", "REPLY", "SKIP"), ("PING", "skipped"), ("PING", "answered")], 1)
            honoured = answers == ["answered"]
        except redis.RedisError as exc:
            honoured, answers = False, exc
        if not honoured:
            self.skip_replies = False
            log.warning("Redis does not honour CLIENT REPLY SKIP (%s); reply-path writes will wait", answers)

    def _exchange(self, commands, answers: int) -> list:
        conn = self._connection()
        try:
            conn.send_packed_command([encode(commands)])
            return [conn.read_response() for _ in range(answers)]
        except BaseException:
            conn.disconnect()
            self._local.conn = None
            raise
        finally:
            self._local.used = time.monotonic()

    def _connection(self):
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and (local.pid != os.getpid() or time.monotonic() - local.used > self.IDLE):
            if local.pid == os.getpid():
                conn.disconnect()
            conn = None
        if conn is None:
            pool = self.client.connection_pool
            conn = local.conn = pool.connection_class(**pool.connection_kwargs)
            local.pid = os.getpid()
        return conn


# 3. The role cache ---------------------------------------------------------------------------------
# `帮助` and the router's permission check need only the caller's role. The webhook reads the cached
# role in the same Redis round trip as its de-duplication claim, and writes a role it had to look up
# together with the reply. Every committed transaction that inserted, updated or deleted members
# moves a generation counter, which makes every cached role stale at once: roster changes (a
# binding, an import, an edited role) are rare, messages are not.
GEN_KEY = "lx:roles:gen"
TTL = 300  # seconds; a bound on staleness should an invalidation ever fail
UNBOUND = "-"
_CHANGED = "lx_roster_changed"  # a flag in Session.info
_ROLE_FIELDS = ("openid", "role", "active")
_caches: "weakref.WeakSet[RoleCache]" = weakref.WeakSet()


def role_key(openid: str) -> str:
    return f"lx:role:{openid}"


class RoleCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        _caches.add(self)

    @staticmethod
    def fetch(openid: str) -> tuple:
        """The command that reads one openid's cached role (its answer goes to `read`)."""
        return ("MGET", GEN_KEY, role_key(openid))

    @staticmethod
    def read(answer: list | None) -> tuple[bool, str | None]:
        """Return (found, role) from the answer to `fetch`; role None: not bound."""
        generation, value = answer or (None, None)
        if value is None:
            return False, None
        stored, _, role = value.partition("|")
        if stored != (generation or "0"):
            return False, None
        return True, None if role == UNBOUND else role

    @staticmethod
    def entry(openid: str, generation: str | None, role: str | None) -> tuple:
        """The SET command that caches a role looked up while the generation was `generation`."""
        return ("SET", role_key(openid), f"{generation or '0'}|{role or UNBOUND}", "EX", TTL)

    def invalidate(self) -> None:
        try:
            self.client.incr(GEN_KEY)
        except redis.RedisError:
            log.exception("could not invalidate the cached roles; they expire within %d s", TTL)


def _note_member_changes(session: Session, flush_context, instances) -> None:
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, Member):
            session.info[_CHANGED] = True
            return
    for obj in session.dirty:
        if isinstance(obj, Member):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in _ROLE_FIELDS):
                session.info[_CHANGED] = True
                return


def _note_member_statements(state) -> None:
    if (state.is_update or state.is_delete or state.is_insert) \
            and getattr(getattr(state.statement, "table", None), "name", None) == Member.__tablename__:
        state.session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        for cache in list(_caches):
            cache.invalidate()


_LISTENERS = (("before_flush", _note_member_changes), ("do_orm_execute", _note_member_statements),
              ("after_commit", _after_commit))


def install_role_listeners() -> None:
    """Listen on every session (the app's, the scheduler's, a CLI command's, a test's: any of them
    may change the roster, and the role caches of this process must hear of it). Once per process,
    however many apps it creates."""
    for name, listener in _LISTENERS:
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


# 4. The rate limiter off the webhook's path ----------------------------------------------------------
def is_limiter_hook(limiter, func) -> bool:
    """Whether `func`, a request hook of the app, is one of `limiter`'s."""
    if isinstance(func, partial):
        return limiter in func.args
    return getattr(func, "__self__", None) is limiter


def hook_limiter_to(app: Flask, limiter, blueprint_names: list[str]) -> None:
    """Run the limiter's request hooks for these blueprints only (those whose routes carry limits).

    Flask-Limiter hooks every request of the app, which costs the webhook's hot path for limits it
    does not have."""
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        moved = [func for func in hooks.get(None, []) if is_limiter_hook(limiter, func)]
        if not moved:
            continue
        hooks[None] = [func for func in hooks[None] if not is_limiter_hook(limiter, func)]
        for name in blueprint_names:
            hooks.setdefault(name, []).extend(moved)
