"""A mini-program front end as shipped: what wx.login, wx.getUserProfile and wx.requestSubscribeMessage
hand it goes to /api/v1 as is, through HTTP, against the fake WeChat server."""

import threading
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import SubscribeGrant, SubscribeRefusal
from tests.conftest import BRANCH, RACE_START_TIMEOUT

SUBS = "/api/v1/me/subscriptions"
TEMPLATES = {"MINIAPP_TEMPLATE_NOTICE": "tmpl-notice-8Hk2", "MINIAPP_TEMPLATE_WISH": "tmpl-wish-Q1x9",
             "MINIAPP_TEMPLATE_ACTIVITY": "tmpl-activity-Zz7"}
NOTICE, WISH, ACTIVITY = TEMPLATES.values()
OK = "requestSubscribeMessage:ok"


@pytest.fixture
def api_app(app_factory):
    # Three kinds have a subscribe template; reminder and greeting have none.
    return app_factory(**TEMPLATES, API_LOGIN_RATE_LIMIT="1000 per minute")


def assert_error(response, status, code):
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "details"} and body["code"] == code
    assert body["message"] and not body["message"].isascii()  # a Chinese message
    return body


def grants(engine, member_id) -> dict:
    with Session(engine) as s:
        return dict(s.execute(select(SubscribeGrant.kind, SubscribeGrant.remaining).where(
            SubscribeGrant.member_id == member_id)).all())


def refusals(engine, member_id) -> dict:
    with Session(engine) as s:
        return {r.kind: (r.reason, r.template_id) for r in s.scalars(
            select(SubscribeRefusal).where(SubscribeRefusal.member_id == member_id))}


# GET /config ---------------------------------------------------------------------------------------
def test_config_publishes_the_template_ids_without_login(api_client):
    response = api_client.get("/api/v1/config")
    body = response.get_json()
    assert response.status_code == 200
    assert body["subscribe_templates"] == {"notice": NOTICE, "wish": WISH, "activity": ACTIVITY}
    assert body["subscribe_template_ids"] == [NOTICE, WISH, ACTIVITY]
    assert body["kinds"] == {"notice": "通知", "reminder": "提醒", "greeting": "祝福", "wish": "微心愿",
                             "activity": "活动"}


def test_config_without_templates_lists_none(app_factory):
    body = app_factory().test_client().get("/api/v1/config").get_json()
    assert body["subscribe_templates"] == {} and body["subscribe_template_ids"] == []


# POST /me/subscriptions with wx.requestSubscribeMessage's answer -------------------------------------
def test_the_answer_of_request_subscribe_message_is_recorded_as_is(api_client, api_login, make_member, engine):
    member = make_member("王志强", "13800000003")
    headers = api_login(member)
    answer = {"errMsg": OK, NOTICE: "accept", WISH: "reject", ACTIVITY: "ban", "tmpl-from-elsewhere": "accept"}
    response = api_client.post(SUBS, json=answer, headers=headers)
    body = response.get_json()
    assert response.status_code == 200, body
    by_kind = {item["kind"]: item for item in body["items"]}
    assert set(by_kind) == {"notice", "wish", "activity"}
    assert (by_kind["notice"]["answer"], by_kind["notice"]["remaining"], by_kind["notice"]["refused"]) == \
        ("accept", 1, None)
    assert (by_kind["wish"]["answer"], by_kind["wish"]["remaining"], by_kind["wish"]["refused"]) == \
        ("reject", 0, "reject")
    assert by_kind["wish"]["refused_at"].endswith("+08:00") and by_kind["wish"]["template_id"] == WISH
    assert by_kind["activity"]["refused"] == "ban"
    assert body["unknown_templates"] == ["tmpl-from-elsewhere"]
    assert body["message"] == "已订阅：通知；未订阅：微心愿、活动。"
    assert grants(engine, member.id) == {"notice": 1}
    assert refusals(engine, member.id) == {"wish": ("reject", WISH), "activity": ("ban", ACTIVITY)}

    # Each accept is one more send; a later accept supersedes the refusal, a later refusal replaces it.
    answer = {"errMsg": OK, NOTICE: "accept", WISH: "accept", ACTIVITY: "filter"}
    assert api_client.post(SUBS, json=answer, headers=headers).status_code == 200
    assert grants(engine, member.id) == {"notice": 2, "wish": 1}
    assert refusals(engine, member.id) == {"activity": ("filter", ACTIVITY)}

    listed = api_client.get(SUBS, headers=headers).get_json()["items"]
    assert [(i["kind"], i["template_id"], i["remaining"], i["refused"]) for i in listed] == [
        ("notice", NOTICE, 2, None), ("reminder", None, 0, None), ("greeting", None, 0, None),
        ("wish", WISH, 1, None), ("activity", ACTIVITY, 0, "filter")]


def test_the_older_body_still_works_and_clears_a_refusal(api_client, api_login, make_member, engine):
    member = make_member()
    headers = api_login(member)
    api_client.post(SUBS, json={"errMsg": OK, NOTICE: "reject"}, headers=headers)
    assert refusals(engine, member.id) == {"notice": ("reject", NOTICE)}
    response = api_client.post(SUBS, json={"template": "notice", "count": 2}, headers=headers)
    body = response.get_json()
    assert response.status_code == 200 and (body["template"], body["remaining"]) == ("notice", 2)
    assert body["items"][0]["answer"] == "accept" and body["message"] == "已订阅：通知。"
    assert refusals(engine, member.id) == {}


@pytest.mark.parametrize(("answer", "code", "words"), [
    ({"errMsg": "requestSubscribeMessage:fail cancel", "errCode": 20004}, "subscribe_failed", "未成功"),
    ({"errMsg": OK, NOTICE: "yes"}, "invalid", "accept"),
    ({"errMsg": OK, NOTICE: ["accept"]}, "invalid", "accept"),
    ({"errMsg": OK, "tmpl-unknown": "accept"}, "unknown_template", "重新进入小程序"),
    ({"errMsg": OK}, "unknown_template", "模板"),
    ({"errMsg": OK, **{f"t{n}": "accept" for n in range(21)}}, "invalid", "20"),
])
def test_bad_answers_get_a_chinese_422_and_record_nothing(api_client, api_login, make_member, engine,
                                                         answer, code, words):
    member = make_member()
    body = assert_error(api_client.post(SUBS, json=answer, headers=api_login(member)), 422, code)
    assert words in body["message"]
    assert grants(engine, member.id) == {} and refusals(engine, member.id) == {}


def test_bodies_that_are_not_an_answer_are_422_or_400(api_client, api_login, make_member):
    headers = api_login(make_member())
    assert_error(api_client.post(SUBS, json=["accept"], headers=headers), 422, "invalid")
    assert_error(api_client.post(SUBS, data="{not json", content_type="application/json", headers=headers),
                 400, "bad_request")


def test_subscriptions_need_a_login_and_a_bound_member(api_client, api_login):
    assert_error(api_client.post(SUBS, json={"errMsg": OK, NOTICE: "accept"}), 401, "unauthorized")
    headers = api_login(openid="mp-nobody")
    assert_error(api_client.post(SUBS, json={"errMsg": OK, NOTICE: "accept"}, headers=headers), 403, "not_bound")
    assert_error(api_client.get(SUBS, headers=headers), 403, "not_bound")


def test_concurrent_answers_count_every_accept_and_keep_one_refusal(api_app, api_login, make_member, engine):
    member = make_member()
    headers = api_login(member)
    barrier = threading.Barrier(8, timeout=RACE_START_TIMEOUT)
    statuses = []

    def answer(n):
        client = api_app.test_client()
        barrier.wait()
        response = client.post(SUBS, json={"errMsg": OK, NOTICE: "accept", WISH: "reject" if n % 2 else "ban"},
                               headers=headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert grants(engine, member.id) == {"notice": 8}
    assert list(refusals(engine, member.id)) == ["wish"]


def test_a_recorded_consent_carries_a_notice_as_a_subscribe_message(api_app, api_client, api_login, make_member,
                                                                   wechat_api):
    secretary = make_member("李红梅", "13800000002", role="书记", org=BRANCH)
    member = make_member("王志强", "13800000003", org=BRANCH)  # no Official Account openid
    headers = api_login(member)
    assert api_client.post(SUBS, json={"errMsg": OK, NOTICE: "accept"}, headers=headers).status_code == 200
    response = api_client.post("/api/v1/admin/notices", json={"body": "周五下午三点开主题党日"},
                               headers=api_login(secretary))
    assert response.status_code == 200, response.get_json()
    tz = ZoneInfo("Asia/Shanghai")
    daytime = (datetime.now(tz) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    result = api_app.test_cli_runner().invoke(args=["scheduler", "run-due", "--now", daytime.isoformat()])
    assert result.exit_code == 0, result.output
    sent = [c.body for c in wechat_api.calls_to("/cgi-bin/message/subscribe/send")]
    assert [(b["touser"], b["template_id"]) for b in sent] == [(f"mp-{member.id}", NOTICE)]


# Login and binding as a front end does them -----------------------------------------------------------
USER_PROFILE = {  # what wx.getUserProfile answers; front ends often send it along with the code
    "userInfo": {"nickName": "微信用户", "avatarUrl": "https://thirdwx.qlogo.cn/x/132", "gender": 0},
    "rawData": '{"nickName":"微信用户","gender":0}', "signature": "75a3a1f4e0c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5",
    "encryptedData": "Zm9vYmFyYmF6" * 8, "iv": "r7BXXKkLb8qrSNn05n0qiA==", "cloudID": "cloud-1",
    "errMsg": "getUserProfile:ok",
}


def _code(wechat_api, openid):
    code = f"code-{uuid.uuid4().hex}"
    wechat_api.add_code(code, openid)
    return code


def test_login_takes_the_profile_fields_beside_the_code(api_client, wechat_api, make_member):
    member = make_member(miniapp_openid="mp-wang")
    response = api_client.post("/api/v1/auth/login", json={"code": _code(wechat_api, "mp-wang"), **USER_PROFILE})
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["member"]["id"] == member.id and len(body["token"]) >= 32
    # Nothing but the code is used: WeChat was asked about the code only.
    (call,) = wechat_api.calls_to("/sns/jscode2session")
    assert set(call.params) == {"appid", "secret", "js_code", "grant_type"}


def test_login_takes_a_form_encoded_body(api_client, wechat_api):
    form = {"code": _code(wechat_api, "mp-form"), "iv": "abc", "rawData": "{}", "signature": "s",
            "encryptedData": "e", "userInfo": '{"nickName":"x"}'}
    response = api_client.post("/api/v1/auth/login", data=form)
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["token"]
    assert api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # A form without the code is a clear 422, not a 500.
    body = assert_error(api_client.post("/api/v1/auth/login", data={"iv": "abc"}), 422, "invalid")
    assert "code" in body["message"]


def test_login_still_refuses_a_misspelt_code_field(api_client):
    body = assert_error(api_client.post("/api/v1/auth/login", json={"cod": "x"}), 422, "invalid")
    assert set(body["details"]["fields"]["json"]) == {"code", "cod"}


def test_binding_again_as_the_same_member_is_a_success(api_client, api_login, make_member):
    member = make_member("赵秀英", "13800000004")
    headers = api_login(openid="mp-zhao")
    first = api_client.post("/api/v1/me/bind", json={"name": "赵秀英", "phone": "13800000004"}, headers=headers)
    assert first.status_code == 200 and first.get_json()["member"]["id"] == member.id
    # A second tap, or a retry after a lost answer, typed a little differently: the member, 200.
    again = api_client.post("/api/v1/me/bind", json={"name": "赵秀英 ", "phone": "+86 138-0000-0004"},
                            headers=headers)
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()
    # Someone else is still refused, as before.
    other = make_member("钱多多", "13800000099")
    body = assert_error(api_client.post("/api/v1/me/bind", json={"name": other.name, "phone": other.phone},
                                        headers=headers), 400, "already_bound")
    assert "赵秀英" in body["message"]
