"""Helpers of the console's browser tests (console2's pages): a live server of a test app, and a
headless Chromium signed in to the console by copying a Flask test client's session cookie (no
scan flow: that has its own tests)."""

import base64
from urllib.parse import urlsplit

from tests.cdp import Browser


def session_cookies(app, member, console_login) -> list[tuple[str, str]]:
    """The cookies of a test client of `app` signed in to the console as `member`."""
    client = app.test_client()
    console_login(client, member)
    assert client.get("/console/").status_code == 200  # signed in: the session is saved as it would be live
    return [(cookie.key, cookie.value) for cookie in client._cookies.values()]


def sign_in(browser: Browser, base_url: str, cookies: list[tuple[str, str]]) -> str:
    """Open a tab with the cookies set for `base_url`; return its session id."""
    tab = browser.open("about:blank")
    browser.send("Network.enable", session_id=tab)
    host = urlsplit(base_url).hostname
    for name, value in cookies:
        browser.send("Network.setCookie", {"name": name, "value": value, "domain": host, "path": "/",
                                           "httpOnly": True}, session_id=tab)
    return tab


def go(browser: Browser, tab: str, url: str, ready: str = "document.readyState === 'complete'") -> None:
    browser.send("Page.enable", session_id=tab)
    browser.send("Page.navigate", {"url": url}, session_id=tab)
    browser.wait_for(tab, f"location.href === {url!r} && ({ready})")


def set_width(browser: Browser, tab: str, width: int, height: int = 900) -> None:
    browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                        "mobile": width < 600}, session_id=tab)


def screenshot(browser: Browser, tab: str, path: str, width: int) -> None:
    """A PNG of the whole page at `width` CSS pixels, written to `path`."""
    set_width(browser, tab, width)
    height = browser.evaluate(tab, "Math.ceil(document.documentElement.scrollHeight)")
    set_width(browser, tab, width, min(int(height), 8000))
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session_id=tab)
    with open(path, "wb") as file:
        file.write(base64.b64decode(shot["data"]))


def fetch_bytes(browser: Browser, tab: str, url: str) -> tuple[int, str, bytes]:
    """GET `url` from inside the page (its cookies): status, content type, body."""
    script = (f"fetch({url!r}).then(async r => {{ const b = new Uint8Array(await r.arrayBuffer());"
              " let s = ''; for (const c of b) s += String.fromCharCode(c);"
              " return [r.status, r.headers.get('content-type'), btoa(s)]; })")
    result = browser.send("Runtime.evaluate", {"expression": script, "awaitPromise": True, "returnByValue": True},
                          tab)
    if "exceptionDetails" in result:
        raise AssertionError(f"fetch {url}: {result['exceptionDetails']}")
    status, kind, body = result["result"]["value"]
    return status, kind, base64.b64decode(body)


def upload(browser: Browser, tab: str, selector: str, path: str) -> None:
    """Put the file at `path` into the file input `selector`."""
    document = browser.send("DOM.getDocument", session_id=tab)
    node = browser.send("DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": selector},
                        session_id=tab)
    browser.send("DOM.setFileInputFiles", {"files": [path], "nodeId": node["nodeId"]}, session_id=tab)
