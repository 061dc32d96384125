"""A fake WeChat API server: real HTTP on 127.0.0.1, records every call, answers errors on demand.

The tests' fixture (strict: only codes registered with `add_code` log in, only tokens it handed
out are valid):

    with FakeWeChat() as fake:
        app = create_app({"WECHAT_API_BASE": fake.base_url, ...})
        fake.fail("/cgi-bin/message/template/send", errcode=45009, times=1)
        ...
        assert fake.calls_to("/cgi-bin/message/template/send")

Also used by the benchmarks (`latency` makes every answer wait), and run as a command of the app,
`flask --app app wechat fake-api [--port 5001]`, in *local* mode (`FakeWeChat(local=True)`): a
stand-in for WeChat on a laptop, so that `make run` works with no WeChat account —

- mini-program login: any `wx.login` code works, as often as you like, and stands for the stable
  openid `o-local-<code>`;
- every access_token is accepted (a stand-in restarted under a running server does not matter);
- every message the outbox delivers is printed (`say`) and listed on the page `GET /`;
- `qrcode/create` hands out a ticket whose URL (`GET /q/<ticket>`, in both modes: the simulator
  and the tests read the scene there) tells the scene, and `GET /cgi-bin/showqrcode?ticket=` draws
  the QR code (SVG, with the `qrcode` package); the page lists the console's login codes with the
  command that scans one;
- web authorization (the console inside WeChat's browser): `GET /connect/oauth2/authorize` asks
  which openid signs in (a small form; `?openid=` answers it at once, as the tests do) and comes
  back to the `redirect_uri` with a code and the `state`; `sns/oauth2/access_token` turns the code
  (once) into that openid;
- `media/upload` keeps a file and gives its media id (`GET /cgi-bin/media/get?media_id=` returns it):
  the simulator's `--image`.
"""

import html
import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40029: "invalid code",
    40163: "code been used",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    -1: "system error",
}
MESSAGE_PATHS = (
    "/cgi-bin/message/template/send",
    "/cgi-bin/message/subscribe/send",
    "/cgi-bin/message/custom/send",
)
CHANNELS = {
    "/cgi-bin/message/template/send": "模板消息",
    "/cgi-bin/message/subscribe/send": "订阅消息",
    "/cgi-bin/message/custom/send": "客服消息",
}
LOCAL_OPENID_PREFIX = "o-local-"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many senders connect at once; the default backlog of 5 would reset connections.
    request_queue_size = 256


@dataclass
class Call:
    method: str
    path: str
    params: dict
    body: dict | None
    at: float = field(default_factory=time.time)


@dataclass
class Media:
    media_id: str
    kind: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class _Failure:
    errcode: int | None
    errmsg: str
    status: int
    times: int


class FakeWeChat:
    def __init__(self, latency: float = 0.0, *, local: bool = False, host: str = "127.0.0.1", port: int = 0,
                 say: Callable[[str], None] | None = None) -> None:
        """`local`: the laptop stand-in's lenient answers (see the module's docstring); `say`
        receives one line per delivered message (the command prints them)."""
        self.latency = latency
        self.local = local
        self.say = say
        self.qr_codes: dict[str, dict] = {}  # ticket -> the qrcode/create body
        self.media: dict[str, Media] = {}
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Failure]] = {}
        self._token_serial = itertools.count(1)
        self._valid_tokens: set[str] = set()
        self._codes: dict[str, dict] = {}
        self._used_codes: set[str] = set()
        self._ticket_serial = itertools.count(1)
        self._stalls: dict[str, list[float]] = {}
        self._media_serial = itertools.count(1)
        self._oauth_codes: dict[str, str] = {}  # web authorization code -> openid
        self._oauth_serial = itertools.count(1)
        self._server = _Server((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # Lifecycle ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeWeChat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeWeChat":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Scripting ------------------------------------------------------------------------------
    def fail(self, path: str, errcode: int | None = -1, *, errmsg: str | None = None,
             status: int = 200, times: int = 1) -> None:
        """Make the next `times` calls to `path` answer an error (errcode, or an HTTP status)."""
        with self._lock:
            self._failures.setdefault(path, []).append(
                _Failure(errcode, errmsg or ERRMSG.get(errcode, "error"), status, times)
            )

    def stall(self, path: str, seconds: float, times: int = 1) -> None:
        """Make the next `times` calls to `path` be handled (recorded, answered) only after
        `seconds`: a client with a shorter timeout sees a read timeout of a call that went through."""
        with self._lock:
            self._stalls.setdefault(path, []).extend([seconds] * times)

    def add_code(self, code: str, openid: str, unionid: str | None = None) -> None:
        """Make `code` a valid wx.login code for `openid` (usable once, like WeChat's)."""
        with self._lock:
            self._codes[code] = {"openid": openid, "session_key": f"sk-{code}", "unionid": unionid}

    def expire_tokens(self) -> None:
        """Make every access_token handed out so far invalid (as after a fetch elsewhere)."""
        with self._lock:
            self._valid_tokens.clear()

    def calls_to(self, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def messages(self) -> list[Call]:
        """Every message-send call, in order, whatever the channel."""
        with self._lock:
            return [c for c in self.calls if c.path in MESSAGE_PATHS]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._failures.clear()
            self._stalls.clear()

    def scene_of(self, ticket: str) -> str | None:
        """The scene of a QR code ticket handed out by qrcode/create (None: unknown ticket)."""
        with self._lock:
            body = self.qr_codes.get(ticket)
        if body is None:
            return None
        scene = (body.get("action_info") or {}).get("scene") or {}
        value = scene.get("scene_str", scene.get("scene_id"))
        return None if value is None else str(value)

    def add_media(self, kind: str, filename: str, content_type: str, data: bytes) -> str:
        """Keep an uploaded file; return its media id."""
        with self._lock:
            media_id = f"MEDIA-{next(self._media_serial)}"
            self.media[media_id] = Media(media_id, kind, filename, content_type, data)
        return media_id

    # Answers --------------------------------------------------------------------------------
    def _answer(self, method: str, path: str, params: dict, body: dict | None) -> tuple[int, dict]:
        with self._lock:
            self.calls.append(Call(method, path, params, body))
            failure = self._next_failure(path)
            if failure is not None:
                if failure.status != 200:
                    return failure.status, {"error": "http"}
                return 200, {"errcode": failure.errcode, "errmsg": failure.errmsg}
            if path in ("/cgi-bin/token", "/cgi-bin/stable_token"):
                token = f"TOKEN-{next(self._token_serial)}"
                self._valid_tokens.add(token)
                return 200, {"access_token": token, "expires_in": 7200}
            if path == "/sns/jscode2session":
                return self._code2session(params.get("js_code", ""))
            if path == "/sns/oauth2/access_token":
                return self._oauth_token(params)
            if not self.local and params.get("access_token") not in self._valid_tokens:
                return 200, {"errcode": 40001, "errmsg": ERRMSG[40001]}
            if path in MESSAGE_PATHS:
                if self.say is not None:
                    self.say(describe(self.calls[-1]))
                return 200, {"errcode": 0, "errmsg": "ok", "msgid": len(self.calls)}
            if path == "/cgi-bin/qrcode/create":
                return self._qr_code(body or {})
            return 404, {"errcode": 404, "errmsg": f"unknown path {path}"}

    def _next_failure(self, path: str) -> _Failure | None:
        """The failure scripted for `path` (`fail`), counted down; None: answer normally."""
        queued = self._failures.get(path)
        if not queued:
            return None
        failure = queued[0]
        failure.times -= 1
        if failure.times <= 0:
            queued.pop(0)
        return failure

    def _code2session(self, code: str) -> tuple[int, dict]:
        if code in self._used_codes:
            return 200, {"errcode": 40163, "errmsg": ERRMSG[40163]}
        info = self._codes.pop(code, None)
        if info is None and self.local and code:
            # Any code logs in, as often as you like, always as the same person.
            return 200, {"openid": LOCAL_OPENID_PREFIX + code, "session_key": f"sk-{code}"}
        if info is None:
            return 200, {"errcode": 40029, "errmsg": ERRMSG[40029]}
        self._used_codes.add(code)
        return 200, {k: v for k, v in info.items() if v is not None}

    def _oauth_token(self, params: dict) -> tuple[int, dict]:
        """sns/oauth2/access_token: a web authorization code (usable once) → its openid."""
        code = params.get("code", "")
        if code in self._used_codes:
            return 200, {"errcode": 40163, "errmsg": ERRMSG[40163]}
        openid = self._oauth_codes.pop(code, None)
        if openid is None or params.get("grant_type") != "authorization_code" or not params.get("secret"):
            return 200, {"errcode": 40029, "errmsg": ERRMSG[40029]}
        self._used_codes.add(code)
        return 200, {"access_token": f"OAUTH-TOKEN-{code}", "expires_in": 7200, "refresh_token": f"REFRESH-{code}",
                     "openid": openid, "scope": "snsapi_base"}

    def authorize(self, params: dict) -> tuple[int, str, bytes, dict]:
        """WeChat's authorization page (connect/oauth2/authorize): with `openid`, back to the
        redirect_uri with a fresh code and the state; without, a form asking for the openid."""
        with self._lock:
            self.calls.append(Call("GET", "/connect/oauth2/authorize", params, None))
        redirect_uri = params.get("redirect_uri", "")
        if params.get("response_type") != "code" or not redirect_uri.startswith(("http://", "https://")) \
                or params.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
            return 400, "text/plain; charset=utf-8", "参数错误：redirect_uri、response_type=code、scope".encode(), {}
        openid = params.get("openid", "").strip()
        if not openid:
            return 200, "text/html; charset=utf-8", self._authorize_form(params).encode("utf-8"), {}
        with self._lock:
            code = f"OAUTH-CODE-{next(self._oauth_serial)}"
            self._oauth_codes[code] = openid
        back = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(
            {"code": code, "state": params.get("state", "")})
        return 302, "text/plain; charset=utf-8", b"", {"Location": back}

    @staticmethod
    def _authorize_form(params: dict) -> str:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in params.items() if k != "openid")
        return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>微信网页授权（本地替身）</title>
<style>body{{font-family:sans-serif;margin:2em;font-size:18px}}input{{font-size:18px}}</style></head>
<body><h1>微信网页授权（本地替身）</h1>
<p>真正的微信会直接给出您的 openid。这里请填写以哪个 openid 授权（例如已绑定书记身份的 o-secretary）：</p>
<form method="get" action="/connect/oauth2/authorize">{hidden}
<input name="openid" value="o-secretary" required> <button type="submit">授权并返回</button></form>
</body></html>"""

    def _qr_code(self, body: dict) -> tuple[int, dict]:
        ticket = f"TICKET-{next(self._ticket_serial)}"
        self.qr_codes[ticket] = body
        # WeChat's URL is the content of the QR code (http://weixin.qq.com/q/…); the stand-in's own
        # one tells the scene, to the simulator's --scan and to the tests.
        url = f"{self.base_url}/q/{ticket}"
        return 200, {"ticket": ticket, "expire_seconds": body.get("expire_seconds", 0), "url": url}

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
            # delayed ACK would add ~40 ms to every answer on top of `latency`.
            disable_nagle_algorithm = True

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if len(raw) < length:
                    # The client went away mid-request (killed): like WeChat, act on nothing.
                    self.close_connection = True
                    return
                with fake._lock:
                    stalls = fake._stalls.get(url.path)
                    stall = stalls.pop(0) if stalls else 0
                if fake.latency or stall:
                    time.sleep(fake.latency + stall)
                page = fake._page(method, url.path, params, raw, self.headers.get("Content-Type", ""))
                if page is not None:
                    self._write(*page)
                    return
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                status, answer = fake._answer(method, url.path, params, body)
                self._write(status, "application/json; charset=utf-8",
                            json.dumps(answer, ensure_ascii=False).encode("utf-8"))

            def _write(self, status: int, content_type: str, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, *args) -> None:
                pass

        return Handler

    # The stand-in's own pages (local mode) -------------------------------------------------
    def _page(self, method: str, path: str, params: dict, raw: bytes,
              content_type: str) -> tuple | None:
        """Answer the requests that are not JSON API calls: the overview page, QR images and
        scenes, web authorization, media uploads and downloads. None: an API call for `_answer`."""
        if path == "/cgi-bin/media/upload" and method == "POST":
            return self._upload(params, raw, content_type)
        if method != "GET":
            return None
        if path == "/connect/oauth2/authorize":
            return self.authorize(params)
        if path == "/" and self.local:
            return 200, "text/html; charset=utf-8", self.overview().encode("utf-8")
        if path == "/deliveries":
            data = [{"channel": CHANNELS[c.path], "path": c.path, "body": c.body,
                     "at": datetime.fromtimestamp(c.at, UTC).isoformat()} for c in self.messages()]
            return 200, "application/json; charset=utf-8", json.dumps(data, ensure_ascii=False).encode()
        if path.startswith("/q/"):
            ticket = path[len("/q/"):]
            scene = self.scene_of(ticket)
            if scene is None:
                return 404, "application/json; charset=utf-8", b'{"errcode": 404, "errmsg": "unknown ticket"}'
            answer = {"ticket": ticket, "scene": scene}
            return 200, "application/json; charset=utf-8", json.dumps(answer, ensure_ascii=False).encode()
        if path == "/cgi-bin/showqrcode":
            ticket = params.get("ticket", "")
            if self.scene_of(ticket) is None:
                return 404, "application/json; charset=utf-8", b'{"errcode": 404, "errmsg": "unknown ticket"}'
            return 200, "image/svg+xml", qr_svg(f"{self.base_url}/q/{ticket}")
        if path == "/cgi-bin/media/get":
            return self._media(path, params)
        return None

    def _media(self, path: str, params: dict) -> tuple[int, str, bytes]:
        """`media/get`: the file kept by `add_media` or `media/upload` (recorded, failing on demand)."""
        with self._lock:
            self.calls.append(Call("GET", path, params, None))
            failure = self._next_failure(path)
            media = self.media.get(params.get("media_id", ""))
        if failure is not None:
            if failure.status != 200:
                return failure.status, "application/json; charset=utf-8", b'{"error": "http"}'
            answer = {"errcode": failure.errcode, "errmsg": failure.errmsg}
            return 200, "application/json; charset=utf-8", json.dumps(answer).encode()
        if media is None:
            return 200, "application/json; charset=utf-8", b'{"errcode": 40007, "errmsg": "invalid media_id"}'
        return 200, media.content_type, media.data

    def _upload(self, params: dict, raw: bytes, content_type: str) -> tuple[int, str, bytes]:
        with self._lock:
            self.calls.append(Call("POST", "/cgi-bin/media/upload", params, None))
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        parts = [part for part in message.iter_parts() if part.get_filename()] if message.is_multipart() else []
        if not parts:
            answer = {"errcode": 41005, "errmsg": "media data missing"}
        else:
            part = parts[0]
            kind = params.get("type", "image")
            media_id = self.add_media(kind, part.get_filename(), part.get_content_type(),
                                      part.get_payload(decode=True) or b"")
            answer = {"type": kind, "media_id": media_id, "created_at": int(time.time())}
        return 200, "application/json; charset=utf-8", json.dumps(answer).encode()

    def _qr_figure(self, ticket: str) -> str:
        """One QR code of the overview page; a console login code with the command that scans it."""
        scene = self.scene_of(ticket) or ""
        caption = f"场景 {html.escape(scene)}"
        if scene.startswith(LOGIN_SCENE_PREFIX):
            caption = (f"管理后台登录二维码<br>模拟书记扫码：<br><code>{html.escape(_scan_command(ticket))}</code>")
        return (f'<figure><img width="160" alt="二维码" src="/cgi-bin/showqrcode?ticket={quote(ticket)}">'
                f"<figcaption>{caption}</figcaption></figure>")

    def overview(self) -> str:
        """The page `GET /` of the stand-in: what it is, and everything delivered so far."""
        rows = []
        for call in reversed(self.messages()):
            when = datetime.fromtimestamp(call.at, UTC) + timedelta(hours=8)
            rows.append(f"<tr><td>{when:%m-%d %H:%M:%S}</td><td>{CHANNELS[call.path]}</td>"
                        f"<td>{html.escape(str((call.body or {}).get('touser', '')))}</td>"
                        f"<td>{html.escape(message_text(call))}</td></tr>")
        codes = "".join(self._qr_figure(t) for t in list(self.qr_codes)[-8:])
        empty = '<tr><td colspan="4">还没有消息。触发一条通知，再刷新本页。</td></tr>'
        return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>本地微信替身</title><style>body{{font-family:sans-serif;margin:2em}}td,th{{border-bottom:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top}}figure{{display:inline-block;margin:0 1em 1em 0}}</style></head>
<body><h1>本地微信替身</h1>
<p>连心开发用的微信接口替身：小程序登录（任意 code 均可，对应 openid「{LOCAL_OPENID_PREFIX}code」）、
发出的消息、带参数二维码、素材上传。不连接真正的微信。</p>
<h2>已发出的消息（{len(rows)}）</h2>
<table><tr><th>时间（北京）</th><th>渠道</th><th>接收人</th><th>内容</th></tr>{"".join(rows) or empty}</table>
<h2>二维码</h2>{codes or "<p>还没有生成二维码。</p>"}
</body></html>"""


LOGIN_SCENE_PREFIX = "login_"  # the console's login QR codes (models/console_login.py)


def _scan_command(ticket: str) -> str:
    return f"flask --app app wechat simulate --openid o-secretary --scan {ticket}"


def message_text(call: Call) -> str:
    """A message-send call's text, whatever the channel (template fields joined)."""
    body = call.body or {}
    if call.path == "/cgi-bin/message/custom/send":
        return str((body.get("text") or {}).get("content", body.get("msgtype", "")))
    data = body.get("data") or {}
    values = [str(v.get("value", "")) if isinstance(v, dict) else str(v) for v in data.values()]
    values = list(dict.fromkeys(value for value in values if value))  # the same text in two fields: once
    template = body.get("template_id", "")
    return f"[{template}] " + "；".join(values)


def describe(call: Call) -> str:
    """One line for the stand-in's log: channel, recipient, text."""
    return f"[{CHANNELS.get(call.path, call.path)}] → {(call.body or {}).get('touser', '?')}：{message_text(call)}"


def qr_svg(content: str) -> bytes:
    """An SVG QR code of `content` (no Pillow needed)."""
    import qrcode
    from qrcode.image.svg import SvgPathImage

    buffer = io.BytesIO()
    qrcode.make(content, image_factory=SvgPathImage, border=2).save(buffer)
    return buffer.getvalue()
