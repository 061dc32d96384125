"""Deliver one notice to many members through the fake WeChat API (answering after 50 ms) and print
messages per second: the outbox sender (threads, rate limit off), a naive one-by-one loop in the
same run, and the sender with the configured rate limit on.

    .venv/bin/python bench/push.py                  # 10,000 members (about three minutes)
    .venv/bin/python bench/push.py --members 2000   # quicker
    .venv/bin/python bench/push.py --database-url postgresql://postgres@127.0.0.1:5432/bench

The fake server runs in its own process so that it does not compete with the sender for the GIL.
"""

import argparse
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fakeredis  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, func, insert, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from config import load_config  # noqa: E402
from models import Base, Member  # noqa: E402
from models.notices import publish_notice  # noqa: E402
from models.org import ensure_org_path  # noqa: E402
from models.outbox import SENT, OutboxMessage  # noqa: E402
from scheduler.sender import Sender  # noqa: E402
from scheduler.wechat_api import official_account_client  # noqa: E402

BRANCH = "滨江街道党工委/东湖社区党委/东湖社区第一党支部"
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Beijing: outside the quiet hours


def serve_fake(latency: float, ready, stop) -> None:
    from tests.fake_wechat import FakeWeChat

    with FakeWeChat(latency=latency) as fake:
        ready.put(fake.base_url)
        stop.wait()


def setup(engine, members: int) -> tuple[int, int]:
    """Create the organization, `members` members with openids, and a secretary; return ids."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        org = ensure_org_path(session, BRANCH)
        secretary = Member(name="书记", phone="13000000000", role="书记", org_id=org.id, openid="o-secretary")
        session.add(secretary)
        session.commit()
        rows = [{"name": f"党员{n}", "phone": f"139{n:08d}", "kind": "直管党员", "role": "党员",
                 "org_id": org.id, "openid": f"o-bench-{n:06d}", "join_date": date(2001, 7, 1),
                 "active": True} for n in range(members)]
        for start in range(0, len(rows), 2000):
            session.execute(insert(Member), rows[start:start + 2000])
        session.commit()
        return org.id, secretary.id


def publish(engine, secretary_id: int, body: str, urgent: bool = False) -> tuple[int, float]:
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        notice = publish_notice(session, session.get(Member, secretary_id), body, urgent=urgent)
        return notice.id, time.perf_counter() - started


def sent_count(engine, notice_id: int) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.source == f"notice:{notice_id}", OutboxMessage.status == SENT)) or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=200, help="messages for the one-by-one loop")
    parser.add_argument("--rated", type=int, default=0,
                        help="messages for the rate-limited run (default: 20 s worth at the limit)")
    parser.add_argument("--workers", type=int, default=48)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()

    ready, stop = multiprocessing.Queue(), multiprocessing.Event()
    server = multiprocessing.Process(target=serve_fake, args=(args.latency, ready, stop), daemon=True)
    server.start()
    base_url = ready.get(timeout=10)
    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{tmp.name}/bench.db"
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {},
                           pool_size=args.workers + 4 if not url.startswith("sqlite") else 5,
                           max_overflow=args.workers)
    store = redis.Redis.from_url(args.redis_url, decode_responses=True) if args.redis_url else \
        fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    if args.redis_url:
        store.flushdb()
    configured = load_config()
    rate = float(configured["SEND_RATE_LIMIT"])
    config = load_config({
        "WECHAT_API_BASE": base_url, "WECHAT_APP_ID": "wxbench", "WECHAT_APP_SECRET": "s",
        "WECHAT_TEMPLATE_NOTICE": "TPL-NOTICE", "OUTBOX_WORKERS": args.workers, "SEND_RATE_LIMIT": 0,
    })
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        _, secretary_id = setup(engine, args.members)
        recipients = args.members + 1
        print(f"database {engine.dialect.name}, redis {'server' if args.redis_url else 'in-process'}, "
              f"fake API latency {args.latency * 1000:.0f} ms, {recipients} recipients")

        # 1. Naive: one message after the other through one wechatpy client.
        client = official_account_client(config, store)
        client.access_token  # noqa: B018 (fetch the token outside the timing)
        started = time.perf_counter()
        for n in range(args.naive):
            client.message.send_template(f"o-bench-{n:06d}", "TPL-NOTICE", {"thing1": {"value": "通知"}})
        naive = args.naive / (time.perf_counter() - started)
        print(f"naive one-by-one loop : {args.naive:6d} messages, {naive:8.1f} msg/s")

        # 2. The outbox sender, rate limit off.
        notice_id, publish_s = publish(engine, secretary_id, "基准测试通知：请于周五15:00参加主题党日。")
        print(f"publish_notice        : {recipients:6d} outbox rows in {publish_s:.2f} s")
        sender = Sender(factory, store, config)
        started = time.perf_counter()
        stats = sender.drain(NOON)
        elapsed = time.perf_counter() - started
        delivered = sent_count(engine, notice_id)
        fast = delivered / elapsed
        print(f"outbox sender, no limit: {delivered:6d} messages, {fast:8.1f} msg/s "
              f"({args.workers} threads; {fast / naive:.1f}x the naive loop; failed {stats.failed})")

        # 3. The outbox sender with the configured rate limit.
        if rate > 0:
            count = args.rated or int(rate * 20)
            with Session(engine) as session:
                ids = [m.id for m in session.scalars(select(Member).order_by(Member.id).limit(count))]
            # A second notice to the first `count` members (a smaller audience, same code path).
            with Session(engine) as session:
                for row in session.scalars(select(Member).where(Member.id.not_in(ids))):
                    row.active = False
                session.commit()
            rated_id, _ = publish(engine, secretary_id, "基准测试：限速发送。")
            limited = Sender(factory, store, {**config, "SEND_RATE_LIMIT": rate})
            started = time.perf_counter()
            limited.drain(NOON)
            elapsed = time.perf_counter() - started
            delivered = sent_count(engine, rated_id)
            measured = delivered / elapsed
            print(f"outbox sender, limited : {delivered:6d} messages, {measured:8.1f} msg/s "
                  f"(SEND_RATE_LIMIT={rate:g}/s: {100 * (measured - rate) / rate:+.1f} %)")
        else:
            print("SEND_RATE_LIMIT is 0 (off): no rate-limited run")
    finally:
        stop.set()
        server.join(timeout=5)
        engine.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    main()
