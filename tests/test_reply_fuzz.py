"""Fuzzing the replies: arbitrary Unicode (`]]>`, control characters, emoji, long strings) through
every stored text into every reply that shows it, through the signed webhook; and hostile texts
written straight into the database, bypassing every check on input. Each reply must be well-formed
XML for a strict parser with a Content of at most 2,048 bytes."""

import re
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.reply import text_reply, xml_text
from models import Activity, Member, OutboxMessage
from models.wishes import Wish, WishEvent

LIMIT = 2048
FUZZ = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# What a user can type (a WeChat message is XML, so no character XML forbids), heavy on the
# troublemakers: the CDATA terminator and its parts, markup, entities, emoji, line breaks.
TRICKY = ["]]>", "]]", "]", "<![CDATA[", "]]]]><![CDATA[>", "<", ">", "&", "&amp;", "</xml>", "😀", "👨‍👩‍👧",
          "\n", "\t", "#", "＃", " ", "　", "\u200b", "\U0010fffd"]
typed_char = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff")
typed = st.lists(st.one_of(st.sampled_from(TRICKY), typed_char, st.text(typed_char, min_size=20, max_size=300)),
                 min_size=1, max_size=12).map("".join)
word = typed.map(lambda s: "".join(s.split()) or "词")  # one word: no white space at all

# What only the database can hold: also every control character XML forbids, U+FFFE, U+FFFF.
FORBIDDEN = [chr(c) for c in range(1, 32) if c not in (9, 10, 13)] + ["\ufffe", "\uffff", "\x7f"]
hostile_char = st.one_of(st.sampled_from(FORBIDDEN), typed_char)


def hostile(max_size: int) -> st.SearchStrategy[str]:
    pieces = st.one_of(st.sampled_from(FORBIDDEN + TRICKY), st.text(hostile_char, min_size=1, max_size=300))
    return st.lists(pieces, min_size=1, max_size=15).map(lambda parts: "".join(parts)[:max_size])


def content_of(reply) -> str:
    assert reply.status == 200, reply.raw
    root = ElementTree.fromstring(reply.raw.encode("utf-8"))  # strict: a malformed reply raises
    assert root.findtext("MsgType") == "text"
    text = root.findtext("Content") or ""
    assert len(text.encode("utf-8")) <= LIMIT
    assert "系统繁忙" not in text  # no handler failed on the text
    return text


def last_number(text: str, pattern: str) -> str | None:
    found = re.findall(pattern, text)
    return found[-1] if found else None


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), mem=cast.wang.bound("o-mem"))


def read_everything(wx, wish: str | None, activity: str | None, message: str | None) -> None:
    """Every reply that shows a stored text, for the member and for the secretary."""
    for openid in ("o-mem", "o-sec"):
        for command in ("心愿", "心愿 2", "我的心愿", "消息", "活动", "积分", "积分榜", "提醒", "帮助"):
            content_of(wx.text(openid, command))
        if wish:
            content_of(wx.text(openid, f"心愿 #{wish}"))
            content_of(wx.text(openid, f"心愿 #{wish} 2"))
        if activity:
            content_of(wx.text(openid, f"活动 #{activity}"))
    if activity:
        content_of(wx.text("o-sec", f"出勤 #{activity}"))
        content_of(wx.text("o-sec", f"出勤 #{activity} 2"))
    content_of(wx.text("o-sec", "完成情况"))
    content_of(wx.text("o-sec", "组织生活"))
    if message:
        content_of(wx.text("o-mem", f"消息 {message}"))
        content_of(wx.text("o-mem", f"消息 {message} 2"))


@FUZZ
@given(title=word, details=typed, proposal=typed, note=typed, reason=typed, notice=typed,
       activity_title=word, place=typed, rule_title=word)
def test_typed_texts_come_back_in_well_formed_replies_that_fit(  # noqa: PLR0913 — hypothesis passes one argument per strategy
        wx, people, title, details, proposal, note, reason, notice, activity_title, place, rule_title):
    posted = content_of(wx.text("o-sec", f"发布心愿 {title} {details}"))
    wish = last_number(posted, r"已发布心愿 #(\d+)")
    proposed = content_of(wx.text("o-mem", f"许愿 {proposal}"))
    if (number := last_number(proposed, r"已提交心愿 #(\d+)")) is not None:
        content_of(wx.text("o-sec", f"审核 #{number} 通过"))  # an approved proposal reaches every 心愿
    if wish:
        content_of(wx.text("o-mem", f"认领 #{wish}"))
        content_of(wx.text("o-mem", f"放弃 #{wish} {reason}"))
        content_of(wx.text("o-mem", f"认领 #{wish}"))
        content_of(wx.text("o-mem", f"完成 #{wish} {note}"))
        content_of(wx.text("o-sec", f"驳回 #{wish} {reason}"))
        content_of(wx.text("o-mem", f"完成 #{wish} {note}"))
    content_of(wx.text("o-sec", f"通知 {notice}"))
    inbox = content_of(wx.text("o-mem", "消息"))
    message = last_number(inbox.split("\n", 2)[1] if "\n" in inbox else "", r"^(\d+)\. ")
    created = content_of(wx.text("o-sec", f"新活动 主题党日 {activity_title} 明天 15:00 {place}"))
    activity = last_number(created, r"#(\d+) 【")
    content_of(wx.text("o-sec", f"组织生活 每月15日 09:30 {rule_title}"))
    content_of(wx.text("o-sec", f"代签 #{activity or 1} {title}"))
    read_everything(wx, wish, activity, message)


@FUZZ
@given(title=hostile(100), details=hostile(3000), name=hostile(50), place=hostile(200),
       note=hostile(500), body=hostile(3000), data=st.data())
def test_hostile_texts_in_the_database_still_give_well_formed_replies(  # noqa: PLR0913 — hypothesis passes one argument per strategy
        wx, people, engine, is_postgres, title, details, name, place, note, body, data):
    if is_postgres:  # PostgreSQL cannot store NUL at all; everything else goes in as it is
        title, details, name, place, note, body = (
            s.replace("\x00", "") or "x" for s in (title, details, name, place, note, body))
    wish = last_number(content_of(wx.text("o-sec", "发布心愿 修门 详情")), r"已发布心愿 #(\d+)")
    content_of(wx.text("o-mem", f"认领 #{wish}"))
    content_of(wx.text("o-mem", f"完成 #{wish} 修好了"))
    content_of(wx.text("o-sec", "通知 明天开会"))
    activity = last_number(content_of(wx.text("o-sec", "新活动 主题党日 学习 明天 15:00 会议室")), r"#(\d+) 【")
    with Session(engine) as s:
        s.execute(update(Wish).where(Wish.id == int(wish)).values(
            title=title, details=details, fulfil_note=note, beneficiary_name=name, beneficiary_address=place))
        s.execute(update(WishEvent).where(WishEvent.wish_id == int(wish)).values(note=note))
        s.execute(update(Activity).where(Activity.id == int(activity)).values(title=title, place=place))
        s.execute(update(OutboxMessage).values(title=data.draw(hostile(200), label="inbox title"), body=body))
        s.execute(update(Member).values(name=name))
        s.commit()
    message = last_number(content_of(wx.text("o-mem", "消息")), r"(?m)^(\d+)\. ")
    read_everything(wx, wish, activity, message)


# The renderer itself, on any string Python can hold (lone surrogates included) --------------------
any_char = st.one_of(st.characters(exclude_categories=()), st.sampled_from(FORBIDDEN + ["\ud800", "\udfff"]))
any_text = st.lists(st.one_of(st.text(any_char, max_size=400), st.sampled_from(TRICKY)), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(content=any_text, to_user=st.text(any_char, max_size=40),
       from_user=st.text(any_char, max_size=40))
def test_the_renderer_always_writes_well_formed_xml_that_fits(content, to_user, from_user):
    root = ElementTree.fromstring(text_reply(to_user, from_user, content, 1700000000).encode("utf-8"))
    assert root.findtext("ToUserName") == xml_text(to_user)
    assert root.findtext("FromUserName") == xml_text(from_user)
    assert root.findtext("CreateTime") == "1700000000"
    shown = root.findtext("Content")
    assert len(shown.encode("utf-8")) <= LIMIT
    clean = xml_text(content)
    if len(clean.encode("utf-8")) <= LIMIT:
        assert shown == clean  # nothing but the forbidden characters is lost
    else:
        assert clean.startswith(shown.split("\n……（")[0])


def test_the_cdata_terminator_in_an_approved_wish_no_longer_breaks_the_list(wx, people):
    assert "已提交心愿 #1" in content_of(wx.text("o-mem", "许愿 修门]]>锁"))
    content_of(wx.text("o-sec", "审核 #1 通过"))
    for openid in ("o-mem", "o-sec"):
        assert "修门]]>锁" in content_of(wx.text(openid, "心愿"))
        assert "修门]]>锁" in content_of(wx.text(openid, "心愿 #1"))
