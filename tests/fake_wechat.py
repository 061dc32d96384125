"""A fake WeChat API server: real HTTP on 127.0.0.1, records every call, answers errors on demand.

    with FakeWeChat() as fake:
        app = create_app({"WECHAT_API_BASE": fake.base_url, ...})
        fake.fail("/cgi-bin/message/template/send", errcode=45009, times=1)
        ...
        assert fake.calls_to("/cgi-bin/message/template/send")

Also used by the benchmarks (`latency` makes every answer wait).
"""

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

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
class _Failure:
    errcode: int | None
    errmsg: str
    status: int
    times: int


class FakeWeChat:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Failure]] = {}
        self._token_serial = itertools.count(1)
        self._valid_tokens: set[str] = set()
        self._codes: dict[str, dict] = {}
        self._used_codes: set[str] = set()
        self._ticket_serial = itertools.count(1)
        self._stalls: dict[str, list[float]] = {}
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
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

    # Answers --------------------------------------------------------------------------------
    def _answer(self, method: str, path: str, params: dict, body: dict | None) -> tuple[int, dict]:
        with self._lock:
            self.calls.append(Call(method, path, params, body))
            queued = self._failures.get(path)
            if queued:
                failure = queued[0]
                failure.times -= 1
                if failure.times <= 0:
                    queued.pop(0)
                if failure.status != 200:
                    return failure.status, {"error": "http"}
                return 200, {"errcode": failure.errcode, "errmsg": failure.errmsg}
            if path in ("/cgi-bin/token", "/cgi-bin/stable_token"):
                token = f"TOKEN-{next(self._token_serial)}"
                self._valid_tokens.add(token)
                return 200, {"access_token": token, "expires_in": 7200}
            if path == "/sns/jscode2session":
                code = params.get("js_code", "")
                if code in self._used_codes:
                    return 200, {"errcode": 40163, "errmsg": ERRMSG[40163]}
                info = self._codes.pop(code, None)
                if info is None:
                    return 200, {"errcode": 40029, "errmsg": ERRMSG[40029]}
                self._used_codes.add(code)
                return 200, {k: v for k, v in info.items() if v is not None}
            if params.get("access_token") not in self._valid_tokens:
                return 200, {"errcode": 40001, "errmsg": ERRMSG[40001]}
            if path in MESSAGE_PATHS:
                return 200, {"errcode": 0, "errmsg": "ok", "msgid": len(self.calls)}
            if path == "/cgi-bin/qrcode/create":
                ticket = f"TICKET-{next(self._ticket_serial)}"
                return 200, {"ticket": ticket, "expire_seconds": (body or {}).get("expire_seconds", 0),
                             "url": f"http://weixin.qq.com/q/{ticket}"}
            return 404, {"errcode": 404, "errmsg": f"unknown path {path}"}

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
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with fake._lock:
                    stalls = fake._stalls.get(url.path)
                    stall = stalls.pop(0) if stalls else 0
                if fake.latency or stall:
                    time.sleep(fake.latency + stall)
                status, answer = fake._answer(method, url.path, params, body)
                data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, *args) -> None:
                pass

        return Handler
