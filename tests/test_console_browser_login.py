"""Signing in to the console in a real headless Chromium: the login page shows its QR code, the
member scans it (the signed SCAN event WeChat would post to /wechat, as the simulator sends it),
and the page enters the console by itself; a plain member's scan leaves it on the login page with
the refusal shown. Screenshots at 360 px and 1280 px go to /tmp."""

import base64

import pytest

from tests.console_login_support import browser_login, open_login_page, scan
from tests.local_servers import serve_in_thread


@pytest.fixture
def server(app_factory):
    with serve_in_thread(app_factory(CONSOLE_LOGIN_POLL_SECONDS=1)) as base:
        yield base


def screenshot(browser, tab, width: int, path: str) -> None:
    browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                        "mobile": width < 600}, tab)
    browser.wait_for(tab, "document.readyState === 'complete'")
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, tab)
    with open(path, "wb") as file:
        file.write(base64.b64decode(shot["data"]))


def test_a_secretary_scans_and_the_page_enters_by_itself(browser, server, cast):
    cast(sec=cast.sec.bound())
    tab, qr = open_login_page(browser, server)
    assert browser.evaluate(tab, "document.title").startswith("登录")
    width = browser.evaluate(tab, "document.getElementById('login-qr').getBoundingClientRect().width")
    assert width >= 200  # drawn, at a size a phone can scan
    screenshot(browser, tab, 360, "/tmp/console-login-360.png")
    screenshot(browser, tab, 1280, "/tmp/console-login-1280.png")

    reply = scan(server, "o-sec", qr)
    assert "已登录连心管理后台" in reply.content
    # Nobody touches the page: it notices and enters the dashboard.
    browser.wait_for(tab, "location.pathname === '/console/' && document.readyState === 'complete'", timeout=10)
    assert "李红梅" in browser.evaluate(tab, "document.body.innerText")
    # The session cookie is not readable by scripts (HttpOnly).
    assert "lx_console" not in browser.evaluate(tab, "document.cookie")


def test_a_plain_members_scan_leaves_the_page_on_login_with_the_refusal(browser, server, cast):
    cast(sec=cast.sec.bound(), wang=cast.wang.bound())
    tab, qr = open_login_page(browser, server)
    reply = scan(server, "o-wang", qr)
    assert "没有访问权限" in reply.content and "已登录" not in reply.content
    shown = browser.wait_for(tab, "(() => { const m = document.getElementById('login-message').textContent;"
                                  " return m.includes('没有连心管理后台的访问权限') ? m : '' })()", timeout=10)
    assert "请用书记或管理员的微信扫码" in shown
    screenshot(browser, tab, 360, "/tmp/console-login-refused-360.png")
    assert browser.evaluate(tab, "location.pathname") == "/console/login"
    # Then the secretary scans the same code: in.
    scan(server, "o-sec", qr)
    browser.wait_for(tab, "location.pathname === '/console/'", timeout=10)


def test_browser_login_helper_signs_a_page_in(browser, server, cast):
    cast(admin=cast.admin.bound())
    tab = browser_login(browser, server, "o-admin")
    assert "张建国" in browser.evaluate(tab, "document.body.textContent")  # in the folded menu at this width
    # Signed out from that page (the form's CSRF token is the page's own): back on the login page.
    browser.evaluate(tab, "document.querySelector('form[action$=\"/console/logout\"]').submit()")
    browser.wait_for(tab, "location.pathname === '/console/login' && document.readyState === 'complete'")
    assert "您已退出登录" in browser.evaluate(tab, "document.body.innerText")
