"""/api/v1 微心愿 and 积分 through HTTP: the chatbot's rules and messages, masking, scope, uploads."""

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from models import Member
from tests.conftest import BRANCH, OTHER_BRANCH, SECOND_BRANCH, Person, org_id
from tests.test_api_auth import assert_error

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WISH = {"title": "修水龙头", "details": "厨房水龙头漏水", "beneficiary_name": "王奶奶",
        "beneficiary_address": "东湖小区3栋2单元101", "beneficiary_phone": "13912345678"}


@pytest.fixture
def people(cast, engine):
    made = cast(admin=cast.admin, sec=cast.sec, sec2=cast.peer, wang=cast.wang.but(grid="东湖一网格").bound(),
                zhao=cast.zhao.but(grid="东湖一网格").bound(), liu=cast.liu.bound(),
                chen=Person("陈晓", "13800000005", org=SECOND_BRANCH, grid="东湖二网格"), zhou=cast.zhou, sun=cast.sun,
                granny=Person("王奶奶", "13912345678", kind="群众", role="志愿者", grid="东湖一网格"))
    with Session(engine) as s:
        s.get(Member, made["chen"].id).grid_head = True  # the head of another grid
        s.commit()
    return made



@pytest.fixture
def call(api_client, as_):
    """call("wang", "claim", 1) → POST /api/v1/wishes/1/claim as 王志强."""

    def post(key, action, wish_id, **body):
        return api_client.post(f"/api/v1/wishes/{wish_id}/{action}", json=body, headers=as_(key))

    return post



def posted(api_client, as_, key="sec", **fields):
    response = api_client.post("/api/v1/wishes", json={**WISH, **fields}, headers=as_(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# The whole life of a wish ---------------------------------------------------------------------------
def test_a_wish_from_posting_to_points(api_client, as_, call):
    wish = posted(api_client, as_)
    assert wish["number"] == "#1" and wish["status"] == "待认领" and wish["category"] == "维修"
    assert wish["points"] == 10 and wish["poster"]["name"] == "李红梅"
    assert wish["beneficiary"] == {"name": "王奶奶", "address": "东湖小区3栋2单元101", "phone": "13912345678",
                                   "masked": False}
    assert wish["created_at"].endswith("+08:00")

    # Before anyone claims it, a volunteer sees the beneficiary masked.
    seen = api_client.get("/api/v1/wishes/1", headers=as_("liu")).get_json()
    assert seen["beneficiary"]["masked"] is True and seen["beneficiary"]["phone"] == "139****5678"
    assert seen["beneficiary"]["name"] == "王**"

    claimed = call("wang", "claim", 1)
    assert claimed.status_code == 200
    body = claimed.get_json()
    assert body["status"] == "已认领" and body["claimer"]["name"] == "王志强"
    assert body["beneficiary"]["phone"] == "13912345678" and body["fulfil_by"].endswith("+08:00")
    refused = assert_error(call("liu", "claim", 1), 409, "already_claimed")
    assert "已被认领" in refused["message"]
    assert call("liu", "release", 1).status_code == 403
    assert api_client.get("/api/v1/wishes/1", headers=as_("liu")).get_json()["beneficiary"]["masked"] is True

    assert_error(call("liu", "fulfil", 1, note="修好了"), 403, "forbidden")
    fulfilled = call("wang", "fulfil", 1, note="已上门换了新龙头").get_json()
    assert fulfilled["status"] == "待确认" and fulfilled["fulfil_note"] == "已上门换了新龙头"

    assert "只有心愿 #1 所在组织的书记" in assert_error(call("zhou", "confirm", 1), 403, "forbidden")["message"]
    assert_error(call("wang", "confirm", 1), 403, "forbidden")
    assert_error(call("liu", "confirm", 1), 403, "forbidden")
    done = call("sec", "confirm", 1).get_json()
    assert done["status"] == "已完成" and done["completed_at"].endswith("+08:00")
    assert "无需重复确认" in assert_error(call("sec", "confirm", 1), 409, "already_confirmed")["message"]

    history = api_client.get("/api/v1/wishes/1", headers=as_("liu")).get_json()["history"]
    assert [(e["action"], e["from_status"], e["to_status"]) for e in history] == [
        ("发布", None, "待认领"), ("认领", "待认领", "已认领"), ("完成", "已认领", "待确认"),
        ("确认", "待确认", "已完成")]
    assert history[2]["note"] == "已上门换了新龙头" and history[1]["actor"]["name"] == "王志强"
    assert all(e["at"].endswith("+08:00") for e in history)

    mine = api_client.get("/api/v1/me/points", headers=as_("wang")).get_json()
    assert mine["balance"] == 10
    assert [(e["amount"], e["source"]) for e in mine["entries"]] == [(10, "wish")]
    assert "修水龙头" in mine["entries"][0]["reason"]
    my = api_client.get("/api/v1/me/wishes", headers=as_("wang")).get_json()["items"]
    assert [(w["number"], w["status"]) for w in my] == [("#1", "已完成")]


def test_a_member_proposes_and_a_secretary_reviews(api_client, as_, call):
    proposal = posted(api_client, as_, "wang", title="帮忙买米", details="家里没米了，想请人帮忙买一袋米",
                      points=999)
    assert proposal["status"] == "待审核" and proposal["points"] == 10  # proposers do not set points
    assert proposal["title"] == "帮忙买米" and proposal["beneficiary"]["name"] == "王志强"
    # A proposal is seen by its proposer and the secretaries above, by no one else.
    assert api_client.get("/api/v1/wishes", headers=as_("liu")).get_json()["total"] == 0
    assert_error(api_client.get("/api/v1/wishes/1", headers=as_("liu")), 404, "not_found")
    assert_error(api_client.get("/api/v1/wishes/1", headers=as_("zhou")), 404, "not_found")
    assert api_client.get("/api/v1/wishes", headers=as_("sec")).get_json()["total"] == 1
    assert api_client.get("/api/v1/wishes", headers=as_("wang")).get_json()["total"] == 1
    assert_error(call("liu", "claim", 1), 409, "wrong_state")

    assert_error(call("wang", "approve", 1), 403, "forbidden")
    assert_error(call("zhou", "approve", 1), 403, "forbidden")
    no_reason = assert_error(call("sec", "reject", 1), 400, "domain_error")
    assert "请写明不通过的理由" in no_reason["message"]
    refused = call("sec", "reject", 1, reason="请联系社区办理").get_json()
    assert refused["status"] == "未通过" and refused["history"][-1]["note"] == "请联系社区办理"

    posted(api_client, as_, "liu", title="陪老人聊天")
    approved = call("admin", "approve", 2).get_json()  # the street admin is above the branch
    assert approved["status"] == "待认领"
    assert_error(call("sec", "approve", 2), 409, "wrong_state")


def test_posting_is_checked_like_the_chatbot(api_client, as_, engine):
    assert_error(api_client.post("/api/v1/wishes", json={**WISH, "org_id": org_id(engine, OTHER_BRANCH)},
                                 headers=as_("sec")), 403, "forbidden")
    assert_error(api_client.post("/api/v1/wishes", json={"title": "   "}, headers=as_("sec")), 400, "domain_error")
    assert_error(api_client.post("/api/v1/wishes", json={"title": "x", "category": "别的"}, headers=as_("sec")),
                 422, "invalid")
    assert_error(api_client.post("/api/v1/wishes", json={"details": "x"}, headers=as_("sec")), 422, "invalid")
    wish = posted(api_client, as_, "admin", org_id=org_id(engine, OTHER_BRANCH), points=20)
    assert wish["org"]["name"] == "西湖社区党支部" and wish["points"] == 20


def test_listing_filters_and_pages(api_client, as_, engine):
    posted(api_client, as_, title="修水龙头")
    posted(api_client, as_, title="买米", category="生活用品")
    posted(api_client, as_, title="陪老人", category="陪伴探访")
    posted(api_client, as_, "zhou", title="西湖修灯", category="维修")
    page = api_client.get("/api/v1/wishes?per_page=3", headers=as_("liu")).get_json()
    assert page["total"] == 4 and page["pages"] == 2 and len(page["items"]) == 3
    assert [w["number"] for w in page["items"]] == ["#4", "#3", "#2"]
    second = api_client.get("/api/v1/wishes?per_page=3&page=2", headers=as_("liu")).get_json()
    assert [w["number"] for w in second["items"]] == ["#1"]
    assert second["items"][0]["beneficiary"]["masked"] is True
    body = api_client.get("/api/v1/wishes?category=维修", headers=as_("liu")).get_json()
    assert {w["title"] for w in body["items"]} == {"修水龙头", "西湖修灯"}
    body = api_client.get(f"/api/v1/wishes?org={org_id(engine, OTHER_BRANCH)}&status=待认领",
                          headers=as_("liu")).get_json()
    assert [w["title"] for w in body["items"]] == ["西湖修灯"]
    assert api_client.get("/api/v1/wishes?status=已完成&org=&category=", headers=as_("liu")).get_json()["total"] == 0
    assert_error(api_client.get("/api/v1/wishes?status=done", headers=as_("liu")), 422, "invalid")
    assert_error(api_client.get("/api/v1/wishes?org=999999", headers=as_("liu")), 404, "not_found")


def test_release_return_and_withdraw(api_client, as_, call):
    posted(api_client, as_)
    call("wang", "claim", 1)
    assert_error(call("zhao", "release", 1), 403, "forbidden")
    released = call("wang", "release", 1, note="临时出差").get_json()
    assert released["status"] == "待认领" and released["claimer"] is None
    call("zhao", "claim", 1)
    call("zhao", "fulfil", 1)
    no_reason = assert_error(call("sec", "return", 1), 400, "domain_error")
    assert "请写明驳回理由" in no_reason["message"]
    assert_error(call("zhou", "return", 1, reason="不行"), 403, "forbidden")
    returned = call("sec", "return", 1, reason="水龙头仍在漏水").get_json()
    assert returned["status"] == "已认领" and returned["history"][-1]["action"] == "驳回"

    assert_error(call("wang", "withdraw", 1), 403, "forbidden")
    assert_error(call("zhou", "withdraw", 1), 403, "forbidden")
    withdrawn = call("sec", "withdraw", 1, note="受助人已搬走").get_json()
    assert withdrawn["status"] == "已撤回"
    assert_error(call("sec", "withdraw", 1), 409, "wrong_state")
    assert_error(api_client.get("/api/v1/wishes/1", headers=as_("liu")), 404, "not_found")
    assert api_client.get("/api/v1/wishes/1", headers=as_("zhao")).status_code == 404  # no longer theirs


def test_the_open_claims_limit(api_client, as_, call, api_app):
    api_app.extensions["settings"] = api_app.extensions["settings"].replace(WISH_MAX_OPEN_CLAIMS=1)
    posted(api_client, as_, title="一")
    posted(api_client, as_, title="二")
    call("wang", "claim", 1)
    assert "您已有 1 个未完成的心愿" in assert_error(call("wang", "claim", 2), 409, "too_many_claims")["message"]


def test_an_unbound_user_may_look_but_not_act(api_client, as_, api_login):
    posted(api_client, as_)
    stranger = api_login(openid="o-stranger")
    assert api_client.get("/api/v1/wishes", headers=stranger).get_json()["total"] == 1
    seen = api_client.get("/api/v1/wishes/1", headers=stranger).get_json()
    assert seen["beneficiary"]["masked"] is True
    assert_error(api_client.post("/api/v1/wishes/1/claim", headers=stranger), 403, "not_bound")
    assert_error(api_client.post("/api/v1/wishes", json=WISH, headers=stranger), 403, "not_bound")
    assert_error(api_client.get("/api/v1/me/points", headers=stranger), 403, "not_bound")
    assert_error(api_client.get("/api/v1/wishes"), 401, "unauthorized")


# Grid heads --------------------------------------------------------------------------------------------
def test_the_grid_head_of_the_beneficiary_confirms(api_client, as_, call, people):
    wish = posted(api_client, as_, beneficiary_member_id=people["granny"].id, beneficiary_phone="",
                  beneficiary_name="")
    assert wish["grid"] == "东湖一网格" and wish["beneficiary"]["name"] == "王奶奶"
    call("wang", "claim", 1)
    call("wang", "fulfil", 1, note="修好了")
    # Not yet a grid head: refused; the head of another grid: refused.
    assert "网格长" in assert_error(call("zhao", "confirm", 1), 403, "forbidden")["message"]
    assert_error(call("chen", "confirm", 1), 403, "forbidden")

    made = api_client.patch(f"/api/v1/admin/members/{people['zhao'].id}", json={"grid_head": True},
                            headers=as_("sec"))
    assert made.status_code == 200 and made.get_json()["grid_head"] is True
    returned = call("zhao", "return", 1, reason="还在滴水").get_json()
    assert returned["status"] == "已认领"
    call("wang", "fulfil", 1, note="换了阀芯")
    assert call("zhao", "confirm", 1).get_json()["status"] == "已完成"
    assert api_client.get("/api/v1/me/points", headers=as_("wang")).get_json()["balance"] == 10


def test_grid_head_needs_a_grid_and_a_responsible_editor(api_client, as_, people):
    no_grid = api_client.patch(f"/api/v1/admin/members/{people['liu'].id}", json={"grid_head": True},
                               headers=as_("sec"))
    assert "网格" in assert_error(no_grid, 422, "invalid")["message"]
    assert_error(api_client.patch(f"/api/v1/admin/members/{people['zhao'].id}", json={"grid_head": True},
                                  headers=as_("zhou")), 403, "forbidden")
    cleared = api_client.patch(f"/api/v1/admin/members/{people['chen'].id}", json={"grid": None},
                               headers=as_("admin")).get_json()
    assert cleared["grid"] is None and cleared["grid_head"] is False  # no grid, no grid head


def test_grid_heads_come_from_the_roster(api_client, as_, people):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["姓名", "手机号", "所属组织", "党员类别", "角色", "网格", "网格长"])
    book.active.append(["赵秀英", "13800000004", BRANCH, "直管党员", "党员", "东湖一网格", "是"])
    book.active.append(["新成员", "13800000020", BRANCH, "直管党员", "党员", "", "否"])
    buffer = io.BytesIO()
    book.save(buffer)
    response = api_client.post("/api/v1/admin/members/import",
                               data={"file": (io.BytesIO(buffer.getvalue()), "roster.xlsx")},
                               headers=as_("sec"), content_type="multipart/form-data")
    assert response.status_code == 200 and response.get_json()["ok"], response.get_json()
    zhao = api_client.get(f"/api/v1/admin/members/{people['zhao'].id}", headers=as_("sec")).get_json()
    assert zhao["grid_head"] is True

    exported = api_client.get("/api/v1/admin/members/export", headers=as_("sec"))
    rows = list(load_workbook(io.BytesIO(exported.data)).active.iter_rows(values_only=True))
    assert rows[0][-1] == "网格长"
    assert {r[0]: r[-1] for r in rows[1:]}["赵秀英"] == "是"


# Photos ----------------------------------------------------------------------------------------------------
def test_the_claimer_uploads_photos(api_client, as_, call, api_app, tmp_path):
    api_app.extensions["settings"] = api_app.extensions["settings"].replace(WISH_PHOTO_DIR=str(tmp_path),
                                                                            WISH_PHOTO_MAX_BYTES=1000)
    posted(api_client, as_)
    call("wang", "claim", 1)

    def upload(key, data, name="p.png"):
        return api_client.post("/api/v1/wishes/1/photos", data={"file": (io.BytesIO(data), name)},
                               headers=as_(key), content_type="multipart/form-data")

    assert_error(upload("zhao", PNG), 403, "forbidden")
    assert_error(upload("wang", b"<svg onload=alert(1)>", "evil.png"), 415, "unsupported_media_type")
    assert_error(upload("wang", PNG + b"\x00" * 1000), 413, "too_large")
    assert list(tmp_path.iterdir()) == []  # nothing refused was kept
    body = upload("wang", PNG, "../../etc/passwd").get_json()
    assert [p["source"] for p in body["photos"]] == ["upload"]
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".png" and files[0].read_bytes() == PNG
    assert upload("wang", b"\xff\xd8\xff\xe0" + b"\x00" * 10, "x.jpg").status_code == 200
    photos = api_client.get("/api/v1/wishes/1", headers=as_("liu")).get_json()["photos"]
    assert len(photos) == 2

    # A photo may show the beneficiary: the claimer and the secretary see it, a bystander does not.
    url = f"/api/v1/wishes/1/photos/{photos[0]['id']}"
    shown = api_client.get(url, headers=as_("wang"))
    assert shown.status_code == 200 and shown.mimetype == "image/png" and shown.data == PNG
    assert api_client.get(url, headers=as_("sec")).status_code == 200
    assert_error(api_client.get(url, headers=as_("liu")), 403, "forbidden")
    assert_error(api_client.get("/api/v1/wishes/1/photos/999", headers=as_("wang")), 404, "not_found")


# Export -------------------------------------------------------------------------------------------------------
def test_export_of_the_managed_wishes(api_client, as_, call, engine):
    posted(api_client, as_)
    posted(api_client, as_, "zhou", title="西湖修灯")
    call("wang", "claim", 1)
    response = api_client.get("/api/v1/admin/wishes/export", headers=as_("sec"))
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("编号", "标题", "类别", "状态")
    assert [(r[0], r[1], r[3], r[12]) for r in rows[1:]] == [("#1", "修水龙头", "已认领", "王志强")]
    everything = api_client.get("/api/v1/admin/wishes/export", headers=as_("admin"))
    assert len(list(load_workbook(io.BytesIO(everything.data)).active.iter_rows())) == 3
    assert_error(api_client.get("/api/v1/admin/wishes/export", headers=as_("wang")), 403, "forbidden")
    assert_error(api_client.get(f"/api/v1/admin/wishes/export?org={org_id(engine, OTHER_BRANCH)}",
                                headers=as_("sec")), 403, "forbidden")


# The chatbot and the API share one state ----------------------------------------------------------------------
def test_a_claim_through_the_api_is_seen_by_the_chatbot(api_client, as_, call, wx):
    posted(api_client, as_)
    assert call("wang", "claim", 1).status_code == 200
    assert "已被认领" in wx.text("o-zhao", "认领 #1").content
    assert "已提交心愿 #1「修水龙头」的完成情况" in wx.text("o-wang", "完成 #1 修好了").content
    assert api_client.get("/api/v1/wishes/1", headers=as_("sec")).get_json()["status"] == "待确认"
    assert_error(call("zhao", "claim", 1), 409, "already_claimed")


# Points ----------------------------------------------------------------------------------------------------------
def test_ranking_of_the_community(api_client, as_, call, engine):
    posted(api_client, as_)
    call("wang", "claim", 1)
    call("wang", "fulfil", 1)
    call("sec", "confirm", 1)
    for period in ("month", "all"):
        board = api_client.get(f"/api/v1/points/ranking?period={period}", headers=as_("liu")).get_json()
        assert board["org"]["name"] == "东湖社区党委" and board["period"] == period
        assert [(r["place"], r["name"], r["points"]) for r in board["ranks"]] == [(1, "王志强", 10)]
    assert api_client.get("/api/v1/points/ranking?period=all", headers=as_("liu")).get_json()["since"] is None
    other = org_id(engine, OTHER_BRANCH)
    assert_error(api_client.get(f"/api/v1/points/ranking?org={other}", headers=as_("wang")), 403, "forbidden")
    assert api_client.get(f"/api/v1/points/ranking?org={other}", headers=as_("admin")).get_json()["ranks"] == []
    assert_error(api_client.get("/api/v1/points/ranking?period=year", headers=as_("wang")), 422, "invalid")


def test_manual_awards_need_a_reason_and_a_second_manager(api_client, as_, people):
    url = "/api/v1/admin/points/awards"
    wang = people["wang"].id
    assert_error(api_client.post(url, json={"member_id": wang, "amount": 5, "reason": " "}, headers=as_("sec")),
                 400, "reason_required")
    assert_error(api_client.post(url, json={"member_id": wang, "amount": 5}, headers=as_("sec")), 422, "invalid")
    assert_error(api_client.post(url, json={"member_id": wang, "amount": 5, "reason": "义务巡逻"},
                                 headers=as_("wang")), 403, "forbidden")
    assert_error(api_client.post(url, json={"member_id": people["sun"].id, "amount": 5, "reason": "义务巡逻"},
                                 headers=as_("sec")), 403, "forbidden")
    award = api_client.post(url, json={"member_id": wang, "amount": 5, "reason": "义务巡逻"}, headers=as_("sec"))
    assert award.status_code == 200
    award = award.get_json()
    assert award["status"] == "待审批" and award["member_name"] == "王志强"
    assert api_client.get("/api/v1/me/points", headers=as_("wang")).get_json()["balance"] == 0

    assert api_client.get(f"{url}?status=pending", headers=as_("sec")).get_json() == []  # their own
    assert [a["id"] for a in api_client.get(url, headers=as_("sec2")).get_json()] == [award["id"]]
    assert_error(api_client.get(url, headers=as_("wang")), 403, "forbidden")
    assert "不能审批自己录入" in assert_error(
        api_client.post(f"{url}/{award['id']}/approve", json={}, headers=as_("sec")), 403, "forbidden")["message"]
    assert_error(api_client.post(f"{url}/{award['id']}/approve", json={}, headers=as_("zhou")), 403, "forbidden")
    approved = api_client.post(f"{url}/{award['id']}/approve", json={"note": "属实"}, headers=as_("sec2")).get_json()
    assert approved["status"] == "已批准" and approved["decided_at"].endswith("+08:00")
    assert_error(api_client.post(f"{url}/{award['id']}/reject", json={}, headers=as_("admin")), 409,
                 "already_decided")
    assert api_client.get("/api/v1/me/points", headers=as_("wang")).get_json()["balance"] == 5

    second = api_client.post(url, json={"member_id": wang, "amount": -3, "reason": "更正"},
                             headers=as_("sec2")).get_json()
    refused = api_client.post(f"{url}/{second['id']}/reject", json={"note": "无需更正"},
                              headers=as_("admin")).get_json()
    assert refused["status"] == "已驳回"
    assert api_client.get("/api/v1/me/points", headers=as_("wang")).get_json()["balance"] == 5
    assert_error(api_client.post(f"{url}/99999/approve", json={}, headers=as_("admin")), 404, "not_found")


def test_a_grid_head_confirms_through_the_chatbot_too(api_client, as_, call, wx, people, engine):
    with Session(engine) as s:
        s.get(Member, people["zhao"].id).grid_head = True
        s.commit()
    posted(api_client, as_, beneficiary_member_id=people["granny"].id)
    call("liu", "claim", 1)
    call("liu", "fulfil", 1, note="修好了")
    assert "只有心愿 #1 所在组织的书记" in wx.text("o-wang", "确认 #1").content
    assert "已确认心愿 #1「修水龙头」完成，刘洋 获得 10 积分" in wx.text("o-zhao", "确认 #1").content
    assert api_client.get("/api/v1/wishes/1", headers=as_("liu")).get_json()["status"] == "已完成"
