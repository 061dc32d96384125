"""Integrity: points that need two people, spreadsheets read safely, attempts counted atomically.

Through the real doors (the API test client, the chatbot via `wx`); the races with threads, on
SQLite and PostgreSQL alike.
"""


import io
import re
import threading
import tracemalloc
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from config import DEFAULTS
from models import CheckIn, DomainError, Member, WechatUser
from models.activity import NO_ACTIVITY, CheckInAttempt, NewActivity, check_in_by_code, create_activity
from models.base import now_utc
from models.member import bind_openid
from tests.conftest import BRANCH, RACE_START_TIMEOUT, Person
from tests.test_api_auth import assert_error

AWARDS = "/api/v1/admin/points/awards"


@pytest.fixture
def people(cast, engine):
    made = cast(admin=cast.admin, admin2=cast.admin.but(name="林管理", phone="13800000011"), sec=cast.sec,
                peer=cast.peer, head=Person("网格长老吴", "13800000005", grid="东湖一网格"),
                friend=Person("吴的朋友", "13800000006", grid="东湖一网格"), wang=cast.wang.bound())
    with Session(engine) as s:
        s.get(Member, made["head"].id).grid_head = True
        s.commit()
    return made


def _balance(api_client, headers) -> int:
    return api_client.get("/api/v1/me/points", headers=headers).get_json()["balance"]


# Wish points -----------------------------------------------------------------------------------
def test_a_grid_heads_wish_is_worth_the_default_whatever_they_ask(api_client, as_):
    wish = api_client.post("/api/v1/wishes", json={"title": "搬家", "details": "帮忙搬箱子", "points": 1000},
                           headers=as_("head"))
    assert wish.status_code == 200, wish.get_json()
    wish = wish.get_json()
    assert wish["status"] == "待认领" and wish["points"] == 10  # WISH_DEFAULT_POINTS
    number = wish["id"]
    for action, body in (("claim", {}), ("fulfil", {"note": "搬完了"})):
        response = api_client.post(f"/api/v1/wishes/{number}/{action}", json=body, headers=as_("friend"))
        assert response.status_code == 200, response.get_json()
    confirmed = api_client.post(f"/api/v1/wishes/{number}/confirm", json={}, headers=as_("head"))
    assert confirmed.status_code == 200, confirmed.get_json()
    assert _balance(api_client, as_("friend")) == 10


def test_a_managers_wish_points_are_bounded_by_the_setting(api_client, as_, app_factory, api_login, people):
    too_many = api_client.post("/api/v1/wishes", json={"title": "修屋顶", "points": 51}, headers=as_("sec"))
    message = assert_error(too_many, 422, "too_many_points")["message"]
    assert "不能超过 50 分" in message
    assert api_client.get("/api/v1/wishes", headers=as_("sec")).get_json()["total"] == 0  # nothing kept
    ok = api_client.post("/api/v1/wishes", json={"title": "修屋顶", "points": 50}, headers=as_("sec"))
    assert ok.status_code == 200 and ok.get_json()["points"] == 50

    lifted = app_factory(WISH_MAX_POINTS=200).test_client()
    headers = api_login(people["admin"], client=lifted)
    response = lifted.post("/api/v1/wishes", json={"title": "修屋顶", "points": 200}, headers=headers)
    assert response.status_code == 200 and response.get_json()["points"] == 200


# Manual awards ---------------------------------------------------------------------------------
def _award(api_client, as_, requester, recipient, amount=100):
    return api_client.post(AWARDS, json={"member_id": recipient.id, "amount": amount, "reason": "表现突出"},
                           headers=as_(requester))


def test_no_award_for_oneself_or_a_peer(api_client, as_, people):
    peer = assert_error(_award(api_client, as_, "sec", people["peer"]), 403, "forbidden")
    assert "同级" in peer["message"]
    assert_error(_award(api_client, as_, "sec", people["sec"]), 403, "forbidden")
    assert_error(_award(api_client, as_, "admin", people["admin"]), 403, "forbidden")
    assert api_client.get(AWARDS, headers=as_("admin")).get_json() == []


def test_the_approver_is_neither_requester_nor_recipient(api_client, as_, people):
    award = _award(api_client, as_, "admin", people["sec"]).get_json()
    assert award["status"] == "待审批"
    # The recipient sees nothing to approve and may not approve it; nor may a peer of the recipient.
    assert api_client.get(AWARDS, headers=as_("sec")).get_json() == []
    assert api_client.get(AWARDS, headers=as_("peer")).get_json() == []
    approve = f"{AWARDS}/{award['id']}/approve"
    assert_error(api_client.post(approve, json={}, headers=as_("sec")), 403, "forbidden")
    assert_error(api_client.post(approve, json={}, headers=as_("peer")), 403, "forbidden")
    assert "不能审批自己录入" in assert_error(api_client.post(approve, json={}, headers=as_("admin")),
                                              403, "forbidden")["message"]
    assert _balance(api_client, as_("sec")) == 0
    # A second manager responsible for the recipient approves.
    assert [a["id"] for a in api_client.get(AWARDS, headers=as_("admin2")).get_json()] == [award["id"]]
    approved = api_client.post(approve, json={"note": "属实"}, headers=as_("admin2"))
    assert approved.status_code == 200 and approved.get_json()["status"] == "已批准"
    assert _balance(api_client, as_("sec")) == 100


# Attempts counted atomically -------------------------------------------------------------------
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
START = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


def _race(count, attempt):
    """Run `attempt(i)` in `count` threads released at once; return the error codes (or "ok")."""
    barrier = threading.Barrier(count, timeout=RACE_START_TIMEOUT)
    results, lock = [], threading.Lock()

    def run(i):
        barrier.wait()
        try:
            attempt(i)
            outcome = "ok"
        except DomainError as exc:
            outcome = exc.code
        except Exception as exc:  # noqa: BLE001 - anything else fails the test below
            outcome = repr(exc)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


GUESSES = DEFAULTS.replace(bind_max_failures=5)  # five tries per lock-out


def test_thirty_simultaneous_wrong_bind_guesses_check_exactly_five(race_engine, wx, people):
    now = now_utc()  # the webhook's clock: the lock-out must still hold when the chatbot asks

    def guess(i):
        with Session(race_engine) as s:
            bind_openid(s, "o-guesser", "王志强", f"1370000{i:04d}", now=now, settings=GUESSES)  # nobody's phone

    results = _race(30, guess)
    assert sorted(set(results)) == ["locked", "no_match"], results
    assert results.count("no_match") == 5 and results.count("locked") == 25
    with Session(race_engine) as s:
        user = s.get(WechatUser, "o-guesser")
        assert user.failed_binds == 5 and user.locked_until is not None
    # The right name and phone are refused too while locked out, through the chatbot as well.
    assert "绑定失败次数过多" in wx.text("o-guesser", "绑定 网格长老吴 13800000005").content


def test_thirty_simultaneous_wrong_sign_in_codes_check_exactly_five(race_engine, engine, people):
    with Session(engine, expire_on_commit=False) as s:
        activity = create_activity(s, s.get(Member, people["sec"].id), NewActivity(kind="主题党日", title="学习",
                                   starts_at=START), now=NOW)
    wrong = f"{(int(activity.code) + 1) % 1_000_000:06d}"

    def sign_in(i):
        with Session(race_engine) as s:
            check_in_by_code(s, s.get(Member, people["wang"].id), wrong, now=START, method="app",
                             activity_id=activity.id, settings=DEFAULTS.replace(CHECKIN_MAX_FAILURES=5))

    results = _race(30, sign_in)
    assert results.count("bad_code") == 5 and results.count("locked") == 25, results
    # Even the right code waits for the lock-out to end; then it signs in and the count starts again.
    with Session(engine) as s:
        member = s.get(Member, people["wang"].id)
        with pytest.raises(DomainError, match="错误次数过多"):
            check_in_by_code(s, member, activity.code, now=START, activity_id=activity.id)
        later = START + timedelta(seconds=900)
        assert check_in_by_code(s, member, activity.code, now=later, activity_id=activity.id).created
        attempt = s.get(CheckInAttempt, (member.id, activity.id))
        assert (attempt.failures, attempt.locked_until) == (0, None)


def test_typed_codes_matching_no_activity_count_against_the_member(engine, wx, people, monkeypatch):
    import app.wechat

    monkeypatch.setattr(app.wechat, "now_utc", lambda: START)
    with Session(engine, expire_on_commit=False) as s:
        activity = create_activity(s, s.get(Member, people["sec"].id), NewActivity(kind="主题党日", title="学习",
                                   starts_at=START), now=NOW)
    unknown = [f"{(int(activity.code) + i) % 1_000_000:06d}" for i in range(1, 7)]
    for code in unknown[:5]:
        assert "签到码无效" in wx.text("o-wang", f"签到 {code}").content
    sixth = wx.text("o-wang", f"签到 {unknown[5]}").content
    assert "签到码错误次数过多" in sixth and "15分钟" in sixth
    assert "签到码错误次数过多" in wx.text("o-wang", f"签到 {activity.code}").content
    with Session(engine) as s:
        assert s.get(CheckInAttempt, (people["wang"].id, NO_ACTIVITY)).failures == 5
        assert s.query(CheckIn).count() == 0


# Spreadsheets read safely ------------------------------------------------------------------------
ROSTER_HEADER = ["姓名", "手机号", "所属组织", "党员类别", "入党日期"]


def _crafted_xlsx(rows, *, dimension="A1:XFD5000", stray=None) -> bytes:
    """An .xlsx of `rows` whose sheet claims `dimension`; `stray` = (cell, value) written far away."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    if stray:
        sheet[stray[0]] = stray[1]
    buffer = io.BytesIO()
    book.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"'.encode(), data)
                assert n == 1
            target.writestr(item, data)
    return out.getvalue()


def _import(client, headers, data, name="名册.xlsx", dry_run=True):
    return client.post("/api/v1/admin/members/import" + ("?dry_run=1" if dry_run else ""), headers=headers,
                       data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def test_a_sheet_claiming_xfd5000_is_read_correctly_in_little_memory(api_client, as_, people):
    rows = [ROSTER_HEADER] + [[f"新党员{i}", f"137{i:08d}", BRANCH, "在职党员", "2010-07-01"]
                              for i in range(1, 1001)]
    data = _crafted_xlsx(rows, stray=("XFD3", "远处的一格"))
    assert len(data) < 40_000
    headers = as_("sec")
    tracemalloc.start()
    try:
        response = _import(api_client, headers, data, dry_run=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    body = response.get_json()
    assert response.status_code == 200 and body["ok"], body
    assert (body["total"], body["created"]) == (1000, 1000)
    # Read as the sheet claims, every row padded to 16,384 cells: ~125 MB for these 1,000 rows.
    assert peak < 20 * 1024 * 1024, peak
    # And for real: the rows land as written, the far-away cell ignored.
    small = _crafted_xlsx(rows[:4], stray=("XFD3", "远处的一格"))
    imported = _import(api_client, headers, small, dry_run=False).get_json()
    assert imported["ok"] and imported["created"] == 3, imported
    listed = api_client.get("/api/v1/admin/members", query_string={"q": "新党员"}, headers=headers).get_json()
    assert sorted(m["name"] for m in listed["items"]) == ["新党员1", "新党员2", "新党员3"]


def test_rosters_beyond_the_row_and_column_limits_are_refused_with_the_reason(app_factory, api_login, people):
    client = app_factory(ROSTER_MAX_ROWS=5, ROSTER_MAX_COLUMNS=8).test_client()
    headers = api_login(people["sec"], client=client)
    member = [BRANCH, "在职党员", "2010-07-01"]
    six = [ROSTER_HEADER] + [[f"党员{i}", f"1370000{i:04d}", *member] for i in range(6)]
    for data, name in ((_crafted_xlsx(six), "名册.xlsx"),
                       ("\n".join(",".join(r) for r in six).encode(), "名册.csv")):
        response = _import(client, headers, data, name)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["message"] == "名册超过 5 行，请分成几个文件导入。"
    # Five rows and blank rows after them are fine.
    five = _crafted_xlsx(six[:6] + [[None] * 5] * 20)
    assert _import(client, headers, five).get_json()["total"] == 5
    wide = [ROSTER_HEADER + [f"备注{i}" for i in range(4)]] + [[f"党员{i}", f"1370000{i:04d}", *member]
                                                             for i in range(2)]
    response = _import(client, headers, _crafted_xlsx(wide))
    assert response.status_code == 400 and "表头超过 8 列" in response.get_json()["message"]
