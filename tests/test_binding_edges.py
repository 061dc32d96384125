"""绑定 as members type it, the tries left, and 解绑 姓名: a secretary frees a member's binding.

Through the signed webhook (`wx`), a real database (SQLite, or PostgreSQL with TEST_DATABASE_URL);
the race with threads, each with its own session and connection as web workers have.
"""

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.simulator import Simulator
from models import Member, OutboxMessage, WechatUser
from models import authz as az
from models.base import DomainError
from models.bindings import BindingRelease, release_binding, release_source
from tests.conftest import APP_ID, GROUP, RACE_START_TIMEOUT, STREET, TOKEN, flask_poster


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin.bound(), sec=cast.sec.bound(), peer=cast.peer.bound(), wang=cast.wang.bound(),
                zhao=cast.zhao.but(org=GROUP), west_sec=cast.zhou.bound("o-west"))


def _member(engine, member_id) -> Member:
    with Session(engine) as s:
        member = s.get(Member, member_id)
        s.expunge(member)
        return member


def _releases(engine) -> list[BindingRelease]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.scalars(select(BindingRelease).order_by(BindingRelease.id)))


def _failures(engine, openid) -> int:
    with Session(engine) as s:
        user = s.get(WechatUser, openid)
        return user.failed_binds if user else 0


# 绑定 as people type it --------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "绑定 赵秀英 138 0000 0004",
    "绑定 赵秀英 138-0000-0004",
    "绑定 13800000004 赵秀英",
    "绑定 138 0000 0004 赵秀英",
    "绑定 赵秀英13800000004",
    "绑定 赵秀英 +86 138 0000 0004",
    "绑定　赵秀英　１３８－００００－０００４",
])
def test_bind_takes_the_phone_with_spaces_or_dashes_and_either_order(wx, people, engine, text):
    reply = wx.text("o-zhao", text).content
    assert "绑定成功" in reply and "赵秀英" in reply, reply
    assert _member(engine, people["zhao"].id).openid == "o-zhao"


def test_a_bind_without_a_phone_or_a_name_gets_the_usage(wx, people, engine):
    for text in ("绑定 赵秀英", "绑定 13800000004", "绑定"):
        assert "用法：绑定 姓名 手机号" in wx.text("o-zhao", text).content
    assert _failures(engine, "o-zhao") == 0


def test_a_phone_that_is_no_mobile_number_spends_no_try(wx, people, engine):
    reply = wx.text("o-zhao", "绑定 赵秀英 138 0000 000").content
    assert "手机号格式不对" in reply and "11位" in reply
    assert _failures(engine, "o-zhao") == 0
    assert "绑定成功" in wx.text("o-zhao", "绑定 赵秀英 138 0000 0004").content


def test_each_failed_try_says_how_many_remain_before_the_lock_out(wx, people, engine):
    for left in (4, 3, 2, 1):
        reply = wx.text("o-guess", f"绑定 赵秀英 13900000{left:03d}").content
        assert "未找到" in reply and f"还可再试{left}次" in reply and "60分钟" in reply, reply
    last = wx.text("o-guess", "绑定 赵秀英 13900000000").content
    assert "未找到" in last and "失败已达5次" in last and "60分钟" in last and "还可再试" not in last
    # Locked now, even with the right name and phone in the other order.
    locked = wx.text("o-guess", "绑定 13800000004 赵秀英").content
    assert "次数过多" in locked and "绑定成功" not in locked
    assert _failures(engine, "o-guess") == 5 and _member(engine, people["zhao"].id).openid is None


def test_the_tries_left_count_from_a_success(wx, people):
    assert "还可再试4次" in wx.text("o-zhao", "绑定 赵秀英 13900000001").content
    assert "绑定成功" in wx.text("o-zhao", "绑定 赵秀英 13800000004").content
    wx.text("o-zhao", "解绑")
    assert "还可再试4次" in wx.text("o-zhao", "绑定 赵秀英 13900000001").content


# A secretary frees a binding ---------------------------------------------------------------------
def test_a_secretary_frees_a_binding_taken_by_another_wechat(wx, people, engine):
    zhao = people["zhao"]
    assert "绑定成功" in wx.text("o-thief", "绑定 赵秀英 13800000004").content
    taken = wx.text("o-zhao", "绑定 赵秀英 138 0000 0004").content
    assert "已被其他微信号绑定" in taken and "支部书记" in taken

    # The secretary acts; a WeChat retry of the same message does it once and answers the same.
    fields = wx.text_fields("o-sec", "解绑 赵秀英 非本人绑定，本人申请")
    reply = wx.send(fields).content
    assert "已解除「赵秀英」" in reply and "公众号" in reply and "非本人绑定，本人申请" in reply, reply
    assert wx.send(fields).content == reply
    [release] = _releases(engine)
    sec = people["sec"]
    assert (release.member_id, release.released_by_id, release.openid, release.miniapp_openid) == \
        (zhao.id, sec.id, "o-thief", None)
    assert release.reason == "非本人绑定，本人申请" and release.released_at is not None
    assert release.bound_at is not None
    assert _member(engine, zhao.id).openid is None

    # The old WeChat is no longer anyone; the member binds with their own and finds the message.
    assert "请先绑定" in wx.text("o-thief", "我的").content
    assert "绑定成功" in wx.text("o-zhao", "绑定 赵秀英 13800000004").content
    with Session(engine) as s:
        [row] = s.scalars(select(OutboxMessage).where(OutboxMessage.member_id == zhao.id))
        assert row.source == release_source(release.id) and row.kind == "notice"
    inbox = wx.text("o-zhao", "消息").content
    assert "绑定已解除" in inbox and "1 条未读" in inbox, inbox
    number = inbox.splitlines()[1].split(".")[0]
    opened = wx.text("o-zhao", f"消息 {number}").content
    assert "李红梅" in opened and "原因：非本人绑定，本人申请" in opened, opened


def test_the_member_is_told_through_the_outbox_on_their_own_wechat(app_factory, people, wechat_api):
    app = app_factory(WECHAT_TEMPLATE_NOTICE="TPL-NOTICE", SEND_RATE_LIMIT=0)
    sim = Simulator("/wechat", TOKEN, APP_ID, post=flask_poster(app.test_client()))
    sim.text("o-thief", "绑定 赵秀英 13800000004")
    assert "已解除「赵秀英」" in sim.text("o-sec", "解绑 赵秀英 冒用").content
    assert "绑定成功" in sim.text("o-zhao", "绑定 13800000004 赵秀英").content
    noon = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=12, minute=0, second=0, microsecond=0)
    result = app.test_cli_runner().invoke(args=["scheduler", "run-due", "--now", noon.isoformat()])
    assert result.exit_code == 0 and "outbox: 1 sent" in result.output, result.output
    [call] = [c for c in wechat_api.messages() if c.body.get("template_id") == "TPL-NOTICE"]
    assert call.body["touser"] == "o-zhao" and "冒用" in str(call.body["data"])


def test_a_release_frees_the_mini_program_binding_too(wx, make_member, people, engine):
    member = make_member("孙小程", "13800000010", openid="o-sun", miniapp_openid="mini-sun")
    reply = wx.text("o-sec", "解绑 孙小程").content
    assert "公众号、小程序绑定" in reply and "原因" not in reply, reply
    [release] = _releases(engine)
    assert (release.openid, release.miniapp_openid, release.reason) == ("o-sun", "mini-sun", "")
    freed = _member(engine, member.id)
    assert (freed.openid, freed.miniapp_openid, freed.unionid) == (None, None, None)


def test_an_ambiguous_name_asks_for_the_phone(wx, make_member, people, engine):
    first = make_member("张伟", "13800000021", openid="o-zw1")
    second = make_member("张伟", "13800000022", org=GROUP, openid="o-zw2")
    asked = wx.text("o-sec", "解绑 张伟").content
    assert "2位名为「张伟」" in asked and "手机号" in asked, asked
    assert "13800000021" in asked and "13800000022" in asked and "第一党小组" in asked
    assert _releases(engine) == []
    reply = wx.text("o-sec", "解绑 张伟 138 0000 0022 换了手机").content
    assert "已解除「张伟」（第一党小组）" in reply and "换了手机" in reply, reply
    assert _member(engine, second.id).openid is None and _member(engine, first.id).openid == "o-zw1"
    [release] = _releases(engine)
    assert release.member_id == second.id and release.reason == "换了手机"
    # A wrong phone with the name finds nobody; a malformed one is said to be malformed.
    assert "没有找到姓名为「张伟」、手机号为13800000099的成员" in wx.text("o-sec", "解绑 张伟 13800000099").content
    assert "手机号格式不对" in wx.text("o-sec", "解绑 张伟 1380000").content


def test_a_few_digits_after_the_name_are_the_reason(wx, people, engine):
    wx.text("o-zhao", "绑定 赵秀英 13800000004")
    reply = wx.text("o-sec", "解绑 赵秀英 3次绑错").content
    assert "已解除「赵秀英」" in reply and "原因：3次绑错" in reply, reply
    assert _releases(engine)[0].reason == "3次绑错"


def test_only_those_responsible_may_free_a_binding(wx, people, engine):
    wx.text("o-zhao", "绑定 赵秀英 13800000004")
    # A member: not for them; their own binding is plain 解绑.
    reply = wx.text("o-wang", "解绑 赵秀英").content
    assert "仅限书记或管理员" in reply and "只发送「解绑」" in reply
    # Another branch's secretary does not even see the member.
    assert "没有找到名为「赵秀英」的成员" in wx.text("o-west", "解绑 赵秀英").content
    # A peer secretary of the same node, and oneself: refused with the reason.
    assert "不能解除您自己或同级书记" in wx.text("o-sec", "解绑 钱副书记").content
    own = wx.text("o-sec", "解绑 李红梅").content
    assert "不能解除您自己" in own and "只发送「解绑」" in own
    assert "没有找到名为「不存在」的成员" in wx.text("o-sec", "解绑 不存在").content
    assert _releases(engine) == []
    assert _member(engine, people["zhao"].id).openid == "o-zhao"
    assert _member(engine, people["peer"].id).openid == "o-peer"
    # The street's admin is responsible for the branch secretary.
    assert "已解除「钱副书记」" in wx.text("o-admin", "解绑 钱副书记").content
    assert _member(engine, people["peer"].id).openid is None


def test_the_rule_is_asked_of_authz(people, session):
    admin, sec, peer, wang, zhao, west = (session.get(Member, people[k].id)
                                          for k in ("admin", "sec", "peer", "wang", "zhao", "west_sec"))
    assert az.can(sec, az.RELEASE_BINDING, zhao) and az.can(sec, az.RELEASE_BINDING, wang)
    assert az.can(admin, az.RELEASE_BINDING, sec) and az.can(admin, az.RELEASE_BINDING, zhao)
    assert not az.can(sec, az.RELEASE_BINDING, peer) and not az.can(sec, az.RELEASE_BINDING, sec)
    assert not az.can(west, az.RELEASE_BINDING, zhao) and not az.can(wang, az.RELEASE_BINDING, zhao)
    assert not az.can(None, az.RELEASE_BINDING, zhao)


def test_nothing_to_free_and_a_reason_too_long(wx, people, engine):
    assert "目前没有绑定微信，无需解绑" in wx.text("o-sec", "解绑 赵秀英").content
    wx.text("o-zhao", "绑定 赵秀英 13800000004")
    assert "最多100字" in wx.text("o-sec", "解绑 赵秀英 " + "理由" * 60).content
    assert _releases(engine) == [] and _member(engine, people["zhao"].id).openid == "o-zhao"
    assert "格式不对" in wx.text("o-sec", "解绑 13800000004").content
    long_name = wx.text("o-sec", "解绑 " + "名" * 1500).content
    assert "没有找到名为「" + "名" * 20 + "…」的成员" in long_name and len(long_name.encode()) <= 2048


def test_plain_unbind_still_frees_ones_own_binding_without_an_audit_row(wx, people, engine):
    assert "已解除「李红梅」与本微信号的绑定" in wx.text("o-sec", "解绑").content
    assert _releases(engine) == [] and _member(engine, people["sec"].id).openid is None


def test_help_shows_secretaries_how_to_free_a_binding(wx, people):
    assert "解绑 姓名 [手机号] [原因]" in wx.text("o-sec", "帮助 账号").content


# Races -------------------------------------------------------------------------------------------
def test_managers_freeing_one_binding_at_once_free_it_once(race_engine, engine, people, make_member):
    managers = [people["admin"].id, people["sec"].id,
                make_member("第二管理员", "13800000011", org=STREET, role="管理员").id]
    with Session(engine) as s:
        s.get(Member, people["zhao"].id).openid = "o-taken"
        s.commit()
    count = 18
    barrier = threading.Barrier(count, timeout=RACE_START_TIMEOUT)
    results, lock = [], threading.Lock()

    def attempt(i):
        with Session(race_engine, expire_on_commit=False) as s:
            actor = s.get(Member, managers[i % len(managers)])
            _ = actor.org.full_name
            s.commit()
            barrier.wait()
            try:
                release_binding(s, actor, "赵秀英", reason=f"第{i}次")
                outcome = "ok"
            except DomainError as exc:
                outcome = exc.code
            except Exception as exc:  # noqa: BLE001 - anything else fails the test below
                outcome = repr(exc)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("ok") == 1 and set(results) <= {"ok", "conflict", "not_bound"}, results
    assert len(results) == count
    with Session(engine) as s:
        assert s.scalar(select(func.count(BindingRelease.id))) == 1
        assert s.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.member_id == people["zhao"].id)) == 1
        assert s.get(Member, people["zhao"].id).openid is None
