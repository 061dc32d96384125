"""Background jobs (models/jobs.py): a large import or export leaves the request (202 and a job to
poll), its progress is visible while it runs, its result is what the request would have answered,
only its asker sees it, a worker killed mid-job leaves nothing and the job is taken up again
without importing twice, and two workers never run the same job."""

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from config import load_config
from models import Member, jobs, now_utc
from models import job_kinds as kinds
from models import roster as roster_module
from models.jobs import Job, claim, enqueue, finish, run_claimed
from scheduler.background import BackgroundWorkers
from tests.conftest import BRANCH, RACE_START_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ("姓名", "手机号", "所属组织", "党员类别", "网格")


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec, co_sec=cast.peer, member=cast.wang, other_sec=cast.zhou)


@pytest.fixture
def big_app(app_factory):
    """An app whose requests keep at most 5 rows: every file of these tests leaves the request."""
    return app_factory(JOB_INLINE_ROWS=5)


@pytest.fixture
def big_client(big_app):
    return big_app.test_client()


def roster(count: int, prefix: str = "1390", org: str = BRANCH, extra=(), grids: bool = True) -> bytes:
    """A CSV roster of `count` new members (phones `prefix` + a number; in 7 grids unless not
    `grids`), then the rows `extra`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for n in range(count):
        writer.writerow((f"队员{n}", f"{prefix}{n:07d}", org, "直管党员", f"网格{n % 7}" if grids else ""))
    for row in extra:
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8-sig")


def upload(client, headers, data: bytes, name: str = "roster.csv"):
    return client.post("/api/v1/admin/members/import", headers=headers,
                       data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def workers(engine, app, **changes) -> BackgroundWorkers:
    settings = app.extensions["settings"].replace(**changes) if changes else app.extensions["settings"]
    return BackgroundWorkers(sessionmaker(engine, expire_on_commit=False), settings, name="test-jobs")


def members_with(engine, prefix: str) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count(Member.id)).where(Member.phone.startswith(prefix)))


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def job_row(engine, job_id: int) -> Job:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(Job, job_id)


class Gate:
    """Holds the worker's first write to members (its import's first batch, reported to the progress
    just before) until opened, so that the test looks at the job while its work is uncommitted."""

    def __init__(self, engine) -> None:
        self.engine, self.reached, self.opened = engine, threading.Event(), threading.Event()

    def _hold(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self.reached.is_set() and statement.lstrip().upper().startswith(("INSERT INTO MEMBERS",
                                                                                 "UPDATE MEMBERS")):
            self.reached.set()
            assert self.opened.wait(RACE_START_TIMEOUT), "the test never opened the gate"

    def __enter__(self) -> "Gate":
        event.listen(self.engine, "before_cursor_execute", self._hold)
        return self

    def __exit__(self, *exc) -> None:
        self.opened.set()
        event.remove(self.engine, "before_cursor_execute", self._hold)


# Leaving the request -------------------------------------------------------------------------------
def test_a_small_import_stays_in_the_request(api_client, as_, engine):
    response = upload(api_client, as_("sec"), roster(5))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 5 and members_with(engine, "1390") == 5
    with Session(engine) as s:
        assert s.scalar(select(func.count(Job.id))) == 0


def test_a_file_is_read_only_as_far_as_the_request_can_carry(big_client, api_login, people, engine, monkeypatch):
    headers = api_login(people["sec"], client=big_client)
    assert upload(big_client, headers, roster(5, "1391")).status_code == 200  # JOB_INLINE_ROWS rows: inline
    read = []
    real = roster_module._records

    def counting(rows, max_rows, max_columns):
        read.append(max_rows)
        return real(rows, max_rows, max_columns)

    monkeypatch.setattr(roster_module, "_records", counting)
    assert upload(big_client, headers, roster(6, "1392")).status_code == 202
    assert read == [5]  # the request read up to 5 rows (one more is too many), not the whole file
    bad = upload(big_client, headers, "姓名,电话\n".encode() + b"a,1\n" * 50)
    assert bad.status_code == 400 and "缺少列" in bad.get_json()["message"]  # a bad file: refused at once
    with Session(engine) as s:
        assert s.scalar(select(func.count(Job.id))) == 1


def test_a_large_import_answers_202_shows_its_progress_and_reports_like_an_inline_one(
        api_client, big_client, big_app, api_login, people, engine, monkeypatch):
    monkeypatch.setattr(roster_module, "IMPORT_BATCH", 10)  # progress is reported a batch at a time
    rows = 40
    headers = api_login(people["sec"], client=big_client)
    response = upload(big_client, headers, roster(rows, grids=False))
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    url = body["url"]
    assert url == f"/api/v1/jobs/{body['job']['id']}" and body["job"]["url"] == url
    assert body["job"]["status"] == "queued" and body["job"]["total"] is None and body["job"]["percent"] == 0
    assert body["job"]["download_url"] is None and not body["message"].isascii()
    assert members_with(engine, "1390") == 0  # nothing imported in the request

    with Gate(engine) as gate:
        worker = threading.Thread(target=workers(engine, big_app).run_one)
        worker.start()
        assert gate.reached.wait(RACE_START_TIMEOUT)
        # Polled while the import's transaction is open: rows done, nothing committed yet.
        running = wait_for(lambda: (lambda j: j if j["status"] == "running" and j["done"] > 0 else None)(
            big_client.get(url, headers=headers).get_json()), what="progress")
        assert 0 < running["done"] <= rows and running["total"] == rows and running["status_text"] == "进行中"
        assert 0 <= running["percent"] < 100 and running["report"] is None and running["attempts"] == 1
        assert members_with(engine, "1390") == 0
        gate.opened.set()
        worker.join(RACE_START_TIMEOUT)
    done = big_client.get(url, headers=headers).get_json()
    assert done["status"] == "done" and done["percent"] == 100 and done["done"] == rows
    assert done["download_url"] is None and done["expires_at"] is not None
    assert members_with(engine, "1390") == rows

    # The same file's twin (other phones) imported in a request answers the same report.
    inline = upload(api_client, api_login(people["sec"]), roster(rows, prefix="1391", grids=False))
    assert inline.status_code == 200
    assert done["report"] == inline.get_json()
    assert done["report"]["created"] == rows and done["report"]["summary"].startswith(f"共 {rows} 行")


def test_a_background_import_with_bad_rows_is_done_with_its_errors_and_writes_nothing(
        big_client, big_app, api_login, people, engine):
    headers = api_login(people["sec"], client=big_client)
    data = roster(10, extra=[("张三", "123", BRANCH, "直管党员", "")])
    url = upload(big_client, headers, data).get_json()["url"]
    workers(engine, big_app).run_all()
    job = big_client.get(url, headers=headers).get_json()
    assert job["status"] == "done" and job["report"]["ok"] is False
    assert [e["row"] for e in job["report"]["errors"]] == [12]
    assert members_with(engine, "1390") == 0


def test_a_background_dry_run_reports_and_writes_nothing(big_client, big_app, api_login, people, engine):
    headers = api_login(people["sec"], client=big_client)
    response = big_client.post("/api/v1/admin/members/import?dry_run=1", headers=headers,
                               data={"file": (io.BytesIO(roster(12)), "roster.csv")},
                               content_type="multipart/form-data")
    assert response.status_code == 202
    workers(engine, big_app).run_all()
    job = big_client.get(response.get_json()["url"], headers=headers).get_json()
    assert job["status"] == "done" and job["report"]["dry_run"] is True and job["report"]["created"] == 12
    assert job["report"]["summary"].endswith("（试运行，未写入）")
    assert members_with(engine, "1390") == 0


def test_an_unreadable_file_fails_the_job_with_the_reason_and_no_retry(big_client, big_app, api_login, people,
                                                                       engine, session):
    sec = session.get(Member, people["sec"].id)
    job = kinds.start_import(session, sec, b"\x00not a roster", "roster.xlsx")
    workers(engine, big_app).run_all()
    body = big_client.get(f"/api/v1/jobs/{job.id}", headers=api_login(people["sec"], client=big_client)).get_json()
    assert body["status"] == "failed" and body["attempts"] == 1 and body["status_text"] == "失败"
    assert body["error"] == "无法读取该 Excel 文件，请确认是 .xlsx 或 .xls 格式。"


EXPORTS = {
    "members": ("/api/v1/admin/members/export?background=1", "名册.xlsx", "姓名"),
    "wishes": ("/api/v1/admin/wishes/export?background=1", "微心愿.xlsx", "编号"),
    "quota": ("/api/v1/admin/reports/quota.xlsx?background=1&year=2026", "2026年度完成情况.xlsx", "姓名"),
    "attendance": ("/api/v1/admin/reports/attendance.xlsx?background=1&from=2026-01-01&to=2026-12-31",
                   "活动出勤汇总-20260101-20261231.xlsx", "编号"),
}


@pytest.mark.parametrize("export", list(EXPORTS))
def test_an_export_job_gives_a_download_that_opens(api_client, as_, api_app, engine, export):
    url, name, first_header = EXPORTS[export]
    response = api_client.get(url, headers=as_("sec"))
    assert response.status_code == 202, response.get_json()
    job_url = response.get_json()["url"]
    assert workers(engine, api_app).run_all() == 1
    job = api_client.get(job_url, headers=as_("sec")).get_json()
    assert job["status"] == "done", job
    assert job["download_url"] == f"{job_url}/file"
    download = api_client.get(job["download_url"], headers=as_("sec"))
    assert download.status_code == 200 and download.mimetype == XLSX
    assert "filename*=UTF-8''" in download.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(download.data), read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    assert first_header in rows[0] or any(first_header in (row or ()) for row in rows)
    if export == "members":  # the secretary's branch: themself, their peer and 王志强, masked as they see it
        names = sorted(row[0] for row in rows[1:])
        assert names == sorted(["李红梅", "钱副书记", "王志强"])
        by_name = {row[0]: row for row in rows[1:]}
        assert by_name["钱副书记"][1] == "138****0009" and by_name["王志强"][1] == "13800000003"
    listed = api_client.get("/api/v1/jobs", headers=as_("sec")).get_json()["items"]
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["label"].startswith("导出")


def test_an_export_larger_than_the_request_leaves_it_unasked(big_client, big_app, api_login, people, engine):
    headers = api_login(people["admin"], client=big_client)  # the street: 5 people > 5? no: 5 rows stay
    small = big_client.get("/api/v1/admin/members/export", headers=headers)
    assert small.status_code == 200 and small.mimetype == XLSX
    upload_headers = api_login(people["sec"], client=big_client)
    upload(big_client, upload_headers, roster(6))
    workers(engine, big_app).run_all()
    large = big_client.get("/api/v1/admin/members/export", headers=headers)
    assert large.status_code == 202 and large.get_json()["job"]["kind"] == "members.export"


def test_only_the_asker_sees_a_job_and_its_file(api_client, as_, api_app, engine):
    job_url = api_client.get(EXPORTS["members"][0], headers=as_("sec")).get_json()["url"]
    workers(engine, api_app).run_all()
    assert api_client.get(f"{job_url}/file", headers=as_("sec")).status_code == 200
    for other in ("co_sec", "admin", "other_sec", "member"):
        for url in (job_url, f"{job_url}/file"):
            response = api_client.get(url, headers=as_(other))
            assert response.status_code == 404, (other, url)
            assert response.get_json()["message"] == "未找到该任务。"
        assert api_client.get("/api/v1/jobs", headers=as_(other)).get_json()["items"] == []
    # A member may not start one at all.
    refused = api_client.get(EXPORTS["members"][0], headers=as_("member"))
    assert refused.status_code == 403 and refused.get_json()["message"] == "只有书记或管理员可以发起后台任务。"


def test_an_import_job_has_no_file_and_an_expired_result_is_gone(big_client, big_app, api_login, people, engine,
                                                                session):
    headers = api_login(people["sec"], client=big_client)
    url = upload(big_client, headers, roster(8)).get_json()["url"]
    workers(engine, big_app).run_all()
    missing = big_client.get(f"{url}/file", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["message"] == "该任务没有可下载的文件。"
    export_url = big_client.get(EXPORTS["members"][0], headers=headers).get_json()["url"]
    workers(engine, big_app).run_all()
    job = job_row(engine, int(export_url.rsplit("/", 1)[1]))
    assert job.expires_at - job.finished_at == timedelta(hours=24)  # JOB_RESULT_HOURS
    assert jobs.purge_expired(session, now=job.expires_at - timedelta(seconds=1)) == 0
    assert jobs.purge_expired(session, now=job.expires_at + timedelta(seconds=1)) == 2
    assert big_client.get(export_url, headers=headers).status_code == 404


# Killed, taken over, raced -------------------------------------------------------------------------
def _worker_process(database_url: str, redis_url: str, log: Path) -> subprocess.Popen:
    """`flask jobs work --once` in a process of its own on the test's database; its output in `log`."""
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY="test-secret",
               JOB_LEASE_SECONDS="2", LOG_LEVEL="WARNING")
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "work", "--once"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_a_killed_worker_s_job_is_taken_up_again_without_importing_twice(
        people, engine, session, database_url, redis_url, is_postgres, tmp_path):
    rows = 3000
    sec = session.get(Member, people["sec"].id)
    # The last row changes 王志强: on PostgreSQL the test holds his row, so the import's write waits.
    data = roster(rows, grids=False, extra=[("王志强", "13800000003", BRANCH, "在职党员", "")])
    job = kinds.start_import(session, sec, data, "roster.csv")
    holder = engine.connect()
    if is_postgres:
        holder.execute(text("SELECT id FROM members WHERE phone = '13800000003' FOR UPDATE"))
    first = _worker_process(database_url, redis_url, tmp_path / "first.log")
    try:
        seen = wait_for(lambda: (lambda j: j if j.status == "running" and j.done > 0 else None)(
            job_row(engine, job.id)), timeout=300, what="the first worker's progress")
        if not is_postgres:
            os.kill(first.pid, signal.SIGSTOP)  # SQLite: frozen where it is, before its commit
        frozen = job_row(engine, job.id)
        assert frozen.status == "running" and frozen.attempts == 1, "the first worker finished too soon"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        holder.rollback()
        holder.close()
        if first.poll() is None:
            first.kill()
    assert 0 < seen.done <= rows + 1 and seen.locked_by.startswith("cli-")
    assert members_with(engine, "1390") == 0  # the killed attempt left nothing

    wait_for(lambda: job_row(engine, job.id).lease_until < now_utc(), timeout=30, what="the lease to run out")
    second = _worker_process(database_url, redis_url, tmp_path / "second.log")
    second.wait(300)
    output = (tmp_path / "second.log").read_text()
    assert second.returncode == 0 and "已完成 1 个后台任务" in output, output
    done = job_row(engine, job.id)
    assert (done.status, done.attempts, done.done) == ("done", 2, rows + 1)
    assert done.locked_by != seen.locked_by
    report = kinds.import_report(session, done)
    assert (report.created, report.updated, report.unchanged) == (rows, 1, 0)
    assert members_with(engine, "1390") == rows
    session.expire_all()
    assert session.get(Member, people["member"].id).kind == "在职党员"


def test_a_worker_whose_job_was_taken_over_cannot_finish_it(people, engine, session, api_app):
    sec = session.get(Member, people["sec"].id)
    job = kinds.start_import(session, sec, roster(10), "roster.csv")
    settings = api_app.extensions["settings"]
    old = claim(session, "old-worker", now=now_utc() - timedelta(hours=1), settings=settings)
    new = claim(session, "new-worker", settings=settings)  # the old lease ran out
    assert (old.id, new.id, new.attempts) == (job.id, job.id, 2)
    assert run_claimed(engine, old, "old-worker", kinds.work, settings) == "lost"
    assert members_with(engine, "1390") == 0
    with Session(engine) as s:
        assert not finish(s, jobs.Token(job.id, "old-worker", 1), jobs.Output(b"", None, "application/json"))
    assert run_claimed(engine, new, "new-worker", kinds.work, settings) == "done"
    assert members_with(engine, "1390") == 10
    assert claim(session, "late-worker", now=now_utc() + timedelta(days=1), settings=settings) is None


def test_a_job_whose_workers_keep_dying_is_given_up(session, api_app):
    settings = api_app.extensions["settings"].replace(JOB_MAX_ATTEMPTS=2)
    job = enqueue(session, kinds.MEMBERS_EXPORT)
    start = now_utc()
    for attempt in (1, 2):  # each worker dies (never finishes); its lease runs out
        taken = claim(session, f"w{attempt}", now=start + timedelta(hours=attempt), settings=settings)
        assert taken.id == job.id and taken.attempts == attempt
    assert claim(session, "w3", now=start + timedelta(hours=3), settings=settings) is None
    session.expire_all()
    failed = session.get(Job, job.id)
    assert failed.status == "failed" and failed.error == jobs.GAVE_UP


def test_two_workers_racing_for_one_job_one_runs_it(race_engine, session):
    job = enqueue(session, kinds.MEMBERS_EXPORT)
    barrier = threading.Barrier(2, timeout=RACE_START_TIMEOUT)
    got = {}

    def race(name):
        with Session(race_engine, expire_on_commit=False) as s:
            barrier.wait()
            got[name] = claim(s, name)

    threads = [threading.Thread(target=race, args=(f"w{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, claimed in got.items() if claimed is not None]
    assert len(got) == 2 and len(winners) == 1 and got[winners[0]].id == job.id
    session.expire_all()
    assert session.get(Job, job.id).locked_by == winners[0]


def test_many_workers_never_take_the_same_job(race_engine, session):
    for _ in range(30):
        enqueue(session, kinds.MEMBERS_EXPORT)
    barrier = threading.Barrier(8, timeout=RACE_START_TIMEOUT)
    taken: dict[str, list[int]] = {}

    def work(name):
        mine = taken.setdefault(name, [])
        with Session(race_engine, expire_on_commit=False) as s:
            barrier.wait()
            while (job := claim(s, name)) is not None:
                mine.append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [job_id for mine in taken.values() for job_id in mine]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 30


# The scheduler and the CLI -------------------------------------------------------------------------
def test_the_scheduler_hands_queued_jobs_to_its_workers(make_scheduler, session, people, engine):
    service = make_scheduler(JOB_WORKERS=2)
    assert "background" in [job.id for job in service.jobs]
    sec = session.get(Member, people["sec"].id)
    job = kinds.start(session, sec, kinds.MEMBERS_EXPORT, sec.org, action="member.export")
    assert service._background(now_utc(), now_utc()).startswith("2 job threads looking")
    wait_for(lambda: job_row(engine, job.id).status == "done", what="the job")
    service.background.shutdown()


def test_cli_runs_and_lists_jobs(app, session, people):
    sec = session.get(Member, people["sec"].id)
    kinds.start_import(session, sec, roster(3), "roster.csv")
    # A queued import does not know its rows yet: the worker counts them when it reads the file.
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["jobs", "list"])
    assert "导入名册 排队中 0%（0 行，第 0 次） 李红梅" in listed.output
    result = runner.invoke(args=["jobs", "work", "--once"])
    assert result.exit_code == 0 and "已完成 1 个后台任务" in result.output
    assert "导入名册 已完成 100%（3/3 行，第 1 次）" in runner.invoke(args=["jobs", "list"]).output


def test_cli_import_job_of_the_operator_imports_the_whole_tree(app, session):
    job = enqueue(session, kinds.IMPORT, payload=roster(4), params={"filename": "r.csv"})
    assert app.test_cli_runner().invoke(args=["jobs", "work", "--once"]).exit_code == 0
    session.expire_all()
    assert session.get(Job, job.id).status == "done"
    assert kinds.import_report(session, session.get(Job, job.id)).created == 4


def test_settings_of_jobs_have_their_defaults():
    settings = load_config()
    assert (settings.job_inline_rows, settings.job_result_hours, settings.job_max_attempts) == (2000, 24, 3)
