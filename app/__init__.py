"""The Flask application factory: the top floor that wires the doors to the domain."""

import logging
import os
from pathlib import Path

import redis
from dotenv import load_dotenv
from flask import Flask, jsonify
from flask.sessions import SessionInterface
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from app import api
from app.extensions import db, engine_options, get_redis, init_redis, migrate, warn_once
from config import load_config
from handlers import build_router

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app; `test_config` overrides the environment."""
    if test_config is None:
        load_dotenv()  # a .env file next to where the app runs, if any; the environment wins
    app = Flask(__name__, instance_relative_config=True)
    app.session_interface = NoCookieSessions()
    app.json.ensure_ascii = False  # JSON answers keep Chinese readable, not \uXXXX
    app.config.update(load_config(test_config))
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    app.extensions["router"] = build_router()
    start_scheduler(app)
    return app


class NoCookieSessions(SessionInterface):
    """Lianxin keeps no cookie sessions (the webhook is signed, the API takes tokens), so no
    request pays for opening one."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        pass


def configure_logging(app: Flask) -> None:
    logging.basicConfig(level=app.config["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if app.config.get("SECRET_KEY_GENERATED"):
        warn_once(app.logger, "SECRET_KEY is not set: using a random key for this process only.")


def register_extensions(app: Flask) -> None:
    os.makedirs(app.instance_path, exist_ok=True)  # where the default SQLite file lives
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config))
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    init_redis(app)
    if app.config["TRUSTED_PROXIES"]:
        # Behind nginx: the client's address comes from X-Forwarded-For (per-address rate limits).
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_blueprints(app: Flask) -> None:
    from app import checkin_page, home, wechat

    app.register_blueprint(wechat.bp)
    api.init_app(app)  # /api/v1, its OpenAPI document and docs page, its rate limits
    app.register_blueprint(checkin_page.bp)
    app.register_blueprint(home.bp)  # GET / and the Chinese 404 page


def register_errorhandlers(app: Flask) -> None:
    api.register_errorhandlers(app)

    @app.get("/healthz")
    def healthz():
        """The database and Redis, each "ok" or "error"; 503 when either fails."""
        checks = {"database": _database_ok, "redis": _redis_ok}
        states = {name: "ok" if check(app) else "error" for name, check in checks.items()}
        healthy = all(state == "ok" for state in states.values())
        response = jsonify(status="ok" if healthy else "unavailable", **states)
        response.status_code = 200 if healthy else 503
        return response


def _database_ok(app: Flask) -> bool:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver's failure: the check answers, it does not crash
        app.logger.warning("health check: the database is unreachable", exc_info=True)
        return False


def _redis_ok(app: Flask) -> bool:
    try:
        return bool(get_redis(app).ping())
    except redis.RedisError:
        app.logger.warning("health check: Redis is unreachable", exc_info=True)
        return False


def start_scheduler(app: Flask) -> None:
    from app.scheduling import maybe_start_embedded

    maybe_start_embedded(app)


def register_commands(app: Flask) -> None:
    from app import cli

    cli.register(app)
