"""The console's wishes and points pages in a real headless Chromium at 360 px (a phone, or WeChat's
browser): a proposal approved and a fulfilment confirmed by clicking in the queues, then a manual
award requested by one secretary and approved by another. Screenshots go to /tmp."""

import json
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Member
from models.points import AWARD_APPROVED, ManualAward, balance
from models.wishes import DONE, OPEN, Wish
from tests.console_activity_support import navigate, screenshot, session_cookie, signed_in_tab, wait_loaded
from tests.local_servers import serve_in_thread
from tests.test_console_wishes import fulfilled, proposed

SHOTS = "/tmp/lianxin-console-wishes"


def click(browser, tab, element_id: str) -> None:
    assert browser.evaluate(tab, f"(() => {{ const e = document.getElementById({element_id!r});"
                                 " if (!e) return false; e.click(); return true })()"), element_id


def fill(browser, tab, values: dict) -> None:
    for field, value in values.items():
        assert browser.evaluate(tab, f"(() => {{ const e = document.getElementById({json.dumps(field)});"
                                     f" if (!e) return false; e.value = {json.dumps(value)}; return true }})()"), field


def after_click(browser, tab, element_id: str, words: str) -> None:
    """Click, then wait for the page that follows to say `words`."""
    browser.evaluate(tab, "document.body.dataset.before = '1'")
    click(browser, tab, element_id)
    browser.wait_for(tab, f"!document.body.dataset.before && document.readyState === 'complete'"
                          f" && document.body.innerText.includes({json.dumps(words)})")


def fits(browser, tab) -> bool:
    return browser.evaluate(tab, "document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_review_confirm_and_a_second_managers_approval_at_360px(app_factory, engine, cast, console_login, browser):
    os.makedirs(SHOTS, exist_ok=True)
    people = cast(sec=cast.sec.bound(), peer=cast.peer.bound(), wang=cast.wang.bound(), zhao=cast.zhao.bound())
    to_review = proposed(engine, people["zhao"])
    to_confirm = fulfilled(engine, people["sec"], people["wang"])
    app = app_factory()
    cookies = {}
    for key in ("sec", "peer"):
        client = app.test_client()
        console_login(client, people[key])
        cookies[key] = session_cookie(client, app)
    with serve_in_thread(app) as base:
        tab = signed_in_tab(browser, base, cookies["sec"], "/console/wishes")
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True}, tab)
        navigate(browser, tab, f"{base}/console/wishes")
        assert browser.evaluate(tab, "document.title") == "心愿 · 连心"
        screenshot(browser, tab, f"{SHOTS}/wishes-360.png", 360)
        assert fits(browser, tab)

        navigate(browser, tab, f"{base}/console/wishes/{to_review}")
        assert browser.evaluate(tab, "!!document.getElementById('reject-reason')")
        screenshot(browser, tab, f"{SHOTS}/wish-review-360.png", 360)
        assert fits(browser, tab)
        navigate(browser, tab, f"{base}/console/wishes?again=1")
        after_click(browser, tab, f"approve-{to_review}", f"心愿 #{to_review}「")
        assert "已通过审核" in browser.evaluate(tab, "document.body.innerText")
        after_click(browser, tab, f"confirm-button-{to_confirm}", f"已确认心愿 #{to_confirm}「陪老人买菜」完成")
        with Session(engine) as s:
            assert s.get(Wish, to_review).status == OPEN and s.get(Wish, to_confirm).status == DONE
            assert balance(s, people["wang"].id) == 10
        assert browser.evaluate(tab, "document.getElementById('review-total').textContent") == "0"
        navigate(browser, tab, f"{base}/console/wishes/{to_confirm}")
        screenshot(browser, tab, f"{SHOTS}/wish-detail-360.png", 360)
        assert fits(browser, tab)

        navigate(browser, tab, f"{base}/console/points")
        fill(browser, tab, {"f-member_id": str(people["wang"].id), "f-amount": "8", "f-reason": "参加社区义务巡逻"})
        after_click(browser, tab, "request-button", "已提交积分申请 #")
        with Session(engine) as s:
            award = s.scalars(select(ManualAward)).one()
            assert (award.member_id, award.amount, award.requested_by_id) == (people["wang"].id, 8, people["sec"].id)
        assert browser.evaluate(tab, f"document.getElementById('approve-{award.id}')") is None  # not hers to approve

        peer_tab = signed_in_tab(browser, base, cookies["peer"], "/console/points")
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True}, peer_tab)
        navigate(browser, peer_tab, f"{base}/console/points?again=1")
        wait_loaded(browser, peer_tab, "/console/points")
        assert "钱副书记" in browser.evaluate(peer_tab, "document.querySelector('nav').textContent")
        screenshot(browser, peer_tab, f"{SHOTS}/points-360.png", 360)
        assert fits(browser, peer_tab)
        after_click(browser, peer_tab, f"approve-{award.id}", f"积分申请 #{award.id}（王志强 +8 分）已批准")
        with Session(engine) as s:
            assert s.get(ManualAward, award.id).status == AWARD_APPROVED
            assert s.get(ManualAward, award.id).decided_by_id == people["peer"].id
            assert balance(s, people["wang"].id) == 18
            assert s.get(Member, people["wang"].id).name == "王志强"
