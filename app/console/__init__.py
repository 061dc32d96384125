"""The secretary's console (/console): server-rendered pages for branch and community secretaries,
on the desktop and inside WeChat's browser. A door like the webhook and the API: forms and pages,
then the same domain functions; every permission from models/authz.py.

Assets come from Python packages (Bootstrap-Flask serves Bootstrap from its own package) or from
this package's static folder: no page loads anything from a CDN.
"""

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

from app.extensions import csrf  # noqa: E402

bp.before_request(csrf.protect)  # every POST of the console carries the form's CSRF token

from app.console import (  # noqa: E402,F401  (the routes register on bp)
    activities,
    dashboard,
    errors,
    jobs,
    layout,
    login,
    members,
    notices,
    orglife,
    points,
    wishes,
)
