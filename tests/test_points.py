"""The points ledger: append-only, one credit per source, manual awards counted only once approved."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from config import DEFAULTS
from models import DomainError, Forbidden, Member, PointEntry, clock
from models.points import (
    AWARD_APPROVED,
    AWARD_PENDING,
    AWARD_REFUSED,
    balance,
    credit,
    decide_award,
    pending_awards,
    request_award,
)

NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
def staff(cast, session):
    made = cast(sec=cast.sec, sec2=cast.peer, admin=cast.admin, west=cast.zhou, a=cast.wang)
    return {k: session.get(Member, m.id) for k, m in made.items()}


def test_a_source_credits_a_member_once(session, staff):
    once = dict(member_id=staff["a"].id, amount=10, reason="心愿", source="wish", source_id="1")
    assert credit(session, **once)
    assert not credit(session, **once)
    session.commit()
    assert balance(session, staff["a"].id) == 10


def test_a_manual_award_counts_only_after_a_second_approval(session, staff):
    award = request_award(session, staff["sec"], staff["a"].id, 8, "协助疫苗接种引导 4 小时", now=NOW)
    assert award.status == AWARD_PENDING and balance(session, staff["a"].id) == 0
    with pytest.raises(Forbidden, match="不能审批自己"):
        decide_award(session, staff["sec"], award.id, True, now=NOW)
    with pytest.raises(Forbidden):
        decide_award(session, staff["a"], award.id, True, now=NOW)
    with pytest.raises(Forbidden):
        decide_award(session, staff["west"], award.id, True, now=NOW)
    assert [p.id for p in pending_awards(session, staff["sec2"])] == [award.id]
    assert pending_awards(session, staff["sec"]) == []
    award = decide_award(session, staff["sec2"], award.id, True, now=NOW)
    assert (award.status, award.decided_by_id) == (AWARD_APPROVED, staff["sec2"].id)
    assert balance(session, staff["a"].id) == 8
    with pytest.raises(DomainError, match="已处理过"):
        decide_award(session, staff["admin"], award.id, True, now=NOW)
    assert balance(session, staff["a"].id) == 8
    entry = session.scalars(select(PointEntry)).one()
    assert (entry.source, entry.source_id, entry.recorded_by_id) == ("manual", str(award.id), staff["sec"].id)


def test_a_correction_is_a_new_negative_entry(session, staff):
    credit(session, member_id=staff["a"].id, amount=10, reason="心愿", source="wish", source_id="1")
    session.commit()
    fix = request_award(session, staff["sec"], staff["a"].id, -4, "重复登记，更正", now=NOW)
    decide_award(session, staff["admin"], fix.id, True, now=NOW)
    assert balance(session, staff["a"].id) == 6
    assert session.scalar(select(func.count(PointEntry.id))) == 2


def test_a_refused_award_never_counts(session, staff):
    award = request_award(session, staff["sec"], staff["a"].id, 50, "志愿服务", now=NOW)
    assert decide_award(session, staff["admin"], award.id, False, "无记录", now=NOW).status == AWARD_REFUSED
    assert balance(session, staff["a"].id) == 0


def test_manual_awards_need_a_manager_a_reason_and_the_subtree(session, staff):
    with pytest.raises(Forbidden):
        request_award(session, staff["a"], staff["a"].id, 5, "自己加分", now=NOW)
    with pytest.raises(DomainError, match="原因"):
        request_award(session, staff["sec"], staff["a"].id, 5, " ", now=NOW)
    with pytest.raises(Forbidden):
        request_award(session, staff["west"], staff["a"].id, 5, "跨社区", now=NOW)


def test_the_month_starts_in_the_configured_zone():
    # 2026-04-30 17:00 UTC is already May 1st in Shanghai, still April 30th in UTC.
    moment = datetime(2026, 4, 30, 17, 0, tzinfo=UTC)
    assert clock.month_start(moment, DEFAULTS.tz).astimezone(UTC) == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    assert clock.month_start(moment, ZoneInfo("UTC")) == datetime(2026, 4, 1, tzinfo=UTC)
