"""The webhook app without some of its speed tricks (app/fastpath.py), for `bench/webhook.py --without`.

`gunicorn 'bench.variants:create_app("resp,roles")'` builds the app as `app:create_app()` does, then
undoes the named tricks; the production code has no switch for them.
"""


import app.api
from app import create_app as _create_app

TRICKS = ("direct", "skip", "roles", "limiter")


def create_app(without: str = ""):
    names = [name for name in without.split(",") if name]
    unknown = set(names) - set(TRICKS)
    if unknown:
        raise SystemExit(f"unknown tricks {sorted(unknown)}; known: {', '.join(TRICKS)}")
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
