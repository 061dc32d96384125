"""200 concurrent 认领 of one wish over HTTP through the full signed webhook.

Starts the app under gunicorn (real Redis, the given database), seeds a fresh organization with
N bound members and one open wish, lets N simulated WeChat users send "认领 #<id>" at the same
moment, and prints the time to settle, latency percentiles and what the database holds after.

    .venv/bin/python bench/claim.py --database-url postgresql://postgres@127.0.0.1:5432/bench \
        --redis-url redis://127.0.0.1:6379/12 --workers 4

It only adds rows (a new organization named after the run); it never drops or clears anything.
"""

import argparse
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.simulator import Simulator, requests_poster  # noqa: E402
from models import Base, Member  # noqa: E402
from models.org import ensure_org_path  # noqa: E402
from models.wishes import Wish, WishEvent, post_wish  # noqa: E402

TOKEN = "benchtoken"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(database_url: str, people: int) -> tuple[int, list[str]]:
    """Create a fresh branch with a secretary, `people` bound members and one open wish."""
    engine = create_engine(database_url)
    Base.metadata.create_all(engine)
    run = secrets.token_hex(4)
    with Session(engine, expire_on_commit=False) as s:
        org = ensure_org_path(s, f"压测街道{run}/压测社区/压测支部")
        secretary = Member(name="压测书记", phone=f"run{run}-sec", role="书记", org_id=org.id,
                           openid=f"bench-{run}-sec")
        members = [Member(name=f"压测{i}", phone=f"run{run}-{i}", org_id=org.id, openid=f"bench-{run}-{i}")
                   for i in range(people)]
        s.add_all([secretary, *members])
        s.commit()
        wish = post_wish(s, secretary, "压测心愿", "200 人同时认领")
        openids = [m.openid for m in members]
        wish_id = wish.id
    engine.dispose()
    return wish_id, openids


def start_gunicorn(args, port: int) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=args.database_url, REDIS_URL=args.redis_url, WECHAT_TOKEN=TOKEN,
               WECHAT_AES_KEY="", SECRET_KEY="bench", LOG_LEVEL="WARNING", WISH_MAX_OPEN_CLAIMS="3")
    command = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(args.workers), "--threads",
               str(args.threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning", "app:create_app()"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not start")


def fire(url: str, wish_id: int, openids: list[str]) -> tuple[float, list[tuple[float, str]]]:
    """Send every claim at once; return the time to settle and each (latency, reply)."""
    barrier = threading.Barrier(len(openids) + 1)
    started = {}

    def one(openid):
        sim = Simulator(url, TOKEN, post=requests_poster(requests.Session(), timeout=30))
        barrier.wait()
        begin = time.perf_counter()
        reply = sim.text(openid, f"认领 #{wish_id}")
        return time.perf_counter() - begin, reply.content or f"HTTP {reply.status}"

    with ThreadPoolExecutor(max_workers=len(openids)) as pool:
        futures = [pool.submit(one, o) for o in openids]
        barrier.wait()
        started["t"] = time.perf_counter()
        results = [f.result() for f in futures]
    return time.perf_counter() - started["t"], results


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_db = f"sqlite:///{ROOT / 'instance' / 'bench.db'}"
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", default_db))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    (ROOT / "instance").mkdir(exist_ok=True)
    wish_id, openids = seed(args.database_url, args.people)
    port = free_port()
    server = start_gunicorn(args, port)
    try:
        settle, results = fire(f"http://127.0.0.1:{port}/wechat", wish_id, openids)
    finally:
        server.terminate()
        server.wait(timeout=10)

    latencies = [r[0] for r in results]
    won = sum("认领成功" in r[1] for r in results)
    lost = sum("已被认领" in r[1] for r in results)
    other = [r[1] for r in results if "认领成功" not in r[1] and "已被认领" not in r[1]]
    engine = create_engine(args.database_url)
    with Session(engine) as s:
        wish = s.get(Wish, wish_id)
        claims = s.scalar(select(func.count(WishEvent.id)).where(WishEvent.wish_id == wish_id,
                                                                 WishEvent.action == "认领"))
        status, claim_count = wish.status, wish.claim_count
    engine.dispose()

    database = args.database_url.split("://")[0]
    print(f"{args.people} concurrent claims of wish #{wish_id}: gunicorn {args.workers} workers × "
          f"{args.threads} threads, {database}, Redis {args.redis_url}")
    print(f"time to settle: {settle * 1000:.0f} ms")
    p50, p99 = (percentile(latencies, p) * 1000 for p in (50, 99))
    print(f"latency: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print(f"answers: {won} 认领成功, {lost} 已被认领, {len(other)} other {sorted(set(other))[:3]}")
    print(f"database: status {status}, claim_count {claim_count}, claim events in history {claims}")
    if won != 1 or lost != args.people - 1 or claims != 1:
        raise SystemExit("FAILED: expected exactly one claim")


if __name__ == "__main__":
    main()
