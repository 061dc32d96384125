"""Ad-hoc notices with receipts, and the inbox, through the chatbot and the sender."""

from datetime import UTC, datetime

import pytest

from models import DomainError
from models.notices import notice_receipt, publish_notice
from models.outbox import list_inbox, open_message
from tests.conftest import BRANCH, OTHER_BRANCH
from tests.outbox_fixtures import *  # noqa: F403

DAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
COMMUNITY = "滨江街道党工委/东湖社区党委"


@pytest.fixture
def branch(make_member):
    secretary = make_member("王书记", org=BRANCH, role="书记", openid="o-sec")
    members = [make_member(f"党员{n}", org=BRANCH, openid=f"o-m{n}") for n in range(3)]
    outsider = make_member("外支部", org=OTHER_BRANCH, openid="o-out")
    return secretary, members, outsider


def test_secretary_sends_a_notice_to_the_subtree_and_reads_receipts(branch, say, make_sender, wechat_api,
                                                                  session):
    secretary, members, outsider = branch
    reply = say("o-sec", "通知 周六上午9点小区环境整治，请党员准时到场", DAY)
    assert "通知 #1 已发布" in reply and "共 4 人" in reply
    wechat_api.fail("/cgi-bin/message/template/send", 40003)  # one openid is invalid
    make_sender(OUTBOX_WORKERS=1).drain(DAY)
    receivers = {c.body["touser"] for c in wechat_api.calls_to("/cgi-bin/message/template/send")}
    assert "o-out" not in receivers and len(receivers) == 4
    # A member reads it through 消息.
    listing = say("o-m1", "消息", DAY)
    assert "1 条未读" in listing and "[未读]" in listing
    number = listing.splitlines()[1].split(".")[0]
    opened = say("o-m1", f"消息 {number}", DAY)
    assert "小区环境整治" in opened
    assert "均已读" in say("o-m1", "消息", DAY)

    receipt = say("o-sec", "通知 1 回执", DAY)
    assert "应发 4 人，已送达 3，待发送 0，失败 1；已读 1，未读 3" in receipt
    assert "openid 无效" in receipt and "党员1" not in receipt.split("未读：")[1]

    # Remind those who have not read it: three new messages, not four.
    assert "已向 3 位未读成员再次发送" in say("o-sec", "通知 1 再提醒", DAY)
    make_sender().drain(DAY)
    assert len(wechat_api.messages()) == 4 + 3
    # Opening the reminder counts as reading the notice.
    reminder = [m for m in list_inbox(session, members[2].id) if m.source == "notice:1:r1"][0]
    open_message(session, members[2].id, reminder.id, DAY)
    assert notice_receipt(session, 1, session.merge(secretary)).as_dict()["read"] == 2


def test_only_managers_send_notices_and_only_of_their_subtree(branch, say, make_member):
    secretary, members, outsider = branch
    assert "仅限书记、管理员" in say("o-m0", "通知 大家好", DAY)
    other_secretary = make_member("李书记", org=OTHER_BRANCH, role="书记", openid="o-sec2")
    say("o-sec", "通知 本支部通知", DAY)
    assert "没有编号为 #1 的通知" in say("o-sec2", "通知 1 回执", DAY)
    assert other_secretary.id


def test_notice_rows_are_unique_per_recipient_and_a_member_cannot_open_anothers(branch, session):
    secretary, members, outsider = branch
    notice = publish_notice(session, session.merge(secretary), "学习材料已上传", urgent=True)
    rows = list_inbox(session, members[0].id)
    assert len(rows) == 1 and rows[0].urgent
    with pytest.raises(DomainError):
        open_message(session, members[1].id, rows[0].id)
    assert notice.recipient_count == 4


def test_audience_by_kind(branch, session, make_member):
    secretary, members, outsider = branch
    make_member("在职甲", org=BRANCH, kind="在职党员")
    notice = publish_notice(session, session.merge(secretary), "在职党员报到提醒", kinds=["在职党员"])
    assert notice.recipient_count == 1
    with pytest.raises(DomainError, match="不认识的成员类别"):
        publish_notice(session, session.merge(secretary), "x", kinds=["外星人"])
