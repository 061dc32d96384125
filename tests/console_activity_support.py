"""Helpers of the console's activities and notices tests: a page's CSRF token, and a headless
Chromium signed in to the console by copying a Flask test client's session cookie."""

import re

from app.console.sessions import CONSOLE_PREFIX, COOKIE_NAME
from tests.cdp import Browser

_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client, path: str = "/console/activities") -> str:
    """The CSRF token of the console's session, read from a page (every page carries it)."""
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, "no csrf-token meta tag on the page"
    return match[1]


def post_form(client, path: str, data: dict, **kwargs):
    """POST a console form with the session's CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client), **data}, **kwargs)


def session_cookie(client, app) -> tuple[str, str, str]:
    """The (name, value, path) of the test client's console session cookie (after console_login and
    a page), to be set in the browser exactly as the app sets it."""
    client.get("/console/activities")
    name, path = COOKIE_NAME, CONSOLE_PREFIX
    cookie = client.get_cookie(name, path=path)
    assert cookie is not None, "the test client has no session cookie"
    return name, cookie.value, path


def signed_in_tab(browser: Browser, base_url: str, cookie: tuple[str, str, str], path: str) -> str:
    """A tab of `browser` carrying the console session cookie, opened at `path`."""
    tab = browser.open("about:blank")
    browser.send("Network.enable", {}, tab)
    name, value, cookie_path = cookie
    ok = browser.send("Network.setCookie", {"name": name, "value": value, "url": f"{base_url}{cookie_path}",
                                             "path": cookie_path, "httpOnly": True}, tab)
    assert ok.get("success", True)
    navigate(browser, tab, f"{base_url}{path}")
    return tab


def navigate(browser: Browser, tab: str, url: str) -> None:
    browser.send("Page.enable", {}, tab)
    browser.send("Page.navigate", {"url": url}, tab)
    wait_loaded(browser, tab, url)


def wait_loaded(browser: Browser, tab: str, url_part: str | None = None) -> None:
    expression = "document.readyState === 'complete'"
    if url_part:
        expression += f" && location.href.indexOf({url_part!r}) >= 0"
    browser.wait_for(tab, expression)


def screenshot(browser: Browser, tab: str, path: str, width: int) -> None:
    """Save a full-page PNG of the tab at `width` CSS pixels."""
    import base64

    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}, tab)
    height = browser.evaluate(tab, "Math.ceil(document.documentElement.scrollHeight)") or 800
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": int(height), "deviceScaleFactor": 1, "mobile": width < 600}, tab)
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, tab)
    with open(path, "wb") as out:
        out.write(base64.b64decode(shot["data"]))
