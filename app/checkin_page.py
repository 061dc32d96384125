"""The meeting-room sign-in page: a big QR code, the code in force and the live count.

Opened by the secretary on the room's screen through an unguessable link (签到页 #n); the page
polls a small JSON endpoint. Creating the WeChat QR code is an API call, made here (never in the
5-second reply path) and kept on the activity so that every screen shares it.
"""

import base64
import io
from functools import lru_cache

import qrcode
from flask import Blueprint, abort, current_app, jsonify, render_template_string
from qrcode.image.svg import SvgPathImage

from app.extensions import current_settings, db
from models import clock, now_utc
from models.activity import (
    activity_by_token,
    checked_in_count,
    current_code,
    expected_count,
    scene_for,
)

bp = Blueprint("checkin_page", __name__)

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>签到 · {{ a.title }}</title>
<style>
 body{font-family:"PingFang SC","Microsoft YaHei",sans-serif;background:#b71c1c;color:#fff;margin:0;text-align:center}
 h1{font-size:3vw;margin:2vh 0 0} .when{font-size:1.6vw;opacity:.85}
 main{display:flex;justify-content:center;align-items:center;gap:5vw;margin-top:3vh}
 #qr{width:38vw;max-width:70vh;background:#fff;padding:1vw;border-radius:1vw}
 .label{font-size:1.8vw;opacity:.85} #code{font-size:7vw;font-weight:bold;letter-spacing:.4vw}
 #count{font-size:9vw;font-weight:bold} .hint{font-size:1.4vw;opacity:.8;margin-top:2vh}
</style></head>
<body data-poll="{{ poll }}">
<h1>{{ a.kind }} · {{ a.title }}</h1>
<div class="when">{{ when }}{% if a.place %} · {{ a.place }}{% endif %}</div>
<main>
 <img id="qr" alt="签到二维码" src="{{ status.qr }}">
 <div>
  <div class="label">签到码</div><div id="code">{{ status.code }}</div>
  <div class="label">已签到</div><div><span id="count">{{ status.count }}</span>
   <span class="label">/ <span id="expected">{{ status.expected }}</span> 人</span></div>
 </div>
</main>
<div class="hint">微信扫一扫，或在公众号发送「签到 签到码」{% if a.rotating %}（签到码每分钟更换）{% endif %}</div>
<script>
(function () {
  var url = {{ status_url|tojson }}, poll = parseFloat(document.body.dataset.poll) * 1000;
  function refresh() {
    fetch(url, {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("count").textContent = s.count;
      document.getElementById("expected").textContent = s.expected;
      document.getElementById("code").textContent = s.code;
      var img = document.getElementById("qr");
      if (img.getAttribute("src") !== s.qr) { img.setAttribute("src", s.qr); }
    }).catch(function () {}).then(function () { setTimeout(refresh, poll); });
  }
  setTimeout(refresh, poll);
})();
</script>
</body></html>
"""


@lru_cache(maxsize=256)
def qr_data_uri(content: str) -> str:
    """Return an SVG QR code of `content` as a data URI (SVG: sharp on a big screen, no Pillow needed)."""
    image = qrcode.make(content, image_factory=SvgPathImage, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _qr_content(activity, now) -> str:
    """The WeChat QR code's URL for the scene in force; the code's text when WeChat is unreachable."""
    scene = scene_for(activity, now)
    if activity.qr_scene == scene and activity.qr_url:
        return activity.qr_url
    config = current_settings()
    if config.wechat_app_secret:
        from scheduler.activity_jobs import create_sign_in_qr
        from scheduler.wechat_api import official_account_client

        try:
            client = official_account_client(config, current_app.extensions["redis"])
            return create_sign_in_qr(db.session, client, activity, now)
        except Exception:  # noqa: BLE001 - the page must still show a code to type
            db.session.rollback()
            current_app.logger.exception("creating the sign-in QR code of activity %s failed", activity.id)
    return f"签到 {current_code(activity, now)}"


def _status(activity) -> dict:
    now = now_utc()
    return {
        "count": checked_in_count(db.session, activity.id),
        "expected": expected_count(db.session, activity),
        "code": current_code(activity, now),
        "qr": qr_data_uri(_qr_content(activity, now)),
    }


def _activity(token: str):
    activity = activity_by_token(db.session, token)
    if activity is None:
        abort(404)
    return activity


def _private(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/checkin/<token>")
def page(token: str):
    activity = _activity(token)
    tz = current_settings().tz
    when = f"{clock.day_time(activity.starts_at, tz)}-{clock.clock_time(activity.ends_at, tz)}"
    html = render_template_string(
        PAGE, a=activity, when=when, status=_status(activity),
        status_url=f"/checkin/{token}/status", poll=current_settings().checkin_page_poll_seconds,
    )
    return _private(current_app.make_response(html))


@bp.get("/checkin/<token>/status")
def status(token: str):
    return _private(jsonify(_status(_activity(token))))
