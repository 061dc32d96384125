"""Races: 200 people claim one wish at once; 50 confirm one fulfilment at once.

Each thread has its own session and connection, as web workers do. On SQLite the database's write
lock serializes the conditional updates; on PostgreSQL (TEST_DATABASE_URL) row locks do, which is
the real proof.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import DEFAULTS
from models import DomainError, Member, PointEntry
from models.org import ensure_org_path
from models.points import balance
from models.wishes import CLAIMED, DONE, NewWish, Wish, WishEvent, claim_wish, confirm_wish, fulfil_wish, post_wish
from tests.conftest import BRANCH, RACE_START_TIMEOUT

NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


def _members(engine, count, role="党员", prefix="认领人"):
    with Session(engine) as s:
        org = ensure_org_path(s, BRANCH)
        members = [Member(name=f"{prefix}{i}", phone=f"137{i:08d}" if role == "党员" else f"136{i:08d}",
                          role=role, org_id=org.id) for i in range(count)]
        s.add_all(members)
        s.commit()
        return [m.id for m in members]


def _race(engine, ids, action):
    """Run `action(session, member)` for every member id at once; return what each got."""
    barrier = threading.Barrier(len(ids), timeout=RACE_START_TIMEOUT)

    def one(member_id):
        with Session(engine, expire_on_commit=False) as s:
            member = s.get(Member, member_id)
            _ = member.org  # load before the start line
            s.commit()
            barrier.wait()
            try:
                action(s, member)
                return "ok"
            except DomainError as exc:
                return exc.message

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        return list(pool.map(one, ids))


def test_200_concurrent_claims_give_one_claimer(race_engine, session):
    [secretary] = _members(race_engine, 1, role="书记", prefix="书记")
    wish = post_wish(session, session.get(Member, secretary), NewWish("修水龙头"), now=NOW)
    people = _members(race_engine, 200)

    answers = _race(race_engine, people,
                    lambda s, m: claim_wish(s, m, wish.id, now=NOW, settings=DEFAULTS.replace(WISH_MAX_OPEN_CLAIMS=3)))

    assert answers.count("ok") == 1
    refusals = [a for a in answers if a != "ok"]
    assert len(refusals) == 199
    assert all("已被认领" in a for a in refusals), set(refusals)
    session.expire_all()
    claimed = session.get(Wish, wish.id)
    assert claimed.status == CLAIMED and claimed.claim_count == 1
    assert claimed.claimer_id == people[answers.index("ok")]
    claims = session.scalar(select(func.count(WishEvent.id)).where(WishEvent.wish_id == wish.id,
                                                                 WishEvent.action == "认领"))
    assert claims == 1


def test_one_person_racing_for_many_wishes_stays_within_the_limit(race_engine, session):
    [secretary] = _members(race_engine, 1, role="书记", prefix="书记")
    [person] = _members(race_engine, 1)
    manager = session.get(Member, secretary)
    wishes = [post_wish(session, manager, NewWish(f"心愿{i}"), now=NOW).id for i in range(12)]

    barrier = threading.Barrier(len(wishes), timeout=RACE_START_TIMEOUT)

    def one(wish_id):
        with Session(race_engine) as s:
            member = s.get(Member, person)
            _ = member.org
            s.commit()
            barrier.wait()
            try:
                claim_wish(s, member, wish_id, now=NOW, settings=DEFAULTS.replace(WISH_MAX_OPEN_CLAIMS=3))
                return "ok"
            except DomainError as exc:
                return exc.code

    with ThreadPoolExecutor(max_workers=len(wishes)) as pool:
        answers = list(pool.map(one, wishes))
    assert answers.count("ok") == 3
    assert set(answers) == {"ok", "too_many_claims"}
    held = session.scalar(select(func.count(Wish.id)).where(Wish.claimer_id == person))
    assert held == 3


def test_50_concurrent_confirms_credit_once(race_engine, session):
    confirmers = _members(race_engine, 50, role="书记", prefix="书记")
    [claimer] = _members(race_engine, 1)
    wish = post_wish(session, session.get(Member, confirmers[0]), NewWish("修水龙头", points=20), now=NOW)
    claim_wish(session, session.get(Member, claimer), wish.id, now=NOW)
    fulfil_wish(session, session.get(Member, claimer), wish.id, "修好了", now=NOW)

    answers = _race(race_engine, confirmers, lambda s, m: confirm_wish(s, m, wish.id, now=NOW))

    assert answers.count("ok") == 1
    assert all("无需重复确认" in a for a in answers if a != "ok"), set(answers)
    session.expire_all()
    assert session.get(Wish, wish.id).status == DONE
    assert balance(session, claimer) == 20
    assert session.scalar(select(func.count(PointEntry.id))) == 1
