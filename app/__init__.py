"""The Flask application factory: the top floor that wires the doors to the domain."""

import logging
import os
from pathlib import Path

import redis
from dotenv import load_dotenv
from flask import Flask, jsonify
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from app import api
from app.console.sessions import Sessions
from app.extensions import bootstrap, csrf, db, engine_options, get_redis, init_redis, migrate, warn_once
from config import FIELDS, load_config
from handlers import build_router

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app; `test_config` overrides the environment."""
    if test_config is None:
        load_dotenv()  # a .env file next to where the app runs, if any; the environment wins
    app = Flask(__name__, instance_relative_config=True)
    app.session_interface = Sessions()
    app.json.ensure_ascii = False  # JSON answers keep Chinese readable, not \uXXXX
    install_settings(app, test_config or {})
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    app.extensions["router"] = build_router()
    start_scheduler(app)
    return app


def install_settings(app: Flask, overrides: dict) -> None:
    """Build the one settings object (app.extensions["settings"]); give Flask and its extensions
    the few keys they read themselves. Overrides that are not settings (TESTING) are Flask's."""
    settings = load_config({key: value for key, value in overrides.items() if key.lower() in FIELDS})
    app.extensions["settings"] = settings
    app.config.update({key: value for key, value in overrides.items() if key.lower() not in FIELDS})
    app.config.update(SECRET_KEY=settings.secret_key, SQLALCHEMY_DATABASE_URI=settings.database_url)


def configure_logging(app: Flask) -> None:
    settings = app.extensions["settings"]
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.secret_key_generated:
        warn_once(app.logger, "SECRET_KEY is not set: using a random key for this process only.")


def register_extensions(app: Flask) -> None:
    os.makedirs(app.instance_path, exist_ok=True)  # where the default SQLite file lives
    settings = app.extensions["settings"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(settings))
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    init_redis(app)
    # CSRF tokens are checked by the console's forms only (the webhook is signed, the API takes
    # tokens), and last as long as the console's session (a form left open over lunch still sends);
    # Bootstrap is served from its Python package, never from a CDN.
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, BOOTSTRAP_SERVE_LOCAL=True,
                      WTF_CSRF_TIME_LIMIT=int(settings.console_session_hours * 3600))
    csrf.init_app(app)
    bootstrap.init_app(app)
    if settings.trusted_proxies:
        # Behind nginx: the client's address comes from X-Forwarded-For (per-address rate limits).
        hops = int(settings.trusted_proxies)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_blueprints(app: Flask) -> None:
    from app import checkin_page, console, home, wechat

    app.register_blueprint(wechat.bp)
    api.init_app(app)  # /api/v1, its OpenAPI document and docs page, its rate limits
    app.register_blueprint(checkin_page.bp)
    app.register_blueprint(console.bp)  # /console, the secretaries' pages
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
