"""The webhook end to end: signed (and encrypted) requests exactly as WeChat sends them."""

import threading
import time

import pytest
import redis
import xmltodict
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy import parse_message
from werkzeug.serving import make_server

from app import wechat
from app.simulator import Simulator, build_xml, requests_poster, sign
from models import OutboxMessage, WechatUser
from tests.conftest import AES_KEY, APP_ID, TOKEN, flask_poster

# Tencent's WXBizMsgCrypt sample (see shared/WECHAT.md).
VECTOR = {
    "token": "spamtest",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "app_id": "wx2c2769f8efd9abc2",
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
    "encrypt": (
        "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQH"
        "FVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsV"
        "ticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0V"
        "xpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrc"
        "pCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
    ),
}


def signed_params(timestamp=None, nonce="12345", token=TOKEN):
    timestamp = timestamp or str(int(time.time()))
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def post(client, params, body):
    return client.post("/wechat", query_string=params, data=body, content_type="text/xml")


# URL verification ----------------------------------------------------------------------------
def test_url_check_echoes_echostr_when_signed(client):
    response = client.get("/wechat", query_string={**signed_params(), "echostr": "hello-123"})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "hello-123"


@pytest.mark.parametrize("params", [
    {"signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "x"},
    {"echostr": "x"},
])
def test_url_check_with_a_bad_signature_is_403(client, params):
    response = client.get("/wechat", query_string=params)
    assert response.status_code == 403
    assert response.get_data(as_text=True) != "x"


# Plain mode ---------------------------------------------------------------------------------
def test_text_message_gets_a_text_reply(wx):
    reply = wx.text("o-user", "帮助")
    assert reply.status == 200
    assert reply.xml["MsgType"] == "text"
    assert reply.xml["ToUserName"] == "o-user"
    assert "绑定 姓名 手机号" in reply.content


def test_bind_then_me_through_the_webhook(wx, make_member):
    make_member("王芳", "13912345678", kind="在职党员", role="书记", grid="一网格")
    assert "请先绑定" in wx.text("o-wang", "我的").content
    assert "成功" in wx.text("o-wang", "绑定 王芳 13912345678").content
    me = wx.text("o-wang", "我的").content
    assert "王芳" in me and "东湖社区第一党支部" in me and "在职党员" in me and "书记" in me
    assert "积分：0" in me


def test_bad_signature_on_post_is_403(client, wx):
    params, body = wx.signed_request(wx.text_fields("o1", "帮助"))
    params["signature"] = "f" * 40
    assert post(client, params, body).status_code == 403


def test_stale_timestamp_is_refused(client, wx):
    old = str(int(time.time()) - 3600)
    params, body = wx.signed_request(wx.text_fields("o1", "帮助"), timestamp=old)
    response = post(client, params, body)
    assert response.status_code == 403


def test_tolerance_is_a_setting(app_factory):
    app = app_factory(WECHAT_TIMESTAMP_TOLERANCE=7200)
    wx = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    old = str(int(time.time()) - 3600)
    params, body = wx.signed_request(wx.text_fields("o1", "帮助"), timestamp=old)
    assert post(app.test_client(), params, body).status_code == 200


@pytest.mark.parametrize("body", [
    b"not xml at all",
    b"<xml><ToUserName>gh</ToUserName>",
    b"",
    "<xml><MsgType>text</MsgType><Content>\u5e2e\u52a9</Content></xml>".encode(),  # no sender
    b"<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType><CreateTime>abc</CreateTime></xml>",
    b"\xff\xfe<xml></xml>",
])
def test_malformed_bodies_are_400(client, body):
    response = post(client, signed_params(), body)
    assert response.status_code == 400
    assert b"Traceback" not in response.data


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>"""

DOCTYPE_ONLY = b"""<!DOCTYPE xml><xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName>
<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>3</MsgId></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, DOCTYPE_ONLY])
def test_doctype_and_entities_are_refused_unread(client, body):
    response = post(client, signed_params(), body)
    assert response.status_code == 400
    assert b"root:" not in response.data and b"lol" not in response.data


def test_oversized_body_is_413(client):
    body = build_xml({"ToUserName": "gh", "FromUserName": "o1", "CreateTime": 1, "MsgType": "text",
                      "Content": "帮" * 30000, "MsgId": 9}).encode()
    assert len(body) > 64 * 1024
    assert post(client, signed_params(), body).status_code == 413


def test_unknown_message_and_event_types(wx):
    unknown_msg = wx.send({"ToUserName": "gh", "FromUserName": "o1", "CreateTime": int(time.time()),
                           "MsgType": "shortvideo", "MediaId": "m1", "MsgId": 77})
    assert unknown_msg.status == 200 and "文字指令" in unknown_msg.content
    weird = wx.send({"ToUserName": "gh", "FromUserName": "o1", "CreateTime": int(time.time()),
                     "MsgType": "something_new", "MsgId": 78})
    assert weird.status == 200
    unknown_event = wx.event("o1", "TEMPLATESENDJOBFINISH", Status="success")
    assert unknown_event.status == 200 and unknown_event.raw == "success"


# Events -------------------------------------------------------------------------------------
def test_subscribe_welcomes_and_says_how_to_bind(wx, session):
    reply = wx.event("o-new", "subscribe")
    assert "欢迎关注" in reply.content and "绑定 姓名 手机号" in reply.content
    assert session.get(WechatUser, "o-new").subscribed is True
    assert wx.event("o-new", "unsubscribe").raw == "success"
    session.expire_all()
    assert session.get(WechatUser, "o-new").subscribed is False


def test_scan_to_subscribe_with_an_unknown_scene_welcomes_and_hints(wx):
    reply = wx.event("o-new", "subscribe", "bogus:1")
    assert reply.content.startswith("欢迎关注") and "二维码已失效" in reply.content


def test_location_event_is_stored_and_answered_success(wx, session):
    reply = wx.event("o-loc", "LOCATION", Latitude="30.274100", Longitude="120.155100", Precision="65.0")
    assert reply.raw == "success"
    user = session.get(WechatUser, "o-loc")
    assert (user.latitude, user.longitude) == (pytest.approx(30.2741), pytest.approx(120.1551))


def test_menu_click(wx):
    assert "可用指令" in wx.event("o1", "CLICK", "MENU_HELP").content


# Safe mode ----------------------------------------------------------------------------------
def test_official_sample_vector_through_the_webhook(app_factory):
    app = app_factory(WECHAT_TOKEN=VECTOR["token"], WECHAT_AES_KEY=VECTOR["aes_key"],
                      WECHAT_APP_ID=VECTOR["app_id"], WECHAT_TIMESTAMP_TOLERANCE=10**10)
    params = {
        "signature": sign(VECTOR["token"], VECTOR["timestamp"], VECTOR["nonce"]),
        "timestamp": VECTOR["timestamp"], "nonce": VECTOR["nonce"],
        "encrypt_type": "aes", "msg_signature": VECTOR["msg_signature"],
    }
    body = build_xml({"ToUserName": "gh_10f6c3c3ac5a", "Encrypt": VECTOR["encrypt"]}).encode()
    response = post(app.test_client(), params, body)
    assert response.status_code == 200
    outer = xmltodict.parse(response.data)["xml"]
    assert set(outer) >= {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert outer["MsgSignature"] == sign(VECTOR["token"], outer["TimeStamp"], outer["Nonce"], outer["Encrypt"])
    sim = Simulator("/wechat", VECTOR["token"], VECTOR["app_id"], VECTOR["aes_key"])
    reply = sim.read_reply(200, response.get_data(as_text=True))
    # The sample message is the text "abcdteT" from oyORnuP8q7ou2gfYjqLzSIWZf0rs.
    assert reply.xml["ToUserName"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert reply.xml["FromUserName"] == "gh_10f6c3c3ac5a"
    assert "abcdteT" in reply.content and "帮助" in reply.content


def test_sample_vector_with_wrong_msg_signature_is_403(app_factory):
    app = app_factory(WECHAT_TOKEN=VECTOR["token"], WECHAT_AES_KEY=VECTOR["aes_key"],
                      WECHAT_APP_ID=VECTOR["app_id"], WECHAT_TIMESTAMP_TOLERANCE=10**10)
    params = {
        "signature": sign(VECTOR["token"], VECTOR["timestamp"], VECTOR["nonce"]),
        "timestamp": VECTOR["timestamp"], "nonce": VECTOR["nonce"], "encrypt_type": "aes",
        # The classic bug: the plain `signature` in place of `msg_signature`.
        "msg_signature": sign(VECTOR["token"], VECTOR["timestamp"], VECTOR["nonce"]),
    }
    body = build_xml({"ToUserName": "gh_10f6c3c3ac5a", "Encrypt": VECTOR["encrypt"]}).encode()
    assert post(app.test_client(), params, body).status_code == 403


@pytest.fixture
def safe_app(app_factory):
    return app_factory(WECHAT_AES_KEY=AES_KEY)


def test_safe_mode_round_trip_and_encrypted_reply(safe_app, make_member):
    make_member("李四", "13700000000")
    client = safe_app.test_client()
    sim = Simulator("/wechat", TOKEN, APP_ID, AES_KEY, post=flask_poster(client))
    reply = sim.text("o-safe", "绑定 李四 13700000000")
    assert "Encrypt" in reply.raw and "李四" not in reply.raw  # nothing readable on the wire
    assert "成功" in reply.content


def test_safe_mode_refuses_plain_messages(safe_app):
    client = safe_app.test_client()
    plain = Simulator("/wechat", TOKEN, post=flask_poster(client))
    assert plain.text("o1", "帮助").status == 400


def test_safe_mode_accepts_the_previous_key_while_rotating(app_factory):
    old_key = "B" * 43
    app = app_factory(WECHAT_AES_KEY=AES_KEY, WECHAT_AES_KEY_PREVIOUS=old_key)
    client = app.test_client()
    old_sender = Simulator("/wechat", TOKEN, APP_ID, old_key, post=flask_poster(client))
    params, body = old_sender.signed_request(old_sender.text_fields("o1", "帮助"))
    response = post(client, params, body)
    assert response.status_code == 200
    # The reply is encrypted with the key that decrypted the message, as WeChat does it.
    assert "可用指令" in old_sender.read_reply(200, response.get_data(as_text=True)).content


def test_safe_mode_garbage_ciphertext_is_400(safe_app):
    client = safe_app.test_client()
    params = signed_params()
    garbage = "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0"
    params.update(encrypt_type="aes", msg_signature=sign(TOKEN, params["timestamp"], params["nonce"], garbage))
    body = build_xml({"ToUserName": "gh", "Encrypt": garbage}).encode()
    assert post(client, params, body).status_code == 400


# Retries and de-duplication -----------------------------------------------------------------
def test_retry_gets_the_identical_reply_and_runs_once(wx, make_member, session):
    make_member("赵六", "13600000000")
    fields = wx.text_fields("o-retry", "绑定 赵六 13600000000", msg_id=424242)
    first = wx.send(fields)
    second = wx.send(fields)  # WeChat's retry: same MsgId, new nonce and signature
    assert "成功" in first.content
    assert second.content == first.content
    # A second bind would have said "already bound"; it did not run.
    assert "已绑定" not in second.content


def test_same_msgid_from_another_sender_is_not_a_retry(wx):
    a = wx.send(wx.text_fields("o-a", "帮助", msg_id=1))
    b = wx.send(wx.text_fields("o-b", "我的", msg_id=1))
    assert "可用指令" in a.content and "请先绑定" in b.content


def test_event_retry_by_sender_and_create_time(wx, session):
    fields = wx.event_fields("o-ev", "subscribe", create_time=1700000000)
    wx.send(fields)
    session.execute(WechatUser.__table__.update().values(subscribed=False))
    session.commit()
    again = wx.send(fields)
    assert "欢迎关注" in again.content
    session.expire_all()
    # The retried subscribe did not run again (it would have set subscribed back to True).
    assert session.get(WechatUser, "o-ev").subscribed is False


@pytest.fixture
def live_server(app_factory):
    """The app on a real socket, threaded, as gunicorn would serve it."""

    def start(**settings):
        app = app_factory(**settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append(server)
        return app, f"http://127.0.0.1:{server.server_port}/wechat"

    started = []
    yield start
    for server in started:
        server.shutdown()


def test_concurrent_retries_while_the_first_is_running_run_once(live_server, make_member):
    make_member("钱七", "13500000000")
    app, url = live_server()
    calls = []
    gate = threading.Event()
    router = app.extensions["router"]

    @router.command("慢")
    def slow(message, ctx):
        calls.append(message.msg_id)
        gate.wait(5)
        return f"第{len(calls)}次处理"

    sim = Simulator(url, TOKEN, post=requests_poster())
    fields = sim.text_fields("o-slow", "慢", msg_id=99)
    replies = []

    def deliver():
        replies.append(sim.send(fields).content)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # let all four arrive while the first is still being handled
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == ["99"]
    assert replies == ["第1次处理"] * 4


def test_late_reply_becomes_success_and_a_customer_service_message(app_factory, session):
    app = app_factory(WECHAT_REPLY_DEADLINE=0.05)

    @app.extensions["router"].command("慢")
    def slow(message, ctx):
        time.sleep(0.2)
        return "迟到的回复"

    sim = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    fields = sim.text_fields("o-late", "慢", msg_id=5150)
    first = sim.send(fields)
    retry = sim.send(fields)
    assert first.raw == "success" and retry.raw == "success"
    queued = session.query(OutboxMessage).filter_by(openid="o-late").all()
    assert [(m.kind, m.body) for m in queued] == [("reply", "迟到的回复")]


def test_handler_crash_answers_politely_and_lets_the_retry_run(app_factory):
    app = app_factory()
    attempts = []

    @app.extensions["router"].command("坏")
    def broken(message, ctx):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return "好了"

    sim = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    fields = sim.text_fields("o-crash", "坏", msg_id=31337)
    first = sim.send(fields)
    assert first.status == 200 and "系统繁忙" in first.content
    assert sim.send(fields).content == "好了"


def test_dead_redis_does_not_break_replies(app_factory):
    # Nothing listens on port 1: every Redis call fails at once; the message is handled anyway.
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    sim = Simulator("/wechat", TOKEN, post=flask_poster(app.test_client()))
    with pytest.raises(redis.ConnectionError):
        app.extensions["redis"].ping()
    reply = sim.text("o1", "帮助")
    assert reply.status == 200 and "可用指令" in reply.content


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_a_retry_waiting_on_a_delivery_that_crashes_handles_the_message_itself(live_server):
    app, url = live_server()
    entered = threading.Event()
    release = threading.Event()
    attempts = []

    @app.extensions["router"].command("偶尔坏")
    def flaky(message, ctx):
        attempts.append(1)
        if len(attempts) == 1:
            entered.set()
            release.wait(5)
            raise RuntimeError("boom")
        return "第二次成功"

    sim = Simulator(url, TOKEN, post=requests_poster())
    fields = sim.text_fields("o-flaky", "偶尔坏", msg_id=8080)
    first = []
    t = threading.Thread(target=lambda: first.append(sim.send(fields).content))
    t.start()
    assert entered.wait(5)
    retry = []
    r = threading.Thread(target=lambda: retry.append(sim.send(fields).content))
    r.start()
    time.sleep(0.2)  # the retry is now waiting for the first delivery
    release.set()
    t.join(10)
    r.join(10)
    assert "系统繁忙" in first[0]
    assert retry == ["第二次成功"]
    assert len(attempts) == 2


@settings(max_examples=300, deadline=None)
@given(content=st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
                       | st.sampled_from(["\n", "\t", " ", "　"])).filter(lambda t: "]]>" not in t),
       msg_id=st.integers(min_value=0, max_value=2**63 - 1))
def test_text_messages_parse_as_wechatpy_parses_them(content, msg_id):
    xml = build_xml(Simulator("/wechat", TOKEN, APP_ID).text_fields("o-中文", content, msg_id=msg_id))
    top = wechat._read(xml.encode("utf-8"))
    ours, theirs = wechat._message(top, wechat._to_incoming(top)), parse_message(xml)
    assert type(ours) is type(theirs)
    for name in ("type", "source", "target", "content", "id", "time"):
        assert getattr(ours, name) == getattr(theirs, name), name
