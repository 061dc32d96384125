"""微心愿 and 积分 end to end: signed WeChat messages through the webhook, the router and the domain."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from handlers import Incoming, build_router
from models import Member, OutboxMessage, PointEntry
from models.points import credit
from models.wishes import Wish, WishPhoto, wish_history


@pytest.fixture
def cast(cast):
    """This module's people, by key: made from the shared cast (conftest's `cast` fixture)."""
    return cast(sec=cast.sec.bound(), wang=cast.wang.but(grid="东湖一网格").bound(), zhao=cast.zhao.bound(),
                liu=cast.liu.bound(), zhou=cast.zhou.bound())


def notices(session, member):
    session.expire_all()
    return [m.body for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.member_id == member.id).order_by(OutboxMessage.id))]


def test_a_wish_from_posting_to_points(wx, cast, session):
    reply = wx.text("o-sec", "发布心愿 修水龙头 东湖小区3栋王奶奶家厨房水龙头漏水").content
    assert "已发布心愿 #1「修水龙头」" in reply and "维修" in reply

    listing = wx.text("o-wang", "心愿").content
    assert "#1【维修】修水龙头" in listing and "认领 #编号" in listing
    assert "心愿 #1「修水龙头」" in wx.text("o-wang", "心愿 #1").content

    # Typed with a full-width number sign and digits, as phones often do.
    claimed = wx.text("o-wang", "认领＃１").content
    assert claimed.startswith("认领成功！心愿 #1「修水龙头」")
    assert "已被认领" in wx.text("o-zhao", "认领 #1").content
    assert "您已认领" in wx.text("o-wang", "认领#1").content
    assert any("王志强 认领了心愿 #1" in n for n in notices(session, cast["sec"]))

    assert "#1 修水龙头（认领·已认领" in wx.text("o-wang", "我的心愿").content
    assert "不是您认领的" in wx.text("o-zhao", "完成 #1 修好了").content
    done = wx.text("o-wang", "完成 #1 已上门换了新龙头").content
    assert "已提交心愿 #1「修水龙头」的完成情况" in done
    photo = wx.send({"ToUserName": "gh_lianxin", "FromUserName": "o-wang", "CreateTime": 1700000000,
                     "MsgType": "image", "PicUrl": "http://example.com/p.jpg", "MediaId": "MEDIA-1",
                     "MsgId": 990001}).content
    assert "照片已附在心愿 #1「修水龙头」上，共 1 张" in photo
    assert any("王志强 已完成心愿 #1" in n for n in notices(session, cast["sec"]))

    assert "只有心愿 #1 所在组织的书记" in wx.text("o-zhou", "确认 #1").content
    confirmed = wx.text("o-sec", "确认 #1").content
    assert "已确认心愿 #1「修水龙头」完成，王志强 获得 10 积分" in confirmed
    assert "无需重复确认" in wx.text("o-sec", "确认 #1").content
    assert any("已确认，获得 10 积分" in n for n in notices(session, cast["wang"]))

    points = wx.text("o-wang", "积分").content
    assert "您的积分：10" in points and "+10 完成微心愿 #1「修水龙头」" in points
    board = wx.text("o-zhao", "积分榜").content
    assert "东湖社区党委积分榜" in board and "1. 王志强 10" in board

    history = wx.text("o-sec", "心愿 #1").content
    for step in ("发布（待认领）", "认领（待认领→已认领）", "完成（已认领→待确认）", "确认（待确认→已完成）"):
        assert step in history
    session.expire_all()
    assert [p.media_id for p in session.scalars(select(WishPhoto))] == ["MEDIA-1"]
    assert session.scalar(select(PointEntry.amount)) == 10


def test_proposal_review_return_and_release(wx, cast, session):
    proposed = wx.text("o-liu", "许愿 想请人陪我去医院复诊").content
    assert "已提交心愿 #1「想请人陪我去医院复诊」，等待支部书记审核" in proposed
    assert any("审核 #1 通过" in n for n in notices(session, cast["sec"]))
    assert "尚未通过审核" in wx.text("o-wang", "认领 #1").content
    assert "仅限书记、管理员使用" in wx.text("o-wang", "审核 #1 通过").content
    assert "只有心愿 #1 所在组织的书记或管理员可以审核" in wx.text("o-zhou", "审核 #1 通过").content
    assert "已通过审核，开放认领" in wx.text("o-sec", "审核#1通过").content

    assert "认领成功" in wx.text("o-wang", "认领 1").content
    # The beneficiary's phone is visible to the claimer, masked for others.
    phone = session.get(Member, cast["liu"].id).phone
    assert phone in wx.text("o-wang", "心愿 #1").content
    assert phone not in wx.text("o-zhao", "心愿 #1").content
    assert phone[:3] + "****" + phone[-4:] in wx.text("o-zhao", "心愿 #1").content

    assert "已放弃心愿 #1" in wx.text("o-wang", "放弃 #1").content
    assert "认领成功" in wx.text("o-zhao", "认领 #1").content
    wx.text("o-zhao", "完成 #1 已陪同")
    assert wx.text("o-liu", "驳回 #1").content == "请写明驳回理由，例如：驳回 #1 水龙头仍在漏水"
    assert "已驳回心愿 #1" in wx.text("o-liu", "驳回 #1 还没去呢").content
    assert any("还没去呢" in n for n in notices(session, cast["zhao"]))
    wx.text("o-zhao", "完成 #1 昨天已陪同复诊")
    # The beneficiary, bound, confirms themself.
    assert "获得 10 积分" in wx.text("o-liu", "确认 #1").content
    actions = [e.action for e in wish_history(session, 1)]
    assert actions == ["提交", "审核通过", "认领", "放弃", "认领", "完成", "驳回", "完成", "确认"]


def test_turn_down_and_withdraw(wx, cast, session):
    wx.text("o-liu", "许愿 想要一台新电视")
    assert "格式不对" in wx.text("o-sec", "审核 #1 行").content
    assert wx.text("o-sec", "审核 #1 不通过").content == "请写明不通过的理由，例如：审核 #1 不通过 内容不属于微心愿范围"
    assert "未通过审核，已通知提交人" in wx.text("o-sec", "审核 #1 不通过 不属于微心愿范围").content
    assert any("不属于微心愿范围" in n for n in notices(session, cast["liu"]))

    wx.text("o-sec", "发布心愿 送米 给独居老人送一袋米")
    wx.text("o-wang", "认领 #2")
    assert "仅限书记、管理员使用" in wx.text("o-wang", "撤回 #2").content
    assert "已撤回心愿 #2" in wx.text("o-sec", "撤回 #2 老人已入住养老院").content
    assert any("已被撤回：老人已入住养老院" in n for n in notices(session, cast["wang"]))
    assert "目前没有待认领的心愿" in wx.text("o-wang", "心愿").content


def test_listing_pages(wx, cast, session, app):
    for i in range(7):
        wx.text("o-sec", f"发布心愿 心愿{i} 详情{i}")
    first = wx.text("o-wang", "心愿").content
    assert "第 1/2 页，共 7 个" in first and "发送「心愿 2」看下一页" in first
    second = wx.text("o-wang", "心愿 2").content
    assert "第 2/2 页" in second and "#1【" in second
    assert "没有第 3 页" in wx.text("o-wang", "心愿 3").content
    assert "未找到心愿 #99" in wx.text("o-wang", "心愿 #99").content


def test_the_open_claims_limit_is_a_setting(app_factory, cast, session):
    from app.simulator import Simulator
    from tests.conftest import APP_ID, TOKEN, flask_poster

    app = app_factory(WISH_MAX_OPEN_CLAIMS=1, WISH_DEFAULT_POINTS=25)
    with app.app_context():
        wx = Simulator("/wechat", TOKEN, APP_ID, post=flask_poster(app.test_client()))
        assert "25积分" in wx.text("o-sec", "发布心愿 甲 详情").content
        wx.text("o-sec", "发布心愿 乙 详情")
        assert "认领成功" in wx.text("o-wang", "认领 #1").content
        assert "您已有 1 个未完成的心愿" in wx.text("o-wang", "认领 #2").content


def test_an_image_without_a_recent_fulfilment_is_just_acknowledged(session, cast):
    router = build_router()
    reply = router.dispatch(Incoming(openid="o-wang", msg_type="image", media_id="M"), session,
                            datetime.now(UTC))
    assert "请先发送「完成 #编号 说明」" in reply


def test_ranking_this_month_and_all_time(session, cast):
    router = build_router()
    now = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)
    credit(session, member_id=cast["wang"].id, amount=30, reason="活动", source="activity", source_id="1",
           now=now - timedelta(days=40))
    credit(session, member_id=cast["zhao"].id, amount=5, reason="活动", source="activity", source_id="2",
           now=now - timedelta(days=1))
    credit(session, member_id=cast["zhou"].id, amount=99, reason="活动", source="activity", source_id="3",
           now=now - timedelta(days=1))
    session.commit()
    board = router.dispatch(Incoming(openid="o-liu", msg_type="text", content="积分榜"), session, now)
    month, total = board.split("【总榜】")
    assert "1. 赵秀英 5" in month and "王志强" not in month
    assert "1. 王志强 30" in total and "2. 赵秀英 5" in total
    assert "周敏" not in board  # another community


def test_commands_need_binding(wx, cast):
    assert "请先绑定" in wx.text("o-stranger", "认领 #1").content
    assert "目前没有待认领的心愿" in wx.text("o-stranger", "心愿").content
    assert Wish.__tablename__ == "wishes"


def test_a_retried_claim_is_answered_alike_and_claims_once(wx, cast, session):
    wx.text("o-sec", "发布心愿 修水龙头 详情")
    first = wx.text("o-wang", "认领 #1", msg_id=4242).content
    again = wx.text("o-wang", "认领 #1", msg_id=4242).content
    assert first == again and first.startswith("认领成功")
    assert [e.action for e in wish_history(session, 1)] == ["发布", "认领"]
