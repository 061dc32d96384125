"""Signing in to the console in tests, the way a secretary does: open the login page, scan its QR code.

- `browser_login(browser, base_url, member_openid)`: a Chromium page (tests/cdp.py) opens
  /console/login on a live server, the member "scans" its QR code (a signed SCAN event posted to
  the server's /wechat, as `flask wechat simulate --scan` does), and the page enters the console by
  itself. Returns the page's CDP session id, signed in.
- `qr_of(html)`: the content of the login page's QR code (the URL WeChat's API gave);
  `scene_of_qr(url)`: the scene of a QR code the fake WeChat made (it tells it at that URL).
"""

import re
from html import unescape

from app.simulator import Simulator, resolve_scene
from tests.conftest import APP_ID, TOKEN

QR_ATTRIBUTE = re.compile(r'id="login-qr"[^>]*\bdata-qr="([^"]+)"')


def qr_of(html: str) -> str:
    """The content of the login page's QR code."""
    found = QR_ATTRIBUTE.search(html)
    assert found, "the login page shows no QR code"
    return unescape(found[1])


def scene_of_qr(url: str) -> str:
    """The scene of a QR code made by the fake WeChat (GET its URL, as `wechat simulate --scan` does)."""
    return resolve_scene("", url)


def open_login_page(browser, base_url: str, path: str = "/console/login") -> tuple[str, str]:
    """Open the login page in a new tab; return (tab, the content of its QR code) once it shows one."""
    tab = browser.open(base_url + path)
    qr = browser.wait_for(tab, "(() => { const i = document.getElementById('login-qr');"
                               " return i && i.complete && i.naturalWidth > 0 ? i.dataset.qr : '' })()")
    return tab, qr


def scan(base_url: str, member_openid: str, qr: str, *, token: str = TOKEN, app_id: str = APP_ID):
    """`member_openid` scans the QR code `qr` with WeChat: the signed SCAN event WeChat posts."""
    return Simulator(f"{base_url}/wechat", token, app_id).event(member_openid, "SCAN", scene_of_qr(qr))


def browser_login(browser, base_url: str, member_openid: str, *, next_path: str = "/console/",
                  token: str = TOKEN, timeout: float = 20) -> str:
    """Sign a Chromium page in to the console as the member bound to `member_openid` (a secretary
    or admin), by a simulated scan of the login page's QR code; return the page's session id, on
    `next_path` (the page the login page goes to)."""
    tab, qr = open_login_page(browser, base_url, f"/console/login?next={next_path}")
    reply = scan(base_url, member_openid, qr, token=token)
    assert "已登录连心管理后台" in reply.content, reply.content
    browser.wait_for(tab, f"location.pathname + location.search === {next_path!r}"
                          " && document.readyState === 'complete'",
                     timeout=timeout)
    return tab
