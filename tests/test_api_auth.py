"""/api/v1 login, tokens, /me and binding, through HTTP against the fake WeChat API."""

import logging
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import get_redis
from models import Member
from models.member import MiniappUser

LOGIN = "/api/v1/auth/login"


def fresh_code() -> str:
    """A code never seen by the fake WeChat server (it remembers used codes for the whole run)."""
    return f"code-{uuid.uuid4().hex}"


def assert_error(response, status, code):
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert body["message"] and not body["message"].isascii()  # a Chinese message
    return body


# Login -------------------------------------------------------------------------------------------
def test_login_exchanges_the_code_and_keeps_the_session_key_on_the_server(api_client, api_app, wechat_api,
                                                                          caplog):
    code = fresh_code()
    wechat_api.add_code(code, "mp-openid-1")
    with caplog.at_level(logging.DEBUG):
        response = api_client.post(LOGIN, json={"code": code})
    body = response.get_json()
    assert response.status_code == 200
    assert body["member"] is None and body["expires_in"] == 7 * 24 * 3600
    assert len(body["token"]) >= 32
    (call,) = wechat_api.calls_to("/sns/jscode2session")
    assert call.params == {"appid": "wxminiapp0000001", "secret": "test-miniapp-secret",
                           "js_code": code, "grant_type": "authorization_code"}
    # The session_key WeChat gave ("sk-<code>") is in no answer and no log line, and the token
    # itself is not a Redis key (only its hash is).
    assert f"sk-{code}" not in response.get_data(as_text=True)
    assert f"sk-{code}" not in caplog.text
    store = get_redis(api_app)
    assert not store.exists(body["token"])
    keys = store.keys("lx:api:token:*")
    assert len(keys) == 1 and body["token"] not in keys[0]
    assert 0 < store.ttl(keys[0]) <= 7 * 24 * 3600


def test_invalid_or_reused_code_is_401_with_a_clear_message(api_client, wechat_api):
    body = assert_error(api_client.post(LOGIN, json={"code": "never-issued"}), 401, "invalid_code")
    assert "重新" in body["message"] and body["details"] == {"wechat_errcode": 40029}
    code = fresh_code()
    wechat_api.add_code(code, "mp-1")
    assert api_client.post(LOGIN, json={"code": code}).status_code == 200
    body = assert_error(api_client.post(LOGIN, json={"code": code}), 401, "invalid_code")
    assert body["details"] == {"wechat_errcode": 40163}


def test_wechat_failures_are_502_and_frequency_limit_429(api_client, wechat_api):
    code = fresh_code()
    wechat_api.add_code(code, "mp-1")
    wechat_api.fail("/sns/jscode2session", errcode=-1)
    assert_error(api_client.post(LOGIN, json={"code": code}), 502, "wechat_error")
    wechat_api.fail("/sns/jscode2session", errcode=None, status=500)
    assert_error(api_client.post(LOGIN, json={"code": code}), 502, "wechat_unavailable")
    wechat_api.fail("/sns/jscode2session", errcode=45011, errmsg="api minute-quota reach limit")
    assert_error(api_client.post(LOGIN, json={"code": code}), 429, "rate_limited")
    # The code was never consumed by those failures.
    assert api_client.post(LOGIN, json={"code": code}).status_code == 200


def test_unreachable_wechat_is_502(app_factory):
    client = app_factory(WECHAT_API_BASE="http://127.0.0.1:9", WECHAT_HTTP_TIMEOUT=1.0).test_client()
    assert_error(client.post(LOGIN, json={"code": fresh_code()}), 502, "wechat_unavailable")


def test_login_validation_names_the_field(api_client):
    body = assert_error(api_client.post(LOGIN, json={}), 422, "invalid")
    assert "code" in body["message"] and body["details"]["fields"]["json"]["code"] == ["必填"]
    body = assert_error(api_client.post(LOGIN, json={"code": 5, "x": 1}), 422, "invalid")
    assert set(body["details"]["fields"]["json"]) == {"code", "x"}
    assert_error(api_client.post(LOGIN, data="{not json", content_type="application/json"), 400,
                 "bad_request")


def test_login_finds_a_member_by_miniapp_openid(api_client, wechat_api, make_member):
    member = make_member("李红梅", "13800000002", miniapp_openid="mp-li")
    code = fresh_code()
    wechat_api.add_code(code, "mp-li")
    body = api_client.post(LOGIN, json={"code": code}).get_json()
    assert body["member"]["id"] == member.id
    assert body["member"]["phone"] == "13800000002"  # their own: not masked
    assert body["member"]["masked"] is False


def test_login_links_the_official_account_member_by_unionid(api_client, wechat_api, make_member, engine):
    member = make_member("王志强", "13800000003", openid="oa-wang")
    with Session(engine) as s:
        s.get(Member, member.id).unionid = "union-wang"
        s.commit()
    code = fresh_code()
    wechat_api.add_code(code, "mp-wang", unionid="union-wang")
    body = api_client.post(LOGIN, json={"code": code}).get_json()
    assert body["member"]["id"] == member.id
    assert body["member"]["wechat_bound"] and body["member"]["miniapp_bound"]
    with Session(engine) as s:
        linked = s.get(Member, member.id)
        assert (linked.openid, linked.miniapp_openid) == ("oa-wang", "mp-wang")
        assert s.get(MiniappUser, "mp-wang").unionid == "union-wang"


def test_unionid_does_not_take_over_a_member_bound_to_another_miniapp_user(api_client, wechat_api,
                                                                          make_member, engine):
    member = make_member(miniapp_openid="mp-first")
    with Session(engine) as s:
        s.get(Member, member.id).unionid = "u1"
        s.commit()
    code = fresh_code()
    wechat_api.add_code(code, "mp-second", unionid="u1")
    assert api_client.post(LOGIN, json={"code": code}).get_json()["member"] is None


# Tokens ------------------------------------------------------------------------------------------
def test_missing_or_bad_token_is_401(api_client):
    assert_error(api_client.get("/api/v1/me"), 401, "unauthorized")
    response = api_client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})
    assert_error(response, 401, "token_invalid")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(api_client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    assert_error(api_client.get("/api/v1/admin/orgs"), 401, "unauthorized")


def test_logout_revokes_the_token(api_client, api_login):
    headers = api_login(openid="mp-1")
    assert api_client.get("/api/v1/me", headers=headers).status_code == 200
    response = api_client.post("/api/v1/auth/logout", headers=headers)
    assert response.status_code == 200 and response.get_json() == {"message": "已退出登录。"}
    assert_error(api_client.get("/api/v1/me", headers=headers), 401, "token_invalid")


def test_token_expiry_slides_with_use(app_factory, api_login):
    app = app_factory(API_TOKEN_TTL=600)
    client = app.test_client()
    headers = api_login(openid="mp-1", client=client)
    store = get_redis(app)
    (key,) = store.keys("lx:api:token:*")
    store.expire(key, 5)  # as if most of its life had passed
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert store.ttl(key) > 5  # used: extended to the full lifetime again
    store.delete(key)  # as if it had expired
    assert_error(client.get("/api/v1/me", headers=headers), 401, "token_invalid")


# /me and binding --------------------------------------------------------------------------------
def test_me_unbound_then_bind_then_unbind(api_client, api_login, make_member, engine):
    member = make_member("赵秀英", "13800000004", openid="oa-zhao")
    headers = api_login(openid="mp-zhao", unionid="union-zhao")
    assert api_client.get("/api/v1/me", headers=headers).get_json() == {"bound": False, "member": None}

    response = api_client.post("/api/v1/me/bind", headers=headers,
                               json={"name": "赵秀英", "phone": "+86 138-0000-0004"})
    body = response.get_json()
    assert response.status_code == 200 and body["bound"] is True
    assert body["member"]["id"] == member.id and body["member"]["phone"] == "13800000004"
    assert body["member"]["join_date"] == "2001-07-01"
    assert body["member"]["created_at"].endswith("+08:00")
    datetime.fromisoformat(body["member"]["updated_at"])
    assert api_client.get("/api/v1/me", headers=headers).get_json()["member"]["id"] == member.id
    with Session(engine) as s:
        bound = s.get(Member, member.id)
        # The Official Account binding is untouched; the unionid links both from now on.
        assert (bound.openid, bound.miniapp_openid, bound.unionid) == ("oa-zhao", "mp-zhao", "union-zhao")

    # The same member again is a success; another one is refused.
    again = api_client.post("/api/v1/me/bind", headers=headers, json={"name": "赵秀英", "phone": "13800000004"})
    assert again.status_code == 200 and again.get_json()["member"]["id"] == member.id
    body = assert_error(api_client.post("/api/v1/me/bind", headers=headers,
                                        json={"name": "钱多多", "phone": "13800000099"}), 400, "already_bound")
    assert "解除绑定" in body["message"] and "发送" not in body["message"]

    response = api_client.delete("/api/v1/me/bind", headers=headers)
    assert response.status_code == 200 and response.get_json() == {"bound": False, "member": None}
    with Session(engine) as s:
        assert s.get(Member, member.id).openid == "oa-zhao"
        assert s.get(Member, member.id).miniapp_openid is None
    assert_error(api_client.delete("/api/v1/me/bind", headers=headers), 400, "not_bound")


def test_bind_taken_member_is_refused(api_client, api_login, make_member):
    make_member("陈晓", "13800000005", miniapp_openid="mp-someone-else")
    headers = api_login(openid="mp-me")
    assert_error(api_client.post("/api/v1/me/bind", headers=headers,
                                 json={"name": "陈晓", "phone": "13800000005"}), 400, "taken")


def test_bind_lockout_is_shared_with_the_chatbot_rules(app_factory, api_login, make_member, engine):
    app = app_factory(BIND_MAX_FAILURES=3, BIND_LOCKOUT_SECONDS=600)
    client = app.test_client()
    make_member("刘洋", "13800000006")
    headers = api_login(openid="mp-liu", client=client)
    for _ in range(3):
        assert_error(client.post("/api/v1/me/bind", headers=headers,
                                 json={"name": "刘洋", "phone": "13900000000"}), 400, "no_match")
    body = assert_error(client.post("/api/v1/me/bind", headers=headers,
                                    json={"name": "刘洋", "phone": "13800000006"}), 429, "locked")
    assert "分钟后再试" in body["message"]
    with Session(engine) as s:
        assert s.get(MiniappUser, "mp-liu").failed_binds == 3
        assert s.scalar(select(Member.miniapp_openid).where(Member.name == "刘洋")) is None


def test_bind_validation(api_client, api_login):
    headers = api_login(openid="mp-1")
    body = assert_error(api_client.post("/api/v1/me/bind", headers=headers, json={"name": ""}), 422, "invalid")
    assert set(body["details"]["fields"]["json"]) == {"name", "phone"}


# Rate limits -------------------------------------------------------------------------------------
def test_login_is_rate_limited_per_address(app_factory, wechat_api):
    client = app_factory(API_LOGIN_RATE_LIMIT="3 per minute").test_client()
    for _ in range(3):
        assert client.post(LOGIN, json={"code": "bad"}).status_code == 401
    response = client.post(LOGIN, json={"code": "bad"})
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    other = client.post(LOGIN, json={"code": "bad"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 401  # another address has its own allowance
    assert len(wechat_api.calls_to("/sns/jscode2session")) == 4


def test_bind_is_rate_limited_per_token_and_per_address(app_factory, api_login):
    app = app_factory(API_BIND_RATE_LIMIT_PER_TOKEN="2 per minute", API_BIND_RATE_LIMIT="3 per minute")
    client = app.test_client()
    first, second = api_login(openid="mp-a", client=client), api_login(openid="mp-b", client=client)
    wrong = {"name": "无此人", "phone": "13900000000"}
    for _ in range(2):
        assert client.post("/api/v1/me/bind", headers=first, json=wrong).status_code == 400
    assert_error(client.post("/api/v1/me/bind", headers=first, json=wrong), 429, "rate_limited")
    # A second token from the same address gets its own allowance, until the address's runs out.
    assert client.post("/api/v1/me/bind", headers=second, json=wrong).status_code == 400
    assert_error(client.post("/api/v1/me/bind", headers=second, json=wrong), 429, "rate_limited")
    third = api_login(openid="mp-c", client=client)
    assert_error(client.post("/api/v1/me/bind", headers=third, json=wrong), 429, "rate_limited")
    other_ip = {"REMOTE_ADDR": "10.0.0.9"}
    assert client.post("/api/v1/me/bind", headers=third, json=wrong, environ_base=other_ip).status_code == 400


# Errors ------------------------------------------------------------------------------------------
def test_unknown_paths_and_methods_answer_the_error_shape(api_client):
    assert_error(api_client.get("/api/v1/nothing-here"), 404, "not_found")
    response = api_client.get(LOGIN)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    # The other doors keep their own answers.
    assert api_client.get("/nothing-here").content_type.startswith("text/html")


def test_openapi_document_and_docs_page(api_client):
    spec = api_client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/auth/login", "/api/v1/me/bind", "/api/v1/admin/members/import"} <= set(spec["paths"])
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "details"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert "200" in operation["responses"], (method, path)
            assert "default" in operation["responses"], (method, path)
            if path not in ("/api/v1/auth/login", "/api/v1/config"):  # the public ones
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
    page = api_client.get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger" in page.data.lower()


def test_behind_a_trusted_proxy_limits_count_per_client_address(app_factory):
    client = app_factory(TRUSTED_PROXIES=1, API_LOGIN_RATE_LIMIT="1 per minute").test_client()
    one, two = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    assert client.post(LOGIN, json={"code": fresh_code()}, headers=one).status_code == 401
    assert_error(client.post(LOGIN, json={"code": fresh_code()}, headers=one), 429, "rate_limited")
    assert client.post(LOGIN, json={"code": fresh_code()}, headers=two).status_code == 401


def test_the_rate_limiter_stays_off_the_webhook_path(api_app):
    from app.api import limiter
    from app.fastpath import is_limiter_hook

    for hooks in (api_app.before_request_funcs, api_app.after_request_funcs, api_app.teardown_request_funcs):
        assert not any(is_limiter_hook(limiter, f) for f in hooks.get(None, []))
        assert any(is_limiter_hook(limiter, f) for f in hooks["auth"])


def test_unionid_link_is_skipped_when_the_openid_is_held_by_a_deactivated_member(api_client, wechat_api,
                                                                                 make_member, engine):
    old = make_member(miniapp_openid="mp-x")
    new = make_member()
    with Session(engine) as s:
        s.get(Member, old.id).active = False
        s.get(Member, new.id).unionid = "u-x"
        s.commit()
    code = fresh_code()
    wechat_api.add_code(code, "mp-x", unionid="u-x")
    response = api_client.post(LOGIN, json={"code": code})
    assert response.status_code == 200 and response.get_json()["member"] is None


def test_a_dead_redis_is_a_json_503_not_a_stack_trace(app_factory, wechat_api):
    client = app_factory(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2).test_client()
    code = fresh_code()
    wechat_api.add_code(code, "mp-1")
    body = assert_error(client.post(LOGIN, json={"code": code}), 503, "unavailable")
    assert body["details"] == {}
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Bearer x"}), 503, "unavailable")
