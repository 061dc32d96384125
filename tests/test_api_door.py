"""The API door itself: the login checked once per blueprint, one answer for "not bound", the API's
own words for domain errors, schemas that read no rows."""

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from app.api import presenter
from app.api.auth import BEARER
from app.api.errors import HTTP_ERRORS
from app.api.wish_schemas import AwardSchema
from models import DomainError
from models.points import ManualAward
from tests.test_api_auth import assert_error

PUBLIC = {"login", "getPublicConfig"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_each_operation_documents_its_security(api_client):
    spec = api_client.get("/api/v1/openapi.json").get_json()
    found = set()
    for method, path, operation in operations(spec):
        expected = [] if operation["operationId"] in PUBLIC else BEARER
        assert operation["security"] == expected, (method, path)
        found.add(operation["operationId"])
    assert PUBLIC <= found and len(found) >= 55


def test_public_operations_need_no_login_and_the_others_do(api_client):
    assert api_client.get("/api/v1/config").status_code == 200
    assert_error(api_client.post("/api/v1/auth/login", json={}), 422, "invalid")  # reached the view's schema
    assert_error(api_client.post("/api/v1/auth/logout"), 401, "unauthorized")
    assert_error(api_client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401, "token_invalid")


def test_a_preflight_needs_no_login(api_client):
    response = api_client.options("/api/v1/me")
    assert response.status_code == 200 and "GET" in response.headers["Allow"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/v1/activities", None),
    ("post", "/api/v1/wishes", {"title": "修水龙头"}),
    ("get", "/api/v1/me/points", None),
    ("get", "/api/v1/me/messages", None),
    ("get", "/api/v1/admin/members", None),
    ("get", "/api/v1/admin/reports/quota", None),
])
def test_not_bound_is_one_answer_everywhere(api_client, api_login, method, path, body):
    headers = api_login(openid="mp-nobody")
    answer = assert_error(api_client.open(path, method=method.upper(), json=body, headers=headers), 403, "not_bound")
    assert answer["message"] == presenter.NOT_BOUND
    assert "POST /" not in answer["message"] and "发送" not in answer["message"]


def test_a_domain_error_is_worded_by_the_api_from_its_code_and_data(app_factory):
    api_app = app_factory()  # an app of its own: the test adds a route to it
    @api_app.get("/api/v1/_test/error/<kind>")
    def fail(kind):
        if kind == "chat":
            raise DomainError("请发送「绑定 姓名 手机号」。", code="needs_chat", status=409,
                              data={"number": "#3", "ids": [1, 2], "row": object()})
        raise DomainError("活动 #3 已取消。", code="cancelled", data={"number": "#3"})

    client = api_app.test_client()
    chat = assert_error(client.get("/api/v1/_test/error/chat"), 409, "needs_chat")
    assert chat["message"] == HTTP_ERRORS[409][1]  # the chat command is not passed on
    assert chat["details"] == {"number": "#3", "ids": [1, 2]}  # JSON-plain data only
    plain = assert_error(client.get("/api/v1/_test/error/plain"), 400, "cancelled")
    assert plain["message"] == "活动 #3 已取消。" and plain["details"] == {"number": "#3"}


def test_api_messages_override_a_domain_message_by_code(monkeypatch):
    monkeypatch.setitem(presenter.API_MESSAGES, "some_code", "接口的说法。")
    assert presenter.error_message("some_code", "领域的说法。", "兜底") == "接口的说法。"
    assert presenter.error_message("other", "领域的说法。", "兜底") == "领域的说法。"
    assert presenter.error_message("other", "请回复「确认」。", "兜底") == "兜底"


def test_an_award_names_its_member_without_a_query_per_row(api_app, make_member, engine):
    wang, sec = make_member("王志强", "13800000003"), make_member("李红梅", "13800000002", role="书记")
    with Session(engine) as s:
        s.add_all([ManualAward(member_id=wang.id, amount=n, reason="义务巡逻", requested_by_id=sec.id)
                   for n in (1, 2, 3)])
        s.commit()
    with Session(engine) as s:
        awards = s.scalars(select(ManualAward).options(selectinload(ManualAward.member))).all()
    statements = []

    def count(*args):
        statements.append(args[2])

    event.listen(Engine, "before_cursor_execute", count)
    try:
        with api_app.app_context():
            dumped = AwardSchema(many=True).dump(awards)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert [a["member_name"] for a in dumped] == ["王志强"] * 3
    assert statements == []
