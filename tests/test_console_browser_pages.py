"""console2's pages in a real headless Chromium: the dashboard with its charts (at 360 and 1280 px),
the import preview flagging a near-duplicate organization with its tick box, an export downloaded
and opened with openpyxl."""

import io
import os

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy.orm import Session

from app.console.errors import WORDS
from models import Member
from models.roster import COLUMNS
from tests.conftest import BRANCH, COMMUNITY, Person
from tests.console_pages_support import (
    fetch_bytes,
    go,
    screenshot,
    session_cookies,
    set_width,
    sign_in,
    upload,
)
from tests.local_servers import serve_in_thread

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "/tmp")


@pytest.fixture
def people(cast):
    return cast(boss=Person("陈书记", "13800000010", org=COMMUNITY, role="书记", wechat="o-boss").bound(),
                wang=cast.wang.bound().but(kind="在职党员"), zhao=cast.zhao)


def test_dashboard_import_preview_and_export(app, browser, people, console_login, tmp_path):
    cookies = session_cookies(app, people["boss"], console_login)
    with serve_in_thread(app) as base:
        tab = sign_in(browser, base, cookies)
        set_width(browser, tab, 1280)
        go(browser, tab, f"{base}/console/")
        assert browser.evaluate(tab, "document.title") == "首页 · 连心"
        charts = browser.evaluate(tab, "[...document.querySelectorAll('svg.chart')]"
                                       ".map(s => Math.round(s.getBoundingClientRect().width))")
        assert len(charts) == 3 and all(width > 300 for width in charts), charts  # drawn, with a real size
        assert browser.evaluate(tab, "document.querySelector('#units table') !== null")
        screenshot(browser, tab, f"{SHOTS}/console-dashboard-1280.png", 1280)
        set_width(browser, tab, 360)
        go(browser, tab, f"{base}/console/")
        # 360 px: nothing wider than the screen (tables scroll inside their box), the menu folds away.
        assert browser.evaluate(tab, "document.documentElement.scrollWidth") <= 360
        assert browser.evaluate(tab, "getComputedStyle(document.querySelector('.navbar-toggler')).display") != "none"
        assert browser.evaluate(tab, "parseFloat(getComputedStyle(document.body).fontSize)") >= 18
        screenshot(browser, tab, f"{SHOTS}/console-dashboard-360.png", 360)

        set_width(browser, tab, 1280)
        book = Workbook()
        book.active.append(list(COLUMNS[:4]))
        book.active.append(["新党员", "13900000101", f"{COMMUNITY}/东湖社区第一党支布", "直管党员"])
        roster = tmp_path / "名册.xlsx"
        book.save(roster)
        go(browser, tab, f"{base}/console/members/import")
        upload(browser, tab, "#f-file", str(roster))
        browser.evaluate(tab, "document.querySelector('#f-file').form.submit()")
        browser.wait_for(tab, "document.querySelector('#preview') !== null")
        flagged = browser.evaluate(tab, "document.querySelector('#new-orgs .typo').textContent.trim()")
        assert flagged == "东湖社区第一党支布 — 是否为 东湖社区第一党支部？"
        assert browser.evaluate(tab, "document.querySelector('#f-create_orgs').type") == "checkbox"
        assert browser.evaluate(tab, "document.querySelector('#f-create_orgs').checked") is False

        go(browser, tab, f"{base}/console/members")
        link = browser.evaluate(tab, "document.querySelector('#export-link').href")
        status, kind, body = fetch_bytes(browser, tab, link)
        assert status == 200 and kind.startswith("application/vnd.openxmlformats")
        rows = list(load_workbook(io.BytesIO(body)).active.values)
        assert rows[0] == COLUMNS and {"王志强", "赵秀英", "陈书记"} <= {row[0] for row in rows[1:]}
        assert all(row[2].startswith(COMMUNITY) for row in rows[1:]) and BRANCH in {row[2] for row in rows[1:]}


def test_a_post_without_its_token_and_another_communitys_member_are_refused_in_chinese(app, browser, cast,
                                                                                      console_login, engine):
    people = cast(sec=cast.sec.bound(), wang=cast.wang, sun=cast.sun)  # 孙立: another community's member
    cookies = session_cookies(app, people["sec"], console_login)
    with serve_in_thread(app) as base:
        tab = sign_in(browser, base, cookies)
        go(browser, tab, f"{base}/console/members/{people['wang'].id}")
        assert browser.evaluate(tab, "document.querySelector('input[name=csrf_token]') !== null")
        # The page's own form, sent without its token (as a forged form from another site would be).
        answer = browser.send("Runtime.evaluate", {"expression": (
            "(() => { const form = new FormData(document.querySelector('form[method=post] input[name=name]').form);"
            " form.delete('csrf_token'); form.set('name', '王志刚');"
            f" return fetch({base + '/console/members/' + str(people['wang'].id)!r}, {{method: 'POST', body: form}})"
            ".then(async r => [r.status, await r.text()]); })()"), "awaitPromise": True, "returnByValue": True},
            tab)["result"]["value"]
        assert answer[0] == 400 and "页面已过期" in answer[1]
        status, _, _ = fetch_bytes(browser, tab, f"{base}/console/members/{people['sun'].id}")
        assert status in (403, 404)
        go(browser, tab, f"{base}/console/members/{people['sun'].id}")
        assert browser.evaluate(tab, "document.title") == f"{WORDS[status][0]} · 连心"
        assert "孙立" not in browser.evaluate(tab, "document.body.innerText")
    with Session(engine) as s:
        assert s.get(Member, people["wang"].id).name == "王志强"  # nothing changed
