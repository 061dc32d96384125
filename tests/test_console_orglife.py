"""The console's 组织生活 pages: the leave queue and the activity page's leave requests (准假 /
不准假, the member told by the domain), one occasion's meeting record (written, rewritten, its
attendance from the sign-ins, its photos fetched from WeChat), a branch's record book as Word and
.xlsx, the rhythm table (branches × months) with its .xlsx, the quarterly ranking; refusals (another
branch, a plain member, no CSRF token) and the cost of the table and of the queue in statements."""

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import MeetingRecord, Member, now_utc
from models.activity import (
    Activity,
    LeaveRequest,
    NewActivity,
    SignIn,
    check_in,
    create_activity,
    decide_leave,
    request_leave,
)
from models.org import get_org_by_full_name
from models.outbox import OutboxMessage, list_inbox
from models.records import BOOK_COLUMNS, attach_record_photo
from tests.conftest import BRANCH, COMMUNITY, OTHER_BRANCH, org_id
from tests.console_activity_support import csrf_token, post_form

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TZ = ZoneInfo("Asia/Shanghai")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
# The console works on the real clock: the years around it hold the occasions the tests look at.
THIS_YEAR = now_utc().astimezone(TZ).year
LAST_YEAR, NEXT_YEAR = THIS_YEAR - 1, THIS_YEAR + 1


def local(year: int, month: int, day: int, hour: int = 15) -> datetime:
    return datetime(year, month, day, hour, tzinfo=TZ).astimezone(UTC)


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), wang=cast.wang.bound(), zhao=cast.zhao.bound(), other_sec=cast.zhou.bound(),
                admin=cast.admin.bound())


def publish(engine, author, starts_at, *, kind="主题党日", title="学习党章", org=None) -> int:
    """An activity of `author`'s organization (or `org`), published the day before it starts."""
    with Session(engine) as s:
        node = get_org_by_full_name(s, org) if org else None
        return create_activity(s, s.get(Member, author.id), NewActivity(
            kind=kind, title=title, starts_at=starts_at, place="社区会议室", org=node),
            now=starts_at - timedelta(days=1)).id


def held(engine, people, starts_at=None) -> int:
    """A 主题党日 of the branch (10 March last year): 王志强 signed in, 赵秀英 on approved leave, 李红梅 absent."""
    starts_at = starts_at or local(LAST_YEAR, 3, 10)
    activity_id = publish(engine, people["sec"], starts_at)
    with Session(engine) as s:
        activity, sec = s.get(Activity, activity_id), s.get(Member, people["sec"].id)
        request_leave(s, activity, s.get(Member, people["zhao"].id), "在外地出差", starts_at - timedelta(hours=5))
        decide_leave(s, activity, sec, people["zhao"].id, True, starts_at - timedelta(hours=4))
        check_in(s, activity, s.get(Member, people["wang"].id), SignIn(method="proxy", proxy_by=sec),
                 now=starts_at + timedelta(minutes=2))
    return activity_id


def ask_leave(engine, activity_id, member, reason="家里有事") -> None:
    with Session(engine) as s:
        request_leave(s, s.get(Activity, activity_id), s.get(Member, member.id), reason, now_utc())


def leave_status(engine, activity_id, member) -> str:
    with Session(engine) as s:
        return s.scalars(select(LeaveRequest.status).where(LeaveRequest.activity_id == activity_id,
                                                           LeaveRequest.member_id == member.id)).one()


# Leave ---------------------------------------------------------------------------------------------
def test_the_leave_queue_approves_and_refuses_and_the_member_is_told(client, engine, people, console_login):
    sec, wang, zhao = people["sec"], people["wang"], people["zhao"]
    activity_id = publish(engine, sec, local(NEXT_YEAR, 3, 6))
    ask_leave(engine, activity_id, wang, "在外地出差")
    ask_leave(engine, activity_id, zhao, "身体不适")
    console_login(client, sec)
    queue = client.get("/console/orglife/leaves").get_data(as_text=True)
    assert 'id="pending-count">2<' in queue and "王志强" in queue and "在外地出差" in queue and "身体不适" in queue
    assert ">组织生活</a>" in queue  # the navigation bar's section

    response = post_form(client, f"/console/orglife/leaves/{activity_id}/{wang.id}", {"decision": "approve"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/console/orglife/leaves")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert page.count(f"王志强 对活动 #{activity_id}「学习党章」的请假：已准假，已通知本人。") == 1  # once
    assert 'id="pending-count">1<' in page
    assert leave_status(engine, activity_id, wang) == "approved"
    with Session(engine) as s:
        told = list_inbox(s, wang.id)[0]
        assert told.title == "请假结果" and "请假已批准" in told.body and "学习党章" in told.body

    # From the activity's own page: 不准假, and back to that page.
    detail = client.get(f"/console/activities/{activity_id}").get_data(as_text=True)
    assert "身体不适" in detail and "已准假" in detail and f'id="refuse-{zhao.id}"' in detail
    response = post_form(client, f"/console/orglife/leaves/{activity_id}/{zhao.id}",
                         {"decision": "refuse", "back": "activity"})
    assert response.headers["Location"].endswith(f"/console/activities/{activity_id}")
    assert "请假：未准假，已通知本人" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert leave_status(engine, activity_id, zhao) == "refused"
    with Session(engine) as s:
        assert "请假未获批准，请按时参加" in list_inbox(s, zhao.id)[0].body
    assert 'id="no-leaves"' in client.get("/console/orglife/leaves").get_data(as_text=True)

    # Decided already: said so, nothing changes, nobody is told twice.
    again = post_form(client, f"/console/orglife/leaves/{activity_id}/{zhao.id}", {"decision": "approve"})
    assert "赵秀英 的请假已处理：未准假" in client.get(again.headers["Location"]).get_data(as_text=True)
    assert leave_status(engine, activity_id, zhao) == "refused"
    with Session(engine) as s:
        assert len(s.scalars(select(OutboxMessage).where(OutboxMessage.member_id == zhao.id,
                                                         OutboxMessage.title == "请假结果")).all()) == 1
    assert post_form(client, f"/console/orglife/leaves/{activity_id}/{sec.id}",
                     {"decision": "approve"}).status_code == 404  # no request of that member


def test_another_branch_and_a_plain_member_are_refused(client, engine, people, console_login):
    sec, wang = people["sec"], people["wang"]
    activity_id = publish(engine, sec, local(NEXT_YEAR, 3, 6))
    ask_leave(engine, activity_id, wang)
    past_id = held(engine, people)
    branch_id = org_id(engine, BRANCH)

    console_login(client, people["other_sec"])
    assert 'id="pending-count">0<' in client.get("/console/orglife/leaves").get_data(as_text=True)
    refused = post_form(client, f"/console/orglife/leaves/{activity_id}/{wang.id}", {"decision": "approve"})
    assert refused.status_code == 403 and "不在您管理的组织范围内" in refused.get_data(as_text=True)
    assert leave_status(engine, activity_id, wang) == "pending"
    for path in (f"/console/orglife/records/{past_id}", f"/console/orglife/records/{past_id}/photos/1",
                 f"/console/orglife?org={branch_id}", f"/console/orglife/rhythm.xlsx?org={branch_id}",
                 f"/console/orglife/ranking?org={branch_id}", f"/console/orglife/book?org={branch_id}",
                 f"/console/orglife/book.docx?org={branch_id}", f"/console/orglife/book.xlsx?org={branch_id}"):
        assert client.get(path).status_code == 403, path
    assert post_form(client, f"/console/orglife/records/{past_id}", {"content": "越权"}).status_code == 403
    assert client.get("/console/orglife/book?org=999999").status_code == 404
    # The other secretary's own table has their branch only.
    table = client.get(f"/console/orglife?year={LAST_YEAR}").get_data(as_text=True)
    assert "西湖社区党支部</a>" in table and "东湖社区第一党支部" not in table

    # A plain member has no console: pages go to the login, forms are refused.
    console_login(client, wang)
    assert client.get("/console/orglife/leaves").status_code == 302
    assert client.get(f"/console/orglife/records/{past_id}").status_code == 302
    assert client.post(f"/console/orglife/leaves/{activity_id}/{wang.id}",
                       data={"decision": "approve"}).status_code in (400, 403)
    assert leave_status(engine, activity_id, wang) == "pending"
    with Session(engine) as s:
        assert s.scalar(select(MeetingRecord.id)) is None


def test_a_form_without_the_csrf_token_is_refused(client, engine, people, console_login):
    sec, wang = people["sec"], people["wang"]
    activity_id = publish(engine, sec, local(NEXT_YEAR, 3, 6))
    ask_leave(engine, activity_id, wang)
    past_id = held(engine, people)
    console_login(client, sec)
    csrf_token(client)  # the session has a token; the forms below do not carry it
    assert client.post(f"/console/orglife/leaves/{activity_id}/{wang.id}",
                       data={"decision": "approve"}).status_code == 400
    assert client.post(f"/console/orglife/records/{past_id}", data={"content": "无令牌"}).status_code == 400
    assert client.post(f"/console/orglife/records/{past_id}",
                       data={"content": "错令牌", "csrf_token": "x"}).status_code == 400
    assert leave_status(engine, activity_id, wang) == "pending"
    with Session(engine) as s:
        assert s.scalar(select(MeetingRecord.id)) is None


# Meeting records -----------------------------------------------------------------------------------
def test_a_record_is_written_and_rewritten_with_the_attendance_of_the_sign_ins(client, engine, people,
                                                                                console_login):
    sec = people["sec"]
    activity_id = held(engine, people)
    console_login(client, sec)
    assert 'id="record-link"' in client.get(f"/console/activities/{activity_id}").get_data(as_text=True)
    page = client.get(f"/console/orglife/records/{activity_id}").get_data(as_text=True)
    assert 'id="expected">3<' in page and 'id="came">1<' in page and 'id="on-leave">1<' in page
    assert 'id="absent">1<' in page
    assert 'id="present-names">王志强<' in page and 'id="leave-names">赵秀英<' in page
    assert 'id="absent-names">李红梅<' in page and "填写记录" in page

    response = post_form(client, f"/console/orglife/records/{activity_id}", {
        "topic": "", "chair": "李红梅", "recorder": "", "content": "集体学习党章第一章\n大家交流发言",
        "decisions": "下月开展志愿服务"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"已保存#{activity_id}「学习党章」的会议记录。" in page and "集体学习党章第一章" in page
    with Session(engine) as s:
        record = s.scalars(select(MeetingRecord)).one()
        assert (record.topic, record.chair, record.recorder, record.decisions) == (
            "学习党章", "李红梅", "李红梅", "下月开展志愿服务")  # topic: the title; recorder: the writer
        assert record.content == "集体学习党章第一章\n大家交流发言" and record.written_by_id == sec.id

    # Rewritten: the text replaced, one record still; the form shows what is kept.
    assert 'value="李红梅"' in page and "下月开展志愿服务</textarea>" in page
    post_form(client, f"/console/orglife/records/{activity_id}", {
        "topic": "党章第二章", "chair": "王志强", "recorder": "赵秀英", "content": "改为学习第二章", "decisions": ""})
    with Session(engine) as s:
        record = s.scalars(select(MeetingRecord)).one()
        assert (record.topic, record.chair, record.recorder, record.content, record.decisions) == (
            "党章第二章", "王志强", "赵秀英", "改为学习第二章", "")

    # The domain's refusals, on the form, with what was typed kept.
    empty = post_form(client, f"/console/orglife/records/{activity_id}", {"topic": "空的", "content": "  "})
    assert empty.status_code == 400 and "请写明会议内容" in empty.get_data(as_text=True)
    assert 'value="空的"' in empty.get_data(as_text=True)
    coming = publish(engine, sec, local(NEXT_YEAR, 3, 6))
    early = post_form(client, f"/console/orglife/records/{coming}", {"content": "提前写"})
    assert early.status_code == 400 and "还没有开始，会后再记录" in early.get_data(as_text=True)
    service = publish(engine, sec, local(LAST_YEAR, 4, 1), kind="志愿服务", title="清扫楼道")
    refused = post_form(client, f"/console/orglife/records/{service}", {"content": "扫地"})
    assert refused.status_code == 400 and "是志愿服务，不需要会议记录" in refused.get_data(as_text=True)
    assert 'id="record-link"' not in client.get(f"/console/activities/{service}").get_data(as_text=True)
    with Session(engine) as s:
        assert len(s.scalars(select(MeetingRecord)).all()) == 1


def test_a_records_photos_come_from_wechat_for_its_managers_only(app, client, engine, people, console_login,
                                                                 wechat_api, make_scheduler, tmp_path):
    sec = people["sec"]
    activity_id = held(engine, people)
    console_login(client, sec)
    post_form(client, f"/console/orglife/records/{activity_id}", {"content": "学习"})
    media_id = wechat_api.add_media("image", "meeting.png", "image/png", PNG)
    settings = app.extensions["settings"]
    with Session(engine) as s:
        photo_id = attach_record_photo(s, s.get(Member, sec.id), media_id, now_utc(), settings).photos[0].id
        gone_id = attach_record_photo(s, s.get(Member, sec.id), "MEDIA-EXPIRED", now_utc(), settings).photos[1].id
    page = client.get(f"/console/orglife/records/{activity_id}").get_data(as_text=True)
    assert f'src="/console/orglife/records/{activity_id}/photos/{photo_id}"' in page

    photo = client.get(f"/console/orglife/records/{activity_id}/photos/{photo_id}")
    assert photo.status_code == 200 and photo.mimetype == "image/png" and photo.data == PNG
    assert photo.headers["X-Content-Type-Options"] == "nosniff" and "no-store" in photo.headers["Cache-Control"]
    gone = client.get(f"/console/orglife/records/{activity_id}/photos/{gone_id}")
    assert gone.status_code == 404 and "已无法从微信取回" in gone.get_data(as_text=True)
    other = publish(engine, sec, local(LAST_YEAR, 5, 5))
    assert client.get(f"/console/orglife/records/{other}/photos/{photo_id}").status_code == 404  # not its record
    assert client.get(f"/console/orglife/records/{activity_id}/photos/99999999999").status_code == 404

    # Kept by the scheduler's photos job: served from the copy once WeChat has dropped the media.
    app.extensions["settings"] = app.extensions["settings"].replace(WISH_PHOTO_DIR=str(tmp_path))
    assert make_scheduler(WISH_PHOTO_DIR=str(tmp_path)).run_due(now_utc()).ran["photos"].startswith(
        "1 photos kept, 1 gone")
    wechat_api.media.clear()
    kept = client.get(f"/console/orglife/records/{activity_id}/photos/{photo_id}")
    assert kept.status_code == 200 and kept.data == PNG and kept.headers["X-Content-Type-Options"] == "nosniff"
    asked = len(wechat_api.calls_to("/cgi-bin/media/get"))
    gone = client.get(f"/console/orglife/records/{activity_id}/photos/{gone_id}")
    assert gone.status_code == 404 and "已无法从微信取回" in gone.get_data(as_text=True)
    assert len(wechat_api.calls_to("/cgi-bin/media/get")) == asked  # neither asked WeChat

    console_login(client, people["other_sec"])
    assert client.get(f"/console/orglife/records/{activity_id}/photos/{photo_id}").status_code == 403


def test_the_record_book_as_word_and_excel(client, engine, people, console_login):
    sec = people["sec"]
    first = held(engine, people)
    second = publish(engine, sec, local(LAST_YEAR, 6, 2), kind="支委会", title="研究发展党员")
    console_login(client, sec)
    post_form(client, f"/console/orglife/records/{first}", {"chair": "李红梅", "content": "学习党章第一章",
                                                            "decisions": "下月开展志愿服务"})
    book = client.get(f"/console/orglife/book?year={LAST_YEAR}").get_data(as_text=True)
    assert f"{LAST_YEAR}年会议记录本" in book and "3/1/1/1" in book and "尚无记录" in book
    assert f'id="record-{second}"' in book

    word = client.get(f"/console/orglife/book.docx?year={LAST_YEAR}")
    assert word.status_code == 200 and word.mimetype == DOCX
    assert f"records-{LAST_YEAR}.docx" in word.headers["Content-Disposition"]
    document = Document(io.BytesIO(word.data))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert headings == [f"{LAST_YEAR}年3月10日 主题党日：学习党章", f"{LAST_YEAR}年6月2日 支委会：研究发展党员"]
    text = "\n".join(p.text for p in document.paragraphs)
    assert "实到人员：王志强" in text and "请假人员：赵秀英" in text and "缺席人员：李红梅" in text
    assert "主持人：李红梅" in text and "学习党章第一章" in text and "决议：下月开展志愿服务" in text
    assert "（尚无会议记录）" in text

    sheet = client.get(f"/console/orglife/book.xlsx?year={LAST_YEAR}")
    assert sheet.status_code == 200 and sheet.mimetype == XLSX
    rows = list(load_workbook(io.BytesIO(sheet.data)).active.iter_rows(values_only=True))
    assert rows[0] == BOOK_COLUMNS
    assert rows[1][:3] == (f"{LAST_YEAR}年3月10日", "主题党日", "学习党章") and rows[1][6:10] == (3, 1, 1, 1)
    assert rows[1][14] == "学习党章第一章" and rows[2][14] == "（尚无会议记录）"


# Rhythm and ranking ---------------------------------------------------------------------------------
def test_the_rhythm_table_its_periods_and_its_export(client, engine, people, console_login):
    sec = people["sec"]
    activity_id = held(engine, people)
    publish(engine, sec, local(NEXT_YEAR, 3, 6), kind="支委会", title="支委会")
    console_login(client, sec)
    post_form(client, f"/console/orglife/records/{activity_id}", {"content": "学习"})

    page = client.get(f"/console/orglife?year={LAST_YEAR}").get_data(as_text=True)
    assert f"{LAST_YEAR}年组织生活开展情况" in page and "东湖社区第一党支部</a>" in page
    assert "西湖社区党支部" not in page  # the secretary's subtree only
    march = page.split("<td")[3]  # the branch's third month
    assert 'data-kind="主题党日" data-status="held"' in march and "出勤33%，有记录" in march
    assert 'data-kind="支委会" data-status="missed"' in march and 'data-kind="党课" data-status="missed"' in march
    assert page.count("<th scope=\"col\">") == 13  # 支部 and twelve months

    quarter = client.get(f"/console/orglife?year={NEXT_YEAR}&quarter=1").get_data(as_text=True)
    assert f"{NEXT_YEAR}年第1季度" in quarter and quarter.count("<th scope=\"col\">") == 4
    assert 'data-kind="支委会" data-status="scheduled"' in quarter.split("<td")[3]
    assert 'data-kind="主题党日" data-status="due"' in quarter

    export = client.get(f"/console/orglife/rhythm.xlsx?year={LAST_YEAR}")
    assert export.status_code == 200 and export.mimetype == XLSX
    rows = list(load_workbook(io.BytesIO(export.data)).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("支部", "党员数", "1月")
    assert rows[1][0] == BRANCH and rows[1][1] == 3
    assert "主题党日：已开展（出勤33%，有记录）" in rows[1][4] and "支委会：未开展" in rows[1][4]


def test_the_quarterly_ranking_with_the_parts_of_its_score(client, engine, people, console_login):
    held(engine, people)
    publish(engine, people["other_sec"], local(LAST_YEAR, 2, 10), kind="支委会", title="支委会")
    console_login(client, people["admin"])
    page = client.get(f"/console/orglife/ranking?year={LAST_YEAR}&quarter=1").get_data(as_text=True)
    assert f"{LAST_YEAR}年第1季度支部排名" in page and "按时开展 40" in page and "通知阅读 10" in page
    rows = page.split('id="ranking"')[1].split("<tr>")[2:]
    assert "东湖社区第一党支部" in rows[0] and "西湖社区党支部" in rows[1]  # the table of the street
    assert "<td>1</td>" in rows[0] and "<td>2</td>" in rows[1]
    # 1 of the 11 required meetings of the quarter held (9 monthly, 2 quarterly), a third of the branch
    # signed in, no record: 40 × 1/11 + 25 × 1/3 = 12.0. The other branch held one, nobody signed in: 3.6.
    assert '<td class="fw-bold">12.0</td>' in rows[0] and "<td>9%</td><td>33%</td><td>0%</td>" in rows[0]
    assert '<td class="fw-bold">3.6</td>' in rows[1] and "<td>9%</td><td>0%</td><td>0%</td>" in rows[1]
    console_login(client, people["sec"])
    own = client.get(f"/console/orglife/ranking?year={LAST_YEAR}&quarter=1").get_data(as_text=True)
    assert "西湖社区党支部" not in own


# Statement bounds ------------------------------------------------------------------------------------
def test_the_rhythm_table_costs_the_same_for_one_and_for_four_branches(client, engine, people, make_member,
                                                                       console_login, count_statements):
    console_login(client, people["admin"])
    held(engine, people)
    client.get(f"/console/orglife?year={LAST_YEAR}")
    with count_statements() as few:
        assert client.get(f"/console/orglife?year={LAST_YEAR}").status_code == 200
    for n in range(3):
        org = f"{COMMUNITY}/第{n + 3}党支部"
        secretary = make_member(f"书记{n}", org=org, role="书记")
        make_member(f"党员{n}", org=f"{org}/第一党小组")
        publish(engine, secretary, local(LAST_YEAR, 3, 10 + n))
    with count_statements() as many:
        page = client.get(f"/console/orglife?year={LAST_YEAR}").get_data(as_text=True)
    assert page.count('data-status="held"') == 4 and "第5党支部" in page
    assert many.count == few.count, many.statements


def test_the_leave_queue_costs_the_same_for_two_and_for_eight_requests(client, engine, people, make_member,
                                                                       console_login, count_statements):
    console_login(client, people["admin"])
    members = [make_member(f"请假人{n}", org=BRANCH if n % 2 else OTHER_BRANCH) for n in range(8)]
    first = publish(engine, people["sec"], local(NEXT_YEAR, 3, 6))
    second = publish(engine, people["other_sec"], local(NEXT_YEAR, 3, 7), org=OTHER_BRANCH)
    for member in members[:2]:
        ask_leave(engine, first if member.org_id == members[1].org_id else second, member)
    client.get("/console/orglife/leaves")
    with count_statements() as few:
        assert 'id="pending-count">2<' in client.get("/console/orglife/leaves").get_data(as_text=True)
    for member in members[2:]:
        ask_leave(engine, first if member.org_id == members[1].org_id else second, member)
    with count_statements() as many:
        page = client.get("/console/orglife/leaves").get_data(as_text=True)
    assert 'id="pending-count">8<' in page and all(m.name in page for m in members)
    assert many.count == few.count, many.statements


def test_the_section_is_in_the_navigation_after_activities(client, people, console_login):
    console_login(client, people["sec"])
    page = client.get("/console/orglife").get_data(as_text=True)
    nav = page.split('id="console-nav"')[1]
    assert nav.index(">活动</a>") < nav.index(">组织生活</a>") < nav.index(">通知</a>")
    assert 'aria-current="page">组织生活</a>' in nav
