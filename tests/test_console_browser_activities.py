"""The console's activities and notices pages in a real headless Chromium: create an activity
through the form, cancel it (the registered member's inbox tells them), send a notice and see its
receipt page count a read. Screenshots at 360 px and 1280 px go to /tmp."""

import json
from datetime import timedelta

from sqlalchemy.orm import Session

from models import Member, now_utc
from models.activity import Activity, register
from models.outbox import list_inbox, open_message
from tests.console_activity_support import navigate, screenshot, session_cookie, signed_in_tab, wait_loaded
from tests.local_servers import serve_in_thread
from tests.test_console_activities import local_input

SHOTS = "/tmp/lianxin-console3"


def fill(browser, tab, values: dict) -> None:
    for field, value in values.items():
        assert browser.evaluate(tab, f"(() => {{ const e = document.getElementById({json.dumps(field)});"
                                     f" if (!e) return false; e.value = {json.dumps(value)}; return true }})()")


def click(browser, tab, element_id: str) -> None:
    assert browser.evaluate(tab, f"(() => {{ const e = document.getElementById({element_id!r});"
                                 " if (!e) return false; e.click(); return true })()")


def text_of(browser, tab, element_id: str) -> str:
    return browser.evaluate(tab, f"(document.getElementById({element_id!r}) || {{}}).textContent") or ""


def test_create_cancel_and_a_notice_receipt_in_chromium(app_factory, engine, cast, console_login, browser, tmp_path):
    import os

    os.makedirs(SHOTS, exist_ok=True)
    people = cast(sec=cast.sec.bound(), wang=cast.wang.bound(), zhao=cast.zhao.bound())
    app = app_factory()
    client = app.test_client()
    console_login(client, people["sec"])
    cookie = session_cookie(client, app)
    with serve_in_thread(app) as base:
        tab = signed_in_tab(browser, base, cookie, "/console/activities/new")
        assert browser.evaluate(tab, "document.title").startswith("发布活动")
        fill(browser, tab, {"title": "浏览器里发布的党日", "place": "社区会议室",
                            "starts_at": local_input(now_utc() + timedelta(days=2))})
        assert browser.evaluate(tab, "(() => { document.getElementById('registration').checked = true; return 1 })()")
        click(browser, tab, "submit")
        wait_loaded(browser, tab, "/console/activities/")
        browser.wait_for(tab, "!!document.getElementById('screen-link')")
        activity_id = int(browser.evaluate(tab, "location.pathname.split('/').pop()"))
        with Session(engine) as s:
            activity = s.get(Activity, activity_id)
            assert activity.title == "浏览器里发布的党日" and activity.registration
            register(s, activity, s.get(Member, people["wang"].id), now_utc())
        assert "/checkin/" in browser.evaluate(tab, "document.getElementById('screen-link').href")
        navigate(browser, tab, f"{base}/console/activities/{activity_id}")
        for width in (360, 1280):
            screenshot(browser, tab, f"{SHOTS}/activity-{width}.png", width)
            # Nothing sticks out sideways at this width.
            assert browser.evaluate(tab, "document.documentElement.scrollWidth <= window.innerWidth + 1")

        fill(browser, tab, {"reason": "天气原因"})
        click(browser, tab, "cancel-button")
        browser.wait_for(tab, "location.pathname === '/console/activities' && document.readyState === 'complete'")
        assert "已通知 1 人" in browser.evaluate(tab, "document.body.innerText")
        with Session(engine) as s:
            told = list_inbox(s, people["wang"].id)[0]
            assert told.title == "主题党日取消" and "天气原因" in told.body
            assert s.get(Activity, activity_id).cancelled

        navigate(browser, tab, f"{base}/console/notices/new")
        fill(browser, tab, {"title": "浏览器通知", "body": "请大家按时参加组织生活。"})
        click(browser, tab, "preview-button")
        browser.wait_for(tab, "!!document.getElementById('recipient-count')")
        assert "将发送给 2 人" in text_of(browser, tab, "recipient-count")
        screenshot(browser, tab, f"{SHOTS}/compose-360.png", 360)
        click(browser, tab, "send-button")
        browser.wait_for(tab, "!!document.getElementById('read-count')")
        notice_path = browser.evaluate(tab, "location.pathname")
        assert text_of(browser, tab, "total") == "2" and text_of(browser, tab, "read-count") == "0"
        with Session(engine) as s:
            message = list_inbox(s, people["zhao"].id)[0]
            open_message(s, people["zhao"].id, message.id)
        navigate(browser, tab, f"{base}{notice_path}?again=1")
        assert text_of(browser, tab, "read-count") == "1" and text_of(browser, tab, "unread-count") == "1"
        assert "赵秀英" in text_of(browser, tab, "read-names") and "王志强" in text_of(browser, tab, "unread-names")
        for width in (360, 1280):
            screenshot(browser, tab, f"{SHOTS}/receipt-{width}.png", width)
            assert browser.evaluate(tab, "document.documentElement.scrollWidth <= window.innerWidth + 1")
