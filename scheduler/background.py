"""The workers of background jobs (models/jobs.py): a pool of JOB_WORKERS threads that claim queued
jobs and run them. The scheduler's "jobs" interval job calls `tick()` (it only hands work to the
pool, so the scheduler's other jobs never wait for an import); `flask jobs work` runs one too.

Any number of these, in any number of processes, may run side by side: a job is claimed by one
worker at a time (SKIP LOCKED / a conditional update), and one whose worker died is taken up again
when its lease runs out.
"""

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from config import Settings
from models.job_kinds import work
from models.jobs import claim, purge_expired, run_claimed

log = logging.getLogger(__name__)


class BackgroundWorkers:
    def __init__(self, session_factory: Callable[[], Session], settings: Settings, *, name: str | None = None,
                 threads: int | None = None) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.name = name or f"jobs-{uuid.uuid4().hex[:8]}"
        self.threads = max(1, int(threads or settings.job_workers))
        self._busy = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._count = 0

    def _worker_name(self) -> str:
        with self._lock:
            self._count += 1
            return f"{self.name}-{self._count}"

    def run_one(self) -> str | None:
        """Claim one job and run it in this thread; its status after the attempt (None: none queued)."""
        worker = self._worker_name()
        with self.session_factory() as session:
            job = claim(session, worker, settings=self.settings)
            if job is None:
                return None
            engine = session.get_bind()
        log.info("job %s (%s) taken by %s, attempt %s", job.id, job.kind, worker, job.attempts)
        status = run_claimed(engine, job, worker, work, self.settings)
        log.info("job %s: %s", job.id, status)
        return status

    def run_all(self) -> int:
        """Run the queued jobs one after another until none is left (`flask jobs work --once`)."""
        ran = 0
        while self.run_one() is not None:
            ran += 1
        return ran

    def tick(self) -> str:
        """Purge the expired results, then give every idle thread of the pool a job to look for."""
        with self.session_factory() as session:
            purged = purge_expired(session)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=self.name)
        started = 0
        with self._lock:
            idle = self.threads - self._busy
            self._busy += idle
        for _ in range(idle):
            self._pool.submit(self._fill)
            started += 1
        return f"{started} job threads looking, {purged} expired results purged"

    def _fill(self) -> None:
        """One pool thread: run jobs while there are any, then go idle."""
        try:
            while self.run_one() is not None:
                pass
        except Exception:
            log.exception("background worker %s failed", self.name)
        finally:
            with self._lock:
                self._busy -= 1

    def shutdown(self) -> None:
        """Wait for the jobs running (a job cut short is taken up again after its lease)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
