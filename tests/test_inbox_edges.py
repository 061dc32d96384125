"""The inbox (消息) and notice receipts as members and secretaries read them, through the signed
webhook and the API: numbers per person, dates, pages, 全部已读; the author is no recipient of their
own notice; 再提醒 at most once per NOTICE_REMIND_HOURS, also when pressed many times at once;
members bound to no WeChat are 未绑定 in receipts, not failures."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.simulator import Simulator
from models import DomainError, Member, Notice, OutboxMessage
from models.notices import remind_unread
from models.outbox import enqueue
from tests.conftest import APP_ID, OTHER_BRANCH, RACE_START_TIMEOUT, TOKEN, flask_poster

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
TEMPLATE = "/cgi-bin/message/template/send"
BEIJING = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The moment the webhook and the API act at (the messages themselves are stamped as written)."""
    import app.api.notice_schemas
    import app.api.notices
    import app.wechat

    clock = Clock(NOW)
    for module in (app.wechat, app.api.notices, app.api.notice_schemas):
        monkeypatch.setattr(module, "now_utc", clock)
    return clock


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), wang=cast.wang.bound(), zhao=cast.zhao.bound(),
                liu=cast.liu.but(kind="直管党员", role="党员").bound(), sun=cast.sun.bound())


def fits(reply: str) -> str:
    assert len(reply.encode("utf-8")) <= 2048, len(reply.encode("utf-8"))
    return reply


def say(wx, openid, text, **kw) -> str:
    reply = wx.text(openid, text, **kw)
    assert reply.status == 200
    return fits(reply.content)


def rows_of(engine, member_id) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member_id)
                              .order_by(OutboxMessage.id.desc())))


# 消息: numbers per person, dates, pages, 全部已读 --------------------------------------------------------
def test_the_inbox_numbers_messages_per_person_newest_first_with_dates_and_pages(wx, people, engine):
    wang, zhao = people["wang"], people["zhao"]
    with Session(engine) as s:  # another member's messages in between: outbox ids are not 王's numbers
        for n in range(1, 13):
            enqueue(s, source=f"greeting:{n}", kind="greeting", title=f"第{n}条问候", body=f"问候正文{n}",
                    member_id=wang.id)
            enqueue(s, source=f"greeting:{n}", kind="greeting", title="别人的", body="别人的正文",
                    member_id=zhao.id)
        s.commit()
    mine = rows_of(engine, wang.id)
    day = mine[0].created_at.astimezone(BEIJING)
    date = f"{day.month}月{day.day}日"

    first = say(wx, "o-wang", "消息")
    lines = first.splitlines()
    assert lines[0] == "您有 12 条未读消息：（第 1/2 页）"
    assert lines[1] == f"1. [未读] {date} 第12条问候" and lines[10] == f"10. [未读] {date} 第3条问候"
    assert "别人的" not in first and "消息 第2页" in first and "消息 全部已读" in first
    second = say(wx, "o-wang", "消息 第2页")
    assert "11. [未读]" in second and f"12. [未读] {date} 第1条问候" in second and "第3条问候" not in second
    assert say(wx, "o-wang", "消息 2页") == second

    # 消息 3 opens the third of the list, whatever its outbox id, and marks that one read only.
    third = say(wx, "o-wang", "消息 3")
    assert third.startswith("【第10条问候】") and "问候正文10" in third
    assert mine[2].id != 3
    assert "您有 11 条未读消息" in say(wx, "o-wang", "消息")
    assert f"3. {date} 第10条问候" in say(wx, "o-wang", "消息")
    assert say(wx, "o-wang", "消息 #3") == third  # the # is optional

    assert say(wx, "o-wang", "消息 99") == "没有第 99 条消息，您共有 12 条消息。"
    assert say(wx, "o-wang", "消息 0") == "没有第 0 条消息，您共有 12 条消息。"
    assert say(wx, "o-wang", "消息 第5页").startswith("没有第 5 页，共 2 页。")
    assert say(wx, "o-wang", "消息 第0页").startswith("没有第 0 页，共 2 页。")
    assert say(wx, "o-wang", "消息 全部") .startswith("格式不对")
    assert say(wx, "o-liu", "消息") == "您还没有消息。"
    assert say(wx, "o-liu", "消息 1") == "您还没有消息。"


def test_a_long_message_is_read_in_pages_by_its_number(wx, people, engine):
    body = "\n".join(f"第{n}段：" + "社区通知内容，请大家相互转告。" * 8 for n in range(1, 16))
    assert len(body) <= 2000
    assert "已发布" in say(wx, "o-sec", "通知 " + body)
    with Session(engine) as s:
        enqueue(s, source="greeting:1", kind="greeting", title="问候", body="短消息", member_id=people["wang"].id)
        s.commit()
    page1 = say(wx, "o-wang", "消息 2")  # the notice is the second newest now
    assert page1.startswith("【第1段：社区通知内容") and "第1段" in page1 and "消息 2 2" in page1
    page2 = say(wx, "o-wang", "消息 2 2")
    assert "（第 2/" in page2 and "第15段" not in page1
    pages = int(page1.split("（第 1/")[1].split(" ")[0])
    last = say(wx, "o-wang", f"消息 2 第{pages}页")
    assert "第15段" in last and "看下一页" not in last
    assert say(wx, "o-wang", "消息 1").startswith("【问候】")


def test_mark_all_read_counts_in_the_receipt_and_a_retry_answers_the_same(wx, people, engine):
    say(wx, "o-sec", "通知 周五下午清扫楼道")
    say(wx, "o-sec", "通知 周六上午学习")
    with Session(engine) as s:
        enqueue(s, source="greeting:1", kind="greeting", title="问候", body="生日快乐", member_id=people["wang"].id)
        s.commit()
    assert "您有 3 条未读消息" in say(wx, "o-wang", "消息")
    fields = wx.text_fields("o-wang", "消息 全部已读")
    first = wx.send(fields).content
    assert first == "已将 3 条消息标为已读。"
    assert wx.send(fields).content == first  # WeChat's retry of the same MsgId: the same answer
    assert say(wx, "o-wang", "消息 全部已读") == "没有未读消息。"
    listing = say(wx, "o-wang", "消息")
    assert listing.startswith("您的消息（均已读）：") and "[未读]" not in listing and "全部已读" not in listing
    receipt = say(wx, "o-sec", "通知 1 回执")
    assert "已读 1，未读 2" in receipt and "王志强" not in receipt.split("未读：")[1]
    # Others' messages are untouched.
    assert "您有 2 条未读消息" in say(wx, "o-zhao", "消息")


# The author is not a recipient of their own notice --------------------------------------------------
def test_a_secretary_neither_receives_nor_counts_in_their_own_notice(wx, people, api_client, as_, make_sender,
                                                                     wechat_api, engine):
    reply = say(wx, "o-sec", "通知 周五下午清扫楼道")
    assert "共 3 人" in reply  # 王, 赵, 刘
    make_sender().drain(NOW)
    assert sorted(c.body["touser"] for c in wechat_api.calls_to(TEMPLATE)) == ["o-liu", "o-wang", "o-zhao"]
    assert say(wx, "o-sec", "消息") == "您还没有消息。"
    receipt = say(wx, "o-sec", "通知 1 回执")
    assert "应发 3 人，已送达 3" in receipt and "未读 3" in receipt and "李红梅" not in receipt

    published = api_client.post("/api/v1/admin/notices", json={"body": "周六上午学习"}, headers=as_("sec"))
    assert published.status_code == 200 and published.get_json()["recipient_count"] == 3
    assert api_client.get("/api/v1/me/messages", headers=as_("sec")).get_json()["total"] == 0
    body = api_client.get("/api/v1/admin/notices/2", headers=as_("sec")).get_json()
    assert body["total"] == 3 and "李红梅" not in body["unread_names"]
    assert "李红梅" not in api_client.post("/api/v1/admin/notices/2/remind", headers=as_("sec")).get_json()["message"]
    with Session(engine) as s:
        assert s.scalar(select(func.count(OutboxMessage.id))
                        .where(OutboxMessage.member_id == people["sec"].id)) == 0


def test_a_notice_to_nobody_but_its_author_is_refused(wx, make_member, engine):
    make_member("独书记", org=f"{OTHER_BRANCH}/独居小组", role="书记", openid="o-alone")
    reply = say(wx, "o-alone", "通知 明天开会")
    assert "该范围内没有可通知的成员" in reply and "不含您本人" in reply
    with Session(engine) as s:
        assert s.scalar(select(func.count(Notice.id))) == 0


# 再提醒 at most once per NOTICE_REMIND_HOURS ------------------------------------------------------------
def test_remind_waits_the_window_out_in_the_chatbot_and_the_api(wx, people, api_client, as_, clock, engine):
    say(wx, "o-sec", "通知 周五下午清扫楼道")
    assert say(wx, "o-sec", "通知 1 再提醒") == "已向 3 位未读成员再次发送通知 #1。"
    refused = say(wx, "o-sec", "通知 1 再提醒")
    assert refused == ("通知 #1 已于 12月1日 10:00 再提醒过，每 12 小时最多再提醒一次；"
                       "下次可在 12月1日 22:00 之后。")
    response = api_client.post("/api/v1/admin/notices/1/remind", headers=as_("sec"))
    assert response.status_code == 400
    assert response.get_json()["code"] == "remind_too_soon" and response.get_json()["message"] == refused
    clock.now = NOW + timedelta(hours=11, minutes=59)
    assert "下次可在 12月1日 22:00 之后" in say(wx, "o-sec", "通知 1 再提醒")
    clock.now = NOW + timedelta(hours=12)
    # 王 read it in between: the second reminder goes to the two others.
    say(wx, "o-wang", "消息 1")
    answer = api_client.post("/api/v1/admin/notices/1/remind", headers=as_("sec")).get_json()
    assert answer["reminded"] == 2
    assert "下次可在 12月2日 10:00 之后" in say(wx, "o-sec", "通知 1 再提醒")
    with Session(engine) as s:
        sources = s.execute(select(OutboxMessage.source, func.count()).group_by(OutboxMessage.source)
                            .order_by(OutboxMessage.source)).all()
        assert [tuple(r) for r in sources] == [("notice:1", 3), ("notice:1:r1", 3), ("notice:1:r2", 2)]
    # Refusals changed nothing: no reminder counted, no message queued.
    with Session(engine) as s:
        assert s.get(Notice, 1).reminders == 2


def test_the_window_is_a_setting_and_zero_lifts_it(app_factory, people, clock, engine):
    hourly = Simulator("/wechat", TOKEN, APP_ID, post=flask_poster(app_factory(NOTICE_REMIND_HOURS=1).test_client()))
    say(hourly, "o-sec", "通知 周五下午清扫楼道")
    say(hourly, "o-sec", "通知 1 再提醒")
    assert "每 1 小时最多再提醒一次；下次可在 12月1日 11:00 之后" in say(hourly, "o-sec", "通知 1 再提醒")
    clock.now = NOW + timedelta(hours=1)
    assert "已向 3 位" in say(hourly, "o-sec", "通知 1 再提醒")
    free = Simulator("/wechat", TOKEN, APP_ID, post=flask_poster(app_factory(NOTICE_REMIND_HOURS=0).test_client()))
    assert "已向 3 位" in say(free, "o-sec", "通知 1 再提醒")
    assert "已向 3 位" in say(free, "o-sec", "通知 1 再提醒")
    with Session(engine) as s:
        assert s.get(Notice, 1).reminders == 4


def test_many_reminds_at_once_send_one_reminder(wx, people, race_engine, settings):
    say(wx, "o-sec", "通知 周五下午清扫楼道")
    threads = 20
    barrier = threading.Barrier(threads, timeout=RACE_START_TIMEOUT)

    def press(_):
        with Session(race_engine, expire_on_commit=False) as s:
            viewer = s.get(Member, people["sec"].id)
            _ = viewer.org
            s.commit()
            barrier.wait()
            try:
                return remind_unread(s, 1, viewer, now=NOW, settings=settings)
            except DomainError as exc:
                return exc.code

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(press, range(threads)))
    assert sorted(results, key=str) == [3] + ["remind_too_soon"] * (threads - 1)
    with Session(race_engine) as s:
        assert s.get(Notice, 1).reminders == 1
        assert s.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.source.like("notice:1:r%"))) == 3


# 未绑定: neither the Official Account nor the mini-program -----------------------------------------------
def test_members_bound_to_no_wechat_are_unbound_in_receipts_not_failed(wx, make_member, make_sender, api_client,
                                                                       api_login, engine, wechat_api):
    secretary = make_member("李书记", role="书记", openid="o-boss")
    make_member("王绑定", openid="o-bound")
    zhao = make_member("赵小程序", miniapp_openid="mp-only")  # bound in the mini-program, no consent to send
    make_member("孙未绑")
    make_member("钱未绑")
    say(wx, "o-boss", "通知 周五下午清扫楼道")
    before = say(wx, "o-boss", "通知 1 回执")
    assert "应发 4 人，已送达 0，待发送 2，失败 0，未绑定 2；" in before
    assert "未绑定微信（无法送达）：孙未绑、钱未绑" in before

    make_sender().drain(NOW)
    receipt = say(wx, "o-boss", "通知 1 回执")
    assert "应发 4 人，已送达 1，待发送 0，失败 1，未绑定 2；已读 0，未读 4。" in receipt
    assert "未绑定微信（无法送达）：孙未绑、钱未绑" in receipt
    failed_line = [line for line in receipt.splitlines() if line.startswith("失败（")]
    assert len(failed_line) == 1 and "赵小程序" in failed_line[0] and "孙未绑" not in failed_line[0]

    body = api_client.get("/api/v1/admin/notices/1", headers=api_login(secretary)).get_json()
    assert (body["unbound"], body["failed"], body["delivered"], body["total"]) == (2, 1, 1, 4)
    assert body["unbound_names"] == ["孙未绑", "钱未绑"]
    assert all("孙未绑" not in group["names"] for group in body["failed_by_reason"].values())

    # 再提醒 goes to the bound ones only; when only unbound ones are left unread it says so.
    assert say(wx, "o-boss", "通知 1 再提醒") == "已向 2 位未读成员再次发送通知 #1。"
    # The bound ones read it, in the chatbot and in the mini-program.
    assert say(wx, "o-bound", "消息 全部已读") == "已将 2 条消息标为已读。"
    headers = api_login(zhao)
    newest = api_client.get("/api/v1/me/messages", headers=headers).get_json()["items"][0]
    assert api_client.get(f"/api/v1/me/messages/{newest['id']}", headers=headers).status_code == 200
    assert say(wx, "o-boss", "通知 1 再提醒") == "通知 #1 未读的 2 位成员都未绑定微信，无法再提醒。"
    with Session(engine) as s:
        reminded = s.scalars(select(Member.name).join(OutboxMessage, OutboxMessage.member_id == Member.id)
                             .where(OutboxMessage.source == "notice:1:r1").order_by(Member.name)).all()
        assert sorted(reminded) == sorted(["王绑定", "赵小程序"])


def test_a_large_receipt_with_many_unbound_fits_one_reply(wx, make_member):
    make_member("李书记", role="书记", openid="o-boss")
    for n in range(120):
        make_member(f"未绑定成员第{n:03d}号", phone=f"1370000{n:04d}")
    say(wx, "o-boss", "通知 明天停水")
    receipt = say(wx, "o-boss", "通知 1 回执")
    assert "未绑定 120" in receipt and "等120人" in receipt
