"""微心愿 at its edges, through the signed webhook: 待办 (what waits for a manager or a grid head), a
bare 确认 / 审核, a second 放弃, the beneficiary named in 发布心愿, a chosen or guessed category,
and replies and notices without doubled punctuation. On SQLite and PostgreSQL alike (the race with
threads too)."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from handlers.paging import REPLY_MAX_BYTES, size
from models import DomainError, Member, OutboxMessage, PointEntry
from models.base import now_utc
from models.points import request_award
from models.wishes import (
    DONE,
    FULFILLED,
    OPEN,
    PENDING,
    NewWish,
    Wish,
    claim_wish,
    confirm_sole,
    fulfil_wish,
    guess_category,
    post_wish,
    propose_wish,
    sentence,
)
from scheduler.wish_jobs import release_overdue_wishes
from tests.conftest import COMMUNITY, RACE_START_TIMEOUT, Person

DOUBLED = re.compile(r"[。，！？；、：][。，]")


@pytest.fixture
def cast(cast, engine):
    """This module's people, by key: made from the shared cast (conftest's `cast` fixture)."""
    people = cast(sec=cast.sec.bound(), admin=cast.admin.but(org=COMMUNITY).bound(),
                  head=Person("吴网格", "13800000005", grid="东湖一网格", openid="o-head"),
                  wang=cast.wang.but(grid="东湖一网格").bound(), zhao=cast.zhao.bound(), liu=cast.liu.bound(),
                  zhou=cast.zhou.bound())
    with Session(engine) as s:
        s.get(Member, people["head"].id).grid_head = True
        s.commit()
    return people


def said(wx, openid, text, **kw) -> str:
    """Send a text; every reply fits one bubble and has no doubled punctuation."""
    reply = wx.text(openid, text, **kw).content
    assert size(reply) <= REPLY_MAX_BYTES, (text, size(reply))
    assert not DOUBLED.search(reply), reply
    return reply


def notices(session, member) -> list[str]:
    session.expire_all()
    return [m.body for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.member_id == member.id).order_by(OutboxMessage.id))]


def wish(session, number) -> Wish:
    session.expire_all()
    return session.get(Wish, number)


def grid_wish(session, cast, title="修水龙头", **kw) -> Wish:
    """A wish of 东湖一网格 posted by the secretary (not by the grid head), for 王奶奶."""
    sec = session.get(Member, cast["sec"].id)
    kw.setdefault("beneficiary_name", "王奶奶")
    kw.setdefault("beneficiary_phone", "13912345678")
    kw.setdefault("beneficiary_address", "东湖小区3栋2单元501")
    grid_id = session.get(Member, cast["head"].id).grid_id
    return post_wish(session, sec, NewWish.of(title, "厨房水龙头漏水", grid_id=grid_id, **kw), now=now_utc())


def claimed_and_done(wx, number, openid="o-wang"):
    assert "认领成功" in said(wx, openid, f"认领 #{number}")
    assert "等待确认" in said(wx, openid, f"完成 #{number} 修好了")


# 待办 -----------------------------------------------------------------------------------------
def test_todo_lists_what_waits_for_each_person(wx, cast, session):
    said(wx, "o-liu", "许愿 想请人陪我去医院复诊")  # #1 待审核
    grid_wish(session, cast)  # #2, 东湖一网格
    claimed_and_done(wx, 2)
    said(wx, "o-sec", "发布心愿 送米 给独居老人送一袋米")  # #3, no grid
    claimed_and_done(wx, 3, "o-zhao")

    mine = said(wx, "o-sec", "待办")
    assert "待审核的心愿（1 个）：\n#1 想请人陪我去医院复诊（刘洋，" in mine
    assert "待确认的心愿（2 个）：\n#2 修水龙头（王志强，" in mine and "#3 送米（赵秀英，" in mine
    assert "积分申请" not in mine and "共 3 项待办。" in mine

    # The grid head: their grid's fulfilment only; nothing to review (not a secretary).
    head = said(wx, "o-head", "待办")
    assert "#2 修水龙头" in head and "#3" not in head and "待审核" not in head and "共 1 项待办。" in head
    # A secretary elsewhere, and a member with nothing to decide.
    assert said(wx, "o-zhou", "待办") == "目前没有等待您处理的事项。"
    assert said(wx, "o-zhao", "待办") == "目前没有等待您处理的事项。"
    assert said(wx, "o-nobody", "待办").startswith("请先绑定党员身份")


def test_todo_lists_manual_awards_for_the_second_person(wx, cast, session):
    sec = session.get(Member, cast["sec"].id)
    request_award(session, sec, cast["wang"].id, 5, "社区义务劳动")
    admin = said(wx, "o-admin", "待办")
    assert "待审批的积分申请（1 个）：\n积分申请 #1 王志强 +5 社区义务劳动（李红梅录入）" in admin
    assert "积分申请请在小程序中审批。" in admin
    # The requester does not approve their own award: it does not wait for them.
    assert said(wx, "o-sec", "待办") == "目前没有等待您处理的事项。"


def test_a_long_todo_is_capped_with_a_count_of_the_rest(wx, cast, session):
    for n in range(25):
        liu = session.get(Member, cast["liu"].id)
        propose_wish(session, liu, f"第{n}个心愿" + "很长的标题" * 20, now=now_utc())
    sec = session.get(Member, cast["sec"].id)
    for n in range(12):
        request_award(session, sec, cast["wang"].id, n + 1, "很长的理由" * 30)
    reply = said(wx, "o-admin", "待办")
    shown = len(re.findall(r"^(?:#|积分申请 #)\d+ ", reply, re.M))
    rest = int(re.search(r"……另有 (\d+) 项未列出。", reply)[1])
    assert shown >= 5 and shown + rest == 37
    assert "待审核的心愿（25 个）" in reply and "待审批的积分申请（12 个）" in reply and "共 37 项待办。" in reply


# A bare 确认 / 审核 ---------------------------------------------------------------------------------
def test_a_bare_confirm_acts_on_the_only_one_and_lists_several(wx, cast, session):
    assert said(wx, "o-head", "确认") == "没有等待您确认的心愿。"
    grid_wish(session, cast)  # #1
    claimed_and_done(wx, 1)
    said(wx, "o-sec", "发布心愿 送米 给独居老人送一袋米")  # #2, not of the grid
    claimed_and_done(wx, 2, "o-zhao")

    several = said(wx, "o-sec", "确认")
    assert several.startswith("有 2 个心愿等待您确认：\n#1 修水龙头（王志强，")
    assert "#2 送米（赵秀英，" in several and several.endswith("请发送「确认 #编号」指明要确认哪一个。")
    assert wish(session, 1).status == FULFILLED and wish(session, 2).status == FULFILLED

    # The grid head has one waiting (their grid's): a bare 确认 confirms it and says which.
    assert said(wx, "o-head", "确认") == "已确认心愿 #1「修水龙头」完成，王志强 获得 10 积分。"
    assert wish(session, 1).status == DONE
    # A retry of the same message answers the same and credits nothing more.
    once = said(wx, "o-sec", "确认", msg_id=777001)
    assert once == "已确认心愿 #2「送米」完成，赵秀英 获得 10 积分。"
    assert said(wx, "o-sec", "确认", msg_id=777001) == once
    assert session.scalar(select(func.count(PointEntry.id))) == 2
    assert said(wx, "o-sec", "确认") == "没有等待您确认的心愿。"


def test_a_bare_review_acts_on_the_only_one_and_lists_several(wx, cast, session):
    assert said(wx, "o-sec", "审核 通过") == "没有等待您审核的心愿。"
    said(wx, "o-liu", "许愿 想请人陪我去医院复诊")  # #1
    assert "请写明不通过的理由" in said(wx, "o-sec", "审核 不通过")
    assert wish(session, 1).status == PENDING
    assert said(wx, "o-sec", "审核 通过") == "心愿 #1「想请人陪我去医院复诊」已通过审核，开放认领。"
    assert wish(session, 1).status == OPEN

    said(wx, "o-liu", "许愿 想要一台新电视")  # #2
    said(wx, "o-liu", "许愿 家里灯泡坏了")  # #3
    several = said(wx, "o-sec", "审核 不通过 不属于微心愿范围")
    assert several.startswith("有 2 个心愿等待您审核：\n#2 想要一台新电视（刘洋，") and "#3 家里灯泡坏了" in several
    assert several.endswith("请发送「审核 #编号 不通过 理由」指明要审核哪一个。")
    assert wish(session, 2).status == PENDING and wish(session, 3).status == PENDING
    assert "未通过审核" in said(wx, "o-sec", "审核 #2 不通过 不属于微心愿范围")
    assert said(wx, "o-sec", "审核不通过 请写清楚哪里的灯").startswith("心愿 #3「家里灯泡坏了」未通过审核")
    # Proposals of another branch do not wait for this secretary.
    assert said(wx, "o-zhou", "审核 通过") == "没有等待您审核的心愿。"


def test_many_waiting_are_capped_in_one_reply(wx, cast, session):
    for n in range(30):
        liu = session.get(Member, cast["liu"].id)
        propose_wish(session, liu, f"心愿{n}" + "标题很长" * 20, now=now_utc())
    reply = said(wx, "o-sec", "审核 通过")
    shown = len(re.findall(r"^#\d+ ", reply, re.M))
    assert reply.startswith("有 30 个心愿等待您审核：")
    assert f"……另有 {30 - shown} 项未列出。" in reply
    assert session.scalar(select(func.count(Wish.id)).where(Wish.status == PENDING)) == 30


def test_concurrent_bare_confirms_credit_once(database_url, cast, session):
    race = create_engine(database_url, pool_size=12, max_overflow=0,
                         **({"connect_args": {"timeout": 60}} if database_url.startswith("sqlite") else {}))
    try:
        with Session(race) as s:
            org = session.get(Member, cast["sec"].id).org_id
            ids = [cast["sec"].id]
            for n in range(9):
                m = Member(name=f"副书记{n}", phone=f"136{n:08d}", role="书记", org_id=org)
                s.add(m)
                s.flush()
                ids.append(m.id)
            s.commit()
        posted = grid_wish(session, cast)
        claim_wish(session, session.get(Member, cast["wang"].id), posted.id, now=now_utc())
        fulfil_wish(session, session.get(Member, cast["wang"].id), posted.id, "修好了", now=now_utc())
        barrier = threading.Barrier(len(ids), timeout=RACE_START_TIMEOUT)

        def one(member_id):
            with Session(race, expire_on_commit=False) as s:
                member = s.get(Member, member_id)
                _ = member.org
                s.commit()
                barrier.wait()
                try:
                    sole = confirm_sole(s, member, now=now_utc())
                    return "done" if sole.done else f"waiting {sole.total}"
                except DomainError as exc:
                    return exc.message

        with ThreadPoolExecutor(max_workers=len(ids)) as pool:
            answers = list(pool.map(one, ids))
    finally:
        race.dispose()
    assert answers.count("done") == 1, answers
    assert all(a == "waiting 0" or "无需重复确认" in a for a in answers if a != "done"), answers
    session.expire_all()
    assert session.scalar(select(func.count(PointEntry.id))) == 1
    assert wish(session, posted.id).status == DONE


# The grid head sees the beneficiary ------------------------------------------------------------
def test_the_grid_head_confirming_sees_the_beneficiary_unmasked(wx, cast, session):
    grid_wish(session, cast)
    claimed_and_done(wx, 1)
    shown = said(wx, "o-head", "心愿 #1")
    assert "受助人：王奶奶" in shown and "电话：13912345678" in shown and "东湖小区3栋2单元501" in shown
    masked = said(wx, "o-zhao", "心愿 #1")
    assert "13912345678" not in masked and "139****5678" in masked and "王奶奶" not in masked
    # A grid head of another grid (or none) does not.
    with Session(session.get_bind()) as s:
        s.get(Member, cast["head"].id).grid_head = False
        s.commit()
    assert "139****5678" in said(wx, "o-head", "心愿 #1")


# 放弃 twice ------------------------------------------------------------------------------------
def test_releasing_twice_says_it_is_already_released(wx, cast, session):
    said(wx, "o-sec", "发布心愿 送米 给独居老人送一袋米")
    said(wx, "o-wang", "认领 #1")
    assert said(wx, "o-wang", "放弃 #1").startswith("已放弃心愿 #1")
    assert said(wx, "o-wang", "放弃 #1") == "心愿 #1 您已放弃过，它已重新开放认领，无需再次放弃。"
    assert "不是您认领的" in said(wx, "o-zhao", "放弃 #1")

    said(wx, "o-zhao", "认领 #1")
    assert "不是您认领的" in said(wx, "o-wang", "放弃 #1")  # someone else holds it now

    # Released by the deadline: said so too.
    release_overdue_wishes(session, now_utc() + timedelta(days=30))
    assert wish(session, 1).status == OPEN
    assert said(wx, "o-zhao", "放弃 #1") == ("心愿 #1 已超过完成期限，系统已释放您的认领，"
                                             "它已重新开放认领，无需再次放弃。")


# 发布心愿 with a beneficiary and a category ---------------------------------------------------------
def test_posting_names_the_beneficiary_and_chooses_the_category(wx, cast, session):
    reply = said(wx, "o-sec", "发布心愿 修自行车 车胎破了，链条也松了 受助人：王奶奶 电话：139 1234 5678 "
                              "地址：东湖小区３栋2单元501 类别：其他")
    assert reply.startswith("已发布心愿 #1「修自行车」（其他，10积分），等待认领。")
    assert "受助人：王奶奶，东湖小区３栋2单元501，13912345678" in reply
    posted = wish(session, 1)
    assert (posted.details, posted.category, posted.beneficiary_name, posted.beneficiary_phone,
            posted.beneficiary_address) == ("车胎破了，链条也松了", "其他", "王奶奶", "13912345678",
                                             "东湖小区３栋2单元501")
    masked = said(wx, "o-zhao", "心愿 #1")
    assert "受助人：王*" in masked and "139****5678" in masked and "13912345678" not in masked

    # The grid head posts for their grid, with a landline; the category from the list.
    head = said(wx, "o-head", "发布心愿 陪聊天 独居老人想找人说说话 受助人:李爷爷 电话:0571-88886666 类别:陪伴探访")
    assert "（陪伴探访，10积分）" in head and "0571-88886666" in head
    assert wish(session, 2).grid_id == session.get(Member, cast["head"].id).grid_id
    # Fields separated by commas, as people write them: the commas are no part of the values.
    said(wx, "o-sec", "发布心愿 送米 独居老人家里没米了，受助人：张大爷，电话：13912345670，地址：东湖小区5栋；")
    third = wish(session, 3)
    assert (third.details, third.beneficiary_name, third.beneficiary_phone, third.beneficiary_address) == (
        "独居老人家里没米了", "张大爷", "13912345670", "东湖小区5栋")


@pytest.mark.parametrize(("text", "answer"), [
    ("发布心愿 修水龙头 漏水 类别:娱乐",
     "没有「娱乐」这个类别，请从生活用品、维修、陪伴探访、学习用品、就医出行、其他中选择"),
    ("发布心愿 修水龙头 漏水 电话:abc", "受助人电话格式不对"),
    ("发布心愿 修水龙头 电话:13912345678 电话:13912345679", "「电话」只能填写一次"),
    ("发布心愿 受助人:王奶奶", "请写明心愿标题"),
    ("发布心愿 修水龙头 受助人:" + "王" * 101, "受助人姓名太长"),
    ("发布心愿 修水龙头 地址:" + "东" * 201, "受助人地址太长"),
])
def test_bad_fields_get_a_clear_answer_and_post_nothing(wx, cast, session, text, answer):
    assert answer in said(wx, "o-sec", text)
    assert session.scalar(select(func.count(Wish.id))) == 0


def test_a_service_is_not_filed_as_supplies(wx, cast, session):
    assert "（陪伴探访，" in said(wx, "o-sec", "发布心愿 辅导作业 小学三年级数学，每周两次")
    said(wx, "o-liu", "许愿 想请人帮孩子辅导作业")
    assert wish(session, 2).category == "陪伴探访"
    assert "（维修，" in said(wx, "o-sec", "发布心愿 电风扇坏了 夏天快到了")
    assert "（学习用品，" in said(wx, "o-sec", "发布心愿 送书包 给小明一个新书包")


@pytest.mark.parametrize(("text", "category"), [
    ("辅导作业", "陪伴探访"), ("帮孩子补课", "陪伴探访"), ("电风扇坏了", "维修"), ("买文具", "学习用品"),
    ("请书记帮忙买米", "生活用品"), ("陪老人去医院", "陪伴探访"), ("复诊接送", "就医出行"), ("其他事情", "其他")])
def test_category_guess(text, category):
    assert guess_category(text) == category


# No doubled punctuation -------------------------------------------------------------------------
def test_reasons_ending_in_punctuation_are_not_doubled(wx, cast, session):
    said(wx, "o-liu", "许愿 想要一台新电视")
    said(wx, "o-sec", "审核 #1 不通过 不属于微心愿范围。")
    said(wx, "o-sec", "发布心愿 修水龙头 厨房漏水")
    said(wx, "o-wang", "认领 #2")
    said(wx, "o-wang", "完成 #2 已上门修好。")
    said(wx, "o-sec", "驳回 #2 水龙头还在漏！")
    said(wx, "o-wang", "完成 #2 换了新龙头，")
    said(wx, "o-sec", "撤回 #2 老人已搬走，")
    said(wx, "o-sec", "心愿 #2")
    bodies = [b for m in ("liu", "wang", "sec") for b in notices(session, cast[m])]
    assert any("未通过审核：不属于微心愿范围。" in b for b in bodies)
    assert any("已完成心愿 #2「修水龙头」：已上门修好。请核实" in b for b in bodies)
    assert any("被驳回：水龙头还在漏！请在" in b for b in bodies)
    assert any("已被撤回：老人已搬走。感谢您的热心！" in b for b in bodies)
    assert not [b for b in bodies if DOUBLED.search(b)]


def test_sentence_ends_a_free_text_once():
    assert sentence("还没修好。") == "还没修好。"
    assert sentence("还没修好，") == "还没修好。"
    assert sentence("还没修好！") == "还没修好！"
    assert sentence("还没修好") == "还没修好。"
    assert sentence("") == ""
