"""The console's notices pages: compose with the number of recipients before sending, send, the
receipt with read and unread names, 再提醒 once then "next allowed at …", and refusals."""

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.notices import Notice
from models.outbox import OutboxMessage, list_inbox, open_message
from tests.conftest import GROUP, Person
from tests.console_activity_support import csrf_token, post_form


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), wang=cast.wang.but(kind="在职党员", grid="一网格").bound(),
                zhao=cast.zhao.bound(), liu=cast.liu.bound(),
                grouped=Person("吴小组", "13800000010", org=GROUP, wechat="o-wu").bound(),
                other_sec=cast.zhou.bound(), sun=cast.sun.bound())


def send(client, *, check=None, **fields):
    """Preview then send a notice as the compose page does; `check(preview)` runs between the two."""
    data = {"title": "关于开展主题党日的通知", "body": "本周五下午三点在社区会议室开展主题党日。"} | fields
    preview = post_form(client, "/console/notices/preview", data)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    if check:
        check(preview)
    return preview, post_form(client, "/console/notices/send", data)


def notice_id_of(response) -> int:
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def test_compose_preview_send_and_the_receipt_counts_a_read(client, engine, people, console_login):
    console_login(client, people["sec"])
    form = client.get("/console/notices/new").get_data(as_text=True)
    assert "发通知" in form and "一网格" in form and "在职党员" in form
    assert "西湖社区" not in form  # the org choices are the secretary's own subtree

    def nothing_sent_yet(preview):
        page = preview.get_data(as_text=True)
        # The branch without its secretary: 王志强, 赵秀英, 刘洋 and the group's 吴小组.
        assert "将发送给 <strong>4</strong> 人" in page and "发送给 4 人" in page
        with Session(engine) as s:
            assert s.scalar(select(Notice.id)) is None  # a preview sends nothing
            assert s.scalar(select(OutboxMessage.id)) is None

    _, sent = send(client, check=nothing_sent_yet)
    assert sent.status_code == 302
    notice_id = notice_id_of(sent)
    receipt = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "已发送给 4 人" in receipt
    assert 'id="total">4<' in receipt and 'id="read-count">0<' in receipt and 'id="unread-count">4<' in receipt

    with Session(engine) as s:  # 王志强 opens it in their inbox (as the API's GET /me/messages/<id> does)
        message = list_inbox(s, people["wang"].id)[0]
        assert message.body == "本周五下午三点在社区会议室开展主题党日。"
        open_message(s, people["wang"].id, message.id)
    receipt = client.get(f"/console/notices/{notice_id}").get_data(as_text=True)
    assert 'id="read-count">1<' in receipt and 'id="unread-count">3<' in receipt
    read_names = receipt.split('id="read-names"')[1].split("</p>")[0]
    unread_names = receipt.split('id="unread-names"')[1].split("</p>")[0]
    assert "王志强" in read_names and "王志强" not in unread_names and "赵秀英" in unread_names
    listing = client.get("/console/notices").get_data(as_text=True)
    assert f"#{notice_id} 关于开展主题党日的通知" in listing


def test_the_audience_narrows_by_kind_grid_and_organization(client, engine, people, console_login):
    console_login(client, people["sec"])
    preview, _ = send(client, kinds="在职党员", urgent="1")
    assert "将发送给 <strong>1</strong> 人" in preview.get_data(as_text=True)
    with Session(engine) as s:
        notice = s.scalars(select(Notice)).one()
        assert notice.urgent and notice.kinds == "在职党员"
        assert s.scalars(select(OutboxMessage.member_id).where(OutboxMessage.source == notice.source)).all() == [
            people["wang"].id]
    form = client.get("/console/notices/new").get_data(as_text=True)
    grid_id = re.search(r'<option value="(\d+)" >一网格', form)[1]
    group_id = re.search(r'<option value="(\d+)" >[　]*第一党小组', form)[1]
    by_grid = post_form(client, "/console/notices/preview", {"body": "网格通知", "grid_id": grid_id})
    assert "将发送给 <strong>1</strong> 人" in by_grid.get_data(as_text=True)
    by_group = post_form(client, "/console/notices/preview", {"body": "小组通知", "org_id": group_id})
    assert "将发送给 <strong>1</strong> 人" in by_group.get_data(as_text=True)
    nobody = post_form(client, "/console/notices/preview", {"body": "没人", "kinds": "流动党员"})
    assert "该范围内没有可通知的成员" in nobody.get_data(as_text=True) and "disabled" in nobody.get_data(as_text=True)
    refused = post_form(client, "/console/notices/send", {"body": "没人", "kinds": "流动党员"})
    assert refused.status_code == 400 and "该范围内没有可通知的成员" in refused.get_data(as_text=True)


def test_remind_once_then_the_page_says_when_next(client, engine, people, console_login):
    console_login(client, people["sec"])
    _, sent = send(client)
    notice_id = notice_id_of(sent)
    page = client.get(f"/console/notices/{notice_id}").get_data(as_text=True)
    assert 'id="remind-button"' in page and "每 12 小时最多一次" in page
    reminded = post_form(client, f"/console/notices/{notice_id}/remind", {})
    assert reminded.status_code == 302
    page = client.get(reminded.headers["Location"]).get_data(as_text=True)
    assert "已再次提醒 4 位未读成员" in page
    assert 'id="remind-button"' not in page and "下次可在" in page and "每 12 小时最多再提醒一次" in page
    again = post_form(client, f"/console/notices/{notice_id}/remind", {})  # a stale page posts anyway
    page = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "已于" in page and "下次可在" in page
    with Session(engine) as s:
        assert s.get(Notice, notice_id).reminders == 1
        assert len(s.scalars(select(OutboxMessage).where(OutboxMessage.source == f"notice:{notice_id}:r1")).all()) == 4
        assert s.scalar(select(OutboxMessage.id).where(OutboxMessage.source == f"notice:{notice_id}:r2")) is None


def test_another_communitys_notice_is_not_found(client, engine, people, console_login):
    console_login(client, people["sec"])
    _, sent = send(client)
    notice_id = notice_id_of(sent)
    console_login(client, people["other_sec"])
    response = client.get(f"/console/notices/{notice_id}")
    assert response.status_code == 404 and f"没有编号为 #{notice_id} 的通知" in response.get_data(as_text=True)
    assert post_form(client, f"/console/notices/{notice_id}/remind", {}).status_code == 404
    assert f"#{notice_id}" not in client.get("/console/notices").get_data(as_text=True)
    form = client.get("/console/notices/new").get_data(as_text=True)
    own = re.search(r'<option value="(\d+)"', form)[1]
    with Session(engine) as s:
        branch_id = s.get(Notice, notice_id).org_id
    assert str(branch_id) != own
    outside = post_form(client, "/console/notices/preview", {"body": "越权", "org_id": str(branch_id)})
    assert outside.status_code == 400 and "只能向本组织及下级组织发布通知" in outside.get_data(as_text=True)
    with Session(engine) as s:
        assert s.get(Notice, notice_id).reminders == 0
        assert s.scalar(select(Notice.id).where(Notice.body == "越权")) is None


def test_a_notice_post_without_the_csrf_token_is_refused(client, engine, people, console_login):
    console_login(client, people["sec"])
    csrf_token(client, "/console/notices")
    response = client.post("/console/notices/send", data={"body": "无令牌的通知"})
    assert response.status_code == 400
    with Session(engine) as s:
        assert s.scalar(select(Notice.id)) is None
    _, sent = send(client)
    assert client.post(f"/console/notices/{notice_id_of(sent)}/remind").status_code == 400
    with Session(engine) as s:
        assert s.get(Notice, notice_id_of(sent)).reminders == 0
