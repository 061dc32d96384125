"""Extensions, created unbound here and bound to the app in create_app()."""


import logging
import os
import threading
import time

import fakeredis
import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.roles import RoleCache
from config import Settings
from models import Base

# The tables are declared on models.Base (plain SQLAlchemy, so the domain needs no Flask); the
# extension shares its metadata so that Flask-Migrate and create_all see every table.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
log = logging.getLogger(__name__)
_warned: set[str] = set()  # the start-up warnings already given in this process


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log a start-up warning once per process, however many apps it creates (a CLI command, the
    dev server, a test run)."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def current_settings() -> Settings:
    """The app's settings (config.py's one frozen object, built by the factory)."""
    return current_app.extensions["settings"]


def engine_options(settings: Settings) -> dict:
    """Return engine options with short timeouts, so a stuck database cannot hold a reply."""
    url = settings.database_url
    if url.startswith("postgresql"):
        statement_ms = int(settings.db_statement_timeout * 1000)
        return {
            "pool_pre_ping": True,
            "connect_args": {
                "connect_timeout": int(settings.db_connect_timeout),
                "options": f"-c statement_timeout={statement_ms} -c timezone=UTC",
            },
        }
    if url.startswith("sqlite"):
        # Wait a little for another writer rather than failing at once.
        return {"connect_args": {"timeout": 2}}
    return {}


def init_redis(app: Flask) -> None:
    """Bind the shared Redis (or, without REDIS_URL, an in-process stand-in)."""
    settings = app.extensions["settings"]
    url = settings.redis_url
    timeout = settings.redis_timeout
    if url:
        # redis-py's defaults retry for seconds against a dead server; the reply path cannot wait.
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True,
        )
    else:
        warn_once(app.logger, "REDIS_URL is not set: using an in-process Redis stand-in; "
                              "run one process only (see README, Deployment).")
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    app.extensions["redis"] = client
    app.extensions["redis_reply_path"] = ReplyPathRedis(client, shared=bool(url))
    app.extensions["roles"] = RoleCache(client) if url else None


def get_redis(app: Flask) -> redis.Redis:
    return app.extensions["redis"]


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
            conn.send_packed_command([_resp(commands)])
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


def _resp(commands) -> bytes:
    """Encode commands in RESP, the Redis protocol (redis-py's packer costs more on this path)."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
