"""/api/v1 activities: the mini-program's list, detail, registration, sign-in and sign-out, and the
secretaries' creation, cancellation, attendance, proxy sign-in and reports, through HTTP.

The clock of the API and of the webhook is fixed, so no assertion depends on the wall clock.
"""

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from models import Member
from models.activity import NewActivity, create_activity
from tests.conftest import BRANCH, OTHER_BRANCH, Person, org_id
from tests.test_api_auth import assert_error

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 1 December 2026, 10:00 in Shanghai
START = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)  # 4 December, 15:00 in Shanghai
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
VENUE = (30.2741, 120.1551)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The API's and the webhook's 'now'."""
    import app.api.activities
    import app.wechat

    clock = Clock(NOW)
    monkeypatch.setattr(app.api.activities, "now_utc", clock)
    monkeypatch.setattr(app.wechat, "now_utc", clock)
    return clock


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec.bound(), member=cast.wang.but(kind="在职党员").bound(),
                member2=cast.zhao.but(kind="在职党员"),
                volunteer=Person("陈志愿", "13800000005", kind="群众", role="志愿者"),
                other_sec=cast.zhou, other_member=cast.sun.but(kind="在职党员"))



@pytest.fixture
def new(engine, people):
    """Create an activity of the branch through the domain (as its secretary); returns its id and code."""

    def build(**kw):
        now = kw.pop("now", NOW)
        values = {"kind": "主题党日", "title": "学习", "starts_at": START}
        values.update(kw)
        with Session(engine, expire_on_commit=False) as s:
            activity = create_activity(s, s.get(Member, people["sec"].id), NewActivity(**values), now=now)
            return activity.id, activity.code

    return build



def url(activity_id, rest=""):
    return f"/api/v1/activities/{activity_id}{rest}"


# Creation ----------------------------------------------------------------------------------------
def test_secretary_creates_an_activity(api_client, as_, clock):
    response = api_client.post("/api/v1/admin/activities", headers=as_("sec"), json={
        "kind": "主题党日", "title": "学习二十大精神", "start": "2026-12-04T15:00:00+08:00",
        "end": "2026-12-04T17:00:00+08:00", "place": "社区会议室", "capacity": 30,
        "latitude": VENUE[0], "longitude": VENUE[1], "radius": 200, "rotating": True,
    })
    body = response.get_json()
    assert response.status_code == 200, body
    activity = body["activity"]
    assert body["number"] == f"#{activity['id']}"
    assert body["code"].isdigit() and len(body["code"]) == 6
    assert f"签到码 {body['code']}" in body["message"]
    assert "/checkin/" in body["page_url"]
    assert activity["starts_at"] == "2026-12-04T15:00:00+08:00"
    assert activity["ends_at"] == "2026-12-04T17:00:00+08:00"
    assert activity["registration"] is True and activity["capacity"] == 30
    assert activity["radius_m"] == 200 and activity["rotating"] is True
    assert activity["audience"] == "branch"


def test_naive_times_are_shanghai_and_the_end_defaults(api_client, as_, clock):
    body = api_client.post("/api/v1/admin/activities", headers=as_("sec"), json={
        "kind": "志愿服务", "title": "清扫楼道", "start": "2026-12-05T09:00:00",
    }).get_json()
    assert body["activity"]["starts_at"] == "2026-12-05T09:00:00+08:00"
    assert body["activity"]["ends_at"] == "2026-12-05T11:00:00+08:00"
    assert body["activity"]["audience"] == "open" and body["activity"]["points"] == 10


def test_creation_refusals(api_client, as_, engine, clock):
    good = {"kind": "主题党日", "title": "学习", "start": "2026-12-04T15:00:00+08:00"}
    assert_error(api_client.post("/api/v1/admin/activities", headers=as_("member"), json=good), 403, "forbidden")
    # A secretary of another branch may not publish for this one.
    response = api_client.post("/api/v1/admin/activities", headers=as_("other_sec"),
                               json={**good, "org": org_id(engine, BRANCH)})
    assert_error(response, 403, "forbidden")
    body = assert_error(api_client.post("/api/v1/admin/activities", headers=as_("sec"),
                                        json={**good, "kind": "聚餐"}), 400, "bad_kind")
    assert "活动类型" in body["message"]
    body = assert_error(api_client.post("/api/v1/admin/activities", headers=as_("sec"),
                                        json={**good, "start": "2026-11-30T15:00:00+08:00"}), 400, "bad_time")
    assert "已经过去" in body["message"]
    body = assert_error(api_client.post("/api/v1/admin/activities", headers=as_("sec"),
                                        json={"kind": "主题党日"}), 422, "invalid")
    assert "title" in body["message"] and "start" in body["message"]
    assert_error(api_client.post("/api/v1/admin/activities", headers=as_("sec"),
                                 json={**good, "latitude": 30.0}), 422, "invalid")
    # The street admin may publish for a branch below.
    response = api_client.post("/api/v1/admin/activities", headers=as_("admin"),
                               json={**good, "org": org_id(engine, BRANCH)})
    assert response.status_code == 200


# Listing and detail -----------------------------------------------------------------------------
def test_activities_for_me_paged(api_client, as_, new, engine, people, clock):
    first, _ = new(title="第一次")
    second, _ = new(title="第二次", starts_at=START + timedelta(days=1))
    with Session(engine) as s:  # one already over, created back then
        create_activity(s, s.get(Member, people["sec"].id), NewActivity(kind="党课", title="上月党课",
                        starts_at=NOW - timedelta(days=30)), now=NOW - timedelta(days=31))
    other = create_activity_as(engine, people["other_sec"], title="西湖党日")

    body = api_client.get("/api/v1/activities?per_page=1", headers=as_("member")).get_json()
    assert body["total"] == 2 and body["pages"] == 2 and [a["id"] for a in body["items"]] == [first]
    body = api_client.get("/api/v1/activities?per_page=1&page=2", headers=as_("member")).get_json()
    assert [a["id"] for a in body["items"]] == [second]
    body = api_client.get("/api/v1/activities?upcoming=0", headers=as_("member")).get_json()
    assert [a["title"] for a in body["items"]] == ["第二次", "第一次", "上月党课"]
    # Other branches' party days are not mine; the street admin sees all they manage.
    assert other not in [a["id"] for a in body["items"]]
    assert api_client.get("/api/v1/activities", headers=as_("other_member")).get_json()["total"] == 1
    assert api_client.get("/api/v1/activities", headers=as_("admin")).get_json()["total"] == 3


def create_activity_as(engine, secretary, **kw):
    now = kw.pop("now", NOW)
    values = {"kind": "主题党日", "title": "学习", "starts_at": START}
    values.update(kw)
    with Session(engine) as s:
        return create_activity(s, s.get(Member, secretary.id), NewActivity(**values), now=now).id


def test_detail_shows_the_code_to_managers_only(api_client, as_, new, clock):
    activity_id, code = new()
    body = api_client.get(url(activity_id), headers=as_("member")).get_json()
    assert body["activity"]["title"] == "学习" and body["manager"] is None
    assert body["registration"] is None and body["checked_in_at"] is None and body["checked_in_count"] == 0
    body = api_client.get(url(activity_id), headers=as_("sec")).get_json()
    assert body["manager"]["code"] == code and "/checkin/" in body["manager"]["page_url"]
    body = assert_error(api_client.get(url(activity_id), headers=as_("other_member")), 403, "forbidden")
    assert "不在您的参加范围内" in body["message"]
    assert_error(api_client.get(url(999999), headers=as_("member")), 404, "not_found")


def test_login_and_binding_are_required(api_client, api_login, new, clock):
    activity_id, _ = new()
    assert_error(api_client.get("/api/v1/activities"), 401, "unauthorized")
    headers = api_login(openid="o-nobody")
    assert_error(api_client.get("/api/v1/activities", headers=headers), 403, "not_bound")
    assert_error(api_client.post(url(activity_id, "/checkin"), headers=headers, json={"code": "1"}),
                 403, "not_bound")


# Sign-in ----------------------------------------------------------------------------------------
def test_sign_in_refusals_and_success(api_client, as_, new, clock):
    activity_id, code = new()
    checkin = url(activity_id, "/checkin")
    body = assert_error(api_client.post(checkin, headers=as_("member"), json={"code": code}), 400, "too_early")
    assert "尚未开始签到" in body["message"] and "12月4日 14:30" in body["message"]

    clock.now = START
    body = assert_error(api_client.post(checkin, headers=as_("member"), json={"code": "000000" if code != "000000"
                                                                              else "111111"}), 400, "bad_code")
    assert "签到码无效" in body["message"]
    # Arabic-Indic digits match \d: refused as a bad code, not a crash.
    assert_error(api_client.post(checkin, headers=as_("member"), json={"code": "١٢٣٤٥٦"}), 400, "bad_code")
    body = assert_error(api_client.post(checkin, headers=as_("other_member"), json={"code": code}), 403, "forbidden")
    assert "仅限本支部党员" in body["message"]
    assert_error(api_client.post(checkin, headers=as_("member"), json={"code": code, "latitude": 30.0}),
                 422, "invalid")

    response = api_client.post(checkin, headers=as_("member"), json={"code": code})
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["method"] == "app" and body["count"] == 1 and body["name"] == "王志强"
    assert body["checked_in_at"] == "2026-12-04T15:00:00+08:00"
    assert "签到成功" in body["message"]

    clock.now = START + timedelta(minutes=5)
    body = assert_error(api_client.post(checkin, headers=as_("member"), json={"code": code}), 409,
                        "already_checked_in")
    assert "已签到（12月4日 15:00）" in body["message"]
    detail = api_client.get(url(activity_id), headers=as_("member")).get_json()
    assert detail["checked_in_at"] == "2026-12-04T15:00:00+08:00" and detail["checked_in_count"] == 1

    clock.now = START + timedelta(hours=3)
    body = assert_error(api_client.post(checkin, headers=as_("member2"), json={"code": code}), 400, "too_late")
    assert "已结束" in body["message"]


def test_sign_in_with_a_position_far_from_the_venue_says_the_distance(api_client, as_, new, clock):
    activity_id, code = new(latitude=VENUE[0], longitude=VENUE[1], radius_m=200)
    clock.now = START
    far = {"code": code, "latitude": VENUE[0] + 0.01, "longitude": VENUE[1]}  # about 1.1 km north
    body = assert_error(api_client.post(url(activity_id, "/checkin"), headers=as_("member"), json=far),
                        400, "too_far")
    assert "约 1.1公里" in body["message"] and "200米" in body["message"]
    near = {"code": code, "latitude": VENUE[0] + 0.0005, "longitude": VENUE[1]}  # about 56 m
    body = api_client.post(url(activity_id, "/checkin"), headers=as_("member"), json=near).get_json()
    assert body["method"] == "app" and 50 < body["distance_m"] < 60


def test_api_and_chatbot_share_the_sign_in(api_client, as_, new, wx, clock):
    activity_id, code = new()
    clock.now = START
    assert api_client.post(url(activity_id, "/checkin"), headers=as_("member"), json={"code": code}).status_code == 200
    assert "签到码无效" in wx.text("o-sec", "签到 ١٢٣٤٥٦").content
    reply = wx.text("o-wang", f"签到 {code}").content
    assert "已签到" in reply and "12月4日 15:00" in reply
    # And the other way round: the secretary signs in by chatbot, the API then says 已签到.
    assert "签到成功" in wx.text("o-sec", f"签到 {code}").content
    body = assert_error(api_client.post(url(activity_id, "/checkin"), headers=as_("sec"), json={"code": code}),
                        409, "already_checked_in")
    assert "已签到" in body["message"]


# Registration -----------------------------------------------------------------------------------
def test_registration_with_capacity_and_a_waiting_list(api_client, as_, new, clock):
    activity_id, _ = new(capacity=1)
    register = url(activity_id, "/register")
    body = api_client.post(register, headers=as_("member"), json={}).get_json()
    assert body["status"] == "registered" and "报名成功" in body["message"]
    assert_error(api_client.post(register, headers=as_("member")), 400, "already_registered")
    body = api_client.post(register, headers=as_("member2")).get_json()
    assert body["status"] == "waiting" and "候补" in body["message"]
    detail = api_client.get(url(activity_id), headers=as_("member2")).get_json()
    assert detail["registration"] == "waiting" and detail["waiting_ahead"] == 0
    assert_error(api_client.post(register, headers=as_("other_member")), 403, "forbidden")

    body = api_client.delete(register, headers=as_("member")).get_json()
    assert "已取消" in body["message"]
    detail = api_client.get(url(activity_id), headers=as_("member2")).get_json()
    assert detail["registration"] == "registered" and detail["activity"]["registered_count"] == 1
    assert_error(api_client.delete(register, headers=as_("member")), 400, "not_registered")

    clock.now = START
    assert_error(api_client.post(register, headers=as_("member")), 400, "closed")


def test_registration_required_for_sign_in(api_client, as_, new, clock):
    activity_id, code = new(registration=True)
    clock.now = START
    body = assert_error(api_client.post(url(activity_id, "/checkin"), headers=as_("member"), json={"code": code}),
                        403, "forbidden")
    assert "需报名" in body["message"]
    no_reg, _ = new(title="无需报名")
    assert_error(api_client.post(url(no_reg, "/register"), headers=as_("member")), 400, "no_registration")


# Sign-out ---------------------------------------------------------------------------------------
def test_volunteer_sign_out_credits_hours_and_points_once(api_client, as_, new, clock):
    activity_id, code = new(kind="志愿服务", title="清扫楼道", ends_at=START + timedelta(hours=2), points=8)
    clock.now = START
    assert api_client.post(url(activity_id, "/checkin"), headers=as_("volunteer"),
                           json={"code": code}).status_code == 200
    clock.now = START + timedelta(hours=3)  # within the grace after the end; capped at two hours
    body = api_client.post(url(activity_id, "/checkout"), headers=as_("volunteer")).get_json()
    assert body["service_minutes"] == 120 and body["points"] == 8 and "2小时0分钟" in body["message"]
    assert_error(api_client.post(url(activity_id, "/checkout"), headers=as_("volunteer")), 400,
                 "already_checked_out")
    assert_error(api_client.post(url(activity_id, "/checkout"), headers=as_("member")), 400, "not_checked_in")
    meeting, _ = new()
    assert_error(api_client.post(url(meeting, "/checkout"), headers=as_("member")), 400, "not_volunteer")


# Proxy sign-in, attendance, cancellation -------------------------------------------------------
def test_proxy_sign_in_and_attendance(api_client, as_, new, people, clock):
    activity_id, code = new()
    clock.now = START
    proxy = f"/api/v1/admin/activities/{activity_id}/proxy-checkin"
    body = api_client.post(proxy, headers=as_("sec"), json={"member_id": people["member2"].id}).get_json()
    assert body["method"] == "proxy" and body["name"] == "赵秀英" and "记录为代签" in body["message"]
    assert_error(api_client.post(proxy, headers=as_("other_sec"), json={"member_id": people["member"].id}),
                 403, "forbidden")
    assert_error(api_client.post(proxy, headers=as_("member"), json={"member_id": people["member"].id}),
                 403, "forbidden")
    # Someone outside the audience is not found, whoever they are.
    assert_error(api_client.post(proxy, headers=as_("sec"), json={"member_id": people["other_member"].id}),
                 404, "not_found")
    assert_error(api_client.post(proxy, headers=as_("sec"), json={"member_id": people["member2"].id}),
                 409, "already_checked_in")
    api_client.post(url(activity_id, "/checkin"), headers=as_("member"), json={"code": code})

    attendance = f"/api/v1/admin/activities/{activity_id}/attendance"
    body = api_client.get(attendance, headers=as_("sec")).get_json()
    assert body["expected"] == 3 and body["present"] == 2  # 李红梅, 王志强, 赵秀英 are the branch's party members
    by_name = {a["name"]: a for a in body["attendees"]}
    assert by_name["赵秀英"]["method"] == "proxy" and by_name["赵秀英"]["proxy_by"] == "李红梅"
    assert by_name["王志强"]["method_text"] == "小程序" and by_name["王志强"]["proxy_by"] is None
    assert [m["name"] for m in body["absent"]] == ["李红梅"]
    assert api_client.get(attendance, headers=as_("admin")).status_code == 200
    body = assert_error(api_client.get(attendance, headers=as_("other_sec")), 403, "forbidden")
    assert "不在您管理的组织范围内" in body["message"]

    response = api_client.get(attendance + ".xlsx", headers=as_("sec"))
    assert response.status_code == 200 and response.mimetype == XLSX
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[2][:2] == ("应到", 3) and rows[4][:4] == ("姓名", "类别", "状态", "签到时间")
    assert {r[0] for r in rows[5:]} == {"赵秀英", "王志强", "李红梅"}
    assert_error(api_client.get(attendance + ".xlsx", headers=as_("other_sec")), 403, "forbidden")


def test_cancelling_an_activity(api_client, as_, new, clock):
    activity_id, _ = new()
    assert_error(api_client.delete(f"/api/v1/admin/activities/{activity_id}", headers=as_("other_sec")),
                 403, "forbidden")
    assert_error(api_client.delete(f"/api/v1/admin/activities/{activity_id}", headers=as_("member")),
                 403, "forbidden")
    body = api_client.delete(f"/api/v1/admin/activities/{activity_id}", headers=as_("sec")).get_json()
    assert "已取消" in body["message"]
    assert_error(api_client.get(url(activity_id), headers=as_("member")), 404, "not_found")
    assert api_client.get("/api/v1/activities", headers=as_("member")).get_json()["total"] == 0


# Reports ----------------------------------------------------------------------------------------
def test_quota_reports_and_my_progress(api_client, as_, new, engine, clock):
    done = []
    for day in range(4):
        activity_id, code = new(title=f"党日{day}", starts_at=START + timedelta(days=day))
        done.append((activity_id, code))
    for day, (activity_id, code) in enumerate(done):
        clock.now = START + timedelta(days=day)
        api_client.post(url(activity_id, "/checkin"), headers=as_("member"), json={"code": code})
    clock.now = START
    assert api_client.post(url(done[0][0], "/checkin"), headers=as_("member2"),
                           json={"code": done[0][1]}).status_code == 200

    body = api_client.get("/api/v1/admin/reports/quota?year=2026", headers=as_("sec")).get_json()
    assert body["year"] == 2026 and body["total"] == 2 and body["behind"] == 2
    assert [r["name"] for r in body["items"]] == ["赵秀英", "王志强"]  # those behind the most first
    assert body["items"][1]["org_life"] == 4 and body["items"][1]["volunteer"] == 0
    assert body["items"][0]["shortfall"] == 5
    assert api_client.get("/api/v1/admin/reports/quota?year=", headers=as_("sec")).get_json()["year"] == 2026
    body = api_client.get("/api/v1/admin/reports/quota?per_page=1&page=2", headers=as_("sec")).get_json()
    assert body["pages"] == 2 and [r["name"] for r in body["items"]] == ["王志强"]

    assert_error(api_client.get("/api/v1/admin/reports/quota", headers=as_("member")), 403, "forbidden")
    assert_error(api_client.get(f"/api/v1/admin/reports/quota?org={org_id(engine, BRANCH)}",
                                headers=as_("other_sec")), 403, "forbidden")
    body = api_client.get(f"/api/v1/admin/reports/quota?org={org_id(engine, OTHER_BRANCH)}",
                          headers=as_("admin")).get_json()
    assert [r["name"] for r in body["items"]] == ["孙立"]

    response = api_client.get("/api/v1/admin/reports/quota.xlsx?year=2026", headers=as_("sec"))
    assert response.status_code == 200 and response.mimetype == XLSX
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("姓名", "类别", "所属组织", "组织生活次数")
    assert [r[0] for r in rows[1:]] == ["赵秀英", "王志强"]

    mine = api_client.get("/api/v1/me/quota?year=2026", headers=as_("member")).get_json()
    assert mine["applies"] is True and mine["progress"]["org_life"] == 4 and mine["progress"]["org_life_quota"] == 4
    assert api_client.get("/api/v1/me/quota", headers=as_("member")).get_json()["year"] == 2026
    mine = api_client.get("/api/v1/me/quota", headers=as_("volunteer")).get_json()
    assert mine["applies"] is False and mine["progress"] is None


def test_period_attendance_export(api_client, as_, new, clock):
    first, code = new(title="十二月党日")
    new(title="明年党日", starts_at=datetime(2027, 1, 15, 7, 0, tzinfo=UTC))
    clock.now = START
    api_client.post(url(first, "/checkin"), headers=as_("member"), json={"code": code})
    response = api_client.get("/api/v1/admin/reports/attendance.xlsx?from=2026-12-01&to=2026-12-31",
                              headers=as_("sec"))
    assert response.status_code == 200 and response.mimetype == XLSX
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0] == ("编号", "类型", "标题", "组织", "时间", "签到人数", "应到人数", "出勤率")
    assert [(r[2], r[5], r[6]) for r in rows[1:]] == [("十二月党日", 1, 3)]
    assert_error(api_client.get("/api/v1/admin/reports/attendance.xlsx?from=2026-12-31&to=2026-12-01",
                                headers=as_("sec")), 400, "bad_period")
    assert_error(api_client.get("/api/v1/admin/reports/attendance.xlsx?from=2026-12-01", headers=as_("sec")),
                 422, "invalid")
    assert_error(api_client.get("/api/v1/admin/reports/attendance.xlsx?from=2026-12-01&to=2026-12-31",
                                headers=as_("member")), 403, "forbidden")
