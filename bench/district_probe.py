"""The measuring child of bench/district.py: one process per measured thing, so that its peak RSS is its own.

    python bench/district_probe.py api SPEC.json OUT.json      the API and chatbot rows (Flask test client)
    python bench/district_probe.py cli OUT.json -- ARGS...     a `flask --app app ARGS...` command

Both count the SQL statements run (a `before_cursor_execute` listener on every engine) and record
the process's peak RSS (`resource.getrusage`). An API answer of 202 (the work became a background
job) is followed to the end: the job is polled at the URL the answer gives (`/api/v1/jobs/<id>`)
while a job worker (`flask jobs work --once`, itself run under this probe) takes it, and its result
is downloaded; the worker's statements and RSS are reported with the row.
"""

import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

TOKEN = "benchtoken"
JOB_DONE = {"done", "succeeded", "success", "finished", "completed"}
JOB_FAILED = {"failed", "error", "cancelled", "expired"}
MAX_WORKER_RUNS = 20  # `jobs work --once` runs started for one job before giving up


class Counter:
    """SQL statements run in this process (every engine)."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._record)

    def _record(self, *_args) -> None:
        self.count += 1


def _status(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS (MiB). VmHWM, not getrusage's ru_maxrss: on Linux a child inherits
    its parent's ru_maxrss at fork, so the builder's memory would show as the child's."""
    peak = _status("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    return _status("VmRSS") or 0.0


# A flask command --------------------------------------------------------------------------------
def run_cli(out: str, args: list[str]) -> None:
    counter = Counter()
    os.chdir(ROOT)
    sys.argv = ["flask", "--app", "app", *args]
    from flask.cli import main

    started, cpu = time.perf_counter(), time.process_time()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        Path(out).write_text(json.dumps({"seconds": time.perf_counter() - started, "statements": counter.count,
                                         "cpu": time.process_time() - cpu,
                                         "peak_rss_mib": peak_rss_mib(), "exit": code}))
    sys.exit(code)


# The API ----------------------------------------------------------------------------------------
class Probe:
    def __init__(self, spec: dict) -> None:
        from app.fake_wechat import FakeWeChat

        self.spec = spec
        self.fake = FakeWeChat(local=True).start()
        from app import create_app

        self.app = create_app({
            "DATABASE_URL": spec["database_url"], "REDIS_URL": spec["redis_url"], "SECRET_KEY": "bench",
            "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": "wxbench", "WECHAT_APP_SECRET": "bench", "WECHAT_AES_KEY": "",
            "WECHAT_API_BASE": self.fake.base_url, "MINIAPP_APP_ID": "wxbenchmini", "MINIAPP_APP_SECRET": "bench",
            "API_LOGIN_RATE_LIMIT": "100000 per minute", "LOG_LEVEL": "WARNING",
        })
        self.client = self.app.test_client()
        self.engine = create_engine(spec["database_url"])
        self.tokens: dict[str, dict] = {}
        self.counter = Counter()
        self.worker_stats: list[dict] = []

    def headers(self, who: str) -> dict:
        if who not in self.tokens:
            answer = self.client.post("/api/v1/auth/login", json={"code": f"bench-{who}"})
            if answer.status_code != 200:
                raise SystemExit(f"login as {who} failed: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
            self.tokens[who] = {"Authorization": f"Bearer {answer.get_json()['token']}"}
            self.client.get("/api/v1/me", headers=self.tokens[who])  # warm: the token and the member looked up
        return self.tokens[who]

    # One request, or a job followed to its end ---------------------------------------------
    def call(self, method: str, path: str, who: str, **kwargs) -> dict:
        headers = self.headers(who)
        self.worker_stats = []
        before, started, cpu = self.counter.count, time.perf_counter(), time.process_time()
        answer = self.client.open(path, method=method, headers=headers, **kwargs)
        body = answer.get_data()
        result = {"status": answer.status_code, "bytes": len(body)}
        if answer.status_code == 202:
            result.update(self.follow_job(answer, headers))
            result["bytes"] = result.get("bytes", 0)
        elif answer.status_code >= 400:
            result["error"] = body[:300].decode("utf-8", "replace")
        elif answer.mimetype == "application/json":
            result["json"] = answer.get_json()
        result["seconds"] = time.perf_counter() - started
        result["cpu"] = time.process_time() - cpu + sum(w.get("cpu", 0) for w in self.worker_stats)
        result["statements"] = self.counter.count - before + sum(w.get("statements", 0) for w in self.worker_stats)
        if self.worker_stats:
            result["worker_peak_rss_mib"] = max(w.get("peak_rss_mib", 0) for w in self.worker_stats)
        return result

    def follow_job(self, answer, headers: dict) -> dict:
        """Poll the job a 202 answer names until it is done, running a job worker meanwhile; then
        download its result."""
        body = answer.get_json(silent=True) or {}
        job = body.get("job") if isinstance(body.get("job"), dict) else body
        url = body.get("url") or answer.headers.get("Location") or f"/api/v1/jobs/{job.get('id') or job.get('job_id')}"
        deadline = time.monotonic() + float(self.spec.get("job_timeout", 900))
        worker, state, spawned = None, {}, 0
        try:
            while time.monotonic() < deadline:
                state = self.client.get(url, headers=headers).get_json(silent=True) or {}
                state = state.get("job") if isinstance(state.get("job"), dict) else state
                status = str(state.get("status", "")).lower()
                if status in JOB_DONE or status in JOB_FAILED:
                    break
                if worker is None or worker.poll() is not None:
                    if worker is not None and (worker.returncode != 0 or spawned >= MAX_WORKER_RUNS):
                        return {"job": f"not run: the job worker exited {worker.returncode}", "job_state": state}
                    worker, spawned = self.start_worker(worker), spawned + 1
                time.sleep(0.05)
            else:
                return {"job": "timed out", "job_state": state}
        finally:
            self.stop_worker(worker)
        result = {"job": str(state.get("status")), "job_total": state.get("total")}
        if str(state.get("status", "")).lower() in JOB_FAILED:
            result["error"] = str(state.get("error"))[:300]
            return result
        keys = [k for k in ("download_url", "file_url", "download", "result_url") if k in state]
        link = state[keys[0]] if keys else f"{url.rstrip('/')}/file"
        if link:  # an import's job has no file (its report is in the job)
            download = self.client.get(link, headers=headers)
            result.update(download_status=download.status_code, bytes=len(download.get_data()))
        return result

    def start_worker(self, previous):
        if previous is not None:
            self.collect_worker(previous)
        out = f"/tmp/lianxin-district-worker-{uuid.uuid4().hex}.json"
        env = dict(os.environ, DATABASE_URL=self.spec["database_url"], REDIS_URL=self.spec["redis_url"],
                   WECHAT_API_BASE=self.fake.base_url, LOG_LEVEL="WARNING")
        command = self.spec.get("job_worker") or ["jobs", "work", "--once"]
        process = subprocess.Popen([sys.executable, __file__, "cli", out, "--", *command], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process.out = out
        return process

    def collect_worker(self, process) -> None:
        try:
            self.worker_stats.append(json.loads(Path(process.out).read_text()))
            Path(process.out).unlink()
        except (OSError, ValueError):
            pass

    def stop_worker(self, process) -> None:
        if process is None:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
        self.collect_worker(process)

    # Measured as the table's rows --------------------------------------------------------------
    def measure(self, task: dict) -> dict:
        """Run a task once; a fast one again (median of 5 under 1 s, of 3 under 3 s)."""
        run = getattr(self, f"task_{task['kind']}")
        runs = [run(task)]
        first = runs[0]["seconds"]
        again = int(task.get("repeat", 4 if first < 1 else 2 if first < 3 else 0))
        runs += [run(task) for _ in range(again)]
        result = dict(runs[-1])
        result["seconds"] = statistics.median(r["seconds"] for r in runs)
        result["cpu"] = statistics.median(r.get("cpu", 0) for r in runs)
        result["runs"] = [round(r["seconds"], 4) for r in runs]
        result.pop("json", None)
        return result

    def task_get(self, task: dict) -> dict:
        result = self.call("GET", task["path"], task["as"], query_string=task.get("query") or {})
        data = result.get("json")
        if isinstance(data, dict):
            result["items"] = len(data.get("items") or [])
            result["total"] = data.get("total")
        return result

    def task_webhook(self, task: dict) -> dict:
        """A text to the chatbot, signed as WeChat signs it, through the app's webhook."""
        from app.simulator import Simulator

        def post(url, params, body):
            answer = self.client.post(url, query_string=params, data=body, content_type="text/xml")
            return answer.status_code, answer.get_data(as_text=True)

        simulator = Simulator("/wechat", TOKEN, "wxbench", post=post)
        before, started, cpu = self.counter.count, time.perf_counter(), time.process_time()
        reply = simulator.text(task["openid"], task["text"])
        seconds = time.perf_counter() - started
        result = {"status": reply.status, "seconds": seconds, "statements": self.counter.count - before,
                  "cpu": time.process_time() - cpu,
                  "reply": reply.content[:120], "late": not reply.content}
        with self.engine.connect() as conn:
            result["notice_id"] = conn.scalar(text("SELECT max(id) FROM notices"))
            result["pending"] = conn.scalar(text("SELECT count(*) FROM outbox WHERE status = 'pending'"))
        return result

    def task_receipt(self, task: dict) -> dict:
        with self.engine.connect() as conn:
            notice_id = conn.scalar(text("SELECT max(id) FROM notices"))
        return self.task_get({**task, "path": f"/api/v1/admin/notices/{notice_id}"})

    def task_claim(self, task: dict) -> dict:
        """The outbox sender's claim of a batch of 100, among every pending row; then given back."""
        import redis
        from sqlalchemy.orm import sessionmaker

        from scheduler.sender import Sender

        settings = self.app.extensions["settings"].replace(OUTBOX_BATCH=100, QUIET_HOURS="")
        store = redis.Redis.from_url(self.spec["redis_url"], decode_responses=True)
        sender = Sender(sessionmaker(self.engine, expire_on_commit=False), store, settings, name="bench-claim")
        claim = getattr(sender, "claim", None) or sender._claim
        token = f"bench-{uuid.uuid4().hex[:8]}"
        wanted = inspect.signature(claim).parameters
        with sessionmaker(self.engine, expire_on_commit=False)() as session:
            offered = {"session": session, "token": token, "now": datetime.now(UTC), "held": set()}
            before, started, cpu = self.counter.count, time.perf_counter(), time.process_time()
            jobs = claim(**{k: v for k, v in offered.items() if k in wanted})
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            statements = self.counter.count - before
        with self.engine.begin() as conn:
            pending = conn.scalar(text("SELECT count(*) FROM outbox WHERE status = 'pending'"))
            conn.execute(text("UPDATE outbox SET status = 'pending', claimed_by = NULL, claimed_at = NULL "
                              "WHERE claimed_by = :token"), {"token": token})
        store.close()
        return {"seconds": seconds, "cpu": cpu, "statements": statements, "claimed": len(jobs),
                "pending": pending + len(jobs)}


def run_api(spec_path: str, out: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    probe = Probe(spec)
    results = {"baseline_rss_mib": rss_mib()}
    # No app context is held between requests: each request gets its own (and its own session), as live.
    for who in sorted({t["as"] for t in spec["tasks"] if "as" in t}):
        probe.headers(who)
    for task in spec["tasks"]:
        results[task["name"]] = probe.measure(task)
        results["peak_rss_mib"] = peak_rss_mib()
        Path(out).write_text(json.dumps(results, ensure_ascii=False, default=str))  # kept if stopped later
    probe.fake.stop()
    Path(out).write_text(json.dumps(results, ensure_ascii=False, default=str))


def main() -> None:
    if len(sys.argv) >= 4 and sys.argv[1] == "api":
        run_api(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "cli" and sys.argv[3] == "--":
        run_cli(sys.argv[2], sys.argv[4:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

