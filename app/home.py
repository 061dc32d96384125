"""The server's own pages for people: `GET /` (what this server is, where its doors are) and the
Chinese page of an unknown address. API addresses keep their JSON errors (app.api.errors)."""

from flask import Blueprint, render_template_string, request
from werkzeug.exceptions import NotFound

from app.api import PREFIX as API_PREFIX
from app.api.errors import HTTP_ERRORS, error_response
from app.api.errors import PREFIX as JSON_ERRORS_PREFIX
from app.extensions import current_settings
from scheduler.wechat_api import OFFICIAL_BASE

bp = Blueprint("home", __name__)

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · 连心</title>
<style>
 body{font-family:"PingFang SC","Microsoft YaHei",sans-serif;max-width:46em;margin:2em auto;padding:0 1em;
      line-height:1.6;color:#222}
 h1{color:#b71c1c} code{background:#f4f4f4;padding:0 .3em} li{margin:.3em 0}
</style></head>
<body>
<h1>{{ title }}</h1>
{% if missing %}<p>没有找到 <code>{{ missing }}</code> 这个页面。</p>{% endif %}
<p>这里是<strong>连心</strong>（基层党建）的服务器：微信公众号的消息接口、小程序的 REST 接口和定时通知。
 它主要由微信和小程序访问，供人浏览的页面只有下面几个。</p>
<ul>
 <li><a href="{{ api }}/docs">接口文档（Swagger UI）</a>：小程序接口 <code>{{ api }}</code>
  的全部说明，可以直接试用</li>
 <li><a href="{{ api }}/openapi.json">OpenAPI 文档</a>（JSON）</li>
 <li><a href="/healthz">运行状态</a></li>
 <li>公众号消息接口：<code>/wechat</code>（只接受微信签名过的请求；本地可用
  <code>flask --app app wechat simulate</code> 模拟）</li>
 <li>会议室签到页：<code>/checkin/…</code>，链接由公众号指令「签到页 #活动编号」给出</li>
 {% if fake %}<li>本地微信替身：<a href="{{ fake }}/">{{ fake }}</a>（发出的消息、二维码都在那里）</li>{% endif %}
</ul>
<p>第一次使用？请看仓库 README 的「Try every door on a laptop」一节。</p>
</body></html>
"""


def _page(title: str, missing: str = "") -> str:
    base = current_settings().wechat_api_base
    return render_template_string(PAGE, title=title, missing=missing, api=API_PREFIX,
                                  fake=base if base != OFFICIAL_BASE else "")


@bp.get("/")
def index():
    return _page("连心服务器")


@bp.app_errorhandler(NotFound)
def not_found(error: NotFound):
    if request.path.startswith(JSON_ERRORS_PREFIX):
        code, message = HTTP_ERRORS[404]
        return error_response(404, code, message)
    return _page("页面不存在", request.path), 404, {"Content-Type": "text/html; charset=utf-8"}
