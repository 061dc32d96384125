"""/api/v1 notices, receipts, the inbox, org-life rules and subscribe consents through HTTP: the
chatbot's rules and messages, scope by the org tree, and state shared with the chatbot.

The API's clock is fixed, so no assertion depends on the wall clock.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import SubscribeGrant
from tests.conftest import OTHER_BRANCH, org_id
from tests.test_api_auth import assert_error

NOW = datetime(2026, 9, 25, 2, 0, tzinfo=UTC)  # 25 September 2026, 10:00 in Shanghai


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    import app.api.notice_schemas
    import app.api.notices

    clock = Clock(NOW)
    monkeypatch.setattr(app.api.notices, "now_utc", clock)
    monkeypatch.setattr(app.api.notice_schemas, "now_utc", clock)
    return clock


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec.bound(), wang=cast.wang.but(kind="在职党员", grid="东湖一网格").bound(),
                zhao=cast.zhao.but(kind="在职党员").bound(), liu=cast.liu.bound(), zhou=cast.zhou.bound(),
                sun=cast.sun.bound())




def publish(api_client, as_, key="sec", **fields):
    response = api_client.post("/api/v1/admin/notices", json={"body": "周五下午清扫楼道", **fields},
                               headers=as_(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def inbox(api_client, as_, key, **query):
    response = api_client.get("/api/v1/me/messages", query_string=query, headers=as_(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# Notices ---------------------------------------------------------------------------------------------
def test_publish_read_receipt_and_remind(api_client, as_, people):
    notice = publish(api_client, as_, title="清扫通知", urgent=True)
    assert notice["number"] == "#1" and notice["recipient_count"] == 3  # 王, 赵, 刘: not the secretary
    assert notice["title"] == "清扫通知" and notice["urgent"] is True
    assert "通知 #1 已发布到「东湖社区第一党支部」，共 3 人" in notice["message"]
    assert notice["created_at"].endswith("+08:00")

    mine = inbox(api_client, as_, "wang")
    assert mine["total"] == 1 and mine["unread"] == 1
    message = mine["items"][0]
    assert message["title"] == "清扫通知" and message["read"] is False and message["read_at"] is None

    opened = api_client.get(f"/api/v1/me/messages/{message['id']}", headers=as_("wang"))
    assert opened.status_code == 200
    assert opened.get_json()["read"] is True and opened.get_json()["read_at"].endswith("+08:00")
    assert inbox(api_client, as_, "wang")["unread"] == 0

    receipt = api_client.get("/api/v1/admin/notices/1", headers=as_("sec")).get_json()
    assert receipt["number"] == "#1" and receipt["total"] == 3 and receipt["pending"] == 3
    assert (receipt["read"], receipt["unread"]) == (1, 2)
    assert receipt["read_names"] == ["王志强"]
    assert sorted(receipt["unread_names"]) == sorted(["赵秀英", "刘洋"])
    # The street's administrator sees it too (their subtree).
    assert api_client.get("/api/v1/admin/notices/1", headers=as_("admin")).status_code == 200

    reminded = api_client.post("/api/v1/admin/notices/1/remind", headers=as_("sec")).get_json()
    assert reminded["reminded"] == 2 and "已向 2 位未读成员再次发送通知 #1" in reminded["message"]
    # The reminder lands in 赵秀英's inbox; opening it reads the notice.
    zhao = inbox(api_client, as_, "zhao")
    assert zhao["total"] == 2 and zhao["items"][0]["title"].startswith("再提醒")
    api_client.get(f"/api/v1/me/messages/{zhao['items'][0]['id']}", headers=as_("zhao"))
    receipt = api_client.get("/api/v1/admin/notices/1", headers=as_("sec")).get_json()
    assert receipt["read"] == 2


def test_remind_when_all_read_is_refused(api_client, as_):
    publish(api_client, as_, kinds=["在职党员"])
    for key in ("wang", "zhao"):
        message = inbox(api_client, as_, key)["items"][0]
        api_client.get(f"/api/v1/me/messages/{message['id']}", headers=as_(key))
    body = assert_error(api_client.post("/api/v1/admin/notices/1/remind", headers=as_("sec")), 400, "domain_error")
    assert "已全部阅读" in body["message"]


def test_audience_kinds_grid_and_org(api_client, as_, engine):
    assert publish(api_client, as_, kinds=["在职党员"])["recipient_count"] == 2
    assert publish(api_client, as_, grid_id=_grid_id(engine, "东湖一网格"))["recipient_count"] == 1
    # The administrator of the street sends to one branch below them.
    other = publish(api_client, as_, "admin", org_id=org_id(engine, OTHER_BRANCH))
    assert other["recipient_count"] == 2 and other["org"]["name"] == "西湖社区党支部"


def _grid_id(engine, name):
    from models.org import Grid

    with Session(engine) as s:
        return s.scalars(select(Grid.id).where(Grid.name == name)).one()


def test_notices_are_refused_outside_the_rules(api_client, as_, engine, api_login):
    # A secretary cannot send above or beside their branch.
    body = assert_error(api_client.post("/api/v1/admin/notices", json={
        "body": "x", "org_id": org_id(engine, OTHER_BRANCH)}, headers=as_("sec")), 403, "forbidden")
    assert "只能向本组织及下级组织发布通知" in body["message"]
    # A member is not a secretary.
    body = assert_error(api_client.post("/api/v1/admin/notices", json={"body": "x"}, headers=as_("wang")),
                        403, "forbidden")
    assert "只有书记或管理员" in body["message"]
    assert_error(api_client.get("/api/v1/admin/notices", headers=as_("wang")), 403, "forbidden")
    # Bad input: 422 with the field names.
    assert_error(api_client.post("/api/v1/admin/notices", json={"body": "x", "kinds": ["外星人"]},
                                 headers=as_("sec")), 422, "invalid")
    assert_error(api_client.post("/api/v1/admin/notices", json={}, headers=as_("sec")), 422, "invalid")
    # Nobody to tell.
    body = assert_error(api_client.post("/api/v1/admin/notices", json={"body": "x", "kinds": ["流动党员"]},
                                        headers=as_("sec")), 400, "domain_error")
    assert "没有可通知的成员" in body["message"]
    # Another branch's secretary sees neither the notice nor its receipt, nor can remind.
    publish(api_client, as_)
    assert_error(api_client.get("/api/v1/admin/notices/1", headers=as_("zhou")), 404, "not_found")
    assert_error(api_client.post("/api/v1/admin/notices/1/remind", headers=as_("zhou")), 404, "not_found")
    assert api_client.get("/api/v1/admin/notices", headers=as_("zhou")).get_json()["total"] == 0
    # Not logged in; logged in but bound to no one.
    assert_error(api_client.get("/api/v1/admin/notices"), 401, "unauthorized")
    assert_error(api_client.get("/api/v1/me/messages", headers=api_login(openid="o-nobody")), 403, "not_bound")


def test_notices_and_inbox_are_paged(api_client, as_):
    for n in range(3):
        publish(api_client, as_, body=f"第{n + 1}条通知")
    page = api_client.get("/api/v1/admin/notices?page=1&per_page=2", headers=as_("sec")).get_json()
    assert (page["total"], page["pages"], [n["id"] for n in page["items"]]) == (3, 2, [3, 2])
    page = api_client.get("/api/v1/admin/notices?page=2&per_page=2", headers=as_("sec")).get_json()
    assert [n["number"] for n in page["items"]] == ["#1"]
    mine = inbox(api_client, as_, "wang", page=2, per_page=2)
    assert (mine["total"], mine["pages"], len(mine["items"])) == (3, 2, 1)
    assert mine["items"][0]["body"] == "第1条通知"
    first = inbox(api_client, as_, "wang")["items"][0]
    api_client.get(f"/api/v1/me/messages/{first['id']}", headers=as_("wang"))
    assert inbox(api_client, as_, "wang", unread=1)["total"] == 2


def test_one_cannot_open_another_members_message(api_client, as_):
    publish(api_client, as_)
    message = inbox(api_client, as_, "wang")["items"][0]
    assert_error(api_client.get(f"/api/v1/me/messages/{message['id']}", headers=as_("zhao")), 404, "not_found")
    assert_error(api_client.get("/api/v1/me/messages/999999", headers=as_("wang")), 404, "not_found")


def test_api_and_chatbot_share_notices_and_receipts(api_client, as_, wx):
    publish(api_client, as_, title="清扫通知")
    reply = wx.text("o-wang", "消息").content
    assert "您有 1 条未读消息" in reply and "清扫通知" in reply
    message = inbox(api_client, as_, "zhao")["items"][0]
    api_client.get(f"/api/v1/me/messages/{message['id']}", headers=as_("zhao"))
    reply = wx.text("o-sec", "通知 1 回执").content
    assert "已读 1，未读 2" in reply
    # A notice sent through the chatbot is in the API's list and inbox; reading it there counts.
    assert "通知 #2 已发布" in wx.text("o-sec", "通知 明天停水").content
    assert api_client.get("/api/v1/admin/notices", headers=as_("sec")).get_json()["total"] == 2
    number = wx.text("o-wang", "消息").content.split("\n")[1].split(".")[0]
    wx.text("o-wang", f"消息 {number}")
    receipt = api_client.get("/api/v1/admin/notices/2", headers=as_("sec")).get_json()
    assert receipt["read_names"] == ["王志强"]


def test_receipt_counts_deliveries(api_client, as_, make_sender):
    publish(api_client, as_)
    make_sender().drain(NOW)
    receipt = api_client.get("/api/v1/admin/notices/1", headers=as_("sec")).get_json()
    assert receipt["delivered"] == 3 and receipt["pending"] == 0 and receipt["failed"] == 0


# Subscribe consents ------------------------------------------------------------------------------
def test_subscriptions_are_recorded(api_client, as_, engine, people):
    response = api_client.post("/api/v1/me/subscriptions", json={"template": "notice", "count": 2},
                               headers=as_("wang"))
    body = response.get_json()
    assert response.status_code == 200 and (body["template"], body["remaining"]) == ("notice", 2)
    response = api_client.post("/api/v1/me/subscriptions", json={"template": "notice"}, headers=as_("wang"))
    assert response.get_json()["remaining"] == 3
    with Session(engine) as s:
        grant = s.scalars(select(SubscribeGrant).where(SubscribeGrant.member_id == people["wang"].id)).one()
        assert (grant.kind, grant.remaining) == ("notice", 3)
    assert_error(api_client.post("/api/v1/me/subscriptions", json={"template": "spam"}, headers=as_("wang")),
                 422, "invalid")
    assert_error(api_client.post("/api/v1/me/subscriptions", json={"template": "notice", "count": 0},
                                 headers=as_("wang")), 422, "invalid")


# Org-life rules ----------------------------------------------------------------------------------
def test_rules_create_list_move_delete(api_client, as_):
    response = api_client.post("/api/v1/admin/rules", json={"rule": "每月第一个周五 15:00 主题党日"},
                               headers=as_("sec"))
    assert response.status_code == 200, response.get_json()
    rule = response.get_json()
    assert (rule["id"], rule["spec"], rule["start_time"], rule["title"]) == (1, "每月第一个周五", "15:00", "主题党日")
    assert rule["notice_days"] == 3 and rule["next_start"] == "2026-10-02T15:00:00+08:00"
    listed = api_client.get("/api/v1/admin/rules", headers=as_("sec")).get_json()["items"]
    assert [r["id"] for r in listed] == [1]
    assert api_client.get("/api/v1/admin/rules", headers=as_("admin")).get_json()["items"][0]["id"] == 1
    assert api_client.get("/api/v1/admin/rules", headers=as_("zhou")).get_json()["items"] == []

    moved = api_client.post("/api/v1/admin/rules/1/move", json={"starts_at": "2026-10-09T15:00:00+08:00"},
                            headers=as_("sec"))
    assert moved.status_code == 200, moved.get_json()
    occurrence = moved.get_json()
    assert occurrence["period"] == "2026-10" and occurrence["moved"] is True
    assert occurrence["starts_at"] == "2026-10-09T15:00:00+08:00"
    # An ISO time without an offset is Beijing time.
    api_client.post("/api/v1/admin/rules/1/move", json={"starts_at": "2026-10-10T09:00:00"}, headers=as_("sec"))
    rule = api_client.get("/api/v1/admin/rules", headers=as_("sec")).get_json()["items"][0]
    assert rule["next_start"] == "2026-10-10T09:00:00+08:00"

    deleted = api_client.delete("/api/v1/admin/rules/1", headers=as_("sec"))
    assert deleted.status_code == 200 and "已删除组织生活 1" in deleted.get_json()["message"]
    assert api_client.get("/api/v1/admin/rules", headers=as_("sec")).get_json()["items"] == []


def test_rules_are_refused_outside_the_rules(api_client, as_, engine):
    body = assert_error(api_client.post("/api/v1/admin/rules", json={"rule": "每周一 15:00 学习"},
                                        headers=as_("sec")), 400, "domain_error")
    assert "没看懂这条规则" in body["message"]
    body = assert_error(api_client.post("/api/v1/admin/rules", json={
        "rule": "每月15日 09:30 组织生活日", "org_id": org_id(engine, OTHER_BRANCH)}, headers=as_("sec")),
        403, "forbidden")
    assert "只能为本组织及下级组织设置组织生活" in body["message"]
    assert_error(api_client.post("/api/v1/admin/rules", json={"rule": "每月15日 09:30 组织生活日"},
                                 headers=as_("wang")), 403, "forbidden")
    assert_error(api_client.get("/api/v1/admin/rules", headers=as_("wang")), 403, "forbidden")
    api_client.post("/api/v1/admin/rules", json={"rule": "每月15日 09:30 组织生活日"}, headers=as_("sec"))
    # Another branch's secretary can neither move nor delete it.
    assert_error(api_client.delete("/api/v1/admin/rules/1", headers=as_("zhou")), 404, "not_found")
    assert_error(api_client.post("/api/v1/admin/rules/1/move", json={"starts_at": "2026-10-16T09:30:00+08:00"},
                                 headers=as_("zhou")), 404, "not_found")
    # Not into the past; not a bad time.
    body = assert_error(api_client.post("/api/v1/admin/rules/1/move", json={"starts_at": "2026-09-01T09:30:00+08:00"},
                                        headers=as_("sec")), 400, "domain_error")
    assert "已经过去" in body["message"]
    assert_error(api_client.post("/api/v1/admin/rules/1/move", json={"starts_at": "明天"}, headers=as_("sec")),
                 422, "invalid")


def test_rules_are_shared_with_the_chatbot(api_client, as_, wx):
    api_client.post("/api/v1/admin/rules", json={"rule": "每月15日 09:30 组织生活日"}, headers=as_("sec"))
    assert "1. 每月15日 09:30 组织生活日" in wx.text("o-sec", "组织生活").content
    wx.text("o-sec", "组织生活 每季度首月10日 14:00 支部党员大会")
    titles = [r["title"] for r in api_client.get("/api/v1/admin/rules", headers=as_("sec")).get_json()["items"]]
    assert titles == ["组织生活日", "支部党员大会"]
