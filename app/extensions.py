"""Extensions, created unbound here and bound to the app in create_app()."""


import fakeredis
import redis
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis.backoff import NoBackoff
from redis.retry import Retry

from models import Base

# The tables are declared on models.Base (plain SQLAlchemy, so the domain needs no Flask); the
# extension shares its metadata so that Flask-Migrate and create_all see every table.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()


def engine_options(config: dict) -> dict:
    """Return engine options with short timeouts, so a stuck database cannot hold a reply."""
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        statement_ms = int(config["DB_STATEMENT_TIMEOUT"] * 1000)
        return {
            "pool_pre_ping": True,
            "connect_args": {
                "connect_timeout": int(config["DB_CONNECT_TIMEOUT"]),
                "options": f"-c statement_timeout={statement_ms} -c timezone=UTC",
            },
        }
    if url.startswith("sqlite"):
        # Wait a little for another writer rather than failing at once.
        return {"connect_args": {"timeout": 2}}
    return {}


def init_redis(app: Flask) -> None:
    """Bind the shared Redis (or, without REDIS_URL, an in-process stand-in)."""
    url = app.config["REDIS_URL"]
    timeout = app.config["REDIS_TIMEOUT"]
    if url:
        # redis-py's defaults retry for seconds against a dead server; the reply path cannot wait.
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True,
        )
    else:
        app.logger.warning(
            "REDIS_URL is not set: using an in-process Redis stand-in; "
            "run one process only (see README, Deployment)."
        )
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    app.extensions["redis"] = client


def get_redis(app: Flask) -> redis.Redis:
    return app.extensions["redis"]

