"""Extensions, created unbound here and bound to the app in create_app()."""


import logging

import fakeredis
import redis
from flask import Flask, current_app
from flask_bootstrap import Bootstrap5
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis.backoff import NoBackoff
from redis.retry import Retry

from app import fastpath
from config import Settings
from models import Base

# The tables are declared on models.Base (plain SQLAlchemy, so the domain needs no Flask); the
# extension shares its metadata so that Flask-Migrate and create_all see every table.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
csrf = CSRFProtect()
bootstrap = Bootstrap5()
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
    fastpath.install(app, client, shared=bool(url))  # the reply path's Redis and role cache


def get_redis(app: Flask) -> redis.Redis:
    return app.extensions["redis"]
