"""Signing in to the console: scanning the login QR code (through the real, signed webhook), WeChat's
web authorization inside WeChat (through the fake WeChat over real HTTP), the server-side session
(cookie flags, idle expiry, a new id at sign-in), signing out everywhere, and the Chinese error pages."""

import re
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.console.sessions import COOKIE_NAME
from config import DEFAULTS
from models import Member, clock, now_utc
from models.base import DomainError, Forbidden
from models.console_login import (
    DONE,
    EXPIRED,
    USED,
    WAITING,
    ConsoleLogin,
    confirm_login,
    poll_login,
    start_login,
)
from tests.conftest import RACE_START_TIMEOUT
from tests.console_login_support import qr_of, scene_of_qr
from tests.local_servers import serve_in_thread

WECHAT_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN")


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin.bound(), sec=cast.sec.bound(), wang=cast.wang.bound(), zhou=cast.zhou.bound())


def login_page(client, next_path: str = "/console/") -> tuple[str, str]:
    """Open the login page; return (its HTML, its QR code's scene)."""
    page = client.get(f"/console/login?next={next_path}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return html, scene_of_qr(qr_of(html))


def status(client) -> dict:
    answer = client.get("/console/login/status")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    return answer.get_json()


def signed_in_as(client) -> str | None:
    """The name the console's pages show for the signed-in manager; None when they send to login."""
    page = client.get("/console/")
    if page.status_code == 302:
        assert "/console/login" in page.headers["Location"]
        return None
    assert page.status_code == 200
    return page.get_data(as_text=True)


def cookie_of(client) -> str | None:
    cookie = client.get_cookie(COOKIE_NAME, path="/console")
    return cookie.value if cookie else None


def csrf_of(client) -> str:
    html = client.get("/console/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html)[1]


def move_back(engine, minutes: float) -> None:
    """Every login attempt was made `minutes` earlier (the clock moved on by as much)."""
    shift = timedelta(minutes=minutes)
    with Session(engine) as s:
        for login in s.scalars(select(ConsoleLogin)):
            login.created_at -= shift
            login.expires_at -= shift
            if login.confirmed_at:
                login.confirmed_at -= shift
        s.commit()


# Scanning the QR code ----------------------------------------------------------------------------
def test_a_secretary_scans_and_the_browser_is_signed_in(client, wx, wechat_api, people):
    html, scene = login_page(client, "/console/?tab=1")
    assert 'src="data:image/svg+xml;base64,' in html and "<noscript>" in html and "login.js" in html
    created = wechat_api.calls_to("/cgi-bin/qrcode/create")
    assert len(created) == 1
    body = created[0].body
    assert body["action_name"] == "QR_STR_SCENE" and body["expire_seconds"] == 300
    assert body["action_info"]["scene"]["scene_str"] == scene and re.fullmatch(r"login_[\w-]{43}", scene)
    assert status(client) == {"state": WAITING, "message": "扫码后本页会自动进入管理后台。", "next": None}
    # The page reloaded shows the same QR code (no second one made).
    assert login_page(client, "/console/?tab=1")[1] == scene and len(wechat_api.calls_to("/cgi-bin/qrcode/create")) == 1
    before = cookie_of(client)

    reply = wx.event("o-sec", "SCAN", scene).content
    assert reply.startswith("已登录连心管理后台（")
    assert re.search(r"（\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d）", reply)
    assert clock.full_date(now_utc(), DEFAULTS.tz) in reply  # the day, local
    assert signed_in_as(client) is None  # the browser enters when it asks

    answer = status(client)
    assert answer["state"] == DONE and answer["next"] == "/console/?tab=1"
    after = cookie_of(client)
    assert after and after != before  # a new session id at sign-in: the old one is worth nothing
    assert "李红梅" in signed_in_as(client)
    assert status(client)["state"] == DONE  # asked again: still signed in, nothing more
    # The login page of a signed-in manager goes on to the console.
    again = client.get("/console/login?next=/console/")
    assert again.status_code == 302 and again.headers["Location"].endswith("/console/")


def test_following_by_scanning_the_login_code_signs_in_too(client, wx, people):
    _, scene = login_page(client)
    reply = wx.event("o-admin", "subscribe", scene).content  # WeChat sends qrscene_<scene>
    assert "欢迎回到连心" in reply and "已登录连心管理后台" in reply
    assert status(client)["state"] == DONE and "张建国" in signed_in_as(client)


def test_one_qr_code_one_login(app, client, wx, people):
    _, scene = login_page(client)
    other_browser = app.test_client()
    assert status(other_browser)["state"] == EXPIRED  # it has no attempt of its own: nothing to take
    assert "已登录" in wx.event("o-sec", "SCAN", scene).content
    # Scanned again (by the same secretary or another): refused, that browser stays as it is.
    assert "已被使用" in wx.event("o-sec", "SCAN", scene, create_time=int(time.time()) + 1).content
    assert "已被使用" in wx.event("o-admin", "SCAN", scene).content
    assert signed_in_as(other_browser) is None
    assert status(client)["state"] == DONE and "李红梅" in signed_in_as(client)
    # A WeChat retry of the first scan (same sender and CreateTime) answers the same, once.
    _, second = login_page(app.test_client())
    first = wx.event("o-sec", "SCAN", second, create_time=1_900_000_000)
    retry = wx.event("o-sec", "SCAN", second, create_time=1_900_000_000)
    assert "已登录" in first.content and retry.content == first.content


def test_an_unknown_login_scene_is_refused(wx, people):
    assert "无法识别" in wx.event("o-sec", "SCAN", "login_no-such-code").content


def test_an_expired_qr_code_is_refused(engine, client, wx, people):
    _, scene = login_page(client)
    move_back(engine, 5.1)  # five minutes and a bit later
    reply = wx.event("o-sec", "SCAN", scene).content
    assert "已过期" in reply and "已登录" not in reply
    answer = status(client)
    assert answer["state"] == EXPIRED and "已过期" in answer["message"]
    assert signed_in_as(client) is None
    # Reloaded, the page shows a new QR code, which works.
    _, fresh = login_page(client)
    assert fresh != scene
    assert "已登录" in wx.event("o-sec", "SCAN", fresh).content and status(client)["state"] == DONE


def test_the_clock_decides_expiry_and_pickup(session, people):
    """The domain's rules at their edges, with a clock the test sets."""
    start = now_utc()
    sec = session.get(Member, people["sec"].id)
    login = start_login(session, start)
    assert login.expires_at == start + timedelta(seconds=300)
    with pytest.raises(DomainError, match="已过期"):
        confirm_login(session, sec, login.token, now=start + timedelta(seconds=300))
    assert poll_login(session, login.id, start + timedelta(seconds=300)).state == EXPIRED
    # Just in time: confirmed at 4:59; the browser must take it within a minute of that.
    late = start_login(session, start)
    confirm_login(session, sec, late.token, now=start + timedelta(seconds=299))
    assert poll_login(session, late.id, start + timedelta(seconds=299 + 61)).state == EXPIRED
    timely = start_login(session, start)
    confirm_login(session, sec, timely.token, now=start + timedelta(seconds=10))
    taken = poll_login(session, timely.id, start + timedelta(seconds=11))
    assert taken.state == DONE and taken.member.id == sec.id
    assert poll_login(session, timely.id, start + timedelta(seconds=12)).state == USED
    # A reloaded page keeps its attempt while a minute of it is left, then gets a new one.
    waiting = start_login(session, start)
    assert start_login(session, start + timedelta(seconds=239), reuse_id=waiting.id).id == waiting.id
    assert start_login(session, start + timedelta(seconds=241), reuse_id=waiting.id).id != waiting.id
    assert start_login(session, start, reuse_id=timely.id).id != timely.id  # used: never shown again


@pytest.mark.parametrize(("openid", "told"), [
    ("o-wang", "连心管理后台仅限书记和管理员使用，您没有访问权限。"),  # a plain member
    ("o-stranger", "您还没有绑定党员身份，没有连心管理后台的访问权限，未登录。"),  # bound to no one
], ids=["plain-member", "stranger"])
def test_a_plain_member_or_a_stranger_is_told_and_nothing_is_signed_in(client, wx, people, openid, told):
    _, scene = login_page(client)
    reply = wx.event(openid, "SCAN", scene).content
    assert reply.startswith(told) and "已登录" not in reply
    answer = status(client)
    assert answer["state"] == "refused" and "没有连心管理后台的访问权限" in answer["message"]
    assert answer["next"] is None and signed_in_as(client) is None
    # The QR code is still good for a secretary.
    assert "已登录" in wx.event("o-sec", "SCAN", scene).content
    assert status(client)["state"] == DONE and "李红梅" in signed_in_as(client)


def test_a_member_who_lost_the_role_after_scanning_is_not_signed_in(engine, client, wx, people):
    _, scene = login_page(client)
    assert "已登录" in wx.event("o-sec", "SCAN", scene).content
    with Session(engine) as s:
        s.execute(update(Member).where(Member.id == people["sec"].id).values(role="党员"))
        s.commit()
    answer = status(client)
    assert answer["state"] == "refused" and signed_in_as(client) is None


def test_the_poll_costs_a_statement_or_two(client, wx, people, count_statements):
    _, scene = login_page(client)
    with count_statements() as waiting:
        assert status(client)["state"] == WAITING
    wx.event("o-sec", "SCAN", scene)
    with count_statements() as taking:
        assert status(client)["state"] == DONE
    assert waiting.count == 1  # the attempt, by its id
    assert taking.count <= 4  # the attempt, the conditional update, the member (and its org for authz)


def test_polls_racing_for_one_confirmed_attempt_sign_in_once(race_engine, people):
    with Session(race_engine) as s:
        now = now_utc()
        login = start_login(s, now)
        confirm_login(s, s.get(Member, people["sec"].id), login.token, now=now)
        login_id = login.id
    start = threading.Barrier(8, timeout=RACE_START_TIMEOUT)
    states = []

    def poll():
        with Session(race_engine) as s:
            start.wait()
            states.append(poll_login(s, login_id, now_utc()).state)

    threads = [threading.Thread(target=poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states) == [DONE] + [USED] * 7


def test_the_simulator_performs_the_login_scan(app_factory, people):
    """`flask wechat simulate --scan <the QR code's URL>`: how a newcomer signs in on a laptop."""
    app = app_factory()
    with serve_in_thread(app) as base:
        browser = requests.Session()
        page = browser.get(f"{base}/console/login")
        qr = qr_of(page.text)
        assert "wechat simulate --openid o-secretary --scan" in page.text  # the page says how
        result = app.test_cli_runner().invoke(args=[
            "wechat", "simulate", "--url", f"{base}/wechat", "--openid", "o-sec", "--scan", qr])
        assert result.exit_code == 0 and "已登录连心管理后台" in result.output
        assert browser.get(f"{base}/console/login/status").json()["state"] == DONE
        assert "李红梅" in browser.get(f"{base}/console/").text


def test_the_stand_ins_page_lists_the_login_code_with_the_scan_command(client, wechat_api, people):
    login_page(client)
    ticket = [t for t in wechat_api.qr_codes if (wechat_api.scene_of(t) or "").startswith("login_")][-1]
    page = wechat_api.overview()
    assert "管理后台登录二维码" in page and f"--scan {ticket}</code>" in page


def test_without_javascript_the_link_enters(client, wx, people):
    _, scene = login_page(client)
    early = client.get("/console/login/enter")
    assert early.status_code == 302 and "/console/login" in early.headers["Location"]
    assert "还没有收到扫码" in client.get(early.headers["Location"]).get_data(as_text=True)
    wx.event("o-sec", "SCAN", scene)
    entered = client.get("/console/login/enter")
    assert entered.status_code == 302 and entered.headers["Location"].endswith("/console/")
    assert "李红梅" in signed_in_as(client)


def test_the_login_page_says_when_wechat_cannot_make_the_code(client, wechat_api, people):
    wechat_api.fail("/cgi-bin/qrcode/create", 45009, times=1)
    page = client.get("/console/login")
    assert page.status_code == 200 and "暂时无法生成登录二维码" in page.get_data(as_text=True)
    assert 'id="login-qr"' not in page.get_data(as_text=True)


def test_next_stays_inside_the_console(client, wx, wechat_api, people):
    for target in ("https://evil.example/", "//evil.example/console/", "/consolex", "/console/login/status"):
        fresh = client.application.test_client()
        _, scene = login_page(fresh, target)
        wx.event("o-sec", "SCAN", scene, create_time=int(time.time()) + len(target))
        assert status(fresh)["next"] == "/console/"


# Inside WeChat: web authorization -----------------------------------------------------------------
@pytest.fixture
def oauth_app(app_factory, wechat_api):
    return app_factory(WECHAT_OPEN_BASE=wechat_api.base_url)


def authorize(client, openid: str, next_path: str = "/console/") -> tuple:
    """Open the console in WeChat's browser; WeChat's authorization page (the fake, over HTTP)
    answers for `openid`; return (the authorize URL's query, the callback's response)."""
    first = client.get(f"/console/login?next={next_path}", headers={"User-Agent": WECHAT_UA})
    assert first.status_code == 302
    location = first.headers["Location"]
    url, _, fragment = location.partition("#")
    assert fragment == "wechat_redirect"
    query = parse_qs(urlsplit(url).query)
    back = requests.get(url, params={"openid": openid}, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    return url, query, client.get(f"{callback.path}?{callback.query}", headers={"User-Agent": WECHAT_UA})


def test_inside_wechat_web_authorization_signs_in(oauth_app, wechat_api, people):
    client = oauth_app.test_client()
    url, query, answer = authorize(client, "o-sec", "/console/?from=menu")
    assert url.startswith(f"{wechat_api.base_url}/connect/oauth2/authorize?appid=")
    assert query["appid"] == ["wx2c2769f8efd9abc2"] and query["response_type"] == ["code"]
    assert query["scope"] == ["snsapi_base"] and query["redirect_uri"] == ["http://localhost/console/login/oauth"]
    assert len(query["state"][0]) >= 16
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/?from=menu"
    assert "李红梅" in signed_in_as(client)
    exchanged = wechat_api.calls_to("/sns/oauth2/access_token")
    assert len(exchanged) == 1 and exchanged[0].params["grant_type"] == "authorization_code"
    assert exchanged[0].params["secret"] == "test-app-secret"
    # Signed in, the menu's link goes straight on.
    again = client.get("/console/login", headers={"User-Agent": WECHAT_UA})
    assert again.status_code == 302 and again.headers["Location"].endswith("/console/")


def test_the_stand_ins_authorize_page_asks_which_openid(oauth_app, wechat_api):
    first = oauth_app.test_client().get("/console/login", headers={"User-Agent": WECHAT_UA})
    page = requests.get(first.headers["Location"].partition("#")[0], timeout=10)
    assert page.status_code == 200 and "授权并返回" in page.text and 'name="openid"' in page.text
    assert 'name="state"' in page.text and 'name="redirect_uri"' in page.text  # carried through the form
    wrong = requests.get(f"{wechat_api.base_url}/connect/oauth2/authorize", timeout=10,
                         params={"appid": "wx", "redirect_uri": "x", "response_type": "token", "scope": "snsapi_base"})
    assert wrong.status_code == 400


def test_web_authorization_uses_the_public_address(app_factory, wechat_api, people):
    app = app_factory(WECHAT_OPEN_BASE=wechat_api.base_url, PUBLIC_BASE_URL="https://dj.example.cn/")
    first = app.test_client().get("/console/login", headers={"User-Agent": WECHAT_UA})
    query = parse_qs(urlsplit(first.headers["Location"].partition("#")[0]).query)
    assert query["redirect_uri"] == ["https://dj.example.cn/console/login/oauth"]


@pytest.mark.parametrize(("openid", "told"), [
    ("o-wang", "连心管理后台仅限书记和管理员使用，您没有访问权限。"),
    ("o-stranger", "您的微信号还没有绑定党员身份"),
], ids=["plain-member", "stranger"])
def test_inside_wechat_others_are_told_they_have_no_access(oauth_app, people, openid, told):
    client = oauth_app.test_client()
    _, _, answer = authorize(client, openid)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 403 and told in html and "没有访问权限" in html
    assert signed_in_as(client) is None


def test_web_authorization_checks_state_and_uses_a_code_once(oauth_app, wechat_api, people):
    client = oauth_app.test_client()
    first = client.get("/console/login", headers={"User-Agent": WECHAT_UA})
    url = first.headers["Location"].partition("#")[0]
    back = urlsplit(requests.get(url, params={"openid": "o-sec"}, allow_redirects=False, timeout=10)
                    .headers["Location"])
    code = parse_qs(back.query)["code"][0]
    # Another browser brought the answer (or the state was forged): refused, the code unused.
    stranger = oauth_app.test_client()
    forged = stranger.get(f"{back.path}?{back.query}", headers={"User-Agent": WECHAT_UA})
    assert forged.status_code == 400 and "页面已过期" in forged.get_data(as_text=True)
    wrong = client.get(f"{back.path}?code={code}&state=not-the-state", headers={"User-Agent": WECHAT_UA})
    assert wrong.status_code == 400 and signed_in_as(client) is None
    assert wechat_api.calls_to("/sns/oauth2/access_token") == []
    # A state is good once: the same answer again is stale too.
    assert client.get(f"{back.path}?{back.query}").status_code == 400
    # A code WeChat already exchanged fails the exchange (a fresh state, the old code).
    first = client.get("/console/login", headers={"User-Agent": WECHAT_UA})
    state = parse_qs(urlsplit(first.headers["Location"].partition("#")[0]).query)["state"][0]
    requests.get(wechat_api.base_url + "/sns/oauth2/access_token", timeout=10, params={
        "code": code, "secret": "s", "grant_type": "authorization_code"})  # someone used it first
    used = client.get(f"{back.path}?code={code}&state={state}")
    assert used.status_code == 502 and "微信授权暂时失败" in used.get_data(as_text=True)
    assert signed_in_as(client) is None


def test_after_signing_out_inside_wechat_the_page_does_not_sign_in_again(oauth_app, people):
    client = oauth_app.test_client()
    authorize(client, "o-sec")
    out = client.post("/console/logout", data={"csrf_token": csrf_of(client)}, headers={"User-Agent": WECHAT_UA})
    assert out.status_code == 302 and "out=1" in out.headers["Location"]
    page = client.get(out.headers["Location"], headers={"User-Agent": WECHAT_UA})
    assert page.status_code == 200 and "您已退出登录" in page.get_data(as_text=True)
    assert signed_in_as(client) is None


# The session -------------------------------------------------------------------------------------
def scan_in(client, wx, openid: str) -> None:
    _, scene = login_page(client)
    assert "已登录" in wx.event(openid, "SCAN", scene, create_time=int(time.time()) + id(client) % 1000).content
    assert status(client)["state"] == DONE


def test_signing_out_ends_every_session_of_the_member(app, client, wx, people, console_login):
    phone = app.test_client()
    scan_in(client, wx, "o-sec")
    scan_in(phone, wx, "o-sec")
    third = app.test_client()
    console_login(third, people["sec"])  # a session made as the conftest fixture makes them
    other = app.test_client()
    scan_in(other, wx, "o-admin")
    assert all("李红梅" in signed_in_as(c) for c in (client, phone, third))

    out = client.post("/console/logout", data={"csrf_token": csrf_of(client)})
    assert out.status_code == 302 and out.headers["Location"].endswith("/console/login?out=1")
    assert "您已退出登录" in client.get(out.headers["Location"]).get_data(as_text=True)
    assert signed_in_as(client) is None and signed_in_as(phone) is None and signed_in_as(third) is None
    assert "张建国" in signed_in_as(other)  # another member's session is theirs
    store = app.extensions["redis"]
    assert store.exists(f"lx:console:member:{people['sec'].id}") == 0


def test_a_post_without_its_csrf_token_is_refused(client, wx, people):
    scan_in(client, wx, "o-sec")
    refused = client.post("/console/logout")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "页面已过期，请刷新后重试" in html and "Bad Request" not in html
    assert client.post("/console/logout", data={"csrf_token": "forged"}).status_code == 400
    assert "李红梅" in signed_in_as(client)  # still signed in


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(app_factory, wx, people):
    app = app_factory(TRUSTED_PROXIES=1)
    plain = app.test_client()
    page = plain.get("/console/login")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie and "Max-Age=28800" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert re.fullmatch(r"[\w-]{43}", value)  # an id: the data stays in Redis
    behind_nginx = app.test_client().get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" in behind_nginx.headers["Set-Cookie"]
    direct = app.test_client().get("/console/login", base_url="https://localhost")
    assert "; Secure" in direct.headers["Set-Cookie"]
    # The other doors open no session at all.
    for path in ("/healthz", "/", "/api/v1/config", "/console/static/login.js"):
        with app.test_client().get(path) as answer:
            assert answer.status_code == 200 and "Set-Cookie" not in answer.headers, path


def test_the_session_lives_in_redis_and_expires_when_idle(app_factory, wx, people):
    app = app_factory(CONSOLE_SESSION_HOURS=2)
    client = app.test_client()
    _, scene = login_page(client)
    wx.event("o-sec", "SCAN", scene)  # the webhook (of the default app: the same database)
    assert status(client)["state"] == DONE
    store = app.extensions["redis"]
    keys = [k for k in store.scan_iter("lx:console:session:*")]
    assert len(keys) == 1
    key = keys[0]
    assert cookie_of(client) not in key  # stored under the id's digest
    assert 7000 < store.ttl(key) <= 7200
    # Every request renews it.
    store.expire(key, 60)
    assert "李红梅" in signed_in_as(client)
    assert store.ttl(key) > 7000
    # Idle past its time: gone, and the cookie alone signs no one in.
    store.pexpire(key, 1)
    time.sleep(0.05)
    assert signed_in_as(client) is None


def test_without_redis_the_console_says_it_is_unavailable(app_factory, redis_process, people, console_login):
    app = app_factory(REDIS_URL=redis_process.url)
    client = app.test_client()
    console_login(client, people["sec"])
    assert "李红梅" in signed_in_as(client)
    redis_process.kill()
    down = client.get("/console/")
    html = down.get_data(as_text=True)
    assert down.status_code == 503 and "服务暂时不可用" in html and "Internal Server Error" not in html


# The console's error pages ---------------------------------------------------------------------------
def test_error_pages_are_chinese(client, wx, people):
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404 and "页面不存在" in missing.get_data(as_text=True)
    assert "Not Found" not in missing.get_data(as_text=True)
    assert "登录管理后台" in missing.get_data(as_text=True)  # not signed in: the way in
    scan_in(client, wx, "o-sec")
    missing = client.get("/console/members/abc/def")
    assert missing.status_code == 404 and "返回首页" in missing.get_data(as_text=True)
    wrong_method = client.get("/console/logout")
    assert wrong_method.status_code == 404 and "页面不存在" in wrong_method.get_data(as_text=True)


def test_a_refusal_no_page_caught_is_shown_in_chinese(app):
    from app.console.errors import domain_error, error_page

    with app.test_request_context("/console/x"):
        html, code, _ = domain_error(Forbidden("您无权查看该成员。"))
        assert code == 403 and "您无权查看该成员。" in html and "没有权限" in html
        html, code, _ = error_page(500)
        assert code == 500 and "服务器出了点问题" in html
