"""The router by raw MsgType/Event: unknown events get no text, unknown message types a hint; voice
by its recognised text; codes scanned with the menu's scanner; control characters refused; Latin
keywords in any case. Through the signed webhook unless the webhook cannot carry the input."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.simulator import build_xml, sign
from handlers import Incoming, build_router
from handlers.router import control_hint
from models import CheckIn, HandledMessage, Member, Wish, WishPhoto
from models.activity import NewActivity, create_activity, scene_for
from tests.conftest import BRANCH, TOKEN


@pytest.fixture
def member(make_member):
    return make_member("张三", org=BRANCH, openid="o-zhang")


def _send_raw(client, wx, xml: str):
    # A fresh nonce per push, as WeChat sends: a (timestamp, nonce) seen with another body is a replay.
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    params = {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    response = client.post("/wechat", query_string=params, data=xml.encode(), content_type="text/xml")
    return wx.read_reply(response.status_code, response.get_data(as_text=True))


def _scan(client, wx, openid, event, result, create_time=None):
    fields = wx.event_fields(openid, event, "MENU_SCAN", create_time=create_time)
    info = build_xml({"ScanType": "qrcode", "ScanResult": result}).removeprefix("<xml>").removesuffix("</xml>")
    return _send_raw(client, wx, build_xml(fields).replace("</xml>", f"<ScanCodeInfo>{info}</ScanCodeInfo></xml>"))


# Events and message types by their raw names ---------------------------------------------------
@pytest.mark.parametrize("event", ["PUBLISHJOBFINISH", "user_enter_tempsession", "card_pass_check",
                                   "user_get_card", "poi_check_notify", "subscribe_msg_popup_event",
                                   "TEMPLATESENDJOBFINISH", "VIEW", "something_new"])
def test_unknown_events_get_success_not_a_hint(wx, event):
    reply = wx.event("o1", event, "k", Status="success")
    assert reply.status == 200 and reply.raw == "success"


@pytest.mark.parametrize("msg_type", ["video", "shortvideo", "link", "file", "location", "something_new"])
def test_unknown_message_types_get_a_chinese_hint(wx, msg_type):
    reply = wx.send({"ToUserName": "gh", "FromUserName": "o1", "CreateTime": int(time.time()),
                     "MsgType": msg_type, "MediaId": "m1", "Title": "t", "MsgId": 4242})
    assert reply.status == 200 and "暂时只能处理文字指令" in reply.content


# Voice ---------------------------------------------------------------------------------------------
def _voice(wx, openid, recognition, msg_id):
    fields = {"ToUserName": "gh", "FromUserName": openid, "CreateTime": int(time.time()), "MsgType": "voice",
              "MediaId": "voice-1", "Format": "amr", "MsgId": msg_id}
    if recognition is not None:
        fields["Recognition"] = recognition
    return wx.send(fields)


def test_voice_is_handled_as_its_recognised_text(wx, member, session):
    assert "可用指令" in _voice(wx, "o-zhang", "帮助。", 1).content
    assert "可用指令" in _voice(wx, "o-zhang", "Help!", 2).content
    fields_reply = _voice(wx, "o-zhang", "许愿家里的灯坏了希望有人帮忙修一下！", 3)
    assert "已提交心愿 #1「家里的灯坏了希望有人帮忙修一下」" in fields_reply.content
    assert session.scalar(select(func.count(Wish.id))) == 1


def test_voice_without_recognition_asks_to_type(wx):
    for recognition in (None, "", "。"):
        reply = _voice(wx, "o1", recognition, 10)
        assert "没能识别这条语音" in reply.content and "帮助" in reply.content


# Codes scanned with the menu's scanner ----------------------------------------------------------
# Events are told apart by sender + CreateTime + event: each scan below is another second.
def test_scancode_waitmsg_always_answers(client, wx):
    t = int(time.time())
    assert "可用指令" in _scan(client, wx, "o1", "scancode_waitmsg", "帮助", t).content
    other = _scan(client, wx, "o1", "scancode_waitmsg", "https://example.com/x?y=1", t - 1)
    assert "已收到扫码内容：https://example.com/x?y=1" in other.content and "不是本公众号的指令" in other.content
    assert "没有读到" in _scan(client, wx, "o1", "scancode_waitmsg", "", t - 2).content


def test_scancode_push_answers_only_a_command_or_scene(client, wx):
    t = int(time.time())
    assert _scan(client, wx, "o1", "scancode_push", "https://example.com/x", t).raw == "success"
    assert "可用指令" in _scan(client, wx, "o1", "scancode_push", "HELP", t - 1).content


def test_scanned_sign_in_scene_and_sign_in_text_sign_in_once(client, wx, make_member, member, session):
    secretary = make_member("书记甲", role="书记", openid="o-sec")
    li = make_member("李四", org=BRANCH, openid="o-li")
    now = datetime.now(UTC)
    activity = create_activity(session, session.get(Member, secretary.id), NewActivity(kind="主题党日", title="学习",
                               starts_at=now + timedelta(minutes=10)), now=now)
    scene = scene_for(activity, now)
    when = int(time.time())
    first = _scan(client, wx, "o-zhang", "scancode_waitmsg", scene, create_time=when)
    assert "签到成功" in first.content
    # WeChat's retry of the event (same sender, CreateTime, event): the same answer.
    assert _scan(client, wx, "o-zhang", "scancode_waitmsg", scene, create_time=when).content == first.content
    # The meeting-room page shows "签到 <code>" when WeChat's QR codes are unavailable.
    assert "签到成功" in _scan(client, wx, "o-li", "scancode_waitmsg", f"签到 {activity.code}", when - 1).content
    assert session.scalar(select(func.count(CheckIn.id))) == 2
    assert li.id


# Bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("char", ["\x01", "\x08", "\x0b", "\x1f", "\x7f", "\x85"])
def test_control_characters_are_refused_by_the_router_and_nothing_is_stored(session, member, char):
    router = build_router()
    message = Incoming(openid="o-zhang", msg_type="text", content=f"许愿 家里灯坏了{char}", msg_id="9")
    reply = router.dispatch(message, session, datetime.now(UTC), dedup_key="lx:wx:o-zhang:m9")
    assert reply == control_hint(char) and f"U+{ord(char):04X}" in reply
    voice = Incoming(openid="o-zhang", msg_type="voice", fields={"Recognition": f"许愿 灯坏了{char}"}, msg_id="10")
    assert router.dispatch(voice, session, datetime.now(UTC), dedup_key="lx:wx:o-zhang:m10") == control_hint(char)
    assert session.scalar(select(func.count(Wish.id))) == 0
    assert session.scalar(select(func.count()).select_from(HandledMessage)) == 0


def test_tabs_and_line_breaks_are_not_control_characters(wx, member):
    assert "已提交心愿" in wx.text("o-zhang", "许愿\t家里灯坏了\r\n希望有人帮忙").content


def test_the_webhook_cannot_carry_a_control_character_and_says_400(client, wx, member, session):
    xml = build_xml(wx.text_fields("o-zhang", "许愿 灯坏了\x01"))
    assert _send_raw(client, wx, xml).status == 400
    assert session.scalar(select(func.count(Wish.id))) == 0


@pytest.mark.parametrize("word", ["help", "HELP", "Help", "hElP"])
def test_latin_keywords_in_any_case(wx, word):
    assert "可用指令" in wx.text("o1", word).content


def test_a_latin_keyword_still_ends_at_a_word_boundary(wx):
    assert "可用指令" not in wx.text("o1", "helpme").content


# Media with an effect ------------------------------------------------------------------------------
def test_a_retried_photo_is_attached_once_with_redis_forgetting(app, wx, make_member, session):
    make_member("书记甲", role="书记", openid="o-sec")
    make_member("王五", org=BRANCH, openid="o-wang")
    assert "已发布心愿 #1" in wx.text("o-sec", "发布心愿 修水龙头 东湖小区3栋").content
    assert "认领成功" in wx.text("o-wang", "认领 #1").content
    assert "已提交" in wx.text("o-wang", "完成 #1 修好了").content
    photo = {"ToUserName": "gh", "FromUserName": "o-wang", "CreateTime": int(time.time()), "MsgType": "image",
             "PicUrl": "http://example.com/p.jpg", "MediaId": "media-1", "MsgId": 5555}
    first = wx.send(photo)
    assert "照片已附在心愿 #1" in first.content
    app.extensions["redis"].flushall()  # the reply cache forgot: the database key still knows
    assert wx.send(photo).content == first.content
    assert session.scalar(select(func.count(WishPhoto.id))) == 1
