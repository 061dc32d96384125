"""Activities: creation by chatbot, sign-in by code and QR scene with every refusal, proxy sign-in,
rotating codes, registration with a waiting list, sign-out, attendance, quotas and reminders."""

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from config import DEFAULTS
from handlers import Incoming, build_router
from handlers.when import parse_date
from models import Activity, CheckIn, DomainError, Member, OutboxMessage, PointEntry, Registration, WechatUser
from models.activity import (
    NewActivity,
    SignIn,
    check_in,
    check_in_by_code,
    code_is_valid,
    create_activity,
    minute_index,
    rotating_code,
    scene_for,
)
from models.points import balance
from models.quota import attendance_xlsx, quota_report, quota_xlsx, quotas_from_settings
from models.reminders import queue_activity_reminders
from tests.conftest import BRANCH, OTHER_BRANCH

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 10:00 in Shanghai
START = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)  # 4 December, 15:00 in Shanghai
SUBTREE_GROUP = BRANCH + "/第一党小组"


def say(router, session, openid, text, now=NOW):
    return router.dispatch(Incoming(openid=openid, msg_type="text", content=text), session, now)


def scan(router, session, openid, scene, now, event="scan"):
    return router.dispatch(Incoming(openid=openid, msg_type="event", event=event, key=scene), session, now)


@pytest.fixture
def router():
    return build_router()


@pytest.fixture
def secretary(make_member):
    return make_member("书记甲", role="书记", openid="o-sec")


def new_activity(session, secretary, **kw):
    creator = session.get(Member, secretary.id)
    now = kw.pop("now", NOW)
    values = {"kind": "主题党日", "title": "学习", "starts_at": START}
    values.update(kw)
    return create_activity(session, creator, NewActivity(**values), now=now)


# Dates as people write them ---------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-04", date(2026, 12, 4)), ("2026/12/4", date(2026, 12, 4)), ("2026年12月4日", date(2026, 12, 4)),
    ("12月4日", date(2026, 12, 4)), ("12-04", date(2026, 12, 4)), ("明天", date(2026, 12, 2)),
    ("后天", date(2026, 12, 3)), ("周五", date(2026, 12, 4)), ("星期二", date(2026, 12, 1)),
    ("下周一", date(2026, 12, 7)), ("1月5日", date(2027, 1, 5)),
])
def test_dates_as_people_write_them(text, expected):
    assert parse_date(text, date(2026, 12, 1)) == expected


def test_secretary_creates_an_activity_by_chatbot(session, router, secretary, make_member):
    for when in ("2026-12-04 15:00", "12月4日 15:00", "周五 15:00", "后天 15:00-17:30"):
        reply = say(router, session, "o-sec", f"新活动 主题党日 学习二十大精神 {when} 社区会议室")
        assert "#" in reply and "签到码 " in reply, reply
    activities = session.scalars(select(Activity).order_by(Activity.id)).all()
    assert [a.starts_at for a in activities[:3]] == [START] * 3
    assert activities[3].starts_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    assert activities[3].ends_at == datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    assert activities[0].place == "社区会议室" and activities[0].org.full_name == BRANCH
    assert f"#{activities[0].id}" in say(router, session, "o-sec", f"活动 #{activities[0].id}")

    reply = say(router, session, "o-sec", "新活动 志愿服务 清扫楼道 明天 9:00 三号楼 名额2 积分15 全体")
    volunteer = session.scalars(select(Activity).order_by(Activity.id.desc())).first()
    assert "名额：2人" in reply
    assert (volunteer.capacity, volunteer.registration, volunteer.points, volunteer.audience, volunteer.place) == (
        2, True, 15, "subtree", "三号楼")

    make_member("普通党员", openid="o-plain")
    assert "仅限" in say(router, session, "o-plain", "新活动 党课 学习 明天 15:00")
    assert "类型" in say(router, session, "o-sec", "新活动 聚餐 学习 明天 15:00")
    assert "开始时间已经过去" in say(router, session, "o-sec", "新活动 党课 学习 2026-11-30 15:00")


def test_a_secretary_acts_only_within_the_subtree(session, router, secretary, make_member):
    make_member("书记乙", org=OTHER_BRANCH, role="书记", openid="o-sec2")
    activity = new_activity(session, secretary)
    assert "不在您管理" in say(router, session, "o-sec2", f"出勤 #{activity.id}")
    assert "不在您管理" in say(router, session, "o-sec2", f"代签 #{activity.id} 书记甲")


# Sign-in ---------------------------------------------------------------------------------------
def test_sign_in_by_code_and_every_refusal(session, router, secretary, make_member):
    make_member("张三", openid="o-zhang")
    make_member("组员", org=SUBTREE_GROUP, openid="o-group")
    make_member("外人", org=OTHER_BRANCH, openid="o-other")
    make_member("群众甲", kind="群众", role="志愿者", openid="o-mass")
    activity = new_activity(session, secretary)
    code = activity.code
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    # Window: 30 minutes before the start until the end.
    assert "尚未开始签到" in say(router, session, "o-zhang", f"签到 {code}", START - timedelta(minutes=31))
    assert "已结束" in say(router, session, "o-zhang", f"签到 {code}", activity.ends_at + timedelta(seconds=1))
    # Wrong code; the audience is the branch's party members (its 党小组 too).
    assert "签到码无效" in say(router, session, "o-zhang", f"签到 {wrong}", START)
    assert "仅限本支部党员" in say(router, session, "o-other", f"签到 {code}", START)
    assert "仅限本支部党员" in say(router, session, "o-mass", f"签到 {code}", START)

    reply = say(router, session, "o-zhang", f"签到 {code}", START - timedelta(minutes=30))
    assert "签到成功" in reply and "当前已签到：1人" in reply
    assert "签到成功" in say(router, session, "o-group", f"签到　{code}", START)  # full-width space
    # A repeat answers with the first time and counts once.
    again = say(router, session, "o-zhang", f"签到 {code}", START + timedelta(minutes=10))
    assert "已签到" in again and "12月4日 14:30" in again
    assert session.scalar(select(func.count(CheckIn.id))) == 2
    first = session.scalars(select(CheckIn).order_by(CheckIn.id)).first()
    assert first.method == "code" and first.checked_in_at == START - timedelta(minutes=30)


def test_sign_in_by_qr_scene_for_followers_and_new_followers(session, router, secretary, make_member):
    make_member("张三", openid="o-zhang")
    make_member("李四", openid="o-li")
    activity = new_activity(session, secretary)
    scene = scene_for(activity, START)
    assert scene == f"checkin:{activity.id}:{activity.code}"
    assert "签到成功" in scan(router, session, "o-zhang", scene, START)
    # Following by scanning: the welcome, then the sign-in.
    reply = scan(router, session, "o-li", scene, START, event="subscribe_scan")
    assert "欢迎" in reply and "签到成功" in reply
    assert "已签到" in scan(router, session, "o-zhang", scene, START)
    assert "请先绑定" in scan(router, session, "o-stranger", scene, START)
    assert "无法识别" in scan(router, session, "o-zhang", f"checkin:{activity.id}:000000x", START)
    methods = session.scalars(select(CheckIn.method)).all()
    assert methods == ["qr", "qr"]


def test_distance_against_the_venue_radius(session, secretary, make_member):
    near = make_member("近的", openid="o-near")
    far = make_member("远的", openid="o-far")
    stale = make_member("旧位置", openid="o-stale")
    activity = new_activity(session, secretary, latitude=30.0, longitude=120.0, radius_m=200)
    # An explicit position (the mini-program), then the last LOCATION event.
    with pytest.raises(DomainError) as refused:
        check_in_by_code(session, session.get(Member, far.id), activity.code, now=START, activity_id=activity.id,
                         position=(30.01, 120.0))
    assert "距离活动地点约 1.1公里" in str(refused.value)
    session.rollback()
    session.add_all([
        WechatUser(openid="o-near", latitude=30.0005, longitude=120.0, located_at=START - timedelta(minutes=5)),
        WechatUser(openid="o-far", latitude=30.003, longitude=120.0, located_at=START - timedelta(minutes=5)),
        WechatUser(openid="o-stale", latitude=31.0, longitude=120.0, located_at=START - timedelta(hours=3)),
    ])
    session.commit()
    with pytest.raises(DomainError) as refused:
        check_in_by_code(session, session.get(Member, far.id), activity.code, now=START)
    assert "约 334米" in str(refused.value) and "200米" in str(refused.value)
    session.rollback()
    result = check_in_by_code(session, session.get(Member, near.id), activity.code, now=START)
    assert result.created and round(result.checkin.distance_m) == 56
    # A position reported hours ago proves nothing and is not used; unless the settings say so,
    # an unknown position is accepted.
    strict = DEFAULTS.replace(CHECKIN_REQUIRE_POSITION=1)
    with pytest.raises(DomainError) as refused:
        check_in_by_code(session, session.get(Member, stale.id), activity.code, now=START, settings=strict)
    assert "提供位置信息" in str(refused.value)
    session.rollback()
    assert check_in_by_code(session, session.get(Member, stale.id), activity.code, now=START).created


def test_rotating_code_at_the_minute_boundary(session, router, secretary, make_member):
    make_member("张三", openid="o-zhang")
    make_member("李四", openid="o-li")
    make_member("王五", openid="o-wang")
    activity = new_activity(session, secretary, rotating=True)
    boundary = START.replace(second=0)  # 15:00:00 exactly
    before = boundary - timedelta(seconds=1)  # 14:59:59
    old, new = rotating_code(activity, minute_index(before)), rotating_code(activity, minute_index(boundary))
    assert old != new and len(new) == 6
    assert code_is_valid(activity, old, before) and not code_is_valid(activity, new, before)
    # At 15:00:00 the new code is in force and the one of 14:59 is still accepted …
    assert code_is_valid(activity, new, boundary) and code_is_valid(activity, old, boundary)
    assert code_is_valid(activity, old, boundary + timedelta(seconds=59))
    # … but not a minute later.
    assert not code_is_valid(activity, old, boundary + timedelta(seconds=60))
    # The fixed code no longer works once codes rotate (a forwarded code goes stale).
    assert "签到码无效" in say(router, session, "o-wang", f"签到 {activity.code}", boundary)
    assert "签到成功" in say(router, session, "o-zhang", f"签到 {old}", boundary + timedelta(seconds=30))
    assert "签到码无效" in say(router, session, "o-li", f"签到 {old}", boundary + timedelta(seconds=61))
    assert "签到成功" in scan(router, session, "o-li", scene_for(activity, boundary), boundary + timedelta(seconds=61))
    stale_scene = f"checkin:{activity.id}:{old}"
    assert "签到码无效" in scan(router, session, "o-wang", stale_scene, boundary + timedelta(minutes=2))


def test_rotating_can_be_turned_on_by_the_secretary(session, router, secretary):
    activity = new_activity(session, secretary)
    assert "已开启轮换" in say(router, session, "o-sec", f"轮换码 #{activity.id}")
    session.refresh(activity)
    assert activity.rotating
    assert activity.code in say(router, session, "o-sec", f"轮换码 #{activity.id} 关闭")


def test_proxy_sign_in_by_the_secretary(session, router, secretary, make_member):
    old = make_member("老党员")
    make_member("重名", phone="13700000001")
    make_member("重名", phone="13700000002")
    activity = new_activity(session, secretary)
    reply = say(router, session, "o-sec", f"代签 #{activity.id} 老党员", START)
    assert "已为「老党员」代签" in reply
    row = session.scalars(select(CheckIn)).one()
    assert (row.member_id, row.method, row.proxy_by_id) == (old.id, "proxy", secretary.id)
    assert "已签到" in say(router, session, "o-sec", f"代签 #{activity.id} 老党员", START)
    assert "2 位名为「重名」" in say(router, session, "o-sec", f"代签 #{activity.id} 重名", START)
    assert "没有名为「无此人」" in say(router, session, "o-sec", f"代签 #{activity.id} 无此人", START)
    make_member("新人")
    assert "尚未开始签到" in say(router, session, "o-sec", f"代签 #{activity.id} 新人", NOW)


# Registration ----------------------------------------------------------------------------------
def test_registration_with_capacity_and_a_waiting_list(session, router, secretary, make_member):
    for i in range(4):
        make_member(f"队员{i}", openid=f"o-{i}")
    activity = new_activity(session, secretary, kind="志愿服务", capacity=2)
    assert "报名成功" in say(router, session, "o-0", f"报名 #{activity.id}")
    assert "报名成功" in say(router, session, "o-1", f"报名 #{activity.id}")
    assert "候补" in say(router, session, "o-2", f"报名 #{activity.id}")
    reply = say(router, session, "o-3", f"报名 #{activity.id}")
    assert "已进入候补名单，排第 2 位" in reply and reply.count("候补") == 1  # the place, said once
    assert "已报名" in say(router, session, "o-0", f"报名 #{activity.id}")
    # Only registered members may sign in.
    assert "尚未报名" in say(router, session, "o-2", f"签到 {activity.code}", START)

    # A cancellation moves the first on the waiting list up, and tells them.
    assert "已取消" in say(router, session, "o-1", f"取消报名 #{activity.id}", NOW + timedelta(hours=1))
    statuses = dict(session.execute(select(Member.name, Registration.status).join(
        Registration, Registration.member_id == Member.id)).all())
    assert statuses == {"队员0": "registered", "队员1": "cancelled", "队员2": "registered", "队员3": "waiting"}
    note = session.scalars(select(OutboxMessage)).one()
    assert note.member_id == session.scalar(select(Member.id).where(Member.name == "队员2"))
    assert "空位" in note.body
    # Cancelling from the waiting list frees no seat; registering again joins the queue's end.
    assert "已取消" in say(router, session, "o-3", f"取消报名 #{activity.id}")
    assert "报名成功" not in say(router, session, "o-1", f"报名 #{activity.id}")
    session.refresh(activity)
    assert activity.registered_count == 2
    assert "无需报名" in say(router, session, "o-0", f"报名 #{new_activity(session, secretary).id}")


# Sign-out --------------------------------------------------------------------------------------
def test_sign_out_credits_capped_hours_and_points_once(session, router, secretary, make_member):
    member = make_member("志愿者甲", kind="群众", role="志愿者", openid="o-v")
    activity = new_activity(session, secretary, kind="志愿服务", points=12,
                            ends_at=START + timedelta(hours=2))
    assert "还没有签到" in say(router, session, "o-v", f"签退 #{activity.id}", START)
    assert "签到成功" in say(router, session, "o-v", f"签到 {activity.code}", START - timedelta(minutes=20))
    reply = say(router, session, "o-v", f"签退 #{activity.id}", START + timedelta(hours=3))
    assert "2小时0分钟" in reply and "12分" in reply  # capped by the activity's own two hours
    assert "已于" in say(router, session, "o-v", f"签退 #{activity.id}", START + timedelta(hours=3, minutes=5))
    assert balance(session, member.id) == 12
    assert session.scalar(select(func.count(PointEntry.id))) == 1
    other = new_activity(session, secretary, title="党课")
    assert "不是志愿服务" in say(router, session, "o-sec", f"签退 #{other.id}", START)


# Attendance and quotas -------------------------------------------------------------------------
def test_attendance_lists_the_absent(session, router, secretary, make_member):
    make_member("张三", openid="o-zhang")
    make_member("李四")
    make_member("王五")
    activity = new_activity(session, secretary)
    say(router, session, "o-zhang", f"签到 {activity.code}", START)
    say(router, session, "o-sec", f"代签 #{activity.id} 李四", START)
    reply = say(router, session, "o-sec", f"出勤 #{activity.id}", START)
    assert "出勤：应到 4，实到 2，请假 0，缺席 2" in reply  # the secretary is a party member of the branch too
    assert "缺席：书记甲、王五" in reply and "代签：李四" in reply
    book = load_workbook(io.BytesIO(attendance_xlsx(session, activity)))
    rows = list(book.active.iter_rows(values_only=True))
    assert ("张三", "直管党员", "已签到") == rows[5][:3]
    assert rows[2][:8] == ("应到", 4, "实到", 2, "请假", 0, "缺席", 2)
    assert {r[0] for r in rows if r[2] == "缺席"} == {"书记甲", "王五"}
    assert "仅限" in say(router, session, "o-zhang", f"出勤 #{activity.id}")


def test_yearly_quota_report_puts_those_behind_first(session, secretary, make_member):
    busy = make_member("积极", kind="在职党员")
    idle = make_member("落后", kind="在职党员")
    half = make_member("一半", kind="在职党员")
    make_member("直管", kind="直管党员")
    quotas = quotas_from_settings(DEFAULTS.replace(QUOTA_ORG_LIFE=2, QUOTA_VOLUNTEER=1))
    meetings = [new_activity(session, secretary, title=f"会{i}", starts_at=START + timedelta(days=i),
                             audience="subtree") for i in range(2)]
    service = new_activity(session, secretary, kind="志愿服务", starts_at=START + timedelta(days=3))
    last_year = new_activity(session, secretary, title="旧", starts_at=datetime(2027, 1, 5, tzinfo=UTC))
    for a in meetings + [service, last_year]:
        check_in(session, a, session.get(Member, busy.id), SignIn("code", code=a.code), now=a.starts_at)
    check_in(session, meetings[0], session.get(Member, half.id), SignIn("code", code=meetings[0].code),
             now=meetings[0].starts_at)
    org = session.get(Member, secretary.id).org
    rows = quota_report(session, org, 2026, quotas)
    assert [(r.member.name, r.org_life, r.volunteer, r.behind) for r in rows] == [
        ("落后", 0, 0, True), ("一半", 1, 0, True), ("积极", 2, 1, False)]
    assert idle.id == rows[0].member.id
    assert [r.member.name for r in quota_report(session, org, 2026, quotas_from_settings(
        DEFAULTS.replace(QUOTAS='{"直管党员": [1, 0]}')))][:1] == ["落后"]
    sheet = load_workbook(io.BytesIO(quota_xlsx(rows, 2026))).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:4] == ("姓名", "类别", "所属组织", "组织生活次数")
    assert values[1][0] == "落后" and values[-1][-1] == "是"


# Reminders -------------------------------------------------------------------------------------
def test_reminders_are_queued_once_per_round(session, router, secretary, make_member):
    zhang = make_member("张三", openid="o-zhang")
    make_member("李四", openid="o-li")
    activity = new_activity(session, secretary)
    assert queue_activity_reminders(session, START - timedelta(hours=25)) == 0
    assert "提醒时间" in say(router, session, "o-zhang", "提醒")
    assert "已关闭" in say(router, session, "o-li", "提醒 关闭")
    assert "已关闭活动提醒" in say(router, session, "o-li", "提醒")

    assert queue_activity_reminders(session, START - timedelta(hours=24)) == 2  # 张三 and the secretary
    assert queue_activity_reminders(session, START - timedelta(hours=23)) == 0  # a rerun sends nothing
    assert queue_activity_reminders(session, START - timedelta(minutes=59)) == 2
    assert queue_activity_reminders(session, START - timedelta(minutes=30)) == 0
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == zhang.id)).all()
    assert [r.source for r in rows] == [f"activity:{activity.id}:reminder:24h", f"activity:{activity.id}:reminder:1h"]
    assert all(r.kind == "reminder" and "学习" in r.body for r in rows)
    assert "已开启" in say(router, session, "o-li", "提醒 开启")


def test_a_late_first_run_sends_one_reminder_not_two(session, secretary, make_member):
    make_member("张三", openid="o-zhang")
    activity = new_activity(session, secretary, capacity=5)
    # With registration, only registered members are reminded.
    assert queue_activity_reminders(session, START - timedelta(minutes=30)) == 0
    activity2 = new_activity(session, secretary, title="第二", starts_at=START + timedelta(days=1))
    assert queue_activity_reminders(session, activity2.starts_at - timedelta(minutes=30)) == 2
    assert session.scalar(select(func.count(OutboxMessage.id))) == 2
    assert session.get(Activity, activity2.id).reminded == "1,24"
    assert activity.reminded == "1,24"


def test_the_reminder_job_runs_for_a_given_now(engine, session, secretary, make_member):
    from sqlalchemy.orm import sessionmaker

    from scheduler.activity_jobs import activity_reminders

    make_member("张三", openid="o-zhang")
    new_activity(session, secretary)
    factory = sessionmaker(engine)
    settings = DEFAULTS.replace(ACTIVITY_REMINDER_HOURS="2")
    assert activity_reminders(factory, START - timedelta(hours=3), settings) == 0
    assert activity_reminders(factory, START - timedelta(hours=2), settings) == 2
    assert activity_reminders(factory, START - timedelta(hours=1), settings) == 0


def test_quota_by_chatbot_and_my_progress(session, router, secretary, make_member):
    make_member("落后", kind="在职党员", openid="o-behind")
    make_member("直管", openid="o-direct")
    done = make_member("达标", kind="在职党员", openid="o-done")
    settings_now = START + timedelta(days=1)
    for i in range(2):
        a = new_activity(session, secretary, title=f"会{i}", starts_at=START + timedelta(hours=3 * i))
        check_in(session, a, session.get(Member, done.id), SignIn("code", code=a.code), now=a.starts_at)
    router_settings = DEFAULTS.replace(QUOTA_ORG_LIFE=2, QUOTA_VOLUNTEER=0)

    def ask(openid, text):
        return router.dispatch(Incoming(openid=openid, msg_type="text", content=text), session, settings_now,
                               router_settings)

    reply = ask("o-sec", "完成情况")
    assert "2026年完成情况：1/2人已达标" in reply and "落后（在职党员）0/2" in reply and "· 达标" not in reply
    assert "2026年组织生活：2/2次" in ask("o-done", "我的")
    assert "组织生活" not in ask("o-direct", "我的")  # no quota for 直管党员 unless set
    assert "仅限" in ask("o-behind", "完成情况")


def test_period_attendance_export(session, secretary, make_member):
    from models.activity import period_attendance
    from models.quota import period_attendance_xlsx

    make_member("张三")
    first = new_activity(session, secretary, title="一")
    new_activity(session, secretary, title="二", starts_at=START + timedelta(days=40))
    check_in(session, first, session.get(Member, secretary.id), SignIn("code", code=first.code), now=START)
    org = session.get(Member, secretary.id).org
    rows = period_attendance(session, org, START - timedelta(days=1), START + timedelta(days=30))
    assert [(a.title, present, expected) for a, present, expected in rows] == [("一", 1, 2)]
    sheet = load_workbook(io.BytesIO(period_attendance_xlsx(rows))).active
    assert list(sheet.iter_rows(values_only=True))[1][-3:] == (1, 2, "50%")


def test_a_job_may_create_an_activity_for_an_organization(session, secretary):
    org = session.get(Member, secretary.id).org
    activity = create_activity(session, None, NewActivity(org=org, kind="主题党日", title="每月党日", starts_at=START),
                               now=NOW)
    assert activity.created_by_id is None and activity.org_id == org.id
    with pytest.raises(ValueError):
        create_activity(session, None, NewActivity(kind="主题党日", title="无组织", starts_at=START), now=NOW)


def test_the_secretary_sets_the_venue_from_their_location(session, router, secretary, make_member):
    make_member("张三", openid="o-zhang")
    activity = new_activity(session, secretary)
    assert "还没有收到您的位置" in say(router, session, "o-sec", f"活动位置 #{activity.id}")
    session.add(WechatUser(openid="o-sec", latitude=30.0, longitude=120.0, located_at=NOW))
    session.add(WechatUser(openid="o-zhang", latitude=30.01, longitude=120.0, located_at=START))
    session.commit()
    assert "150 米" in say(router, session, "o-sec", f"活动位置 #{activity.id} 150米")
    reply = say(router, session, "o-zhang", f"签到 #{activity.id} {activity.code}", START)
    assert "超出签到范围（150米）" in reply


def test_activity_lists_show_what_i_may_attend(session, router, secretary, make_member):
    make_member("志愿者", kind="群众", role="志愿者", org="滨江街道党工委/东湖社区党委", openid="o-vol")
    make_member("外人", org=OTHER_BRANCH, openid="o-other")
    meeting = new_activity(session, secretary, title="党员大会")
    service = new_activity(session, secretary, kind="志愿服务", title="助老", starts_at=START - timedelta(days=1))
    reply = say(router, session, "o-vol", "活动")
    assert "助老" in reply and "党员大会" not in reply
    assert reply.index(f"#{service.id}") < reply.index("发送")
    assert "不在您的参加范围" in say(router, session, "o-vol", f"活动 #{meeting.id}")
    assert "近期没有" in say(router, session, "o-other", "活动")
    both = say(router, session, "o-sec", "活动")
    assert both.index("助老") < both.index("党员大会")  # the soonest first
    assert "没有编号为 #999" in say(router, session, "o-sec", "活动 #999")
    assert "已结束" not in say(router, session, "o-sec", "活动", START + timedelta(days=2))
    assert "近期没有" in say(router, session, "o-sec", "活动", START + timedelta(days=2))


# The listing in SQL agrees with may_see ---------------------------------------------------------
TREE = {
    "street": "滨江街道党工委",
    "community": "滨江街道党工委/东湖社区党委",
    "branch": BRANCH,
    "group": SUBTREE_GROUP,
    "other": OTHER_BRANCH,
}


def test_the_listing_shows_exactly_what_may_see_allows(session, make_member):
    """One SQL condition and LIMIT/OFFSET: every member × every activity (each audience, each level)
    gives the same set, order and pages as asking may_see activity by activity."""
    from models.activity import activities_for, may_see

    people = [make_member(f"{where}{kind}{role}", org=org, kind=kind, role=role)
              for where, org in TREE.items() for kind in ("在职党员", "群众") for role in ("党员", "书记")]
    people.append(make_member("停用", org=BRANCH, kind="在职党员"))
    with session.no_autoflush:
        session.get(Member, people[-1].id).active = False
    session.commit()
    admin = make_member("管理员", org=TREE["street"], role="管理员")
    activities = []
    for where in TREE:
        for audience in ("branch", "subtree", "open"):
            activities.append(new_activity(session, admin, title=f"{where}{audience}", audience=audience,
                                           org=session.get(Member, admin.id).org if where == "street" else
                                           session.get(Member, make_member(org=TREE[where]).id).org,
                                           starts_at=START + timedelta(hours=len(activities))))
    for person in people + [admin]:
        member = session.get(Member, person.id)
        for upcoming, order in ((True, activities), (False, activities[::-1])):
            expected = [a.id for a in order if may_see(session, a, member)]
            listed = activities_for(session, member, NOW, upcoming=upcoming, per_page=100)
            assert [a.id for a in listed.items] == expected, member.name
            assert listed.total == len(expected)
            pages = [activities_for(session, member, NOW, upcoming=upcoming, page=p, per_page=4).items
                     for p in range(1, 6)]
            assert [a.id for page in pages for a in page] == expected
