"""Template fields per template, from settings: exact payloads at the fake WeChat server, values cut
to their type's rule, links to the message, and settings refused when they load."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from config import ConfigError, load_config
from models.outbox import OutboxMessage, enqueue, grant_subscription
from scheduler.wechat_api import field_value

TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
DAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
STARTS = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)  # 15:00 in Beijing


def queue_reminder(session, member, body="主题党日活动将于12月4日15:00开始，请准时参加并带好党员证"):
    assert enqueue(session, source="activity:1:reminder:24h", kind="reminder", title="主题党日提醒",
                   body=body, member_id=member.id, data={"starts_at": STARTS, "place": "党群服务中心三楼"})
    session.commit()


def test_a_mapped_template_gets_its_own_keywords_and_a_link(session, make_member, make_sender, wechat_api):
    member = make_member("张三丰", openid="o-map")
    queue_reminder(session, member)
    sender = make_sender(WECHAT_TEMPLATE_REMINDER_FIELDS="thing1=title,time2=starts_at,thing3=place,"
                                                         "thing4=body,name5=name",
                         PUBLIC_BASE_URL="https://lx.example.org/", MESSAGE_LINK_PATH="/messages/{id}")
    assert sender.drain(DAY).sent == 1
    [call] = wechat_api.calls_to(TEMPLATE)
    message_id = session.scalar(select(OutboxMessage.id))
    assert call.body == {
        "touser": "o-map", "template_id": "TPL-REMINDER",
        "url": f"https://lx.example.org/messages/{message_id}",
        "miniprogram": {"appid": "wxmini", "pagepath": f"pages/messages/detail?id={message_id}"},
        "data": {
            "thing1": {"value": "主题党日提醒"},
            "time2": {"value": "2026年12月4日 15:00"},
            "thing3": {"value": "党群服务中心三楼"},
            "thing4": {"value": "主题党日活动将于12月4日15:00开…"},
            "name5": {"value": "张三丰"},
        },
    }


def test_unset_mappings_keep_the_built_in_payload(session, make_member, make_sender, wechat_api):
    member = make_member(openid="o-plain")
    queue_reminder(session, member, body="短正文")
    assert make_sender(PUBLIC_BASE_URL="https://lx.example.org").drain(DAY).sent == 1
    [call] = wechat_api.calls_to(TEMPLATE)
    assert call.body == {"touser": "o-plain", "template_id": "TPL-REMINDER", "data": {
        "thing1": {"value": "主题党日提醒"}, "thing2": {"value": "短正文"}, "content": {"value": "短正文"}}}


def test_a_subscribe_message_is_mapped_too(session, make_member, make_sender, wechat_api):
    member = make_member(openid=None, miniapp_openid="mini-map")
    with session.begin():
        grant_subscription(session, member.id, "notice")
    assert enqueue(session, source="notice:3", kind="notice", title="停水通知 No.7",
                   body="明天上午停水", member_id=member.id)
    session.commit()
    sender = make_sender(MINIAPP_TEMPLATE_NOTICE_FIELDS="phrase1=title, character_string2=title,"
                                                        "date3=starts_at, time4=created_at",
                         MINIAPP_MESSAGE_PAGE="pages/inbox/item?id={id}")
    assert sender.drain(DAY).sent == 1
    [call] = wechat_api.calls_to(SUBSCRIBE)
    assert call.body["touser"] == "mini-map" and call.body["page"].startswith("pages/inbox/item?id=")
    created = session.scalar(select(OutboxMessage.created_at))
    local = created.astimezone(sender.tz)
    assert call.body["data"] == {
        "phrase1": {"value": "停水通知"},
        "character_string2": {"value": "No.7"},
        "date3": {"value": f"{local.year}年{local.month}月{local.day}日"},  # no start: when it was sent
        "time4": {"value": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"},
    }


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("thing", "一二三四五六七八九十一二三四五六七八九十", "一二三四五六七八九十一二三四五六七八九十"),
    ("thing", "一二三四五六七八九十一二三四五六七八九十一", "一二三四五六七八九十一二三四五六七八九…"),
    ("thing", "第一行\n第二行", "第一行 第二行"),
    ("phrase", "已通过 OK", "已通过"),
    ("phrase", "", "无"),
    ("character_string", "编号A-12 号" + "x" * 40, "A-12" + "x" * 28),
    ("number", "共 1,234 人", "1234"),
    ("name", "欧阳一二三四五六七八九", "欧阳一二三四五六七…"),
    ("time", STARTS, "2026年12月4日 15:00"),
    ("date", STARTS, "2026年12月4日"),
    ("thing", STARTS, "2026年12月4日 15:00"),
])
def test_values_are_cut_to_their_types_rule(kind, value, expected):
    assert field_value(kind, value, ZoneInfo("Asia/Shanghai")) == expected


@pytest.mark.parametrize(("name", "raw", "words"), [
    ("WECHAT_TEMPLATE_NOTICE_FIELDS", "thing1=titel", "unknown source 'titel'"),
    ("WECHAT_TEMPLATE_REMINDER_FIELDS", "keyword1=title", "known type"),
    ("MINIAPP_TEMPLATE_ACTIVITY_FIELDS", "time2=place", "time2 is a time field"),
    ("MINIAPP_TEMPLATE_WISH_FIELDS", "thing1=title,thing1=body", "thing1 appears twice"),
    ("WECHAT_TEMPLATE_GREETING_FIELDS", "thing1", "keyword=source"),
])
def test_wrong_mappings_stop_the_app_naming_the_setting(name, raw, words, monkeypatch, app_factory):
    with pytest.raises(ConfigError) as caught:
        load_config({name: raw})
    assert name in str(caught.value) and words in str(caught.value)
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name):
        app_factory()
