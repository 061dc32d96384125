"""Delivery reports and calls without an answer: WeChat's TEMPLATESENDJOBFINISH through the signed
webhook, the msgid kept on the outbox row, receipts in the chatbot and the API; a read timeout is
状态未知, not resent, and 再提醒 sends it on purpose."""

import socket
import time
from datetime import UTC, datetime

from sqlalchemy import select

from models.outbox import OutboxMessage, TemplateReport, enqueue
from scheduler.wechat_api import official_account_client

TEMPLATE = "/cgi-bin/message/template/send"
DAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


def rows(session):
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_reports_are_recorded_once_and_shown_in_receipts(session, make_member, make_sender, wechat_api,
                                                         say, wx, api_client, api_login):
    boss = make_member("王书记", role="书记", openid="o-boss")
    ok = make_member("李成功", openid="o-ok")
    blocked = make_member("赵拒收", openid="o-block")
    assert "已发布" in say("o-boss", "通知 周六上午清扫楼道", DAY)
    assert make_sender().drain(DAY).sent == 2  # not to the secretary who sent it
    by_member = {r.member_id: r for r in rows(session)}
    assert all(r.wx_msgid for r in by_member.values()) and len({r.wx_msgid for r in by_member.values()}) == 2
    assert {c.body["touser"] for c in wechat_api.calls_to(TEMPLATE)} == {"o-ok", "o-block"}

    # WeChat reports through the signed webhook; nothing is answered to the event.
    first = wx.event("o-block", "TEMPLATESENDJOBFINISH", MsgID=by_member[blocked.id].wx_msgid,
                     Status="failed:user block")
    assert first.status == 200 and first.raw in ("", "success")
    wx.event("o-ok", "TEMPLATESENDJOBFINISH", MsgID=by_member[ok.id].wx_msgid, Status="success")
    # A repeated (or contradicting) report of the same msgid changes nothing; an unknown one is harmless.
    again = wx.event("o-block", "TEMPLATESENDJOBFINISH", MsgID=by_member[blocked.id].wx_msgid,
                     Status="success", create_time=1796000000)
    assert again.status == 200 and again.raw in ("", "success")
    assert wx.event("o-x", "TEMPLATESENDJOBFINISH", MsgID="999999", Status="success").status == 200
    assert wx.event("o-x", "TEMPLATESENDJOBFINISH", Status="success").status == 200
    session.expire_all()
    reports = {r.msgid: r.status for r in session.scalars(select(TemplateReport))}
    assert reports[by_member[blocked.id].wx_msgid] == "failed:user block"
    assert reports[by_member[ok.id].wx_msgid] == "success"

    text = say("o-boss", "通知 1 回执", DAY)
    assert "应发 2 人，已送达 1" in text and "用户拒收 1，状态未知 0" in text
    assert "用户拒收：赵拒收" in text
    assert len(text.encode("utf-8")) <= 2048

    headers = api_login(boss)
    receipt = api_client.get("/api/v1/admin/notices/1", headers=headers).get_json()
    assert (receipt["delivered"], receipt["confirmed"], receipt["refused"], receipt["unknown"]) == (1, 1, 1, 0)
    assert receipt["refused_names"] == ["赵拒收"]


def test_a_read_timeout_is_unknown_not_resent_and_reminding_sends_it(session, make_member, make_sender,
                                                                     wechat_api, say, api_client, api_login):
    boss = make_member("王书记", role="书记", openid="o-boss2")
    slow = make_member("钱超时", openid="o-slow")
    make_member("孙超时", openid="o-slow2")
    assert "已发布" in say("o-boss2", "通知 明天停水", DAY)
    sender = make_sender(WECHAT_HTTP_TIMEOUT=0.3, OUTBOX_WORKERS=1)
    sender.drain(DAY)  # fetches the token first, so the stall hits the message call only
    wechat_api.reset()
    assert "已发布" in say("o-boss2", "通知 后天停电", DAY)
    wechat_api.stall(TEMPLATE, 1.0, times=2)
    stats = sender.drain(DAY)
    assert stats.unknown == 2 and stats.retry == 0
    later = [r for r in rows(session) if r.source == "notice:2"]
    assert {r.status for r in later} == {"unknown"}
    assert all("未收到微信答复" in r.last_error and "ReadTimeout" in r.last_error for r in later)
    # The calls went through (WeChat delivered them); another drain sends nothing again.
    assert make_sender().drain(DAY).sent == 0
    while len(wechat_api.calls_to(TEMPLATE)) < 2:  # the stalled calls finish at the fake server
        time.sleep(0.05)
    assert sorted(c.body["touser"] for c in wechat_api.calls_to(TEMPLATE)) == ["o-slow", "o-slow2"]

    text = say("o-boss2", "通知 2 回执", DAY)
    assert "状态未知 2" in text and "钱超时" in text and "ReadTimeout" in text
    receipt = api_client.get("/api/v1/admin/notices/2", headers=api_login(boss)).get_json()
    assert receipt["unknown"] == 2 and receipt["delivered"] == 0
    [(reason, group)] = receipt["unknown_by_reason"].items()
    assert "无法确认是否送达" in reason and sorted(group["names"]) == ["孙超时", "钱超时"]

    # 再提醒 resends to those who have not read it, the unknown ones among them.
    assert "已向 2 位未读成员再次发送" in say("o-boss2", "通知 2 再提醒", DAY)
    assert make_sender().drain(DAY).sent == 2
    assert slow.id


def test_a_request_that_never_connected_is_retried(session, make_member, make_sender, wechat_api, store):
    member = make_member(openid="o-refused")
    enqueue(session, source="notice:5", kind="notice", title="通知", body="正文", member_id=member.id)
    session.commit()
    # The token is fetched from the fake server and shared in Redis; the send goes to a closed port.
    good = official_account_client(make_sender().settings, store)
    assert good.access_token
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    stats = make_sender(WECHAT_API_BASE=dead).drain(DAY)
    assert stats.retry == 1 and stats.unknown == 0
    [row] = rows(session)
    assert row.status == "pending" and "未连上微信" in row.last_error
    assert make_sender().drain(row.next_attempt_at).sent == 1
    assert [c.body["touser"] for c in wechat_api.calls_to(TEMPLATE)] == ["o-refused"]
