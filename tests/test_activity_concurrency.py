"""Many people at once: 300 simultaneous sign-ins, and a rush on a few seats (SQLite and PostgreSQL)."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Activity, CheckIn, DomainError, Member, PointEntry, Registration
from models.activity import NewActivity, cancel_registration, check_in_by_code, check_out, create_activity, register
from models.org import ensure_org_path
from tests.conftest import BRANCH, RACE_START_TIMEOUT

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
START = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


def _members(session, count, prefix):
    org = ensure_org_path(session, BRANCH)
    members = [Member(name=f"{prefix}{i}", phone=f"15{i:09d}", org_id=org.id) for i in range(count)]
    session.add_all(members)
    secretary = Member(name="书记", phone="18800000000", org_id=org.id, role="书记")
    session.add(secretary)
    session.commit()
    return [m.id for m in members], secretary


def _run_all(count, target):
    barrier = threading.Barrier(count, timeout=RACE_START_TIMEOUT)
    errors = []

    def run(i):
        try:
            barrier.wait()
            target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_300_simultaneous_sign_ins_are_each_recorded_once(race_engine):
    with Session(race_engine, expire_on_commit=False) as session:
        ids, secretary = _members(session, 300, "党员")
        activity = create_activity(session, secretary, NewActivity(kind="支部党员大会", title="大会", starts_at=START),
                                   now=NOW)
        code, activity_id = activity.code, activity.id
    # Every member signs in at the same second; 60 of them press twice.
    attempts = ids + ids[:60]
    created, repeats = [], []
    lock = threading.Lock()

    def sign_in(i):
        with Session(race_engine, expire_on_commit=False) as s:
            member = s.get(Member, attempts[i])
            try:
                result = check_in_by_code(s, member, code, now=START)
            except DomainError as exc:
                assert "已签到" in exc.message, exc.message
                with lock:
                    repeats.append(attempts[i])
                return
            with lock:
                (created if result.created else repeats).append(attempts[i])

    errors = _run_all(len(attempts), sign_in)
    assert errors == []
    assert sorted(created) == sorted(ids)
    assert len(repeats) == 60
    with Session(race_engine) as s:
        assert s.scalar(select(func.count(CheckIn.id)).where(CheckIn.activity_id == activity_id)) == 300
        assert s.scalar(select(func.count(func.distinct(CheckIn.member_id)))) == 300


def test_a_rush_on_few_seats_never_overbooks_and_the_queue_moves_up(race_engine):
    with Session(race_engine, expire_on_commit=False) as session:
        ids, secretary = _members(session, 40, "队员")
        activity = create_activity(session, secretary, NewActivity(kind="志愿服务", title="清扫", starts_at=START,
                                                                  capacity=5), now=NOW)
        activity_id = activity.id

    def sign_up(i):
        with Session(race_engine, expire_on_commit=False) as s:
            register(s, s.get(Activity, activity_id), s.get(Member, ids[i]), NOW + timedelta(seconds=i % 3))

    assert _run_all(40, sign_up) == []

    def counts(s):
        rows = dict(s.execute(select(Registration.status, func.count()).where(
            Registration.activity_id == activity_id).group_by(Registration.status)).all())
        return rows, s.get(Activity, activity_id).registered_count

    with Session(race_engine) as s:
        assert counts(s) == ({"registered": 5, "waiting": 35}, 5)
        seated = s.scalars(select(Registration.member_id).where(
            Registration.activity_id == activity_id, Registration.status == "registered")).all()

    # All five cancel at once: five different people move up from the waiting list.
    def cancel(i):
        with Session(race_engine, expire_on_commit=False) as s:
            cancel_registration(s, s.get(Activity, activity_id), s.get(Member, seated[i]), NOW + timedelta(hours=1))

    assert _run_all(5, cancel) == []
    with Session(race_engine) as s:
        assert counts(s) == ({"registered": 5, "waiting": 30, "cancelled": 5}, 5)


def test_simultaneous_sign_outs_credit_the_points_once(race_engine):
    """Ten 签退 of one volunteer at once: one sign-out, one ledger entry through the points ledger."""
    with Session(race_engine, expire_on_commit=False) as session:
        ids, secretary = _members(session, 1, "志愿者")
        activity = create_activity(session, secretary, NewActivity(kind="志愿服务", title="清扫", starts_at=START,
                                                                  points=7), now=NOW)
        activity_id, code = activity.id, activity.code
        check_in_by_code(session, session.get(Member, ids[0]), code, now=START)
    done, refused = [], []
    lock = threading.Lock()

    def sign_out(i):
        with Session(race_engine, expire_on_commit=False) as s:
            try:
                check_out(s, s.get(Activity, activity_id), s.get(Member, ids[0]), now=START + timedelta(hours=1))
            except DomainError as exc:
                assert "已" in exc.message and "签退" in exc.message, exc.message
                with lock:
                    refused.append(i)
                return
            with lock:
                done.append(i)

    assert _run_all(10, sign_out) == []
    assert (len(done), len(refused)) == (1, 9)
    with Session(race_engine) as s:
        entries = s.scalars(select(PointEntry).where(PointEntry.member_id == ids[0])).all()
        assert [(e.amount, e.source, e.source_id) for e in entries] == [(7, "activity", str(activity_id))]
        assert s.scalar(select(CheckIn.service_minutes).where(CheckIn.activity_id == activity_id)) == 60
