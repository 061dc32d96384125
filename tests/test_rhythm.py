"""Each branch's rhythm of 三会一课 checked: the table of branches × months, the scheduler's note from
RHYTHM_CHECK_DAY (once per branch and month), the quarterly ranking, and their API (SQLite and
PostgreSQL)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from models import Member, OutboxMessage
from models.activity import NewActivity, SignIn, check_in, create_activity
from models.org import get_org_by_full_name
from models.orglife import create_rule
from models.records import RecordText, write_record
from models.rhythm import quarter_ranking, rhythm_table
from tests.conftest import BRANCH, COMMUNITY, SECOND_BRANCH, STREET

# 2026-11-21 10:00 in Shanghai: November is under way, the check day (the 20th) has come.
NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def _at(day: int, month: int = 11, hour: int = 15) -> datetime:
    return datetime(2026, month, day, hour - 8, 0, tzinfo=UTC)


@pytest.fixture
def district(make_member):
    return {
        "admin": make_member("街道管理员", role="管理员", org=STREET, openid="o-admin"),
        "sec": make_member("书记甲", role="书记", openid="o-sec"),
        "zhang": make_member("张三", openid="o-zhang"),
        "sec2": make_member("书记乙", role="书记", org=SECOND_BRANCH, openid="o-sec2"),
        "li": make_member("李四", org=SECOND_BRANCH, openid="o-li"),
    }


def _hold(session, secretary, kind, starts_at, *, signed=(), record=False):
    actor = session.get(Member, secretary.id)
    activity = create_activity(session, actor, NewActivity(kind=kind, title=kind, starts_at=starts_at),
                               now=starts_at - timedelta(days=3))
    for member in signed:
        check_in(session, activity, session.get(Member, member.id), SignIn(method="proxy", proxy_by=actor),
                 now=starts_at)
    if record:
        write_record(session, activity, actor, RecordText(content="学习"), starts_at + timedelta(hours=2))
    return activity


def _november(table, name):
    row = next(r for r in table if r.branch.full_name == name)
    return {cell.kind: cell for cell in row.months[11]}


def test_the_table_tells_held_scheduled_and_due(session, district, settings):
    _hold(session, district["sec"], "支委会", _at(5), signed=[district["sec"], district["zhang"]], record=True)
    _hold(session, district["sec"], "主题党日", _at(6), signed=[district["zhang"]])
    _hold(session, district["sec2"], "主题党日", _at(27))  # later this month: scheduled
    create_rule(session, session.get(Member, district["sec2"].id), "每月最后一天 15:00 党小组会", settings=settings)
    _hold(session, district["sec"], "党课", _at(10, month=10))  # Q4's 党课, held in October

    admin = session.get(Member, district["admin"].id)
    table = rhythm_table(session, admin, get_org_by_full_name(session, STREET), 2026, NOW, settings)
    first, second = _november(table, BRANCH), _november(table, SECOND_BRANCH)
    assert set(first) == {"支委会", "党小组会", "主题党日"}  # quarterly kinds show in the quarter's last month
    assert first["支委会"].status == "held" and first["支委会"].held[0].attendance == 1.0
    assert first["支委会"].held[0].recorded and not first["主题党日"].held[0].recorded
    assert first["主题党日"].held[0].attendance == 0.5
    assert first["党小组会"].status == "due"
    assert second["主题党日"].status == "scheduled" and second["党小组会"].status == "scheduled"
    assert second["支委会"].status == "due"
    december = {c.kind: c for c in next(r for r in table if r.branch.full_name == BRANCH).months[12]}
    assert december["党课"].status == "held" and december["支部党员大会"].status == "due"
    october = {c.kind: c.status for c in next(r for r in table if r.branch.full_name == BRANCH).months[10]}
    assert october == {"支委会": "missed", "党小组会": "missed", "主题党日": "missed"}


def test_the_note_goes_on_the_check_day_once_per_branch_and_month(session, district, make_scheduler):
    _hold(session, district["sec"], "支委会", _at(5))
    _hold(session, district["sec"], "党小组会", _at(7))
    scheduler = make_scheduler()
    scheduler.run_due(datetime(2026, 11, 19, 2, 0, tzinfo=UTC))
    notes = select(OutboxMessage).where(OutboxMessage.source.startswith("rhythm:")).order_by(OutboxMessage.id)
    assert session.scalars(notes).all() == []
    scheduler.run_due(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    scheduler.run_due(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    make_scheduler().run_due(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))  # another scheduler, the same day
    make_scheduler().run_due(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    sent = session.scalars(notes).all()
    assert {(m.member_id, m.source.rsplit(":", 1)[1]) for m in sent} == {
        (district["sec"].id, "2026-11"), (district["sec2"].id, "2026-11")}
    first = next(m for m in sent if m.member_id == district["sec"].id)
    assert "主题党日（2026年11月）" in first.body and "支委会" not in first.body
    assert "党小组会" not in first.body
    scheduler.run_due(datetime(2026, 12, 20, 2, 0, tzinfo=UTC))  # a quarter's last month: quarterly kinds too
    december = next(m for m in session.scalars(notes) if m.source.endswith("2026-12")
                    and m.member_id == district["sec"].id)
    assert "支部党员大会（2026年第4季度）" in december.body and "党课（2026年第4季度）" in december.body


def test_the_quarterly_ranking_puts_the_diligent_branch_first(session, district, settings):
    for day, kind in ((5, "支委会"), (7, "党小组会"), (9, "主题党日")):
        _hold(session, district["sec"], kind, _at(day), signed=[district["sec"], district["zhang"]], record=True)
    _hold(session, district["sec2"], "支委会", _at(5), signed=[district["li"]])
    admin = session.get(Member, district["admin"].id)
    rows = quarter_ranking(session, admin, get_org_by_full_name(session, COMMUNITY), 2026, 4,
                           datetime(2027, 1, 2, tzinfo=UTC), settings)
    assert [r.branch.full_name for r in rows] == [BRANCH, SECOND_BRANCH] and [r.place for r in rows] == [1, 2]
    first, second = rows
    assert first.held == round(3 / 11, 3) and second.held == round(1 / 11, 3)  # 3 months × 3 + 2 quarterly
    assert (first.attendance, first.records) == (1.0, 1.0) and (second.attendance, second.records) == (0.5, 0.0)
    assert first.score > second.score > 0


def test_the_table_costs_the_same_for_one_and_for_many_branches(session, district, settings, make_member,
                                                                count_statements):
    admin = session.get(Member, district["admin"].id)
    street = get_org_by_full_name(session, STREET)
    _hold(session, district["sec"], "支委会", _at(5), signed=[district["zhang"]], record=True)
    with count_statements() as few:
        rhythm_table(session, admin, street, 2026, NOW, settings)
    for n in range(4):
        secretary = make_member(f"书记{n}", phone=f"1880000010{n}", role="书记", org=f"{COMMUNITY}/第{n + 3}党支部")
        _hold(session, secretary, "主题党日", _at(6), signed=[secretary], record=True)
    with count_statements() as many:
        table = rhythm_table(session, admin, street, 2026, NOW, settings)
    assert len(table) == 6 and many.count == few.count, many.statements


def test_rhythm_and_ranking_over_the_api(api_client, api_login, session, district):
    _hold(session, district["sec"], "支委会", _at(5), signed=[district["zhang"]], record=True)
    admin, plain = api_login(district["admin"]), api_login(district["zhang"])
    assert api_client.get("/api/v1/admin/reports/rhythm?year=2026", headers=plain).status_code == 403
    table = api_client.get("/api/v1/admin/reports/rhythm?year=2026", headers=admin).get_json()
    first = next(b for b in table["branches"] if b["name"] == BRANCH)
    november = next(m for m in first["months"] if m["month"] == 11)["cells"]
    committee = next(c for c in november if c["kind"] == "支委会")
    assert (committee["status"], committee["status_text"], committee["held"][0]["recorded"]) == ("held", "已开展", True)

    sheet = api_client.get("/api/v1/admin/reports/rhythm.xlsx?year=2026", headers=admin)
    rows = list(load_workbook(io.BytesIO(sheet.data)).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("支部", "党员数", "1月")
    assert "支委会：已开展（出勤50%，有记录）" in next(r for r in rows if r[0] == BRANCH)[12]

    ranking = api_client.get("/api/v1/admin/reports/ranking?year=2026&quarter=4", headers=admin).get_json()
    assert ranking["quarter"] == 4 and ranking["items"][0]["name"] == BRANCH
    assert api_client.get("/api/v1/admin/reports/ranking?quarter=5", headers=admin).status_code == 422
