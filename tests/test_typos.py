"""A typo of a longer command never runs a shorter one: signed messages through the webhook."""

import pytest


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), wang=cast.wang.bound())


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize(("typed", "suggested"), [
    ("积分帮", "积分榜"),  # 积分 takes no arguments: "帮" glued to it makes a typo of 积分榜
    ("我的积份", "积分"),  # what follows 我的 is itself a typo of a command
    ("我的积分", "积分"),
    ("我的心原", "我的心愿"),
    ("我的消急", "我的消息"),
])
def test_a_typo_of_a_longer_command_is_answered_with_the_near_command(wx, people, typed, suggested):
    reply = wx.text("o-wang", typed).content
    assert reply == f"没有「{typed}」这个指令，您是不是想发送「{suggested}」？"


def test_the_shorter_command_did_not_run(wx, people):
    points = wx.text("o-wang", "积分").content
    assert points.startswith("王志强，您的积分：")
    assert "您的积分" not in wx.text("o-wang", "积分帮").content
    assert "姓名：王志强" in wx.text("o-wang", "我的").content
    assert "姓名" not in wx.text("o-wang", "我的积份").content


def test_arguments_that_do_not_fit_and_make_a_typo_get_the_corrected_text(wx, people):
    # 活动 takes "#编号" or a page; "位直 #3 200" does not fit, and 活动位直 is 活动位置 mistyped.
    reply = wx.text("o-sec", "活动位直 #3 200").content
    assert reply == "没有「活动位直」这个指令，您是不是想发送「活动位置 #3 200」？"
    assert wx.text("o-sec", "活动位直").content == \
        "没有「活动位直」这个指令，您是不是想发送「活动位置 #编号 [半径米]」？"
    assert wx.text("o-sec", "完成请况 2025").content == \
        "没有「完成请况」这个指令，您是不是想发送「完成情况 2025」？"


def test_a_command_the_caller_may_not_use_is_not_suggested(wx, people):
    # 活动位置 is for secretaries: a member gets 活动's usage, as before.
    reply = wx.text("o-wang", "活动位直 #3").content
    assert reply.startswith("格式不对。用法：") and "活动位置" not in reply


@pytest.mark.parametrize(("typed", "expected"), [
    ("积分 榜", "王志强，您的积分："),  # separated on purpose: 积分 runs, as it always did
    ("积分榜", "积分"),
    ("积分排名", "王志强，您的积分："),  # not a typo of anything: 积分 runs
    ("帮助积分", "积分"),  # 帮助 takes a topic
    ("活动2", "活动"),  # fits 活动's pattern: a page
])
def test_text_that_is_no_typo_still_runs_its_command(wx, people, typed, expected):
    reply = wx.text("o-wang", typed).content
    assert expected in reply and "您是不是想发送" not in reply


def test_a_recognised_voice_message_is_checked_the_same_way(wx, people):
    fields = wx.text_fields("o-wang", "")
    fields.update(MsgType="voice", MediaId="media-1", Format="amr", Recognition="积分帮。")
    fields.pop("Content")
    assert wx.send(fields).content == "没有「积分帮」这个指令，您是不是想发送「积分榜」？"


def test_an_unbound_caller_gets_the_suggestion_before_the_request_to_bind(wx, people):
    assert wx.text("o-stranger", "积分帮").content == "没有「积分帮」这个指令，您是不是想发送「积分榜」？"
    assert "请先绑定" in wx.text("o-stranger", "积分榜").content


def test_a_long_message_gets_a_short_answer(wx, people):
    reply = wx.text("o-sec", "活动位直 #3 " + "很长的说明" * 400).content
    assert reply.startswith("没有「活动位直」这个指令，您是不是想发送「活动位置 #3 很长的说明")
    assert reply.endswith("…」？") and _utf8(reply) <= 2048
    reply = wx.text("o-wang", "积分帮" + "啊" * 1500).content
    assert _utf8(reply) <= 2048 and "您是不是想发送" not in reply

