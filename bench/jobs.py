"""Background jobs: what a large import costs the request that queues it, what a claim costs with a
backlog of queued jobs, and what running an import as a job (progress thread, lease, the finish in
the import's transaction) adds to the import itself.

    .venv/bin/python bench/jobs.py --database-url postgresql://postgres@127.0.0.1:5432/bench \
        --rows 50000 --backlog 20000 --job-rows 5000

DROPS AND RECREATES every table of the given database: point it at a scratch database.
"""

import argparse
import csv
import io
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import load_config  # noqa: E402
from models import Base, Member, directory  # noqa: E402
from models import job_kinds as kinds  # noqa: E402
from models.jobs import QUEUED, Job, claim, run_claimed  # noqa: E402
from models.org import ensure_org_path  # noqa: E402

BRANCH = "基准街道党工委/基准社区党委/基准第一党支部"


def roster(rows: int, prefix: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("姓名", "手机号", "所属组织", "党员类别"))
    for n in range(rows):
        writer.writerow((f"队员{n}", f"{prefix}{n:07d}", BRANCH, "直管党员"))
    return buffer.getvalue().encode("utf-8-sig")


class Counter:
    def __init__(self, engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args) -> None:
        self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the file a request queues")
    parser.add_argument("--backlog", type=int, default=20_000, help="queued jobs when claiming")
    parser.add_argument("--job-rows", type=int, default=5_000, help="rows of the import run both ways")
    args = parser.parse_args()
    settings = load_config({"DATABASE_URL": args.database_url})
    engine = create_engine(args.database_url, pool_size=10)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    counter = Counter(engine)
    with Session(engine, expire_on_commit=False) as s:
        org = ensure_org_path(s, BRANCH)
        sec = Member(name="书记", phone="13700000000", org_id=org.id, role="书记", kind="直管党员")
        s.add(sec)
        s.commit()

        # 1. The request: count the file's rows (the import's own reader), queue the job.
        data = roster(args.rows, "1390")
        started = time.perf_counter()
        assert kinds.import_too_big(sec, data, "r.csv", settings)
        job = kinds.start_import(s, sec, data, "r.csv")
        print(f"queue a {args.rows:,}-row import ({len(data) / 1e6:.1f} MB csv): "
              f"{time.perf_counter() - started:.2f} s in the request")
        s.query(Job).delete()
        s.commit()

        # 2. Claims with a backlog.
        s.execute(insert(Job), [{"kind": kinds.MEMBERS_EXPORT, "params": {}, "status": QUEUED, "done": 0,
                                 "attempts": 0} for _ in range(args.backlog)])
        s.commit()
        if engine.dialect.name == "postgresql":
            s.execute(text("ANALYZE jobs"))  # what autovacuum does to a table grown like this
            s.commit()
        commits = []
        for _ in range(100):  # the floor: an empty write transaction on this server
            started = time.perf_counter()
            s.execute(text("UPDATE jobs SET done = 0 WHERE id = 1"))
            s.commit()
            commits.append(time.perf_counter() - started)
        commits.sort()
        times = []
        before = counter.count
        for n in range(100):
            started = time.perf_counter()
            claim(s, f"bench-{n}", settings=settings)
            times.append(time.perf_counter() - started)
        times.sort()
        print(f"claim with {args.backlog:,} queued: median {times[50] * 1000:.1f} ms, "
              f"p95 {times[95] * 1000:.1f} ms, {(counter.count - before) / 100:.0f} statements, 2 commits each "
              f"(one UPDATE and its commit: median {commits[50] * 1000:.1f} ms)")
        s.query(Job).delete()
        s.commit()

    # 3. The same import directly and as a job.
    with Session(engine, expire_on_commit=False) as s:
        started = time.perf_counter()
        directory.import_roster(s, s.get(Member, sec.id), roster(args.job_rows, "1391"), "r.csv", settings=settings)
        direct = time.perf_counter() - started
    with Session(engine, expire_on_commit=False) as s:
        sec = s.get(Member, sec.id)
        job = kinds.start_import(s, sec, roster(args.job_rows, "1392"), "r.csv", rows=args.job_rows)
        started = time.perf_counter()
        taken = claim(s, "bench", settings=settings)
        status = run_claimed(engine, taken, "bench", kinds.work, settings)
        as_job = time.perf_counter() - started
        s.expire_all()
        done = s.get(Job, job.id)
    print(f"import of {args.job_rows:,} rows: {direct:.2f} s directly, {as_job:.2f} s as a job ({status}, "
          f"{done.done:,}/{done.total:,} rows)")
    engine.dispose()


if __name__ == "__main__":
    main()
