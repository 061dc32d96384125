"""District scale (issue 15): a district of N members with a year of activity, every row of the issue's table.

    .venv/bin/python bench/district.py [--sizes 5000,20000,50000] [--database-url URL] [--redis-url URL]

For each size it builds a fresh district (bench/district_data.py: 20 communities, ~N/250 branches,
a year of activities with ≈10 check-ins per member, wishes in every state, notices with outbox rows,
WeChat bindings) and measures, as a user would, through the Flask app (test client) or a real
gunicorn, each in a process of its own (bench/district_probe.py) so that its peak RSS is its own:

- roster import via the CLI (`flask members import FILE`, a generated .xlsx of the whole district)
  into an empty database, and the re-import of the same file;
- roster import through the API (POST as the street's 管理员 to gunicorn, sync workers, its
  timeout: --gunicorn-timeout; the status is noted, and how many members the database then holds);
- quota report of one branch (API), period attendance .xlsx of the whole year and quota .xlsx of
  the street (API, the street's 管理员), wishes and members exports (API, with the peak RSS);
- chatbot `通知` to the whole street (a signed webhook POST as the street's 书记: the reply time;
  a reply later than WECHAT_REPLY_DEADLINE comes back empty and is marked "late");
- notice receipt of that notice (API), the outbox sender's claim of 100 rows among the pending
  ones, the activity list of a member and the wishes page (API).

Time is the wall clock, the median of 5 runs for what takes under a second, of 3 under 3 s, else
one run; beside it the CPU time of the app's process (not the database's), steadier on a busy
machine. Statements are counted with a `before_cursor_execute` listener (those of a background
job's worker included). An answer 202 (the work went to a background job) is followed until the job
is done and its result downloaded, a worker (`flask jobs work --once`, or --job-worker) running it
meanwhile. A measuring process still busy after --row-timeout seconds (default 300) is stopped and
its row shows "> 300 s". Per-branch and per-page rows whose 50k/5k ratio passes 1.5 are marked ✗.

The URL names a PostgreSQL server and a database to connect to (default BENCH_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test_district); the district databases are made beside it,
named bench_district_<size> and bench_district_import (--db-prefix), and dropped at the end (--keep
keeps them).
Redis: --redis-url (default BENCH_REDIS_URL, else redis://127.0.0.1:6379/9), flushed for each size.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.district_data import LOGIN_PREFIX, build, create_schema, write_roster  # noqa: E402

PROBE = str(ROOT / "bench" / "district_probe.py")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test_district"


@dataclass
class Row:
    what: str
    scoped: bool = False  # per branch or per page: should not grow with the district
    time: dict[int, float | None] = field(default_factory=dict)
    cpu: dict[int, float | None] = field(default_factory=dict)  # of the app's process (not the database's)
    statements: dict[int, int | None] = field(default_factory=dict)
    rss: dict[int, float | None] = field(default_factory=dict)
    over: dict[int, float] = field(default_factory=dict)  # stopped after this many seconds
    notes: dict[int, str] = field(default_factory=dict)


ROWS = {key: Row(what, scoped) for key, what, scoped in (
    ("cli_import", "roster import (CLI), empty db", False),
    ("cli_reimport", "roster re-import (CLI), same file", False),
    ("api_import", "roster import through the API (gunicorn)", False),
    ("quota_branch", "quota report, one branch (API)", True),
    ("period_xlsx", "period attendance .xlsx, whole year (API)", False),
    ("quota_xlsx", "quota .xlsx, street (API)", False),
    ("wishes_export", "wishes export (API)", False),
    ("members_export", "members export (API)", False),
    ("notify", "chatbot 通知 to the whole street (reply)", False),
    ("receipt", "notice receipt (API)", True),
    ("claim", "outbox claim of 100 rows", True),
    ("activities", "activity list for a member (API)", True),
    ("wishes_page", "wishes page (API)", True),
)}


# Databases -------------------------------------------------------------------------------------
class Server:
    """The PostgreSQL server of --database-url: databases made and dropped beside the given one."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() != "postgresql":
            raise SystemExit("bench/district.py needs PostgreSQL: --database-url postgresql://…")
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.made: set[str] = set()

    def fresh(self, name: str) -> str:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.made.add(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in sorted(self.made):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.made.clear()

    def version(self) -> str:
        with self.admin.connect() as conn:
            return conn.scalar(text("SELECT version()")).split(" on ")[0]


def scalar(url: str, sql: str, **params):
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return result.scalar() if result.returns_rows else result.rowcount
    finally:
        engine.dispose()


# Children --------------------------------------------------------------------------------------
def child_env(url: str, redis_url: str, **extra) -> dict:
    return dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_url, SECRET_KEY="bench", LOG_LEVEL="WARNING",
                WECHAT_TOKEN="benchtoken", WECHAT_AES_KEY="", **extra)


def run_child(command: list[str], env: dict, timeout: float) -> tuple[int | None, str, str]:
    """Run a child (in a session of its own, so that a job worker it starts goes with it); kill it
    after `timeout` seconds (returncode None)."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return process.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        return None, stdout, stderr


def run_cli(work: Path, url: str, redis_url: str, *args: str, timeout: float) -> dict:
    """A flask command in a process of its own: wall time, statements, peak RSS, its last line."""
    out = work / f"cli-{time.monotonic_ns()}.json"
    started = time.perf_counter()
    code, stdout, stderr = run_child([sys.executable, PROBE, "cli", str(out), "--", *args],
                                     child_env(url, redis_url), timeout)
    if code is None:
        return {"wall": None, "over": timeout, "exit": None, "last": f"stopped after {timeout:.0f} s"}
    wall = time.perf_counter() - started
    result = json.loads(out.read_text()) if out.exists() else {}
    lines = [line for line in stdout.splitlines() if line.strip()]
    result.update(wall=wall, exit=code, last=lines[-1] if lines else stderr.strip()[-300:])
    return result


def run_api(work: Path, url: str, redis_url: str, tasks: list[dict], args) -> dict:
    """Measure `tasks` in a probe process; what it finished within --row-timeout (it writes its
    results after each task), `stopped` naming the time when it was killed."""
    spec = work / f"spec-{time.monotonic_ns()}.json"
    out = spec.with_suffix(".out.json")
    spec.write_text(json.dumps({"database_url": url, "redis_url": redis_url, "tasks": tasks,
                                "job_timeout": args.job_timeout,
                                "job_worker": args.job_worker.split() if args.job_worker else None},
                               ensure_ascii=False))
    code, _stdout, stderr = run_child([sys.executable, PROBE, "api", str(spec), str(out)],
                                      child_env(url, redis_url), args.row_timeout)
    results = json.loads(out.read_text()) if out.exists() else {}
    if code is None:
        results["stopped"] = args.row_timeout
    elif code != 0:
        print(f"  probe failed ({code}): {stderr.strip()[-1500:]}", file=sys.stderr)
    return results


# gunicorn --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(url: str, redis_url: str, fake_base: str, args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = child_env(url, redis_url, WECHAT_API_BASE=fake_base, WECHAT_APP_ID="wxbench", WECHAT_APP_SECRET="bench",
                    MINIAPP_APP_ID="wxbenchmini", MINIAPP_APP_SECRET="bench",
                    API_LOGIN_RATE_LIMIT="100000 per minute")
    command = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(args.workers), "-k", "sync",
               "--timeout", str(args.gunicorn_timeout), "-b", f"127.0.0.1:{port}", "--log-level", "error",
               "app:create_app()"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=2).ok:
                return process, base
        except requests.RequestException:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not start")


def api_import(work: Path, server: Server, roster: Path, street_rows: Path, redis_url: str, fake_base: str,
               args) -> dict:
    """POST the whole district's roster as the street's 管理员 to a gunicorn; follow a 202's job."""
    url = server.fresh(f"{args.db_prefix}_import")
    create_schema(url)
    seed_managers(url, street_rows)
    process, base = start_gunicorn(url, redis_url, fake_base, args)
    http = requests.Session()
    worker = None
    try:
        token = http.post(f"{base}/api/v1/auth/login", json={"code": "bench-admin"}, timeout=30).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            answer = http.post(f"{base}/api/v1/admin/members/import",
                               files={"file": (roster.name, roster.read_bytes(), XLSX)}, timeout=args.row_timeout)
            status, note = answer.status_code, ""
        except requests.RequestException as exc:
            answer, status, note = None, None, f"no answer ({type(exc).__name__})"
        result: dict = {"statements": None}
        if answer is not None and answer.status_code == 202:
            worker, state = follow_http_job(http, base, answer, work, url, redis_url, fake_base, args)
            report = state.get("report") if isinstance(state.get("report"), dict) else {}
            note = f"202 → job {state.get('status')}" + (f" ({report.get('created')} created)" if report else "")
            if worker:
                result["statements"] = worker.get("statements")
        seconds = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
    members = scalar(url, "SELECT count(*) FROM members")
    if status is not None and not note:
        note = f"HTTP {status}"
    result.update(seconds=seconds, note=f"{note}; {members:,} members in the db")
    return result


def seed_managers(url: str, street_rows: Path) -> None:
    """The street's 书记 and 管理员, imported as their roster rows say (so that the whole roster's
    import leaves them unchanged), the 管理员 able to log in to the mini-program."""
    from sqlalchemy.orm import Session

    from models.roster import import_members, read_roster

    engine = create_engine(url)
    with Session(engine) as session:
        report = import_members(session, read_roster(street_rows.read_bytes(), street_rows.name))
        if not report.ok:
            raise SystemExit(f"seeding the street's managers failed: {report.summary()}")
    engine.dispose()
    scalar(url, "UPDATE members SET miniapp_openid = :openid WHERE role = '管理员'",
           openid=LOGIN_PREFIX + "bench-admin")


def follow_http_job(http, base: str, answer, work: Path, url: str, redis_url: str, fake_base: str, args):
    """Poll a background job over HTTP while `flask jobs work --once` runs it (again when it exits)."""
    body = answer.json()
    job = body.get("job") if isinstance(body.get("job"), dict) else body
    path = body.get("url") or answer.headers.get("Location") or f"/api/v1/jobs/{job.get('id')}"
    command = args.job_worker.split() if args.job_worker else ["jobs", "work", "--once"]
    env = child_env(url, redis_url, WECHAT_API_BASE=fake_base)
    deadline, worker, stats, state = time.monotonic() + args.job_timeout, None, [], {}

    def collect(process) -> None:
        if process is not None and Path(process.out).exists():
            stats.append(json.loads(Path(process.out).read_text()))
            Path(process.out).unlink()

    while time.monotonic() < deadline:
        state = http.get(base + path, timeout=30).json()
        state = state.get("job") if isinstance(state.get("job"), dict) else state
        if str(state.get("status", "")).lower() in ("done", "failed", "succeeded", "finished", "error"):
            break
        if worker is None or worker.poll() is not None:
            collect(worker)
            if worker is not None and (worker.returncode != 0 or len(stats) >= 20):
                state = {**state, "status": f"not run (the job worker exited {worker.returncode})"}
                break
            out = work / f"worker-{time.monotonic_ns()}.json"
            worker = subprocess.Popen([sys.executable, PROBE, "cli", str(out), "--", *command], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            worker.out = out
        time.sleep(0.1)
    if worker is not None:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.terminate()
            worker.wait()
        collect(worker)
    total = {"statements": sum(s.get("statements", 0) for s in stats)} if stats else None
    return total, state


# One size --------------------------------------------------------------------------------------
def api_tasks(meta: dict) -> dict[str, list[dict]]:
    """The API and chatbot rows, grouped by the process that measures them (exports alone: their RSS)."""
    year = meta["year"]
    return {
        "period_xlsx": [{"name": "period_xlsx", "kind": "get", "as": "admin",
                         "path": "/api/v1/admin/reports/attendance.xlsx",
                         "query": {"from": f"{year}-01-01", "to": f"{year}-12-31"}}],
        "quota_xlsx": [{"name": "quota_xlsx", "kind": "get", "as": "admin", "path": "/api/v1/admin/reports/quota.xlsx",
                        "query": {"year": year}}],
        "wishes_export": [{"name": "wishes_export", "kind": "get", "as": "admin",
                           "path": "/api/v1/admin/wishes/export"}],
        "members_export": [{"name": "members_export", "kind": "get", "as": "admin",
                            "path": "/api/v1/admin/members/export"}],
        "rest": [
            {"name": "quota_branch", "kind": "get", "as": "branch_secretary", "path": "/api/v1/admin/reports/quota",
             "query": {"org": meta["branch_id"], "year": year}},
            {"name": "activities", "kind": "get", "as": "member", "path": "/api/v1/activities"},
            {"name": "wishes_page", "kind": "get", "as": "member", "path": "/api/v1/wishes"},
            {"name": "notify", "kind": "webhook", "repeat": 0, "openid": meta["street_secretary_openid"],
             "text": "通知 各位党员：本周六上午九点在党群服务中心开展主题党日活动，请准时参加。"},
            {"name": "receipt", "kind": "receipt", "as": "street_secretary"},
            {"name": "claim", "kind": "claim", "repeat": 6},
        ],
    }


def note_for(key: str, r: dict) -> str:
    parts = []
    if r.get("status") not in (None, 200):
        parts.append(f"HTTP {r['status']}" + (f" → job {r['job']}" if r.get("job") else ""))
    if r.get("error"):
        parts.append(r["error"][:80].replace("\n", " "))
    if key == "quota_branch":
        parts.append(f"{r.get('total')} rows")
    if key in ("activities", "wishes_page"):
        parts.append(f"{r.get('items')} of {r.get('total')}")
    if key == "notify":
        parts.append("LATE: reply missed the deadline" if r.get("late") else r.get("reply", "").split("\n")[0][:60])
    if key == "receipt":
        parts.append(f"{r.get('bytes', 0) / 1024:.0f} KiB")
    if key == "claim":
        parts.append(f"{r.get('claimed')} claimed of {r.get('pending'):,} pending")
    if key.endswith(("_xlsx", "_export")) and r.get("bytes"):
        parts.append(f"{r['bytes'] / 1024:.0f} KiB")
    return "; ".join(p for p in parts if p)


def measure_api(size: int, meta: dict, url: str, work: Path, redis_url: str, args) -> None:
    """The API and chatbot rows, each group of tasks in a probe process."""
    for group, tasks in api_tasks(meta).items():
        tasks = [t for t in tasks if t["name"] in args.only]
        if not tasks:
            continue
        results = run_api(work, url, redis_url, tasks, args)
        for task in tasks:
            r = results.get(task["name"])
            row = ROWS[task["name"]]
            if r is None:
                if results.get("stopped"):
                    row.over[size] = results["stopped"]
                row.notes[size] = f"stopped after {results['stopped']:.0f} s" if results.get("stopped") else "failed"
                print(f"  {row.what}: {row.notes[size]}", flush=True)
                continue
            row.time[size], row.statements[size], row.cpu[size] = r["seconds"], r.get("statements"), r.get("cpu")
            if group != "rest":
                row.rss[size] = max(results.get("peak_rss_mib", 0), r.get("worker_peak_rss_mib", 0))
            row.notes[size] = note_for(task["name"], r)
            print(f"  {row.what}: {r['seconds']:.3f} s (CPU {r.get('cpu', 0):.3f} s), {r.get('statements')} "
                  f"statements  {row.notes[size]}", flush=True)


def measure_cli_imports(size: int, server: Server, work: Path, roster: Path, redis_url: str, args) -> None:
    """`flask members import` of the whole roster into an empty database, then again (unchanged)."""
    imports = server.fresh(f"{args.db_prefix}_import")
    create_schema(imports)
    for key, label in (("cli_import", "新增"), ("cli_reimport", "无变化")):
        row = ROWS[key]
        if key not in args.only:
            continue
        if key == "cli_reimport" and size in ROWS["cli_import"].over:
            row.notes[size] = "not run: the import was stopped"
            continue
        r = run_cli(work, imports, redis_url, "members", "import", str(roster), timeout=args.row_timeout)
        if r.get("over"):
            row.over[size], row.notes[size] = r["over"], r["last"]
            print(f"  {row.what}: {r['last']}", flush=True)
            continue
        row.time[size], row.statements[size], row.rss[size] = r["wall"], r.get("statements"), r.get("peak_rss_mib")
        row.cpu[size] = r.get("cpu")
        row.notes[size] = ("" if r["exit"] == 0 and label in r["last"] else f"exit {r['exit']}: ") + \
            f"command {r.get('seconds', 0):.1f} s of it; " + r["last"][-60:]
        print(f"  {row.what}: {r['wall']:.1f} s (CPU {r.get('cpu', 0):.1f} s), {r.get('statements')} statements  "
              f"{row.notes[size]}", flush=True)


def measure_size(size: int, server: Server, work: Path, redis_url: str, fake_base: str, args) -> None:
    print(f"\n== {size:,} members", flush=True)
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    store.close()
    url = server.fresh(f"{args.db_prefix}_{size}")
    meta, roster_rows = build(url, size, args.seed)
    counts = meta["counts"]
    print(f"  built in {meta['build_seconds']:.1f} s: {counts['organizations']} organizations, "
          f"{counts['grids']} grids, {counts['members']:,} members, {counts['activities']:,} activities, "
          f"{counts['activity_checkins']:,} check-ins, {counts['wishes']:,} wishes, {counts['outbox']:,} outbox rows; "
          f"branch of the quota report: {meta['branch_members']} members", flush=True)
    roster, street_rows = work / f"roster-{size}.xlsx", work / "street.xlsx"
    write_roster(str(roster), roster_rows)
    write_roster(str(street_rows), [r for r in roster_rows if r[2].count("/") == 0])
    print(f"  roster file {roster.stat().st_size / 1024:.0f} KiB", flush=True)

    measure_api(size, meta, url, work, redis_url, args)
    if not args.keep:
        server.drop_all()

    if not {"cli_import", "cli_reimport", "api_import"} & args.only:
        return
    measure_cli_imports(size, server, work, roster, redis_url, args)
    if "api_import" not in args.only:
        return
    r = api_import(work, server, roster, street_rows, redis_url, fake_base, args)
    row = ROWS["api_import"]
    row.time[size], row.statements[size], row.notes[size] = r.get("seconds"), r.get("statements"), r["note"]
    print(f"  {row.what}: {r.get('seconds', 0):.1f} s  {r['note']}", flush=True)
    if not args.keep:
        server.drop_all()


# The table -------------------------------------------------------------------------------------
def shown_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def ratio(values: dict, sizes: list[int], scoped: bool) -> str:
    first, last = values.get(sizes[0]), values.get(sizes[-1])
    if not first or last is None or len(sizes) < 2:
        return "–"
    factor = last / first
    return f"{factor:.1f}×" + (" ✗" if scoped and factor > 1.5 else "")


def print_table(sizes: list[int]) -> None:
    names = [f"{s // 1000}k" if s % 1000 == 0 else f"{s:,}" for s in sizes]
    head = f"{names[-1]}/{names[0]}"
    print(f"\n| what | | {' | '.join(names)} | {head} | notes ({names[-1]}) |")
    print(f"|---|---|{'---|' * len(sizes)}---|---|")
    for key, row in ROWS.items():
        if not (row.time or row.over or row.notes) and key:
            continue
        mark = " (per branch/page)" if row.scoped else ""
        times = {s: f"> {row.over[s]:.0f} s" if s in row.over else shown_time(row.time.get(s)) for s in sizes}
        lines = [("time", times, ratio(row.time, sizes, row.scoped))]
        if any(row.cpu.get(s) is not None for s in sizes):
            lines.append(("CPU (app)", {s: shown_time(row.cpu.get(s)) for s in sizes},
                          ratio(row.cpu, sizes, row.scoped)))
        if any(row.statements.get(s) is not None for s in sizes):
            lines.append(("statements", {s: "–" if row.statements.get(s) is None else f"{row.statements[s]:,}"
                                         for s in sizes}, ratio(row.statements, sizes, row.scoped)))
        if any(row.rss.get(s) for s in sizes):
            lines.append(("peak RSS", {s: f"{row.rss[s]:.0f} MiB" if row.rss.get(s) else "–" for s in sizes},
                          ratio(row.rss, sizes, False)))
        for n, (metric, cells, factor) in enumerate(lines):
            what = row.what + mark if n == 0 else ""
            note = row.notes.get(sizes[-1], "") if n == 0 else ""
            print(f"| {what} | {metric} | {' | '.join(cells[s] for s in sizes)} | {factor} | {note} |")
    print("\n✗: a per-branch or per-page figure more than 1.5× from the smallest to the largest district.")
    print("time: wall clock (median of 5 under 1 s, of 3 under 3 s); CLI rows: the whole `flask` process. "
          "CPU (app): the app process's CPU time for the same (not the database's): steadier than the wall "
          "clock on a loaded machine. Statements of the CLI and of a background job's worker are those of "
          "its process; peak RSS is the measuring process's (a background job's worker when there is one).")


def machine() -> str:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores {model}; {platform.system()} {platform.release()}; load {load}"


def git_commit() -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()[:90]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000,50000", help="members of each district, comma-separated")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers for the API import")
    parser.add_argument("--gunicorn-timeout", type=int, default=10, help="gunicorn's worker timeout (seconds)")
    parser.add_argument("--job-worker", default="",
                        help="the flask command that runs background jobs (default: jobs work --once)")
    parser.add_argument("--job-timeout", type=float, default=None,
                        help="longest wait for a background job (seconds; default: --row-timeout)")
    parser.add_argument("--row-timeout", type=float, default=300,
                        help="stop a measuring process (a CLI import, an API probe) after this many seconds")
    parser.add_argument("--only", default="", metavar="ROW,…",
                        help=f"measure only these rows: {', '.join(ROWS)} (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the district databases")
    parser.add_argument("--db-prefix", default="bench_district",
                        help="names of the databases made: PREFIX_<size>, PREFIX_import")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.job_timeout = args.job_timeout or args.row_timeout
    args.only = set(args.only.split(",")) - {""} or set(ROWS)
    if args.only - set(ROWS):
        parser.error(f"unknown rows: {', '.join(sorted(args.only - set(ROWS)))}")

    from app.fake_wechat import FakeWeChat

    server = Server(args.database_url)
    started = time.perf_counter()
    print(f"bench/district.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {git_commit()}")
    print(f"machine: {machine()}")
    print(f"database: {server.version()} (defaults), Redis {args.redis_url}; sizes {', '.join(map(str, sizes))}")
    work = Path(tempfile.mkdtemp(prefix="lianxin-district-"))
    fake = FakeWeChat(local=True).start()
    try:
        for size in sizes:
            measure_size(size, server, work, args.redis_url, fake.base_url, args)
    finally:
        fake.stop()
        if not args.keep:
            server.drop_all()
        shutil.rmtree(work, ignore_errors=True)
    print_table(sizes)
    print(f"\nrun took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
