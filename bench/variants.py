"""The webhook app without some of its speed tricks (app/fastpath.py), for `bench/webhook.py --without`.

`gunicorn 'bench.variants:create_app("resp,roles")'` builds the app as `app:create_app()` does, then
undoes the named tricks; the production code has no switch for them.
"""

import redis

import app.api
from app import create_app as _create_app
from app import fastpath

TRICKS = ("direct", "resp", "skip", "roles", "limiter")


_PACKER = redis.Connection()  # never connected: only its packer is used


def _redis_py_encode(commands) -> bytes:
    """redis-py's own packer, as a pool connection would pack the commands."""
    return b"".join(_PACKER.pack_commands(commands))


def create_app(without: str = ""):
    names = [name for name in without.split(",") if name]
    unknown = set(names) - set(TRICKS)
    if unknown:
        raise SystemExit(f"unknown tricks {sorted(unknown)}; known: {', '.join(TRICKS)}")
    if "resp" in names:
        fastpath.encode = _redis_py_encode
    if "limiter" in names:
        app.api.hook_limiter_to = lambda *args: None
    flask_app = _create_app()
    fast = flask_app.extensions["redis_reply_path"]
    if "direct" in names:  # redis-py's pool and pipelines for every call (and so no skipped replies)
        fast.direct = fast.skip_replies = False
    if "skip" in names:
        fast.skip_replies = False
        fast._checked = True
    if "roles" in names:
        flask_app.extensions["roles"] = None
    return flask_app
