"""Ad-hoc notices with receipts, and the inbox, through the chatbot and the sender."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import DomainError, Member, Notice, OutboxMessage
from models.notices import notice_receipt, publish_notice
from models.outbox import list_inbox, open_message
from tests.conftest import BRANCH, OTHER_BRANCH

DAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
COMMUNITY = "滨江街道党工委/东湖社区党委"


@pytest.fixture
def branch(cast, make_member):
    secretary, members = cast.branch(3)
    outsider = make_member("外支部", org=OTHER_BRANCH, openid="o-out")
    return secretary, members, outsider


def test_secretary_sends_a_notice_to_the_subtree_and_reads_receipts(branch, say, make_sender, wechat_api,
                                                                  session):
    secretary, members, outsider = branch
    reply = say("o-sec", "通知 周六上午9点小区环境整治，请党员准时到场", DAY)
    assert "通知 #1 已发布" in reply and "共 3 人" in reply  # not the secretary
    wechat_api.fail("/cgi-bin/message/template/send", 40003)  # one openid is invalid
    make_sender(OUTBOX_WORKERS=1).drain(DAY)
    receivers = {c.body["touser"] for c in wechat_api.calls_to("/cgi-bin/message/template/send")}
    assert "o-out" not in receivers and "o-sec" not in receivers and len(receivers) == 3
    # A member reads it through 消息.
    listing = say("o-m1", "消息", DAY)
    assert "1 条未读" in listing and "[未读]" in listing
    number = listing.splitlines()[1].split(".")[0]
    opened = say("o-m1", f"消息 {number}", DAY)
    assert "小区环境整治" in opened
    assert "均已读" in say("o-m1", "消息", DAY)

    receipt = say("o-sec", "通知 1 回执", DAY)
    assert "应发 3 人，已送达 2，待发送 0，失败 1；已读 1，未读 2" in receipt
    assert "openid 无效" in receipt and "党员1" not in receipt.split("未读：")[1]

    # Remind those who have not read it: two new messages, not three.
    assert "已向 2 位未读成员再次发送" in say("o-sec", "通知 1 再提醒", DAY)
    make_sender().drain(DAY)
    assert len(wechat_api.messages()) == 3 + 2
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
    published = publish_notice(session, session.merge(secretary), "学习材料已上传", urgent=True)
    rows = list_inbox(session, members[0].id)
    assert len(rows) == 1 and rows[0].urgent
    with pytest.raises(DomainError):
        open_message(session, members[1].id, rows[0].id)
    assert published.recipients == 3 and published.notice.urgent


def test_audience_by_kind(branch, session, make_member):
    secretary, members, outsider = branch
    make_member("在职甲", org=BRANCH, kind="在职党员")
    published = publish_notice(session, session.merge(secretary), "在职党员报到提醒", kinds=["在职党员"])
    assert published.recipients == 1 and published.notice.kinds == "在职党员"
    with pytest.raises(DomainError, match="不认识的成员类别"):
        publish_notice(session, session.merge(secretary), "x", kinds=["外星人"])


# The audience from the chatbot: 网格, member kinds, 紧急 -----------------------------------------------
SECOND_BRANCH = f"{COMMUNITY}/东湖社区第二党支部"
NIGHT = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Beijing: quiet hours


@pytest.fixture
def estate(make_member):
    """A branch secretary of 东湖 (grids 东湖一网格, 东湖二网格) with members of several kinds."""
    make_member("王书记", org=BRANCH, role="书记", openid="o-sec", grid="东湖一网格")
    make_member("在职甲", org=BRANCH, kind="在职党员", grid="东湖一网格", openid="o-a")
    make_member("离退休乙", org=BRANCH, kind="离退休党员", grid="东湖一网格", openid="o-b")
    make_member("流动丙", org=BRANCH, kind="流动党员", grid="东湖二网格", openid="o-c")
    make_member("在职丁", org=BRANCH, kind="在职党员", grid="东湖二网格", openid="o-d")
    make_member("群众戊", org=BRANCH, kind="群众", role="志愿者", openid="o-e")
    # The same grid, another branch of the community: outside the secretary's subtree.
    make_member("二支部己", org=SECOND_BRANCH, kind="离退休党员", grid="东湖一网格", openid="o-f")
    make_member("西湖庚", org=OTHER_BRANCH, kind="在职党员", grid="西湖网格", openid="o-g")


def recipients(session, notice_id, openid="o-sec") -> set[str]:
    """The names a notice was queued for, from its receipt as the manager `openid` sees it."""
    session.expire_all()
    viewer = session.scalars(select(Member).where(Member.openid == openid)).one()
    receipt = notice_receipt(session, notice_id, viewer)
    assert receipt.total == len(receipt.unread)
    return set(receipt.unread)


def test_a_notice_to_one_grid_of_the_secretarys_subtree(estate, say, session):
    reply = say("o-sec", "通知 网格 东湖一网格 明天上午8点至12点停水 请提前储水", DAY)
    assert reply.startswith("通知 #1 已发布到「东湖社区第一党支部」东湖一网格，共 2 人，正在发送。")
    assert recipients(session, 1) == {"在职甲", "离退休乙"}  # not the secretary who sent it
    assert session.get(Notice, 1).body == "明天上午8点至12点停水 请提前储水"
    # The grid as people shorten it, or with a full-width colon.
    assert "东湖二网格，共 2 人" in say("o-sec", "通知 网格 东湖二 周五前交党费", DAY)
    assert "东湖二网格，共 2 人" in say("o-sec", "通知 网格：东湖二网格 周五前交党费", DAY)
    assert recipients(session, 3) == {"流动丙", "在职丁"}


def test_a_notice_to_member_kinds_in_full_or_short(estate, say, session):
    reply = say("o-sec", "通知 在职党员 请本月底前到社区报到", DAY)
    assert "已发布到「东湖社区第一党支部」的在职党员，共 2 人" in reply
    assert recipients(session, 1) == {"在职甲", "在职丁"}
    reply = say("o-sec", "通知 离退休 流动 重阳节座谈会", DAY)
    assert "的流动党员、离退休党员，共 2 人" in reply
    assert recipients(session, 2) == {"离退休乙", "流动丙"}
    reply = say("o-sec", "通知 在职、离退休党员 学习材料已上传", DAY)
    assert "的在职党员、离退休党员，共 3 人" in reply
    assert "的群众，共 1 人" in say("o-sec", "通知 群众 志愿者培训", DAY)
    # Kinds and a grid together: the members of both.
    reply = say("o-sec", "通知 在职 网格 东湖二网格 楼道清扫", DAY)
    assert "东湖二网格的在职党员，共 1 人" in reply
    assert recipients(session, 5) == {"在职丁"}
    assert "该范围内没有可通知的成员" in say("o-sec", "通知 流动 网格 东湖一网格 开会", DAY)


def test_words_that_only_look_like_an_audience_stay_in_the_text(estate, say, session):
    reply = say("o-sec", "通知 网格员明天上午开会", DAY)
    assert "已发布到「东湖社区第一党支部」，共 5 人" in reply
    assert session.get(Notice, 1).body == "网格员明天上午开会"
    say("o-sec", "通知 党员 大会周五召开", DAY)
    say("o-sec", "通知 在职人员 请填报", DAY)
    session.expire_all()
    assert [session.get(Notice, n).body for n in (2, 3)] == ["党员 大会周五召开", "在职人员 请填报"]
    assert "应发 5 人" in say("o-sec", "通知 2 回执", DAY)


def test_an_urgent_notice_goes_out_in_quiet_hours(estate, say, session, make_sender, wechat_api):
    reply = say("o-sec", "通知 紧急 网格 东湖一网格 今晚燃气抢修，请勿使用明火", NIGHT)
    assert reply.startswith("紧急通知 #1 已发布到「东湖社区第一党支部」东湖一网格，共 2 人")
    assert "免打扰时段也会送达" in reply
    say("o-sec", "通知 明早例会改到9点", NIGHT)
    assert session.get(Notice, 1).urgent and not session.get(Notice, 2).urgent
    make_sender().drain(NIGHT)
    sent = [c.body["touser"] for c in wechat_api.messages()]
    assert sorted(sent) == ["o-a", "o-b"]  # the ordinary notice waits for the morning


def test_an_unknown_grid_gets_a_hint_listing_the_secretarys_grids(estate, say, session):
    reply = say("o-sec", "通知 网格 三网格 明天停水", DAY)
    assert reply.startswith("没有找到「三网格」网格。您管理范围内的网格：东湖一网格、东湖二网格。")
    assert "西湖网格" not in reply and "通知 网格 网格名 内容" in reply
    assert "请写明网格名称。您管理范围内的网格：东湖一网格、东湖二网格。" == say("o-sec", "通知 网格", DAY)
    assert "一条通知只能发给一个网格" in say("o-sec", "通知 网格 东湖一网格 网格 东湖二网格 开会", DAY)
    assert "请写上通知内容" in say("o-sec", "通知 紧急 在职", DAY)
    assert session.scalar(select(func.count(Notice.id))) == 0


def test_a_street_admin_names_the_community_when_two_have_the_grid(make_member, say, session):
    make_member("街道管理员", org="滨江街道党工委", role="管理员", openid="o-admin")
    make_member("东一", org=BRANCH, grid="一网格")
    make_member("西一", org=OTHER_BRANCH, grid="一网格")
    reply = say("o-admin", "通知 网格 一网格 开会", DAY)
    assert "有2个网格名为「一网格」" in reply and "东湖社区党委/一网格" in reply
    reply = say("o-admin", "通知 网格 西湖社区党总支/一网格 开会", DAY)
    assert "已发布到「滨江街道党工委」一网格，共 1 人" in reply
    assert recipients(session, 1, "o-admin") == {"西一"}


def test_the_usage_names_the_audience_words(estate, say):
    usage = say("o-sec", "通知", DAY)
    assert "通知 网格 东湖一网格 内容" in usage and "通知 在职党员 内容" in usage and "通知 紧急 内容" in usage
    assert "通知 [紧急] [网格 网格名] [党员类别] 内容" in say("o-sec", "帮助 通知", DAY)


def test_the_audience_through_the_signed_webhook(estate, wx, engine):
    reply = wx.text("o-sec", "通知 紧急 网格 东湖一网格 离退休 明天上午停水，请提前储水")
    assert reply.status == 200
    assert reply.content.startswith("紧急通知 #1 已发布到「东湖社区第一党支部」东湖一网格的离退休党员，共 1 人")
    with Session(engine) as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.source == "notice:1")).all()
        assert [(s.get(Member, r.member_id).name, r.urgent) for r in rows] == [("离退休乙", True)]
    unknown = wx.text("o-sec", "通知 网格 不存在网格 明天停水")
    assert unknown.status == 200 and "没有找到「不存在网格」网格" in unknown.content
    assert "东湖一网格、东湖二网格" in unknown.content
    receipt = wx.text("o-sec", "通知 1 回执").content
    assert "应发 1 人" in receipt and "未读：离退休乙" in receipt
    assert "已向 1 位未读成员再次发送通知 #1" in wx.text("o-sec", "通知 1 再提醒").content


def test_a_notice_keeps_its_punctuation_and_paragraphs_as_typed(branch, say, session):
    typed = "通知　紧急  明天（周六）上午9：00停水，请提前储水！\n物业电话：８８８８\n\n——东湖社区党委"
    assert "紧急通知 #1 已发布" in say("o-sec", typed, DAY)
    bodies = set(session.scalars(select(OutboxMessage.body).where(OutboxMessage.source == "notice:1")))
    assert bodies == {"明天（周六）上午9：00停水，请提前储水！\n物业电话：８８８８\n\n——东湖社区党委"}
