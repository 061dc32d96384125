"""Roster import and export at district size: time, statements and peak memory.

For each size (default 5,000 / 20,000 / 50,000 members in 20 communities, 200 branches and 100
grids) it measures what `flask members import` and `flask members export` do, each step in a
process of its own (so the peak RSS is that step's):

    new       import the roster into an empty database
    same      import the same file again (every row unchanged)
    changed   import it with 10 % of the rows changed (role, grid, branch, grid head) and 5 % new
    export    export every member to .xlsx (members_in_subtree + export_members)

Each line: the wall time, the CPU time of this process (not the database server's: on a busy
machine it is the steadier figure), the statements sent, the process's peak RSS.

    .venv/bin/python bench/roster.py --database-url postgresql://postgres@127.0.0.1:5432/scratch
    .venv/bin/python bench/roster.py --database-url sqlite:////tmp/roster.db --sizes 5000,50000

The database is EMPTIED (every table dropped and created again): give it a scratch one.
"""

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import Base  # noqa: E402
from models.roster import COLUMNS, export_members, import_members, members_in_subtree, read_roster  # noqa: E402

STREET = "滨江街道党工委"
COMMUNITIES, BRANCHES, GRIDS = 20, 10, 5  # branches and grids per community
KINDS = ("直管党员", "在职党员", "流动党员", "离退休党员", "群众")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国红梅"


def _branch(c: int, b: int) -> str:
    return f"{STREET}/第{c + 1}社区党委/第{c + 1}社区第{b + 1}党支部"


def roster_rows(size: int, variant: str) -> list[tuple]:
    """The district's roster; variant "changed": 10 % of the rows changed, 5 % more members."""
    rng = random.Random(size)
    rows = []
    extra = size // 20 if variant == "changed" else 0
    for n in range(size + extra):
        c, b = n % COMMUNITIES, (n // COMMUNITIES) % BRANCHES
        grid = f"第{c + 1}社区{(n // 7) % GRIDS + 1}号网格" if n % 4 else ""
        role = "书记" if n % 997 == 0 else ("志愿者" if n % 9 == 0 else "党员")
        kind = "群众" if role == "志愿者" else KINDS[n % 4]
        head = "是" if grid and n % 50 == 1 else "否"
        row = [SURNAMES[n % 20] + GIVEN[(n * 7) % len(GIVEN)] + GIVEN[(n * 13) % len(GIVEN)],
               f"13{n:09d}", _branch(c, b), kind, f"{1960 + n % 60}-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
               f"{1961 + n % 60}-{n % 12 + 1:02d}-{n % 28 + 1:02d}", role, grid, head]
        if variant == "changed" and n < size and rng.random() < 0.10:
            change = rng.randrange(4)
            if change == 0:
                row[6] = "志愿者" if row[6] == "党员" else "党员"
                row[3] = "群众" if row[6] == "志愿者" else "直管党员"
            elif change == 1:
                row[7], row[8] = f"第{c + 1}社区{rng.randrange(GRIDS + 2) + 1}号网格", "否"  # 2 new grids
            elif change == 2:
                row[2] = _branch(c, rng.randrange(BRANCHES + 1))  # now and then a new branch
            else:
                row[8] = "否" if row[8] == "是" or not row[7] else "是"
        rows.append(row)
    return rows


def write_roster(path: Path, size: int, variant: str) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("党员名册")
    sheet.append(COLUMNS)
    for row in roster_rows(size, variant):
        sheet.append(row)
    book.save(path)


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args) -> None:
        self.count += 1


def step(database_url: str, name: str, path: Path) -> dict:
    """Run one step in this process; return its figures."""
    engine = create_engine(database_url)
    if name == "new":
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
    counter = Counter()
    event.listen(Engine, "before_cursor_execute", counter)
    start, cpu = time.perf_counter(), time.process_time()
    with Session(engine) as session:
        if name == "export":
            members = members_in_subtree(session)
            data = export_members(session, members)
            rows = len(members)
            detail = f"{len(data) // 1024} KiB"
        else:
            read_start = time.process_time()
            records = read_roster(path.read_bytes(), path.name)
            read = time.process_time() - read_start
            done = []
            report = import_members(session, records, progress=done.append)
            assert report.ok, report.errors[:5]
            assert sum(done) == report.total, (sum(done), report.total)
            rows = report.total
            detail = f"reading {read:.1f} s CPU; {report.summary()}"
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return {"step": name, "rows": rows, "seconds": round(seconds, 2), "cpu": round(cpu, 2),
            "statements": counter.count,
            "peak_mib": peak, "detail": detail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--steps", default="new,same,changed,export")
    parser.add_argument("--one", nargs=2, metavar=("STEP", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(step(args.database_url, args.one[0], Path(args.one[1]))))
        return
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in map(int, args.sizes.split(",")):
            files = {}
            for variant in ("same", "changed"):
                files[variant] = Path(scratch) / f"roster-{size}-{variant}.xlsx"
                write_roster(files[variant], size, variant)
            for name in args.steps.split(","):
                path = files["changed" if name == "changed" else "same"]
                out = subprocess.run([sys.executable, __file__, "--database-url", args.database_url,
                                      "--one", name, str(path)], capture_output=True, text=True, check=False)
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{name} at {size} failed")
                result = json.loads(out.stdout.splitlines()[-1])
                results[(size, name)] = result
                print(f"{size:>6} {name:<8} {result['seconds']:>7.2f} s ({result['cpu']:>6.2f} s CPU here) "
                      f"{result['statements']:>7} statements "
                      f"{result['peak_mib']:>5} MiB peak  {result['detail']}", flush=True)
    sizes = sorted({size for size, _ in results})
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        for name in args.steps.split(","):
            a, b = results[(low, name)], results[(high, name)]
            print(f"{name:<8} {high}/{low}: time × {b['seconds'] / max(a['seconds'], 0.01):.1f}, "
                  f"statements × {b['statements'] / max(a['statements'], 1):.1f}, "
                  f"peak {a['peak_mib']} → {b['peak_mib']} MiB")


if __name__ == "__main__":
    main()
