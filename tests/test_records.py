"""Meeting records (会议记录) by chat, photo and API, and the record book as Word and Excel, read back
with python-docx and openpyxl (SQLite and PostgreSQL)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from handlers import Incoming, build_router
from handlers.records import parse_record
from models import MeetingRecord, Member
from models.activity import NewActivity, SignIn, check_in, create_activity, decide_leave, request_leave
from tests.conftest import OTHER_BRANCH

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 2 November 2026, 10:00 in Shanghai
# 4 November, 15:00 in Shanghai: past, as the API writes records and books on the real clock.
START = datetime(2026, 11, 4, 7, 0, tzinfo=UTC)
AFTER = START + timedelta(hours=2)


@pytest.fixture
def branch(make_member):
    return {
        "sec": make_member("书记甲", role="书记", openid="o-sec"),
        "zhang": make_member("张三", openid="o-zhang"),
        "li": make_member("李四", openid="o-li"),
        "zhao": make_member("赵六", openid="o-zhao"),
        "other_sec": make_member("书记乙", org=OTHER_BRANCH, role="书记", openid="o-other-sec"),
    }


def _held(session, branch, **kw):
    """A 主题党日 on 4 November: 张三 signed in on time, 李四 twenty minutes late, 赵六 on leave."""
    secretary = session.get(Member, branch["sec"].id)
    values = {"kind": "主题党日", "title": "学习党章", "starts_at": START, "place": "社区党群服务中心"}
    values.update(kw)
    activity = create_activity(session, secretary, NewActivity(**values), now=NOW)
    request_leave(session, activity, session.get(Member, branch["zhao"].id), "出差", NOW)
    decide_leave(session, activity, secretary, branch["zhao"].id, True, NOW)
    for key, minutes in (("zhang", -5), ("li", 20)):
        check_in(session, activity, session.get(Member, branch[key].id), SignIn(method="proxy", proxy_by=secretary),
                 now=values["starts_at"] + timedelta(minutes=minutes))
    return activity


def _image(router, session, openid, media_id, now, settings):
    return router.dispatch(Incoming(openid=openid, msg_type="image", media_id=media_id), session, now, settings)


def test_the_parts_of_a_typed_record():
    text = parse_record("主持人:王书记 记录人:李红 学习党章第一章\n讨论发言 决议:下月开展志愿服务")
    assert (text.chair, text.recorder, text.content, text.decisions) == (
        "王书记", "李红", "学习党章第一章\n讨论发言", "下月开展志愿服务")
    assert parse_record("只有内容").content == "只有内容"


def test_a_record_by_chat_with_photos(session, say, branch, settings):
    activity = _held(session, branch)
    assert "还没有开始" in say("o-sec", f"会议记录 #{activity.id} 学习", NOW)
    assert "「会议记录」仅限书记、管理员使用" in say("o-zhang", f"会议记录 #{activity.id} 学习", AFTER)
    assert "不在您管理的组织范围内" in say("o-other-sec", f"会议记录 #{activity.id} 学习", AFTER)
    reply = say("o-sec", f"会议记录 #{activity.id} 主持人：王书记 集体学习党章第一章 决议：下月开展志愿服务", AFTER)
    assert "已保存" in reply and "主持人：王书记" in reply and "记录人：书记甲" in reply

    router = build_router()
    first = _image(router, session, "o-sec", "MEDIA-1", AFTER + timedelta(minutes=3), settings)
    assert "会议记录上，共 1 张" in first
    late = _image(router, session, "o-sec", "MEDIA-2", AFTER + timedelta(minutes=11), settings)
    assert "已收到图片" in late  # past RECORD_PHOTO_MINUTES: not attached
    record = session.scalars(select(MeetingRecord)).one()
    session.refresh(record)
    assert [p.media_id for p in record.photos] == ["MEDIA-1"]
    assert (record.topic, record.chair, record.decisions) == ("学习党章", "王书记", "下月开展志愿服务")

    say("o-sec", f"会议记录 #{activity.id} 议题：党章第二章 改为学习第二章", AFTER + timedelta(minutes=20))
    session.expire_all()
    record = session.scalars(select(MeetingRecord)).one()
    assert (record.topic, record.content, len(record.photos)) == ("党章第二章", "改为学习第二章", 1)


def test_the_record_book_in_word_and_excel(api_client, api_login, session, branch):
    first = _held(session, branch)
    second = _held(session, branch, kind="支委会", title="研究发展党员", starts_at=START + timedelta(days=3))
    sec = api_login(branch["sec"])
    body = {"chair": "王书记", "content": "学习党章第一章。\n大家发言踊跃。", "decisions": "=HYPERLINK(\"x\")"}
    written = api_client.put(f"/api/v1/admin/activities/{first.id}/record", json=body, headers=sec)
    assert written.status_code == 200, written.get_json()
    assert written.get_json()["recorder"] == "书记甲" and written.get_json()["photos"] == 0
    assert api_client.get(f"/api/v1/admin/activities/{second.id}/record", headers=sec).status_code == 404
    other = api_login(branch["other_sec"])
    assert api_client.put(f"/api/v1/admin/activities/{first.id}/record", json=body, headers=other).status_code == 403

    word = api_client.get("/api/v1/admin/reports/record-book.docx?year=2026", headers=sec)
    assert word.status_code == 200 and word.mimetype.endswith("wordprocessingml.document")
    document = Document(io.BytesIO(word.data))
    headings = [p.text for p in document.paragraphs if p.style.name == "Heading 1"]
    assert headings == ["2026年11月4日 主题党日：学习党章", "2026年11月7日 支委会：研究发展党员"]
    text = "\n".join(p.text for p in document.paragraphs)
    assert "应到：4 人　实到：2 人　请假：1 人　缺席：1 人" in text  # 书记甲 absent, 赵六 on leave
    assert "实到人员：张三、李四" in text and "请假人员：赵六" in text and "缺席人员：书记甲" in text
    assert "迟到人员：李四" in text and "主持人：王书记" in text and "大家发言踊跃。" in text
    assert "（尚无会议记录）" in text

    sheet = api_client.get("/api/v1/admin/reports/record-book.xlsx?year=2026", headers=sec)
    rows = list(load_workbook(io.BytesIO(sheet.data)).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("日期", "类型", "议题") and len(rows) == 3
    assert rows[1][6:10] == (4, 2, 1, 1) and rows[1][15] == "=HYPERLINK(\"x\")"
    cell = load_workbook(io.BytesIO(sheet.data)).active.cell(row=2, column=16)
    assert cell.data_type == "s"  # user text stays text, never a formula
