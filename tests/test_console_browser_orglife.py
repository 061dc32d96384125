"""The console's 组织生活 pages in a real headless Chromium at 360 px: approve a leave request from
the queue (the member's inbox tells them) and write a meeting record through its form; the rhythm
table fits the phone's width (it scrolls inside itself). Screenshots go to /tmp."""

import os
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import MeetingRecord, Member, now_utc
from models.activity import Activity, LeaveRequest
from models.outbox import list_inbox
from tests.console_activity_support import navigate, screenshot, session_cookie, signed_in_tab, wait_loaded
from tests.local_servers import serve_in_thread
from tests.test_console_browser_activities import click, fill, text_of
from tests.test_console_orglife import LAST_YEAR, NEXT_YEAR, ask_leave, held, local, publish

SHOTS = "/tmp/lianxin-console-orglife"
FITS = "document.documentElement.scrollWidth <= window.innerWidth + 1"  # nothing sticks out sideways


def test_approve_a_leave_and_write_a_record_in_chromium_at_360_px(app_factory, engine, cast, console_login,
                                                                  browser):  # noqa: F811
    os.makedirs(SHOTS, exist_ok=True)
    people = cast(sec=cast.sec.bound(), wang=cast.wang.bound(), zhao=cast.zhao.bound())
    coming = publish(engine, people["sec"], local(NEXT_YEAR, 3, 6), title="浏览器里的党日")
    ask_leave(engine, coming, people["wang"], "在外地出差")
    ask_leave(engine, coming, people["zhao"], "身体不适，需要去医院复查")
    past = held(engine, people)
    app = app_factory()
    client = app.test_client()
    console_login(client, people["sec"])
    cookie = session_cookie(client, app)
    with serve_in_thread(app) as base:
        tab = signed_in_tab(browser, base, cookie, "/console/orglife/leaves")
        screenshot(browser, tab, f"{SHOTS}/leaves-360.png", 360)
        assert browser.evaluate(tab, FITS)
        assert text_of(browser, tab, "pending-count") == "2"
        with Session(engine) as s:
            leave_id = s.scalars(select(LeaveRequest.id).where(LeaveRequest.activity_id == coming,
                                                               LeaveRequest.member_id == people["wang"].id)).one()
        click(browser, tab, f"approve-{leave_id}")
        browser.wait_for(tab, "document.getElementById('pending-count').textContent === '1'")
        assert "王志强 对活动" in browser.evaluate(tab, "document.body.innerText")
        with Session(engine) as s:
            assert s.get(LeaveRequest, leave_id).status == "approved"
            assert "请假已批准" in list_inbox(s, people["wang"].id)[0].body

        navigate(browser, tab, f"{base}/console/activities/{coming}")  # the activity's own page lists them too
        assert "已准假" in text_of(browser, tab, "leaves") and "身体不适" in text_of(browser, tab, "leaves")
        screenshot(browser, tab, f"{SHOTS}/activity-leaves-360.png", 360)
        assert browser.evaluate(tab, FITS)

        navigate(browser, tab, f"{base}/console/orglife/records/{past}")
        assert text_of(browser, tab, "came") == "1" and text_of(browser, tab, "leave-names") == "赵秀英"
        fill(browser, tab, {"f-chair": "李红梅", "f-content": "集体学习党章第一章\n交流发言",
                            "f-decisions": "下月开展志愿服务"})
        click(browser, tab, "record-submit")
        browser.wait_for(tab, "!!document.getElementById('record') && document.readyState === 'complete'")
        assert "集体学习党章第一章" in text_of(browser, tab, "record-content")
        screenshot(browser, tab, f"{SHOTS}/record-360.png", 360)
        assert browser.evaluate(tab, FITS)
        with Session(engine) as s:
            record = s.scalars(select(MeetingRecord)).one()
            assert (record.chair, record.content, record.decisions) == (
                "李红梅", "集体学习党章第一章\n交流发言", "下月开展志愿服务")
            assert record.activity_id == past and s.get(Activity, past).starts_at < now_utc() - timedelta(days=1)
            assert s.get(Member, people["sec"].id).name == record.recorder

        navigate(browser, tab, f"{base}/console/orglife?year={LAST_YEAR}")
        wait_loaded(browser, tab)
        screenshot(browser, tab, f"{SHOTS}/rhythm-360.png", 360)
        assert browser.evaluate(tab, FITS)
        assert "出勤33%，有记录" in text_of(browser, tab, "rhythm")
