"""绑定 / 解绑 / 我的 through the router, and binding races against the real database."""

import threading
from datetime import date, timedelta

from sqlalchemy.orm import Session

from config import DEFAULTS
from handlers import Incoming, build_router
from models import Member, WechatUser, now_utc
from models.member import bind_openid, mask_phone, normalize_phone
from tests.conftest import RACE_START_TIMEOUT


def say(session, openid, text, now=None, **settings):
    return build_router().dispatch(Incoming(openid=openid, msg_type="text", content=text), session,
                                   now or now_utc(),
                                   DEFAULTS.replace(BIND_MAX_FAILURES=5, BIND_LOCKOUT_SECONDS=3600, **settings))


def test_bind_needs_exactly_name_and_phone(session, make_member):
    make_member("张三", "13800000000")
    assert "成功" not in say(session, "o1", "绑定 张三 13800000001")
    assert "成功" not in say(session, "o1", "绑定 张三三 13800000000")
    assert "用法" in say(session, "o1", "绑定 张三")
    reply = say(session, "o1", "绑定 张三 13800000000")
    assert "成功" in reply and "东湖社区第一党支部" in reply
    assert session.get(Member, 1).openid == "o1"


def test_phone_typed_with_prefix_spaces_or_full_width_digits(session, make_member):
    make_member("张三", "13800000000")
    assert "成功" in say(session, "o1", "绑定 张三 +86138-0000-0000")
    assert normalize_phone("１３８００００００００") == "13800000000"
    assert normalize_phone("+86 138 0000 0000") == "13800000000"


def test_one_openid_one_member(session, make_member):
    make_member("张三", "13800000000")
    make_member("李四", "13900000000")
    assert "成功" in say(session, "o1", "绑定 张三 13800000000")
    reply = say(session, "o1", "绑定 李四 13900000000")
    assert "成功" not in reply and "已绑定为「张三」" in reply
    reply = say(session, "o2", "绑定 张三 13800000000")
    assert "成功" not in reply and "已被其他微信号绑定" in reply


def test_unbind_then_bind_again(session, make_member):
    make_member("张三", "13800000000")
    assert "请先绑定" in say(session, "o1", "解绑")
    say(session, "o1", "绑定 张三 13800000000")
    assert "已解除「张三」" in say(session, "o1", "解绑")
    assert "请先绑定" in say(session, "o1", "我的")
    assert "成功" in say(session, "o2", "绑定 张三 13800000000")


def test_lockout_after_five_failures_for_an_hour(session, make_member):
    make_member("张三", "13800000000")
    start = now_utc()
    for i in range(5):
        assert "未找到" in say(session, "o-brute", f"绑定 张三 1380000010{i}", start)
    # Locked now, even with the right phone.
    locked = say(session, "o-brute", "绑定 张三 13800000000", start + timedelta(minutes=1))
    assert "成功" not in locked and "次数过多" in locked and "59分钟" in locked
    # Another openid is not affected.
    assert "成功" in say(session, "o-other", "绑定 张三 13800000000", start)
    say(session, "o-other", "解绑")
    # After the hour the counter starts again.
    later = start + timedelta(hours=1, minutes=1)
    assert "成功" in say(session, "o-brute", "绑定 张三 13800000000", later)
    assert session.get(WechatUser, "o-brute").failed_binds == 0


def test_a_success_resets_the_failure_count(session, make_member):
    make_member("张三", "13800000000")
    for _ in range(4):
        say(session, "o1", "绑定 张三 13811111111")
    assert "成功" in say(session, "o1", "绑定 张三 13800000000")
    say(session, "o1", "解绑")
    for _ in range(4):
        say(session, "o1", "绑定 张三 13811111111")
    assert "成功" in say(session, "o1", "绑定 张三 13800000000")


def test_me_shows_profile_and_points(session, make_member):
    make_member("张三", "13800000000", kind="离退休党员", role="志愿者", grid="二网格")
    say(session, "o1", "绑定 张三 13800000000")
    me = say(session, "o1", "我的")
    for part in ("姓名：张三", "离退休党员", "角色：志愿者", "网格：二网格", "政治生日：7月1日", "积分：0"):
        assert part in me


def test_me_shows_the_political_birthday_the_greetings_count_from(session, make_member):
    make_member("张三", "13800000000", join_date=date(2001, 7, 1), full_member_date=date(2002, 7, 3))
    make_member("李四", "13800000001", join_date=date(2005, 3, 1))
    say(session, "o1", "绑定 张三 13800000000")
    say(session, "o2", "绑定 李四 13800000001")
    assert "政治生日：7月1日（2001年入党）" in say(session, "o1", "我的")
    assert "政治生日：7月3日（2002年转正）" in say(session, "o1", "我的", BIRTHDAY_DATE_FIELD="full_member_date")
    assert "政治生日" not in say(session, "o2", "我的", BIRTHDAY_DATE_FIELD="full_member_date")


def test_mask_phone():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("") == ""


def _race(engine, openids, name, phone):
    barrier = threading.Barrier(len(openids), timeout=RACE_START_TIMEOUT)
    results = {}

    def attempt(openid):
        with Session(engine) as s:
            barrier.wait()
            try:
                bind_openid(s, openid, name, phone)
                results[openid] = "ok"
            except Exception as exc:  # DomainError for the losers; anything else fails the test
                results[openid] = getattr(exc, "code", repr(exc))

    threads = [threading.Thread(target=attempt, args=(o,)) for o in openids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_many_openids_binding_one_member_at_once_one_wins(engine, session, make_member):
    make_member("张三", "13800000000")
    results = _race(engine, [f"o{i}" for i in range(30)], "张三", "13800000000")
    assert list(results.values()).count("ok") == 1
    assert set(results.values()) == {"ok", "taken"}
    winner = next(o for o, r in results.items() if r == "ok")
    assert session.get(Member, 1).openid == winner
