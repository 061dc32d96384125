"""A notice to a whole street at district size: publish (the chatbot's 通知), its receipt, and the
outbox claim with the whole notice pending, for each size given; time and statements of each.

    .venv/bin/python bench/fanout.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/fanout.py --sizes 5000 --database-url sqlite:////tmp/fanout.db

Each size starts from an empty schema (it DROPS every table of the database it is given): a street
of 20 communities × 10 branches, the members spread over the branches (one in ten bound to no
WeChat), the street's secretary publishing to all of them. Printed per size:
- 通知 (chatbot): the whole reply path of `通知 …` to the street, and the outbox rows it queued;
- 回执 (chatbot) and the API's receipt (`notice_receipt(...).as_dict()` as JSON, the default page);
- claim: the sender's claim of one batch (OUTBOX_BATCH) with every delivery pending, median of 5,
  at noon and in the quiet hours (nothing urgent pending); the claim's locking SELECT alone; and
  PostgreSQL's plan of it (the statistics as autovacuum left them before the notice: few pending).
It measures whatever code is on the path: run it from an older checkout to compare.
"""

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fakeredis  # noqa: E402
from sqlalchemy import create_engine, event, func, insert, or_, select, text, update  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from config import load_config  # noqa: E402
from handlers import Incoming, build_router  # noqa: E402
from models import Base, Member  # noqa: E402
from models.notices import notice_receipt  # noqa: E402
from models.org import ensure_org_path  # noqa: E402
from models.outbox import PENDING, OutboxMessage  # noqa: E402
from scheduler import sender as sender_module  # noqa: E402
from scheduler.sender import Sender  # noqa: E402

STREET = "滨江街道党工委"
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
NIGHT = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 23:00 in Beijing: quiet hours


class Counter:
    def __init__(self, engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args) -> None:
        self.count += 1


def build(engine, members: int) -> None:
    """The street, its 200 branches, `members` members over them, the secretary (o-street)."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        street = ensure_org_path(session, STREET)
        branches = [ensure_org_path(session, f"{STREET}/第{c}社区党委/第{c}社区第{b}党支部").id
                    for c in range(1, 21) for b in range(1, 11)]
        session.add(Member(name="街道书记", phone="13000000000", role="书记", org_id=street.id, openid="o-street"))
        session.commit()
        rows = [{"name": f"党员{n:05d}", "phone": f"139{n:08d}", "kind": "在职党员", "role": "党员",
                 "org_id": branches[n % len(branches)], "openid": None if n % 10 == 9 else f"o-{n:06d}",
                 "join_date": date(2001, 7, 1), "active": True} for n in range(members)]
        for start in range(0, len(rows), 5000):
            session.execute(insert(Member), rows[start:start + 5000])
        session.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def timed(counter: Counter, run):
    before, started = counter.count, time.perf_counter()
    result = run()
    return result, time.perf_counter() - started, counter.count - before


def claim_times(engine, sender: Sender, now: datetime, rounds: int = 5) -> tuple[float, int]:
    """Median seconds of one claim (rows put back after each) and how many it took."""
    times, taken = [], 0
    for n in range(rounds):
        with Session(engine, expire_on_commit=False) as session:
            started = time.perf_counter()
            jobs = sender._claim(session, f"bench-{n}", now, held=set())
            times.append(time.perf_counter() - started)
            taken = len(jobs)
            session.execute(update(OutboxMessage).where(OutboxMessage.claimed_by == f"bench-{n}")
                            .values(status=PENDING, claimed_by=None, claimed_at=None))
            session.commit()
    return statistics.median(times), taken


def lock_times(engine, settings, rounds: int = 5) -> float:
    """Median seconds of the claim's locking SELECT alone (the sender's query, as of noon)."""
    query = (select(OutboxMessage.id).where(OutboxMessage.status == PENDING, or_(
        OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= NOON))
        .order_by(OutboxMessage.id).limit(settings.outbox_batch).with_for_update(skip_locked=True))
    times = []
    for _ in range(rounds):
        with Session(engine) as session:
            if engine.dialect.name == "postgresql" and hasattr(sender_module, "CLAIM_SETTING"):
                session.execute(text(sender_module.CLAIM_SETTING))
            started = time.perf_counter()
            session.scalars(query).all()
            times.append(time.perf_counter() - started)
            session.rollback()
    return statistics.median(times)


def claim_plan(engine, sender: Sender, now: datetime) -> str:
    if engine.dialect.name != "postgresql" or not hasattr(sender, "claim_query"):
        return ""
    query = sender.claim_query(now).with_for_update(skip_locked=True)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.execute(text(getattr(sender_module, "CLAIM_SETTING", "SELECT 1")))
        return "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN ANALYZE {sql}")))


def run_size(engine, members: int, settings) -> dict:
    build(engine, members)
    counter = Counter(engine)
    router = build_router()
    body = "通知 本周六上午9点全街道党员到社区报到，参加冬季环境整治志愿服务，请相互转告。"
    with Session(engine, expire_on_commit=False) as session:
        reply, publish_s, publish_n = timed(counter, lambda: router.dispatch(
            Incoming(openid="o-street", msg_type="text", content=body), session, NOON, settings))
    with Session(engine) as session:
        queued = session.scalar(select(func.count(OutboxMessage.id)))
        notice_id = session.scalar(select(func.max(OutboxMessage.source))).split(":")[1]
    with Session(engine, expire_on_commit=False) as session:
        receipt_reply, chat_s, chat_n = timed(counter, lambda: router.dispatch(
            Incoming(openid="o-street", msg_type="text", content=f"通知 {notice_id} 回执"), session, NOON, settings))
    with Session(engine, expire_on_commit=False) as session:
        viewer = session.scalar(select(Member).where(Member.openid == "o-street"))
        payload, api_s, api_n = timed(counter, lambda: json.dumps(
            notice_receipt(session, int(notice_id), viewer).as_dict(), ensure_ascii=False))
    sender = Sender(sessionmaker(engine, expire_on_commit=False),
                    fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True), settings)
    claim_s, claimed = claim_times(engine, sender, NOON)
    quiet_s, quiet_claimed = claim_times(engine, sender, NIGHT)
    lock_s = lock_times(engine, settings)
    return {"members": members, "queued": queued, "publish": (publish_s, publish_n), "reply": str(reply),
            "chat_receipt": (chat_s, chat_n, len(str(receipt_reply).encode())),
            "api_receipt": (api_s, api_n, len(payload.encode())),
            "claim": (claim_s, claimed), "lock": lock_s, "quiet_claim": (quiet_s, quiet_claimed),
            "plan": claim_plan(engine, sender, NOON)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--sizes", default="5000,50000")
    args = parser.parse_args()
    engine = create_engine(args.database_url)
    settings = load_config({"WECHAT_APP_ID": "wxbench", "WECHAT_APP_SECRET": "s",
                            "WECHAT_TEMPLATE_NOTICE": "TPL-NOTICE"})
    results = [run_size(engine, int(size), settings) for size in args.sizes.split(",")]
    print(f"database {engine.dialect.name}; OUTBOX_BATCH {settings.outbox_batch}")
    print(f"{'members':>8} | {'通知 (chatbot)':>22} | {'回执 (chatbot)':>22} | {'receipt (API)':>26} | "
          f"{'claim, noon':>14} | {'its SELECT':>10} | {'claim, quiet hours':>18}")
    for r in results:
        (ps, pn), (cs, cn, cb), (as_, an, ab) = r["publish"], r["chat_receipt"], r["api_receipt"]
        print(f"{r['members']:>8} | {ps * 1000:8.0f} ms {pn:4d} stmts | {cs * 1000:8.0f} ms {cn:4d} stmts "
              f"| {as_ * 1000:7.0f} ms {an:3d} st {ab:8,d} B | {r['claim'][0] * 1000:7.1f} ms {r['claim'][1]:3d} "
              f"| {r['lock'] * 1000:7.2f} ms | {r['quiet_claim'][0] * 1000:8.1f} ms {r['quiet_claim'][1]:3d}")
        print(f"{'':>8}   queued {r['queued']} rows; chatbot receipt {cb} bytes; reply: {r['reply'][:60]}…")
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"ratio {last['members']}/{first['members']}: 通知 {last['publish'][0] / first['publish'][0]:.1f}x, "
              f"回执 {last['chat_receipt'][0] / first['chat_receipt'][0]:.1f}x, "
              f"receipt {last['api_receipt'][0] / first['api_receipt'][0]:.1f}x, "
              f"claim {last['claim'][0] / first['claim'][0]:.1f}x (its SELECT {last['lock'] / first['lock']:.1f}x)")
    for r in results:
        if r["plan"]:
            print(f"\nclaim plan at {r['queued']} pending:\n{r['plan']}")
    engine.dispose()


if __name__ == "__main__":
    main()
