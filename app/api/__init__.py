"""The mini-program REST API at /api/v1: schemas and auth here, the rules in models/.

The OpenAPI 3 document is generated from the code (flask-smorest) and served at
/api/v1/openapi.json, with a docs page at /api/v1/docs.
"""

import threading

import swagger_ui_bundle
from flask import Blueprint, Flask, send_from_directory
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api as _Api
from werkzeug.routing import IntegerConverter

from app.api import errors
from app.api.schemas import ErrorSchema
from app.fastpath import hook_limiter_to
from models.text import MAX_INT

PREFIX = "/api/v1"
# Swagger UI's files, served from the installed swagger-ui-bundle package: the docs page works
# offline and loads nothing from another host.
DOCS_ASSETS = f"{PREFIX}/docs/assets/"
docs_assets = Blueprint("api_docs_assets", __name__)


@docs_assets.get(DOCS_ASSETS + "<path:filename>")
def docs_asset(filename: str):
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


# Route limits are declared on the views (login, bind); the storage is the app's Redis.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


def _up_to(limit: str) -> str:
    """A regex of the decimal numbers 1 … `limit` without leading zeros."""
    shorter = f"[1-9]\\d{{0,{len(limit) - 2}}}" if len(limit) > 1 else ""
    same = []
    for i, digit in enumerate(limit):
        low = "1" if i == 0 else "0"
        top = int(digit) - (0 if i == len(limit) - 1 else 1)
        if top >= int(low):
            rest = len(limit) - i - 1
            same.append(limit[:i] + f"[{low}-{top}]" + (f"\\d{{{rest}}}" if rest else ""))
    return "(?:" + "|".join(filter(None, [shorter, *same])) + ")"


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` in a URL: 1 … 2**31-1, what an id column holds. A bigger number (or 0, or leading
    zeros) is no route (404), never a database error: SQLite overflows past 64 bits, PostgreSQL
    past 32. The bound is in the regex so that no route matches at all (werkzeug answers 405
    rather than 404 when only the value check fails and another method's rule has the same path)."""

    regex = _up_to(str(MAX_INT))

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_INT)
        super().__init__(map, *args, **kwargs)


class Api(_Api):
    """flask-smorest, documenting our error shape and leaving error handling to app.api.errors.

    The blueprints' routes are added at once, their documentation when the OpenAPI document is
    first read: writing it is 60 % of making an app (about 150 ms), which every worker and every
    test would pay for a document few of them serve."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, *args, **kwargs) -> None:
        self._spec = None
        self._undocumented: list[tuple] = []
        self._documenting = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def spec(self):
        if self._undocumented:
            with self._documenting:
                while self._undocumented:
                    blp, name, parameters = self._undocumented.pop(0)
                    blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
                    self._spec.tag({"name": name, "description": blp.description})
        return self._spec

    @spec.setter
    def spec(self, value) -> None:
        self._spec = value

    def register_blueprint(self, blp, *, parameters=None, **options):
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def _register_error_handlers(self):
        # flask-smorest would answer every HTTP error of the app (the webhook's too) in its shape.
        pass


def init_app(app: Flask) -> None:
    """Bind the API, its docs and its rate limiter to `app`."""
    cfg = app.config
    settings = app.extensions["settings"]
    cfg.setdefault("API_TITLE", "连心 Lianxin API")
    cfg.setdefault("API_VERSION", "v1")
    cfg.setdefault("OPENAPI_VERSION", "3.0.3")
    cfg.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    cfg.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    cfg.setdefault("OPENAPI_SWAGGER_UI_PATH", "docs")
    cfg.setdefault("OPENAPI_SWAGGER_UI_URL", settings.api_docs_assets_url or DOCS_ASSETS)
    app.register_blueprint(docs_assets)
    cfg.setdefault("RATELIMIT_STORAGE_URI", settings.redis_url or "memory://")
    if settings.redis_url:
        timeout = settings.redis_timeout
        cfg.setdefault("RATELIMIT_STORAGE_OPTIONS",
                       {"socket_timeout": timeout, "socket_connect_timeout": timeout})
    cfg.setdefault("RATELIMIT_KEY_PREFIX", "lx:ratelimit")
    limiter.init_app(app)
    # Before the API's routes are added: their `<int:…>` ids are bounded (and documented so).
    app.url_map.converters["int"] = BoundedIntConverter

    from app.api import activities, admin, jobs, leave, me, notices, public, records, rhythm, session, wishes
    from app.api.auth import BEARER_SCHEME

    api = Api(app, spec_kwargs={"servers": [{"url": "/"}]})
    api.spec.components.security_scheme(BEARER_SCHEME, {"type": "http", "scheme": "bearer"})

    blueprints = (session.blp, me.blp, admin.blp, wishes.blp, wishes.points_blp, activities.blp,
                  activities.admin_blp, leave.blp, records.blp, rhythm.blp, notices.blp, jobs.blp, public.blp)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    hook_limiter_to(app, limiter, [b.name for b in blueprints])  # off the webhook's path (app/fastpath.py)
    app.extensions["api"] = api



def register_errorhandlers(app: Flask) -> None:
    errors.register(app)
