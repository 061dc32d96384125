"""The meeting-room sign-in page: through the test client, and in a real headless Chromium."""

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from models import Activity, Member, now_utc
from models.activity import NewActivity, create_activity, scene_for
from tests.cdp import Browser, find_chromium
from tests.local_servers import serve_in_thread


def live_activity(engine, secretary_id, **kw) -> Activity:
    """An activity whose sign-in is open now (the page and the webhook use the real clock)."""
    with Session(engine, expire_on_commit=False) as s:
        now = now_utc()
        return create_activity(s, s.get(Member, secretary_id), NewActivity(
            kind="主题党日", title=kw.pop("title", "学习<党章>"), starts_at=now + timedelta(minutes=10), **kw), now=now)


def test_page_shows_qr_code_and_count(engine, client, wechat_api, make_member, wx):
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    make_member("张三", openid="o-zhang")
    activity = live_activity(engine, secretary.id)
    assert client.get("/checkin/not-the-token").status_code == 404

    page = client.get(f"/checkin/{activity.token}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "学习&lt;党章&gt;" in html and activity.code in html
    assert 'src="data:image/svg+xml;base64,' in html
    assert 'id="count">0<' in html
    # The WeChat QR code is made once for the scene in force, and kept.
    calls = wechat_api.calls_to("/cgi-bin/qrcode/create")
    assert len(calls) == 1
    assert calls[0].body["action_name"] == "QR_STR_SCENE"
    assert calls[0].body["action_info"]["scene"]["scene_str"] == f"checkin:{activity.id}:{activity.code}"
    first = client.get(f"/checkin/{activity.token}/status").get_json()
    assert len(wechat_api.calls_to("/cgi-bin/qrcode/create")) == 1
    assert (first["count"], first["code"], first["expected"]) == (0, activity.code, 2)

    # Scanning the code through the real webhook signs in; the count follows.
    reply = wx.event("o-zhang", "SCAN", calls[0].body["action_info"]["scene"]["scene_str"])
    assert "签到成功" in reply.content
    assert client.get(f"/checkin/{activity.token}/status").get_json()["count"] == 1
    # Typing the code works alike.
    assert "签到成功" in wx.text("o-sec", f"签到 {activity.code}").content
    assert client.get(f"/checkin/{activity.token}/status").get_json()["count"] == 2


def test_following_by_scanning_the_code_signs_in(engine, wx, make_member):
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    make_member("张三", openid="o-zhang")  # bound before, following again by scanning
    activity = live_activity(engine, secretary.id)
    with Session(engine) as s:
        scene = scene_for(s.get(Activity, activity.id), now_utc())
    reply = wx.event("o-zhang", "subscribe", scene).content
    assert "欢迎回到连心" in reply and "签到成功" in reply
    assert "请先绑定" in wx.event("o-new", "subscribe", scene).content


def test_page_falls_back_to_the_code_when_wechat_fails(engine, client, wechat_api, make_member):
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    activity = live_activity(engine, secretary.id, rotating=True)
    wechat_api.fail("/cgi-bin/qrcode/create", 45009, times=5)
    page = client.get(f"/checkin/{activity.token}")
    assert page.status_code == 200 and "data:image/svg+xml" in page.get_data(as_text=True)
    with Session(engine) as s:
        assert s.get(Activity, activity.id).qr_url is None


def test_the_secretary_gets_the_page_link(engine, wx, make_member, app):
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    make_member("张三", openid="o-zhang")
    activity = live_activity(engine, secretary.id)
    assert f"/checkin/{activity.token}" in wx.text("o-sec", f"签到页 #{activity.id}").content
    assert activity.token not in wx.text("o-zhang", f"活动 #{activity.id}").content
    assert activity.token not in wx.text("o-zhang", f"签到页 #{activity.id}").content


@pytest.fixture
def live_server(app_factory):
    with serve_in_thread(app_factory(CHECKIN_PAGE_POLL_SECONDS=0.3)) as base_url:
        yield base_url


def test_meeting_room_page_in_headless_chromium(engine, live_server, make_member, wechat_api):
    binary = find_chromium()
    if binary is None:
        pytest.skip("NO CHROMIUM BINARY FOUND: the meeting-room page was NOT checked in a real browser "
                    "(install it with `apt-get install -y chromium`)")
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    zhang = make_member("张三", openid="o-zhang")
    activity = live_activity(engine, secretary.id, title="主题党日活动")
    browser = Browser(binary)
    try:
        tab = browser.open(f"{live_server}/checkin/{activity.token}")
        # The QR image is shown: loaded, decoded and drawn with a real size.
        size = browser.wait_for(tab, "(() => { const i = document.getElementById('qr');"
                                     " const w = i ? i.getBoundingClientRect().width : 0;"
                                     " return i && i.complete && i.naturalWidth > 0 && w > 100 ? w : 0 })()")
        assert size > 100
        assert browser.evaluate(tab, "document.getElementById('code').textContent") == activity.code
        assert browser.evaluate(tab, "document.getElementById('count').textContent") == "0"
        assert browser.evaluate(tab, "document.title").startswith("签到")

        # A member signs in while the page is open: the count updates by itself.
        with Session(engine, expire_on_commit=False) as s:
            from models.activity import check_in_by_scene

            scene = scene_for(s.get(Activity, activity.id), now_utc())
            check_in_by_scene(s, s.get(Member, zhang.id), scene.split(":", 1)[1], now=now_utc())
        assert browser.wait_for(tab, "document.getElementById('count').textContent === '1'")
    finally:
        browser.close()


def test_qr_codes_are_made_ahead_by_the_scheduler(engine, app, wechat_api, make_member, client):
    from sqlalchemy.orm import sessionmaker

    from scheduler.activity_jobs import prepare_sign_in_qr_codes
    from scheduler.wechat_api import official_account_client

    secretary = make_member("书记甲", role="书记", openid="o-sec")
    activity = live_activity(engine, secretary.id)
    live_activity(engine, secretary.id, title="轮换", rotating=True)
    api = official_account_client(app.extensions["settings"], app.extensions["redis"])
    factory = sessionmaker(engine)
    assert prepare_sign_in_qr_codes(factory, api, now_utc()) == 1  # rotating codes are left to the page
    assert prepare_sign_in_qr_codes(factory, api, now_utc()) == 0
    assert len(wechat_api.calls_to("/cgi-bin/qrcode/create")) == 1
    client.get(f"/checkin/{activity.token}")  # the page reuses it
    assert len(wechat_api.calls_to("/cgi-bin/qrcode/create")) == 1
