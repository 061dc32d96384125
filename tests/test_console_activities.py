"""The console's activities pages: create, edit, cancel (the registered are told, unsent reminders
withdrawn, through every door), attendance with names, late sign-ins and proxies, the exports, the
quota report, and refusals (another community, no CSRF token)."""

import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Member, now_utc
from models.activity import Activity, check_in_by_code, proxy_check_in_member, register
from models.outbox import SENT, OutboxMessage, list_inbox
from models.reminders import queue_activity_reminders
from tests.console_activity_support import csrf_token, post_form

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), wang=cast.wang.but(kind="在职党员").bound(), zhao=cast.zhao.bound(),
                other_sec=cast.zhou.bound())


def local_input(moment) -> str:
    from zoneinfo import ZoneInfo

    return f"{moment.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%dT%H:%M}"


def create_through_form(client, **fields) -> int:
    start = now_utc() + timedelta(days=3)
    data = {"kind": "主题党日", "title": "学习二十大精神", "starts_at": local_input(start), "place": "社区会议室",
            "registration": "1"} | fields
    response = post_form(client, "/console/activities/new", data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def queue_reminders(engine, activity_id):
    """Run the reminder job 23 hours before the start: the 24-hour round is queued (pending)."""
    with Session(engine) as s:
        starts_at = s.get(Activity, activity_id).starts_at
        return queue_activity_reminders(s, starts_at - timedelta(hours=23))


def reminder_rows(engine, activity_id):
    with Session(engine) as s:
        return s.scalars(select(OutboxMessage).where(
            OutboxMessage.source.like(f"activity:{activity_id}:reminder:%"))).all()


def test_create_edit_and_cancel_tell_the_registered(client, engine, people, console_login):
    sec, wang, zhao = people["sec"], people["wang"], people["zhao"]
    console_login(client, sec)
    assert "发布活动" in client.get("/console/activities/new").get_data(as_text=True)
    activity_id = create_through_form(client)
    page = client.get(f"/console/activities/{activity_id}").get_data(as_text=True)
    assert "学习二十大精神" in page and "已发布活动" in page
    with Session(engine) as s:
        activity = s.get(Activity, activity_id)
        assert activity.registration and activity.place == "社区会议室"
        assert f"/checkin/{activity.token}" in page  # the meeting-room screen link
        for person in (wang, zhao):
            register(s, activity, s.get(Member, person.id), now_utc())
    listing = client.get("/console/activities").get_data(as_text=True)
    assert "学习二十大精神" in listing and "已报名 2" in listing

    # Edit: a new start tells the registered and withdraws the reminders not yet sent.
    assert queue_reminders(engine, activity_id) == 2
    new_start = now_utc() + timedelta(days=4)
    response = post_form(client, f"/console/activities/{activity_id}/edit",
                         {"title": "学习二十大精神（改期）", "place": "党群服务中心",
                          "starts_at": local_input(new_start)})
    assert response.status_code == 302
    assert "已通知 2 人" in client.get(response.headers["Location"]).get_data(as_text=True)
    with Session(engine) as s:
        changed = list_inbox(s, wang.id)[0]
        assert changed.kind == "activity" and "活动变更" in changed.body and "党群服务中心" in changed.body
        assert s.get(Activity, activity_id).reminded == ""
    assert reminder_rows(engine, activity_id) == []

    # The reminders of the new time are queued; zhao's goes out, wang's still waits.
    assert queue_reminders(engine, activity_id) == 2
    with Session(engine) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.member_id == zhao.id,
                                                    OutboxMessage.kind == "reminder")).one()
        row.status = SENT
        s.commit()

    # Cancel with a reason: both are told, wang's unsent reminder is withdrawn, zhao's sent one stays.
    response = post_form(client, f"/console/activities/{activity_id}/cancel", {"reason": "场地临时维修"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/console/activities")
    flashed = client.get("/console/activities").get_data(as_text=True)
    assert "已通知 2 人" in flashed and "撤回未发送的提醒 1 条" in flashed
    with Session(engine) as s:
        for person in (wang, zhao):
            told = list_inbox(s, person.id)[0]
            assert told.title == "主题党日取消" and "已取消" in told.body and "场地临时维修" in told.body
        assert not [m for m in list_inbox(s, sec.id, limit=50) if "取消" in m.title]  # not the canceller
    left = reminder_rows(engine, activity_id)
    assert [(r.member_id, r.status) for r in left] == [(zhao.id, SENT)]
    # Cancelled: gone from the list, its page not found, a second cancellation refused.
    assert "学习二十大精神" not in client.get("/console/activities?all=1").get_data(as_text=True)
    assert client.get(f"/console/activities/{activity_id}").status_code == 404
    assert post_form(client, f"/console/activities/{activity_id}/cancel", {"reason": "再取消"}).status_code == 404


def test_a_wrong_form_is_shown_again_in_chinese(client, people, console_login, engine):
    console_login(client, people["sec"])
    response = post_form(client, "/console/activities/new", {"kind": "主题党日", "title": "",
                                                             "starts_at": local_input(now_utc() + timedelta(days=1))})
    assert response.status_code == 400 and "请填写活动标题" in response.get_data(as_text=True)
    past = post_form(client, "/console/activities/new", {"kind": "主题党日", "title": "过去",
                                                         "starts_at": local_input(now_utc() - timedelta(days=1))})
    assert past.status_code == 400 and "开始时间已经过去" in past.get_data(as_text=True)
    bad = post_form(client, "/console/activities/new", {"kind": "主题党日", "title": "坏日期", "starts_at": "明天"})
    assert bad.status_code == 400 and "开始时间的格式不对" in bad.get_data(as_text=True)
    with Session(engine) as s:
        assert s.scalar(select(Activity.id)) is None


def test_cancelling_through_the_api_tells_and_withdraws_too(api_client, api_login, engine, people):
    from models.activity import NewActivity, create_activity

    with Session(engine, expire_on_commit=False) as s:
        activity = create_activity(s, s.get(Member, people["sec"].id), NewActivity(
            kind="主题党日", title="不报名的党日", starts_at=now_utc() + timedelta(days=2)))
    assert queue_reminders(engine, activity.id) == 3  # no registration: the branch is reminded
    response = api_client.delete(f"/api/v1/admin/activities/{activity.id}", headers=api_login(people["sec"]))
    assert response.status_code == 200
    assert reminder_rows(engine, activity.id) == []
    with Session(engine) as s:
        assert "不报名的党日" in list_inbox(s, people["wang"].id)[0].body
        assert list_inbox(s, people["wang"].id)[0].title == "主题党日取消"


def test_attendance_page_names_late_and_proxy_sign_ins(client, engine, people, console_login):
    sec, wang, zhao = people["sec"], people["wang"], people["zhao"]
    console_login(client, sec)
    activity_id = create_through_form(client, registration="", title="支部学习")
    with Session(engine, expire_on_commit=False) as s:
        activity = s.get(Activity, activity_id)
        start = activity.starts_at
        check_in_by_code(s, s.get(Member, wang.id), activity.code, now=start - timedelta(minutes=5))
        proxy_check_in_member(s, activity, s.get(Member, sec.id), zhao.id, now=start + timedelta(minutes=12))
    page = client.get(f"/console/activities/{activity_id}").get_data(as_text=True)
    assert "王志强" in page and "赵秀英" in page and "由 李红梅 代签" in page
    assert page.count("badge text-bg-warning\">迟到") == 1 and 'id="late">1<' in page
    assert 'id="present">2/3<' in page and "李红梅" in page.split('id="absent"')[1]

    export = client.get(f"/console/activities/{activity_id}/attendance.xlsx")
    assert export.status_code == 200 and export.mimetype == XLSX
    rows = list(load_workbook(io.BytesIO(export.data)).active.iter_rows(values_only=True))
    assert rows[4][:3] == ("姓名", "类别", "状态")
    assert {(r[0], r[2]) for r in rows[5:]} == {("王志强", "已签到"), ("赵秀英", "迟到"), ("李红梅", "缺席")}
    assert "代签" in {r[4] for r in rows[5:]}


def test_quota_report_and_its_export(client, engine, people, console_login):
    console_login(client, people["sec"])
    page = client.get("/console/quota").get_data(as_text=True)
    year = now_utc().year
    assert "年度完成情况" in page and "王志强" in page and 'id="behind">1<' in page
    export = client.get(f"/console/quota.xlsx?year={year}")
    assert export.status_code == 200 and export.mimetype == XLSX
    rows = list(load_workbook(io.BytesIO(export.data)).active.iter_rows(values_only=True))
    assert rows[0][0] == "姓名" and rows[1][0] == "王志强" and rows[1][-1] == "否"


def test_another_communitys_activity_is_refused(client, engine, people, console_login):
    console_login(client, people["sec"])
    activity_id = create_through_form(client)
    console_login(client, people["other_sec"])
    for path in (f"/console/activities/{activity_id}", f"/console/activities/{activity_id}/edit",
                 f"/console/activities/{activity_id}/attendance.xlsx"):
        response = client.get(path)
        assert response.status_code == 403 and "不在您管理的组织范围内" in response.get_data(as_text=True)
    assert post_form(client, f"/console/activities/{activity_id}/cancel", {"reason": "x"}).status_code == 403
    assert "学习二十大精神" not in client.get("/console/activities?all=1").get_data(as_text=True)
    assert client.get("/console/activities/999999").status_code == 404
    with Session(engine) as s:
        assert s.get(Activity, activity_id).cancelled is False


def test_a_post_without_the_csrf_token_is_refused(client, engine, people, console_login):
    console_login(client, people["sec"])
    activity_id = create_through_form(client)
    csrf_token(client)  # the session has a token; the form below does not carry it
    response = client.post(f"/console/activities/{activity_id}/cancel", data={"reason": "无令牌"})
    assert response.status_code == 400
    wrong = client.post(f"/console/activities/{activity_id}/cancel", data={"reason": "错令牌", "csrf_token": "x"})
    assert wrong.status_code == 400
    assert client.post("/console/activities/new", data={"title": "无令牌"}).status_code == 400
    with Session(engine) as s:
        assert s.get(Activity, activity_id).cancelled is False
        assert s.scalar(select(Activity.id).where(Activity.title == "无令牌")) is None


def test_signed_out_pages_go_to_login_and_posts_are_refused(client, people):
    assert client.get("/console/activities").status_code == 302
    assert client.get("/console/quota").status_code == 302
    assert client.post("/console/activities/new", data={}).status_code in (400, 403)


def test_two_cancellations_at_once_cancel_and_tell_once(race_engine, people):
    """Two managers cancel the same activity at the same moment: one cancels, the other finds no
    activity; the registered member is told once, and the reminders are withdrawn."""
    import threading

    from models.activity import NewActivity, cancel_activity_report, create_activity
    from models.base import NotFound
    from tests.conftest import RACE_START_TIMEOUT

    with Session(race_engine, expire_on_commit=False) as s:
        activity = create_activity(s, s.get(Member, people["sec"].id), NewActivity(
            kind="主题党日", title="同时取消", starts_at=now_utc() + timedelta(days=2), registration=True))
        register(s, activity, s.get(Member, people["wang"].id), now_utc())
    assert queue_reminders(race_engine, activity.id) == 1
    barrier = threading.Barrier(2, timeout=RACE_START_TIMEOUT)
    outcomes = []

    def cancel(reason):
        with Session(race_engine, expire_on_commit=False) as s:
            mine = s.get(Activity, activity.id)
            barrier.wait()
            try:
                outcomes.append(cancel_activity_report(s, mine, reason=reason, by=s.get(Member, people["sec"].id)))
            except NotFound:
                outcomes.append(None)

    threads = [threading.Thread(target=cancel, args=(f"原因{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [o for o in outcomes if o is not None]
    assert len(outcomes) == 2 and len(done) == 1 and done[0].told == 1 and done[0].withdrawn == 1
    with Session(race_engine) as s:
        told = s.scalars(select(OutboxMessage).where(OutboxMessage.source == f"activity:{activity.id}:cancelled")).all()
        assert [m.member_id for m in told] == [people["wang"].id]
    assert reminder_rows(race_engine, activity.id) == []


def test_the_activities_list_costs_the_same_for_2_and_for_8_activities(client, engine, people, console_login,
                                                                      count_statements):
    from models.activity import NewActivity, create_activity

    console_login(client, people["sec"])

    def publish(count):
        with Session(engine) as s:
            for n in range(count):
                create_activity(s, s.get(Member, people["sec"].id), NewActivity(
                    kind="主题党日", title=f"党日{n}", starts_at=now_utc() + timedelta(days=n + 1)))

    publish(2)
    client.get("/console/activities")
    with count_statements() as few:
        assert client.get("/console/activities").status_code == 200
    publish(6)
    with count_statements() as many:
        page = client.get("/console/activities").get_data(as_text=True)
    assert "共 8 个活动" in page
    assert many.count == few.count, many.statements
