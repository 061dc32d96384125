"""A notice at district scale: queued in one INSERT … SELECT whatever its audience, receipts counted
in SQL with names paged, reminders queued the same way, and an outbox claim that walks the partial
index of pending rows instead of sorting the backlog. Statement counts, not times (bench/fanout.py
has the times)."""

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from handlers.paging import REPLY_MAX_BYTES
from models import Member
from models.notices import notice_receipt, publish_notice, remind_unread
from models.org import ensure_org_path
from models.outbox import FAILED, SENT, UNKNOWN, OutboxMessage, TemplateReport, enqueue_many, enqueue_select
from scheduler.sender import CLAIM_SETTING
from tests.conftest import BRANCH, RACE_START_TIMEOUT, SECOND_BRANCH, STREET

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Beijing, outside the quiet hours
TEMPLATE = "/cgi-bin/message/template/send"


def crowd(engine, org_path: str, size: int, prefix: str, *, openids: bool = True) -> list[int]:
    """`size` active members of `org_path` (bulk-inserted), their ids in order."""
    with Session(engine) as s:
        org = ensure_org_path(s, org_path)
        s.commit()
        rows = [{"name": f"{prefix}{n:05d}", "phone": f"{prefix}-{n:05d}", "kind": "在职党员", "role": "党员",
                 "org_id": org.id, "openid": f"o-{prefix}-{n}" if openids else None, "active": True}
                for n in range(size)]
        s.execute(insert(Member), rows)
        s.commit()
        return list(s.scalars(select(Member.id).where(Member.phone.like(f"{prefix}-%")).order_by(Member.id)))


def outbox(session, source: str) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.source == source)
                                .order_by(OutboxMessage.member_id)))


# Publishing ---------------------------------------------------------------------------------------
def test_publishing_takes_the_same_statements_for_3_and_30_members(engine, make_member, count_statements):
    small_sec = make_member("小书记", org=BRANCH, role="书记", openid="o-small")
    large_sec = make_member("大书记", org=SECOND_BRANCH, role="书记", openid="o-large")
    small = crowd(engine, BRANCH, 3, "小")
    large = crowd(engine, SECOND_BRANCH, 30, "大")
    gone = make_member("已离开", org=SECOND_BRANCH, active=False)
    counts, published = [], []
    for author in (small_sec, large_sec):
        with Session(engine, expire_on_commit=False) as s:
            viewer = s.get(Member, author.id)
            _ = viewer.org
            with count_statements() as counted:
                published.append(publish_notice(s, viewer, "周六上午社区大扫除", urgent=True))
            counts.append(counted.count)
    assert counts[0] == counts[1], counts
    assert [p.recipients for p in published] == [3, 30]
    with Session(engine) as s:
        for p, ids, author in zip(published, (small, large), (small_sec, large_sec), strict=True):
            rows = outbox(s, p.notice.source)
            assert [r.member_id for r in rows] == ids  # not the author, nor the one who left
            assert author.id not in ids and gone.id not in [r.member_id for r in rows]
            assert {(r.recipient, r.kind, r.title, r.body, r.urgent, r.status, r.attempts, r.refusals, r.openid,
                     r.next_attempt_at, r.data) for r in rows} == {
                (f"m{r.member_id}", "notice", "周六上午社区大扫除", "周六上午社区大扫除", True, "pending", 0, "", None,
                 None, None) for r in rows}
            # Ids in member order: the sender drains the notice in that order.
            assert [r.id for r in rows] == sorted(r.id for r in rows)


def test_a_street_notice_reaches_the_subtree_below_and_nobody_else(engine, make_member):
    secretary = make_member("街道书记", org=STREET, role="书记", openid="o-street")
    branch = crowd(engine, BRANCH, 4, "一")
    second = crowd(engine, SECOND_BRANCH, 5, "二")
    elsewhere = crowd(engine, "别的街道/别的社区", 3, "外")
    with Session(engine, expire_on_commit=False) as s:
        published = publish_notice(s, s.get(Member, secretary.id), "全街道通知")
        rows = outbox(s, published.notice.source)
    assert published.recipients == 9
    assert sorted(r.member_id for r in rows) == sorted(branch + second)
    assert not set(elsewhere) & {r.member_id for r in rows}


def test_one_insert_select_writes_what_enqueue_many_writes(engine, session):
    ids = crowd(engine, BRANCH, 4, "甲")
    starts = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
    data = {"starts_at": starts, "place": "社区三楼会议室", "empty": ""}
    many = enqueue_many(session, ids, source="python", kind="reminder", title="提醒", body="正文", urgent=True,
                        data=data)
    one = enqueue_select(session, select(Member.id).where(Member.id.in_(ids)), source="sql", kind="reminder",
                         title="提醒", body="正文", urgent=True, data=data)
    session.commit()
    assert many == one == 4

    def columns(row):
        return {c: getattr(row, c) for c in OutboxMessage.__table__.columns.keys()
                if c not in ("id", "source", "created_at")}

    assert [columns(r) for r in outbox(session, "sql")] == [columns(r) for r in outbox(session, "python")]
    assert outbox(session, "sql")[0].data == {"starts_at": starts.isoformat(), "place": "社区三楼会议室"}
    # The same (source, recipient) is queued once: a second run queues nothing, a wider one the rest.
    assert enqueue_select(session, select(Member.id).where(Member.id.in_(ids)), source="sql", kind="notice",
                          body="再来") == 0
    session.commit()
    more = crowd(engine, BRANCH, 2, "乙")
    assert enqueue_select(session, select(Member.id).where(Member.id.in_(ids + more)), source="sql",
                          kind="notice", body="再来") == 2
    session.commit()
    assert len(outbox(session, "sql")) == 6


# Receipts -----------------------------------------------------------------------------------------
def _shape(engine, notice_id: int, outcome_of) -> None:
    """Give the notice's rows outcomes: `outcome_of(n)` for the n-th recipient (by member id)."""
    with Session(engine) as s:
        rows = outbox(s, f"notice:{notice_id}")
        for n, row in enumerate(rows):
            outcome = outcome_of(n)
            if outcome == "read":
                row.read_at = NOON
            elif outcome == "failed":
                row.status, row.last_error = FAILED, f"原因{n % 2}"
            elif outcome == "unknown":
                row.status, row.last_error = UNKNOWN, "未收到微信答复（ReadTimeout）"
            elif outcome in ("sent", "refused", "confirmed"):
                row.status, row.wx_msgid = SENT, f"msg{n}"
                if outcome != "sent":
                    s.add(TemplateReport(msgid=f"msg{n}",
                                         status="success" if outcome == "confirmed" else "failed:user block"))
        s.commit()


def test_a_receipt_takes_the_same_statements_for_3_and_30(engine, make_member, count_statements):
    outcomes = ["read", "failed", "unknown", "sent", "refused", "confirmed", "pending"]
    counts = []
    for size, org in ((3, BRANCH), (30, SECOND_BRANCH)):
        secretary = make_member(f"书记{size}", org=org, role="书记", openid=f"o-sec{size}")
        crowd(engine, org, size, f"员{size}")
        with Session(engine, expire_on_commit=False) as s:
            notice_id = publish_notice(s, s.get(Member, secretary.id), "通知正文").notice.id
        _shape(engine, notice_id, lambda n: outcomes[n % len(outcomes)])
        with Session(engine, expire_on_commit=False) as s:
            viewer = s.get(Member, secretary.id)
            _ = viewer.org
            with count_statements() as counted:
                receipt = notice_receipt(s, notice_id, viewer, per_page=5)
            counts.append(counted.count)
        assert receipt.total == size and receipt.count("read") + receipt.count("unread") == size
    assert counts[0] == counts[1], counts
    # 30 recipients, outcomes in turn: every count is the whole group's, the names one page of 5.
    expected = {"pending": 4 + 5, "failed": 5, "unknown": 4, "delivered": 4 + 4, "confirmed": 4, "refused": 4,
                "read": 5, "unread": 25}
    assert {k: receipt.count(k) for k in expected} == expected
    assert receipt.reasons["failed"] == {"原因0": 2, "原因1": 3}
    assert sum(len(names) for names in receipt.failed.values()) == 5 and len(receipt.refused) == 4
    assert len(receipt.unread) == 5 and receipt.pages == 5


def test_receipt_names_are_paged_in_member_order(engine, make_member):
    secretary = make_member("王书记", role="书记", openid="o-sec")
    ids = crowd(engine, BRANCH, 23, "员")
    unbound = crowd(engine, BRANCH, 7, "未", openids=False)
    with Session(engine, expire_on_commit=False) as s:
        publish_notice(s, s.get(Member, secretary.id), "通知正文")
        names = dict(s.execute(select(Member.id, Member.name)).all())
    _shape(engine, 1, lambda n: "read" if n < 3 else "pending")
    pages = []
    with Session(engine, expire_on_commit=False) as s:
        viewer = s.get(Member, secretary.id)
        for page in (1, 2, 3, 4):
            pages.append(notice_receipt(s, 1, viewer, page=page, per_page=10))
    everyone = [names[i] for i in ids + unbound]
    # Each list is paged on its own: the 3 who read it, the 27 who did not, by tens.
    assert [r.read for r in pages] == [everyone[:3], [], [], []]
    assert [r.unread for r in pages] == [everyone[3:13], everyone[13:23], everyone[23:], []]
    assert [r.unbound for r in pages[:2]] == [[names[i] for i in unbound], []]
    assert all((r.total, r.count("unbound"), r.count("read"), r.count("unread"), r.pages) == (30, 7, 3, 27, 3)
               for r in pages)


def test_the_chatbot_receipt_of_a_large_notice_fits_one_reply(engine, make_member, say):
    make_member("王书记", role="书记", openid="o-sec")
    crowd(engine, BRANCH, 400, "很长的名字很长的名字成员")
    crowd(engine, BRANCH, 100, "没绑定的很长的名字成员", openids=False)
    assert "共 500 人" in say("o-sec", "通知 明天停水", NOON)
    _shape(engine, 1, lambda n: ["failed", "unknown", "pending", "read"][n % 4] if n < 400 else "pending")
    reply = say("o-sec", "通知 1 回执", NOON)
    assert len(reply.encode()) <= REPLY_MAX_BYTES
    assert "应发 500 人，已送达 0，待发送 200，失败 100，未绑定 100；已读 100，未读 400。" in reply
    assert "状态未知（未收到微信答复（ReadTimeout））：很长的名字很长的名字成员00001、" in reply and "等100人" in reply


def test_the_api_receipt_pages_its_names(api_client, api_login, make_member, engine):
    secretary = make_member("王书记", role="书记", openid="o-sec")
    crowd(engine, BRANCH, 5, "员")
    headers = api_login(secretary)
    assert api_client.post("/api/v1/admin/notices", json={"body": "周五开会"}, headers=headers).status_code == 200
    whole = api_client.get("/api/v1/admin/notices/1", headers=headers).get_json()
    assert (whole["total"], whole["page"], whole["per_page"], whole["pages"]) == (5, 1, 100, 1)
    assert whole["unread_names"] == [f"员{n:05d}" for n in range(5)]
    second = api_client.get("/api/v1/admin/notices/1?page=2&per_page=2", headers=headers).get_json()
    assert (second["unread"], second["unread_names"], second["pages"]) == (5, ["员00002", "员00003"], 3)
    assert api_client.get("/api/v1/admin/notices/1?per_page=5000", headers=headers).status_code == 422


# Reminders ----------------------------------------------------------------------------------------
def test_reminding_takes_the_same_statements_for_3_and_30(engine, make_member, count_statements, settings):
    counts, reminded = [], []
    for size, org in ((3, BRANCH), (30, SECOND_BRANCH)):
        secretary = make_member(f"书记{size}", org=org, role="书记", openid=f"o-sec{size}")
        ids = crowd(engine, org, size, f"员{size}")
        crowd(engine, org, 2, f"未绑{size}", openids=False)
        with Session(engine, expire_on_commit=False) as s:
            viewer = s.get(Member, secretary.id)
            _ = viewer.org
            notice = publish_notice(s, viewer, "通知正文").notice
            s.execute(update(OutboxMessage).where(OutboxMessage.member_id == ids[0]).values(read_at=NOON))
            s.commit()
            with count_statements() as counted:
                reminded.append(remind_unread(s, notice.id, viewer, now=NOON, settings=settings))
            counts.append(counted.count)
            rows = outbox(s, f"{notice.source}:r1")
            assert [r.member_id for r in rows] == ids[1:]  # the unread and bound, not the unbound
            assert {(r.title, r.kind) for r in rows} == {("再提醒：通知正文", "notice")}
    assert counts[0] == counts[1], counts
    assert reminded == [2, 29]


# The outbox claim ---------------------------------------------------------------------------------
def test_the_claim_walks_the_pending_index_without_sorting(engine, make_sender, session):
    ids = crowd(engine, BRANCH, 3000, "员")
    enqueue_select(session, select(Member.id).where(Member.id.in_(ids[:500])), source="done", kind="notice",
                   body="已发")
    session.execute(update(OutboxMessage).values(status=SENT))
    session.commit()
    postgres = engine.dialect.name == "postgresql"
    if postgres:  # the statistics say nothing is pending (the usual state), then a backlog comes
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE outbox"))
    enqueue_select(session, select(Member.id), source="notice:9", kind="notice", body="待发")
    session.commit()
    query = make_sender().claim_query(NOON).with_for_update(skip_locked=True)
    if postgres:
        with engine.connect() as conn:
            conn.execute(text(CLAIM_SETTING))  # as the sender's claim does, in its transaction
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {sql}")))
        assert "Index Scan using ix_outbox_pending" in plan and "Limit" in plan, plan
        assert "Sort" not in plan, plan
    else:
        compiled = query.compile(engine)
        params = [compiled.params[name] for name in compiled.positiontup]
        params = [p.replace(tzinfo=None) if isinstance(p, datetime) else p for p in params]
        with engine.connect() as conn:
            plan = " | ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}",
                                                                     tuple(params)))
        # Rows come in id order from an index on the pending status: no temporary B-tree to sort.
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
    claimed = session.scalars(make_sender().claim_query(NOON)).all()
    assert claimed == sorted(claimed) and len(claimed) == 100
    oldest_pending = session.scalar(select(func.min(OutboxMessage.id)).where(OutboxMessage.status == "pending"))
    assert claimed[0] == oldest_pending


def test_the_pending_index_is_partial(engine):
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            definition = conn.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_outbox_pending'"))
        else:
            definition = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'ix_outbox_pending'"))
    assert "(id)" in definition and "WHERE" in definition and "pending" in definition


def test_publishing_while_senders_drain_delivers_once_to_each(race_engine, make_member, make_sender, wechat_api,
                                                              is_postgres):
    if not is_postgres:
        pytest.skip("NEEDS POSTGRESQL: concurrent publish and drain run on real PostgreSQL (TEST_DATABASE_URL)")
    secretary = make_member("王书记", role="书记", openid="o-sec")
    ids = crowd(race_engine, BRANCH, 60, "员")
    notices, drainers = 4, 3
    barrier = threading.Barrier(drainers + 1, timeout=RACE_START_TIMEOUT)
    published_all = threading.Event()
    errors = []

    def publish():
        try:
            barrier.wait()
            for n in range(notices):
                with Session(race_engine, expire_on_commit=False) as s:
                    publish_notice(s, s.get(Member, secretary.id), f"第{n}条通知")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            published_all.set()

    def drain():
        try:
            sender = make_sender()
            barrier.wait()
            while not published_all.is_set():
                sender.drain(NOON)
            sender.drain(NOON)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=publish)] + [threading.Thread(target=drain) for _ in range(drainers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    make_sender().drain(NOON)
    with Session(race_engine) as s:
        rows = s.execute(select(OutboxMessage.source, OutboxMessage.member_id, OutboxMessage.status)).all()
    assert sorted((r.source, r.member_id) for r in rows) == sorted(
        (f"notice:{n}", i) for n in range(1, notices + 1) for i in ids)
    assert {r.status for r in rows} == {SENT}
    sent = [(c.body["touser"], c.body["data"]) for c in wechat_api.calls_to(TEMPLATE)]
    assert len(sent) == notices * len(ids)
    assert len({(touser, str(data)) for touser, data in sent}) == notices * len(ids)
