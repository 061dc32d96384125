"""The webhook's protocol doors: the parser, malformed but signed bodies, raw fields, replays,
compatible mode and key rotation. Everything through the signed webhook."""

import struct
import threading
import time

import pytest
from sqlalchemy import func, select
from wechatpy.exceptions import InvalidAppIdException
from werkzeug.serving import make_server

from app.simulator import Simulator, build_xml, requests_poster, sign
from models import Wish
from tests.conftest import AES_KEY, APP_ID, RACE_START_TIMEOUT, TOKEN, flask_poster

OLD_KEY = "B" * 43


def signed(timestamp=None, nonce="8765"):
    timestamp = timestamp or str(int(time.time()))
    return {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def post(client, params, body):
    return client.post("/wechat", query_string=params, data=body, content_type="text/xml")


def head(msg_type="text", sender="o1"):
    return (f"<xml><ToUserName>gh</ToUserName><FromUserName>{sender}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{msg_type}</MsgType>")


def capture(app):
    """Record every Incoming the router gets."""
    seen = []
    router = app.extensions["router"]
    dispatch = router.dispatch

    def recording(message, *args, **kwargs):
        seen.append(message)
        return dispatch(message, *args, **kwargs)

    router.dispatch = recording
    return seen


# 1. The parser ------------------------------------------------------------------------------
def test_a_doctype_behind_a_processing_instruction_is_refused(client, make_member, session):
    # Passed the old prolog check: the DOCTYPE stands after a PI whose text holds "<xml".
    make_member("王芳", "13912345678", role="书记", openid="o1")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 6))
    body = ('<?pi <xml?><!DOCTYPE xml [<!ENTITY l0 "lolololololol">' + laughs + ']>'
            + head() + "<Content>许愿 &l5;</Content><MsgId>1</MsgId></xml>").encode()
    assert len(body) < 1000
    response = post(client, signed(), body)
    assert response.status_code == 400
    assert session.scalar(select(func.count()).select_from(Wish)) == 0


@pytest.mark.parametrize("where", ["outer", "inner"])
def test_dtd_and_entities_are_refused_in_safe_mode_too(app_factory, where):
    app = app_factory(WECHAT_AES_KEY=AES_KEY)
    sim = Simulator("/wechat", TOKEN, APP_ID, AES_KEY)
    doctype = '<!DOCTYPE xml [<!ENTITY e "x">]>'
    params, body = sim.signed_request(sim.text_fields("o1", "帮助"))
    if where == "outer":
        body = doctype.encode() + body
    else:
        inner = doctype + build_xml(sim.text_fields("o1", "&e;"))
        timestamp, nonce = params["timestamp"], params["nonce"]
        encrypted = sim.crypto.encrypt_message(inner, nonce, timestamp)
        encrypt = encrypted.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        params["msg_signature"] = sign(TOKEN, timestamp, nonce, encrypt)
        body = build_xml({"ToUserName": "gh", "Encrypt": encrypt}).encode()
    assert post(app.test_client(), params, body).status_code == 400


# 2. Correctly signed, malformed ---------------------------------------------------------------
MALFORMED = {
    "duplicated MsgType": head() + "<MsgType>event</MsgType><Content>x</Content></xml>",
    "duplicated FromUserName": head() + "<FromUserName>o2</FromUserName><Content>x</Content></xml>",
    "element in MsgType": head("<b>text</b>") + "<Content>x</Content></xml>",
    "element in FromUserName": head(sender="<a>o1</a>") + "<Content>x</Content></xml>",
    "element in Event": head("event") + "<Event><x/></Event></xml>",
    "element in EventKey": head("event") + "<Event>CLICK</Event><EventKey><k>MENU</k></EventKey></xml>",
    "element in Content": head() + "<Content><x>帮助</x></Content></xml>",
    "EventKey nested 9000 deep": head("event") + "<Event>CLICK</Event><EventKey>" + "<a>" * 9000
                                 + "x" + "</a>" * 9000 + "</EventKey></xml>",
    "unknown container nested 9000 deep": head() + "<Content>帮助</Content><Foo>" + "<a>" * 9000
                                          + "</a>" * 9000 + "</Foo></xml>",
    "root not xml": "<message><FromUserName>o1</FromUserName><MsgType>text</MsgType></message>",
    "no MsgType": "<xml><FromUserName>o1</FromUserName><Content>帮助</Content></xml>",
    "element in ScanResult": head("event") + "<Event>scancode_push</Event><ScanCodeInfo><ScanType>qr"
                             "</ScanType><ScanResult><x/></ScanResult></ScanCodeInfo></xml>",
    "an undeclared entity": head() + "<Content>&nope;</Content></xml>",
}


@pytest.mark.parametrize("name", MALFORMED)
def test_signed_but_malformed_bodies_are_400(client, name):
    response = post(client, signed(), MALFORMED[name].encode())
    assert response.status_code == 400, name
    assert b"Traceback" not in response.data


def test_legit_containers_are_flattened_one_level(app):
    seen = capture(app)
    wx = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    scan = (head("event") + "<Event>scancode_waitmsg</Event><EventKey>rselfmenu_0</EventKey>"
            "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>签到 123456</ScanResult></ScanCodeInfo></xml>")
    pics = (head("event") + "<Event>pic_weixin</Event><EventKey>p</EventKey><SendPicsInfo><Count>2</Count>"
            "<PicList><item><PicMd5Sum>aa</PicMd5Sum></item><item><PicMd5Sum>bb</PicMd5Sum></item></PicList>"
            "</SendPicsInfo></xml>")
    where = (head("event") + "<Event>location_select</Event><EventKey>l</EventKey><SendLocationInfo>"
             "<Location_X>30.27</Location_X><Location_Y>120.15</Location_Y><Scale>15</Scale>"
             "<Label>东湖</Label><Poiname></Poiname></SendLocationInfo></xml>")
    for body in (scan, pics, where):
        status, _ = wx.post("/wechat", signed(nonce=str(hash(body))), body.encode())
        assert status == 200
    assert seen[0].fields["ScanType"] == "qrcode" and seen[0].fields["ScanResult"] == "签到 123456"
    assert seen[0].event == "scancode_waitmsg" and seen[0].key == "rselfmenu_0"
    assert seen[1].fields["Count"] == "2" and "PicMd5Sum" not in seen[1].fields
    assert (seen[2].latitude, seen[2].longitude) == (30.27, 120.15) and seen[2].fields["Label"] == "东湖"


# 3. Incoming from the raw fields -------------------------------------------------------------
def test_incoming_carries_the_raw_type_event_key_and_every_field(app):
    seen = capture(app)
    wx = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    wx.send({"ToUserName": "gh", "FromUserName": "o-v", "CreateTime": int(time.time()), "MsgType": "voice",
             "MediaId": "M1", "Format": "amr", "Recognition": "帮助。", "MsgId": 555})
    wx.event("o-t", "TEMPLATESENDJOBFINISH", MsgID="200163836", Status="failed:user block")
    assert wx.event("o-p", "PUBLISHJOBFINISH").status == 200
    assert wx.event("o-e", "ENTER", "k1").status == 200
    wx.event("o-s", "subscribe", "checkin:7")
    wx.event("o-c", "SCAN", "checkin:8")
    voice, template, publish, enter, follow, scan = seen
    assert (voice.msg_type, voice.media_id, voice.msg_id) == ("voice", "M1", "555")
    assert voice.fields["Recognition"] == "帮助。" and voice.fields["Format"] == "amr"
    assert (template.msg_type, template.event) == ("event", "templatesendjobfinish")
    assert template.fields["MsgID"] == "200163836" and template.fields["Status"] == "failed:user block"
    assert (publish.msg_type, publish.event) == ("event", "publishjobfinish")
    assert (enter.msg_type, enter.event, enter.key) == ("event", "enter", "k1")
    assert (follow.event, follow.key, follow.fields["EventKey"]) == ("subscribe", "checkin:7", "qrscene_checkin:7")
    assert follow.fields["Ticket"] == "TICKET"
    assert (scan.event, scan.key) == ("scan", "checkin:8")


# 4. Replays -----------------------------------------------------------------------------------
def test_a_replayed_query_string_with_another_body_is_403(app, make_member, session):
    make_member("王芳", "13912345678", role="书记", openid="o-sec")
    wx = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    params, body = wx.signed_request(wx.text_fields("o-sec", "帮助", msg_id=1))
    assert post(app.test_client(), params, body).status_code == 200
    # The same query (seen in an access log) with a forged body: another sender, an action.
    _, forged = wx.signed_request(wx.text_fields("o-sec", "许愿 修好楼道灯", msg_id=2))
    response = post(app.test_client(), params, forged)
    assert response.status_code == 403
    assert session.scalar(select(func.count()).select_from(Wish)) == 0
    # The de-duplication claim the forged request took is released: the real message goes through.
    real = post(app.test_client(), signed(nonce="fresh"), forged)
    assert real.status_code == 200 and "心愿" in real.get_data(as_text=True)


def test_the_same_body_with_the_same_query_is_a_retry(app, make_member):
    make_member("赵六", "13600000000")
    wx = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    params, body = wx.signed_request(wx.text_fields("o-r", "绑定 赵六 13600000000", msg_id=9))
    first = post(app.test_client(), params, body)
    again = post(app.test_client(), params, body)
    assert first.status_code == again.status_code == 200
    assert "成功" in first.get_data(as_text=True)
    assert again.data == first.data


def test_replays_are_refused_in_safe_mode_too(app_factory):
    app = app_factory(WECHAT_AES_KEY=AES_KEY)
    sim = Simulator("/wechat", TOKEN, APP_ID, AES_KEY, post=flask_poster(app.test_client()))
    params, body = sim.signed_request(sim.text_fields("o1", "帮助", msg_id=1))
    assert post(app.test_client(), params, body).status_code == 200
    forged = body.replace(b"<ToUserName>", b"<ToUserName>x", 1)  # another body, Encrypt untouched
    assert post(app.test_client(), params, forged).status_code == 403


def test_with_redis_dead_a_replay_is_logged_and_accepted(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    wx = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    params, body = wx.signed_request(wx.text_fields("o1", "帮助", msg_id=1))
    _, other = wx.signed_request(wx.text_fields("o1", "帮助", msg_id=2))
    assert post(app.test_client(), params, body).status_code == 200
    assert post(app.test_client(), params, other).status_code == 200


def test_concurrent_bodies_on_one_query_string_one_wins(app_factory, make_member):
    make_member("王芳", "13912345678", role="书记", openid="o-sec")
    app = app_factory()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/wechat"
        wx = Simulator(url, TOKEN, post=requests_poster())
        params = signed(nonce="shared")
        bodies = [wx.signed_request(wx.text_fields(f"o-{n}", "帮助", msg_id=n))[1] for n in range(8)]
        statuses = []
        barrier = threading.Barrier(len(bodies), timeout=RACE_START_TIMEOUT)

        def deliver(body):
            barrier.wait()
            statuses.append(wx.post(url, params, body)[0])

        workers = [threading.Thread(target=deliver, args=(b,)) for b in bodies]
        for w in workers:
            w.start()
        for w in workers:
            w.join(20)
    finally:
        server.shutdown()
    print("statuses:", sorted(statuses))
    assert sorted(statuses) == [200] + [403] * 7


# 5. Safe, compatible, rotation --------------------------------------------------------------
@pytest.mark.parametrize("server_key, sender_key, compatible, status, reply", [
    ("", "", False, 200, "plain"),  # plain mode
    (AES_KEY, AES_KEY, False, 200, "encrypted"),  # safe mode
    (AES_KEY, AES_KEY, True, 200, "encrypted"),  # compatible mode, server has the key
    ("", AES_KEY, True, 200, "plain"),  # compatible mode, server has no key
    ("", AES_KEY, False, 400, None),  # safe mode, server has no key: cannot read it
    (AES_KEY, "", False, 400, None),  # a plain push to a server with a key
])
def test_mode_combinations(app_factory, server_key, sender_key, compatible, status, reply):
    app = app_factory(WECHAT_AES_KEY=server_key)
    sim = Simulator("/wechat", TOKEN, APP_ID, sender_key, compatible=compatible)
    params, body = sim.signed_request(sim.text_fields("o-m", "帮助"))
    response = post(app.test_client(), params, body)
    assert response.status_code == status
    if reply is None:
        return
    raw = response.get_data(as_text=True)
    assert ("<Encrypt>" in raw) == (reply == "encrypted")
    assert "可用指令" in sim.read_reply(200, raw).content


def test_compatible_mode_with_a_key_reads_the_encrypted_fields_not_the_plain_ones(app_factory):
    app = app_factory(WECHAT_AES_KEY=AES_KEY)
    seen = capture(app)
    sim = Simulator("/wechat", TOKEN, APP_ID, AES_KEY, compatible=True)
    params, body = sim.signed_request(sim.text_fields("o-real", "帮助"))
    body = body.replace(b"o-real", b"o-forged", 1)  # the plain copy is not covered by msg_signature
    assert post(app.test_client(), params, body).status_code == 200
    assert seen[0].openid == "o-real"


def test_compatible_mode_with_a_bad_msg_signature_is_403(app_factory):
    app = app_factory(WECHAT_AES_KEY=AES_KEY)
    sim = Simulator("/wechat", TOKEN, APP_ID, AES_KEY, compatible=True)
    params, body = sim.signed_request(sim.text_fields("o1", "帮助"))
    params["msg_signature"] = "0" * 40
    assert post(app.test_client(), params, body).status_code == 403


@pytest.mark.parametrize("sender_key, other_key", [(OLD_KEY, AES_KEY), (AES_KEY, OLD_KEY)])
def test_rotation_replies_with_the_key_that_decrypted(app_factory, sender_key, other_key):
    app = app_factory(WECHAT_AES_KEY=AES_KEY, WECHAT_AES_KEY_PREVIOUS=OLD_KEY)
    sender = Simulator("/wechat", TOKEN, APP_ID, sender_key, post=flask_poster(app.test_client()))
    reply = sender.text("o-rot", "帮助")
    assert reply.status == 200 and "可用指令" in reply.content
    # The other key does not open it: wechatpy fails on the garbage it decrypts in one of three ways
    # (bad padding, a length field cut short, another app id), depending on the random bytes.
    with pytest.raises((ValueError, InvalidAppIdException, struct.error)):
        Simulator("/wechat", TOKEN, APP_ID, other_key).read_reply(200, reply.raw)
