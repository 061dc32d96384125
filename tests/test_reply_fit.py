"""Every reply fits in WeChat's 2,048 bytes: long answers are paged (the page number is part of the
command) and the pages together hold everything; the renderer cuts what a handler forgot to page.

All through the signed webhook, with big data in a real database."""

import logging
import re
from xml.etree import ElementTree

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from app.reply import CUT_NOTE, text_reply
from models import Member
from models.org import ensure_org_path
from models.points import credit
from models.wishes import WishEvent
from tests.conftest import BRANCH

LIMIT = 2048
NEXT = re.compile(r"发送「([^」]+)」看下一页。")


def content_of(reply) -> str:
    """The reply's Content, read from the raw XML by a strict parser, checked to fit."""
    assert reply.status == 200, reply.raw
    root = ElementTree.fromstring(reply.raw.encode("utf-8"))
    text = root.findtext("Content") or ""
    assert len(text.encode("utf-8")) <= LIMIT, f"{len(text.encode('utf-8'))} bytes: {text[:80]}"
    return text


def all_pages(wx, openid: str, command: str, most: int = 50) -> list[str]:
    """Follow 「发送「…」看下一页」 from the first page to the last; every page checked to fit."""
    pages = [content_of(wx.text(openid, command))]
    while (found := NEXT.search(pages[-1])) is not None:
        assert len(pages) < most, "the pages do not end"
        pages.append(content_of(wx.text(openid, found[1])))
    return pages


def add_members(engine, count: int, *, prefix: str, kind: str = "直管党员") -> list[str]:
    """Add `count` members to the branch in one transaction; return their names."""
    names = [f"{prefix}{n:03d}" for n in range(count)]
    with Session(engine) as s:
        org = ensure_org_path(s, BRANCH)
        s.execute(insert(Member), [{"name": name, "phone": f"177{n:08d}", "kind": kind, "role": "党员",
                                    "org_id": org.id, "active": True} for n, name in enumerate(names)])
        s.commit()
    return names


@pytest.fixture
def sec(cast):
    return cast(sec=cast.sec.bound())["sec"]


@pytest.fixture
def mem(cast):
    return cast(mem=cast.wang.bound("o-mem"))["mem"]


# 帮助 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["书记", "党员", None])
def test_help_is_an_overview_and_topics_that_each_fit(wx, make_member, role):
    openid = f"o-{role}"
    if role is not None:
        make_member("帮助人", role=role, openid=openid)
    overview = content_of(wx.text(openid, "帮助"))
    assert "可用指令" in overview and "帮助 心愿" in overview and "帮助 活动" in overview
    topics = re.findall(r"· (帮助 \S+)：", overview)
    assert "帮助 账号" in topics
    shown = ""
    for topic in topics:
        for page in all_pages(wx, openid, topic):
            shown += page
    # Every command word the overview names is explained in its topic.
    for words in re.findall(r"· 帮助 \S+：(.+)", overview):
        for word in words.split("、"):
            assert f"· {word}" in shown, word
    assert ("「通知」" in shown or "· 通知 " in shown) == (role == "书记")
    assert "帮助 心愿" in content_of(wx.text(openid, "帮助 星座"))  # an unknown topic: the overview


def test_the_secretary_help_was_too_long_and_now_is_split(wx, sec):
    overview = content_of(wx.text("o-sec", "帮助"))
    assert len(overview.encode("utf-8")) < 1024
    notices = content_of(wx.text("o-sec", "帮助 通知"))  # 通知 is a command word: its topic
    assert "通知 [紧急] [网格 网格名] [党员类别] 内容" in notices and "组织生活" in notices
    assert content_of(wx.text("o-sec", "帮助 认领")).startswith("心愿类指令")


# 出勤 and 完成情况 --------------------------------------------------------------------------------------
def test_attendance_of_300_pages_every_absentee(wx, sec, engine):
    names = add_members(engine, 300, prefix="缺席党员欧阳")
    created = content_of(wx.text("o-sec", "新活动 主题党日 学习二十大精神 明天 15:00 社区会议室"))
    number = re.search(r"(#\d+) 【", created)[1]
    pages = all_pages(wx, "o-sec", f"出勤 {number}")
    assert len(pages) >= 3
    assert all(page.startswith(f"{number}「学习二十大精神」出勤：应到 301，实到 0，请假 0，缺席 301") for page in pages)
    assert "（第 1/" in pages[0] and "缺席：" in pages[-1]
    listed = [n for page in pages for line in page.splitlines() if line.startswith("缺席：")
              for n in line.removeprefix("缺席：").split("、")]
    assert sorted(listed) == sorted([*names, "李红梅"])  # each name once, none lost
    beyond = content_of(wx.text("o-sec", f"出勤 {number} {len(pages) + 1}"))
    assert f"没有第 {len(pages) + 1} 页，共 {len(pages)} 页" in beyond


def test_quota_report_of_300_pages_everyone_behind(wx, sec, engine):
    names = add_members(engine, 300, prefix="在职党员诸葛", kind="在职党员")
    pages = all_pages(wx, "o-sec", "完成情况 2026")
    assert len(pages) >= 3 and all(p.startswith("2026年完成情况：0/300人已达标。") for p in pages)
    text = "\n".join(pages)
    assert all(f"· {name}（在职党员）0/4，0/2" in text for name in names)


# 心愿 ------------------------------------------------------------------------------------------------
def test_a_wish_with_long_details_and_a_long_history_reads_whole(wx, sec, mem):
    details = "".join(f"第{n}段：东湖小区3栋王奶奶家里的水管老化漏水，需要更换。" for n in range(60))
    assert len(details.encode("utf-8")) > 4000
    assert "已发布心愿 #1" in content_of(wx.text("o-sec", f"发布心愿 修水管 {details}"))
    reasons = []
    for n in range(12):
        assert "认领成功" in content_of(wx.text("o-mem", "认领 #1"))
        reason = f"第{n}次放弃：" + "临时有事去外地，" * 20
        reasons.append(reason)
        assert "已放弃" in content_of(wx.text("o-mem", f"放弃 #1 {reason}"))
    pages = all_pages(wx, "o-mem", "心愿 #1")
    assert len(pages) >= 4
    assert all(p.startswith("心愿 #1「修水管」") for p in pages)
    assert "状态：待认领" in pages[0] and "发送「认领 #1」认领这个心愿。" in pages[-1]
    body = "".join(line for p in pages for line in p.splitlines()[1:]
                   if line != "内容：" and not line.startswith("发送「"))
    assert details in body  # the details, cut in pieces across pages, are all there
    assert all(r in body for r in reasons)
    assert body.count("放弃（已认领→待认领）") == 12


def test_my_wishes_pages_50_wishes(wx, mem):
    for n in range(50):
        title = f"第{n:02d}个心愿希望有人帮忙修一下家里的水龙头和灯"
        assert f"已提交心愿 #{n + 1}" in content_of(wx.text("o-mem", f"许愿 {title}"))
    pages = all_pages(wx, "o-mem", "我的心愿")
    assert len(pages) >= 2
    text = "\n".join(pages)
    assert all(f"#{n} " in text for n in range(1, 51))
    assert text.count("（提交·待审核）") == 50


def test_open_wishes_list_and_points_fit_with_long_texts(wx, sec, mem, engine):
    for n in range(50):
        wx.text("o-sec", f"发布心愿 {'很长的心愿标题' * 14}{n} 详情")
    seen = set()
    for page in all_pages(wx, "o-mem", "心愿", most=20):
        seen |= set(re.findall(r"#(\d+)【", page))
    assert seen == {str(n) for n in range(1, 51)}
    with Session(engine) as s:
        for n in range(5):
            credit(s, member_id=mem.id, amount=5, reason="社区志愿服务" * 30, source="test", source_id=str(n))
        s.commit()
        s.execute(update(Member).where(Member.id == mem.id).values(name="长" * 50))
        s.commit()
    points = content_of(wx.text("o-mem", "积分"))
    assert "您的积分：25" in points and points.count("+5 社区志愿服务") == 5
    assert "【总榜】\n1. " in content_of(wx.text("o-mem", "积分榜"))


# 消息 ------------------------------------------------------------------------------------------------
def test_a_2000_character_notice_is_read_in_pages(wx, sec, mem):
    body = "\n".join(f"第{n}条：明天上午八点到十二点小区停水，请各位居民提前储水，做好准备。" for n in range(60))
    body = body[:2000]
    assert "已发布" in content_of(wx.text("o-sec", f"通知 {body}"))
    listing = content_of(wx.text("o-mem", "消息"))
    number = re.search(r"(\d+)\. \[未读\] ", listing)[1]
    pages = all_pages(wx, "o-mem", f"消息 {number}")
    assert len(pages) >= 3
    text = "\n".join(line for p in pages for line in p.splitlines()[1:-2 if NEXT.search(p) else -1])
    assert text == body
    assert "均已读" in content_of(wx.text("o-mem", "消息"))


def test_the_inbox_list_pages_and_fits(wx, sec, mem):
    for n in range(25):
        wx.text("o-sec", f"通知 {'很长的通知标题' * 10}{n}")
    first = content_of(wx.text("o-mem", "消息"))
    assert "您有 25 条未读消息：（第 1/3 页）" in first and "消息 第2页" in first
    ids = set()
    for page in all_pages(wx, "o-mem", "消息"):
        ids |= set(re.findall(r"^(\d+)\. ", page, re.M))
    assert len(ids) == 25


# 活动 and 组织生活 lists ---------------------------------------------------------------------------------
def test_activity_and_orglife_lists_page_long_titles(wx, sec):
    for n in range(30):
        title = f"学习{n:02d}" + "新时代中国特色社会主义思想" * 7
        place = "滨江街道东湖社区党群服务中心三楼大会议室" * 9
        assert "活动已发布" in content_of(wx.text("o-sec", f"新活动 主题党日 {title} 明天 15:00 {place}"))
    seen = set()
    for page in all_pages(wx, "o-sec", "活动"):
        seen |= set(re.findall(r"^#(\d+) 【", page, re.M))
    assert len(seen) == 30
    assert "活动 第2页" in content_of(wx.text("o-sec", "活动"))
    for n in range(40):
        wx.text("o-sec", f"组织生活 每月{n % 28 + 1}日 09:30 {'组织生活日主题学习' * 5}{n}")
    rules = set()
    for page in all_pages(wx, "o-sec", "组织生活"):
        rules |= set(re.findall(r"^(\d+)\. 每月", page, re.M))
    assert len(rules) == 40


# The renderer's last guard ----------------------------------------------------------------------
def test_a_reply_a_handler_forgot_to_page_is_cut_with_a_note_and_logged(app, wx, mem, caplog):
    router = app.extensions["router"]
    router.command("长文")(lambda message, ctx: "很长的回复。" * 400 + "结尾")
    with caplog.at_level(logging.WARNING, logger="app.reply"):
        text = content_of(wx.text("o-mem", "长文"))
    assert text.endswith(CUT_NOTE) and "结尾" not in text
    assert len(text.encode("utf-8")) > LIMIT - 10
    assert any("a handler should page it" in r.getMessage() for r in caplog.records)


def test_the_cut_falls_on_a_character_boundary():
    for filler in ("a", "中", "😀"):
        for shift in range(4):
            xml = text_reply("o1", "gh", "a" * shift + filler * 3000)
            content = ElementTree.fromstring(xml.encode("utf-8")).findtext("Content")
            assert len(content.encode("utf-8")) <= LIMIT and content.endswith(CUT_NOTE)
            assert "\ufffd" not in content


def test_history_notes_from_the_database_do_not_break_a_page(wx, sec, mem, engine):
    wx.text("o-sec", "发布心愿 修门 详情")
    with Session(engine) as s:
        s.execute(update(WishEvent).values(note="备注" * 250))
        s.commit()
    pages = all_pages(wx, "o-mem", "心愿 #1")
    assert "记录：" in "".join(pages)
