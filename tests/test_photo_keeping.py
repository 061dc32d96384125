"""Photos sent in chat are kept before WeChat drops them (3 days): the scheduler's `photos` job
fetches each from the fake WeChat over HTTP (`media/get`), writes it to the photo folder and points
the row at the copy; media WeChat no longer has is marked gone and never asked for again; a call
that fails is tried again on the next run."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Member, RecordPhoto, WishPhoto, now_utc
from models.activity import NewActivity, create_activity
from models.photos import read_photo
from tests.conftest import BRANCH

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x02" * 64
MEDIA_GET = "/cgi-bin/media/get"


@pytest.fixture
def fulfilled_wish(wx, make_member):
    """Wish #1, fulfilled by 王五 (o-wang): the photos he sends now are attached to it."""
    make_member("书记甲", role="书记", openid="o-sec")
    make_member("王五", org=BRANCH, openid="o-wang")
    assert "已发布心愿 #1" in wx.text("o-sec", "发布心愿 修水龙头 东湖小区3栋").content
    assert "认领成功" in wx.text("o-wang", "认领 #1").content
    assert "已提交" in wx.text("o-wang", "完成 #1 修好了").content
    return 1


def send_photo(wx, openid: str, media_id: str, msg_id: int) -> str:
    return wx.send({"ToUserName": "gh", "FromUserName": openid, "CreateTime": int(time.time()), "MsgType": "image",
                    "PicUrl": "http://example.com/p.jpg", "MediaId": media_id, "MsgId": msg_id}).content


def test_a_photo_sent_in_chat_is_kept_and_served_after_wechat_forgot_it(
        wx, fulfilled_wish, wechat_api, make_scheduler, session, tmp_path, api_client, api_login):
    media_id = wechat_api.add_media("image", "proof.png", "image/png", PNG)
    assert "照片已附在心愿 #1" in send_photo(wx, "o-wang", media_id, 7001)
    scheduler = make_scheduler(WISH_PHOTO_DIR=str(tmp_path))
    now = now_utc()
    claimer = api_login(session.scalars(select(Member).where(Member.openid == "o-wang")).one())
    assert [p["source"] for p in api_client.get("/api/v1/wishes/1", headers=claimer).get_json()["photos"]] == ["wechat"]

    assert scheduler.run_due(now).ran["photos"] == "1 photos kept, 0 gone, 0 left for the next run"
    photo = session.scalars(select(WishPhoto)).one()
    assert photo.media_id.startswith("upload:") and read_photo(str(tmp_path), photo.media_id) == (PNG, "image/png")
    assert [c.params["media_id"] for c in wechat_api.calls_to(MEDIA_GET)] == [media_id]

    # WeChat drops it; the copy is served (the API, as the wish's claimer), and nobody asks WeChat again.
    wechat_api.media.clear()
    api_client.application.extensions["settings"] = api_client.application.extensions["settings"].replace(
        WISH_PHOTO_DIR=str(tmp_path))
    assert [p["source"] for p in api_client.get("/api/v1/wishes/1", headers=claimer).get_json()["photos"]] == ["upload"]
    shown = api_client.get(f"/api/v1/wishes/1/photos/{photo.id}", headers=claimer)
    assert shown.status_code == 200 and shown.data == PNG and shown.mimetype == "image/png"
    session.commit()  # api_login marked the member on this session too: its write ends (SQLite locks)
    assert scheduler.run_due(now + timedelta(minutes=5)).ran["photos"].startswith("0 photos kept, 0 gone")
    assert len(wechat_api.calls_to(MEDIA_GET)) == 1


def test_a_meeting_records_photo_is_kept_too(wx, make_member, wechat_api, make_scheduler, session, tmp_path):
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    start = now_utc() - timedelta(hours=2)
    meeting = NewActivity(kind="主题党日", title="学习党章", starts_at=start, place="党群服务中心")
    activity = create_activity(session, session.get(Member, secretary.id), meeting, now=start - timedelta(days=1))
    assert "已保存" in wx.text("o-sec", f"会议记录 #{activity.id} 集体学习党章").content
    media_id = wechat_api.add_media("image", "meeting.jpg", "image/jpeg", JPEG)
    assert "会议记录上，共 1 张" in send_photo(wx, "o-sec", media_id, 7002)

    assert make_scheduler(WISH_PHOTO_DIR=str(tmp_path)).run_due(now_utc()).ran["photos"].startswith("1 photos kept")
    photo = session.scalars(select(RecordPhoto)).one()
    assert read_photo(str(tmp_path), photo.media_id) == (JPEG, "image/jpeg")


def test_media_wechat_lost_or_no_image_is_marked_gone_and_a_failed_call_tried_again(
        fulfilled_wish, wechat_api, make_scheduler, session, tmp_path):
    wang = session.scalars(select(Member).where(Member.openid == "o-wang")).one()
    now = now_utc()
    text = wechat_api.add_media("image", "notes.txt", "text/plain", b"not a picture")
    busy = wechat_api.add_media("image", "later.png", "image/png", PNG)
    for media_id, at in (("MEDIA-EXPIRED", now), (text, now), (busy, now), ("MEDIA-OLD", now - timedelta(days=4))):
        session.add(WishPhoto(wish_id=fulfilled_wish, media_id=media_id, added_by_id=wang.id, at=at))
    session.commit()
    wechat_api.fail(MEDIA_GET, errcode=-1, times=2)  # the first two calls: a busy WeChat
    scheduler = make_scheduler(WISH_PHOTO_DIR=str(tmp_path))

    # Run 1: the first two calls fail (left for the next run), the third (busy's) works; the old one
    # is past WeChat's 3 days and marked gone without a call.
    assert scheduler.run_due(now).ran["photos"] == "1 photos kept, 1 gone, 2 left for the next run"
    # Run 2: MEDIA-EXPIRED is unknown to WeChat (40007), the text is no image: both gone.
    second = scheduler.run_due(now + timedelta(minutes=5)).ran["photos"]
    assert second == "0 photos kept, 2 gone, 0 left for the next run"
    session.expire_all()
    kept = {p.id: p.media_id for p in session.scalars(select(WishPhoto).order_by(WishPhoto.id))}
    assert list(kept.values())[0] == "gone:MEDIA-EXPIRED" and list(kept.values())[1] == f"gone:{text}"
    assert list(kept.values())[2].startswith("upload:") and list(kept.values())[3] == "gone:MEDIA-OLD"
    asked = [c.params["media_id"] for c in wechat_api.calls_to(MEDIA_GET)]
    assert "MEDIA-OLD" not in asked and asked.count("MEDIA-EXPIRED") == 2 and asked.count(busy) == 1

    # Run 3: nothing left to fetch, nothing asked.
    assert scheduler.run_due(now + timedelta(minutes=10)).ran["photos"].startswith("0 photos kept, 0 gone, 0 left")
    assert len(wechat_api.calls_to(MEDIA_GET)) == len(asked)


def test_without_an_app_secret_the_job_says_why_it_skips(make_scheduler):
    report = make_scheduler(WECHAT_APP_SECRET="").run_due(now_utc())
    assert report.ran["photos"].startswith("skipped: WECHAT_APP_SECRET is not set")
