"""Background jobs: work too long for a request (a large roster import, a subtree's export) is
queued as a row of `jobs` and run by a worker (the scheduler process, or `flask jobs work`) — the
database is the queue, no other one.

Nothing is done twice, and nothing is lost:
- claim: a worker takes the oldest queued job, or a running one whose lease ran out (its worker
  died), in a transaction of its own — PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED`, SQLite a
  conditional UPDATE. Each claim counts an attempt; (id, locked_by, attempts) is the attempt's token.
- progress: rows done, written on a connection of its own and committed at once (visible while the
  work's transaction is still open); each write renews the lease (the heartbeat). On SQLite a write
  waits while the work itself holds the database's one write lock.
- finish: the result and status=done are written by a conditional UPDATE on the token IN the
  work's own transaction (an import's members and its report commit together): a worker killed
  before that commit leaves nothing and the job is taken up again; after it, the job is done and
  no worker claims it again. A worker whose lease was taken over finds no row to finish and rolls
  its work back.
- fail: a DomainError (the user's file, a permission) fails the job at once with its Chinese
  message; another exception is retried until JOB_MAX_ATTEMPTS, then fails.
- results are kept JOB_RESULT_HOURS, then deleted (`purge_expired`).

What each kind of job does is in models/job_kinds.py.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    JSON,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from config import DEFAULTS, Settings
from models.base import Base, DomainError, NotFound, UTCDateTime, now_utc
from models.member import Member
from models.org import Organization
from models.text import fits_id

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUS_TEXT = {QUEUED: "排队中", RUNNING: "进行中", DONE: "已完成", FAILED: "失败"}
GAVE_UP = "任务多次中断，已停止重试，请重新发起。"
BROKE = "任务执行出错，请稍后重新发起或联系管理员。"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # an uploaded file
    # Who asked (None: the operator's CLI) and the subtree the job works on.
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    status: Mapped[str] = mapped_column(String(10), default=QUEUED)
    done: Mapped[int] = mapped_column(Integer, default=0)  # rows done
    total: Mapped[int | None] = mapped_column(Integer)  # rows in all (None: not known yet)
    error: Mapped[str | None] = mapped_column(String(500))  # in Chinese, for the user
    result: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    result_name: Mapped[str | None] = mapped_column(String(200))  # the file's name, in Chinese
    result_type: Mapped[str | None] = mapped_column(String(100))  # its content type
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    requested_by: Mapped[Member | None] = relationship(foreign_keys=[requested_by_id])
    org: Mapped[Organization | None] = relationship()

    # The claim's search: the oldest queued (or running) job.
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at", "id"),)

    @property
    def percent(self) -> int:
        if self.status == DONE:
            return 100
        if not self.total:
            return 0
        return min(99, self.done * 100 // self.total)

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, self.status)

    @property
    def has_file(self) -> bool:
        return self.status == DONE and bool(self.result_name)


@dataclass(frozen=True)
class Token:
    """One attempt at a job: only the worker holding it may report progress on it or finish it."""

    job_id: int
    worker: str
    attempt: int

    def where(self):
        return and_(Job.id == self.job_id, Job.locked_by == self.worker, Job.attempts == self.attempt,
                    Job.status == RUNNING)


@dataclass
class Output:
    """What a job's work produced: a file (or a JSON report) to keep, and the rows it covered."""

    data: bytes
    name: str | None  # a file's name (None: a report, shown with the job, not downloaded)
    content_type: str
    rows: int | None = None


class LeaseLost(Exception):
    """Another worker took the job over (this one's lease ran out): stop and roll the work back."""


# Queueing and asking ------------------------------------------------------------------------------
def enqueue(session: Session, kind: str, *, params: dict | None = None, payload: bytes | None = None,
            requested_by: Member | None = None, org: Organization | None = None, total: int | None = None,
            now: datetime | None = None) -> Job:
    """Queue a job (committed): a worker picks it up."""
    job = Job(kind=kind, params=params or {}, payload=payload,
              requested_by_id=requested_by.id if requested_by is not None else None,
              org_id=org.id if org is not None else None, status=QUEUED, done=0, total=total, attempts=0,
              created_at=now or now_utc())
    session.add(job)
    session.commit()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id) if fits_id(job_id) else None
    if job is None:
        raise NotFound("未找到该任务。")
    return job


def recent_jobs(session: Session, member: Member, *, limit: int = 20) -> list[Job]:
    """The member's own jobs, the latest first."""
    return list(session.scalars(
        select(Job).where(Job.requested_by_id == member.id).order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)))


def all_jobs(session: Session, *, limit: int = 50) -> list[Job]:
    """Every job, the latest first (the operator's list)."""
    return list(session.scalars(select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
                                .options(selectinload(Job.requested_by))))


def stored_result(session: Session, job: Job) -> bytes | None:
    return session.scalar(select(Job.result).where(Job.id == job.id))


def result_of(session: Session, job: Job) -> bytes:
    """The result a done job keeps (loaded only when asked: it may be megabytes)."""
    if job.status != DONE or job.result_name is None:
        raise NotFound("该任务没有可下载的文件。")
    data = stored_result(session, job)
    if data is None:
        raise NotFound("该任务的结果已过期删除，请重新发起。")
    return data


# Claiming -----------------------------------------------------------------------------------------
def _claimable(now: datetime, settings: Settings):
    """Queued, or running with its lease run out (its worker died) and tries left."""
    return or_(Job.status == QUEUED, _abandoned(now, settings))


def _abandoned(now: datetime, settings: Settings):
    return and_(Job.status == RUNNING, Job.lease_until < now, Job.attempts < int(settings.job_max_attempts))


def give_up_abandoned(session: Session, now: datetime, settings: Settings = DEFAULTS) -> int:
    """Fail the running jobs whose lease ran out after JOB_MAX_ATTEMPTS tries (each try's worker
    died); return how many (committed)."""
    count = session.execute(
        update(Job).where(Job.status == RUNNING, Job.lease_until < now,
                          Job.attempts >= int(settings.job_max_attempts))
        .values(status=FAILED, error=GAVE_UP, finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return count


def _pick(session: Session, now: datetime, settings: Settings, lock: bool) -> int | None:
    """The job to take: the oldest whose worker died, else the oldest queued — two searches, each
    an index range (ix_jobs_status_created_at), however long the queue (an OR would sort it all).
    `lock`: PostgreSQL's FOR UPDATE SKIP LOCKED, past the rows other claims hold."""
    order = (Job.created_at, Job.id)
    for query in (select(Job.id).where(_abandoned(now, settings)).order_by(*order).limit(1),
                  select(Job.id).where(Job.status == QUEUED).order_by(*order).limit(1)):
        job_id = session.scalar(query.with_for_update(skip_locked=True) if lock else query)
        if job_id is not None:
            return job_id
    return None


def claim(session: Session, worker: str, *, now: datetime | None = None, settings: Settings = DEFAULTS
          ) -> Job | None:
    """Take the oldest job that is queued, or running with its lease run out; count the attempt and
    lease it to `worker` (committed). None: nothing to do. Two workers never hold the same job."""
    now = now or now_utc()
    give_up_abandoned(session, now, settings)
    lease = now + timedelta(seconds=float(settings.job_lease_seconds))
    taken = update(Job).values(status=RUNNING, locked_by=worker, lease_until=lease, attempts=Job.attempts + 1,
                               started_at=func.coalesce(Job.started_at, now), error=None)
    taken = taken.execution_options(synchronize_session=False)
    postgres = session.get_bind().dialect.name == "postgresql"
    for _ in range(1 if postgres else 5):
        job_id = _pick(session, now, settings, lock=postgres)
        if job_id is None:
            session.rollback()
            return None
        # PostgreSQL: the row is locked. SQLite (one writer at a time): the UPDATE checks it again.
        claimed = session.execute(taken.where(Job.id == job_id, _claimable(now, settings))).rowcount
        session.commit()
        if claimed:
            return session.scalars(select(Job).where(Job.id == job_id)
                                   .execution_options(populate_existing=True)).one()
    return None


# Progress and the lease ---------------------------------------------------------------------------
class Tracker:
    """The progress of one attempt, written by a thread of its own on its own connections: once
    the total is known, at the first row (at once), then at every percent (at most every `min_gap`
    seconds), and at least every third of the lease (the heartbeat). The work never waits for it."""

    def __init__(self, engine: Engine, token: Token, settings: Settings, total: int | None = None,
                 min_gap: float = 0.2) -> None:
        self.engine, self.token, self.total = engine, token, total
        self.lease = float(settings.job_lease_seconds)
        self.min_gap = min_gap
        self.done = 0
        self.lost = False
        self._first = False  # the first rows done are written at once, not after min_gap
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{token.job_id}-progress", daemon=True)

    def start(self) -> "Tracker":
        self._thread.start()
        return self

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
        self._due.set()

    def progress(self, rows: int = 1) -> None:
        """`rows` more rows done (the callback the domain's long functions take)."""
        if self.lost:
            raise LeaseLost(self.token.job_id)
        with self._lock:
            before = self.done
            self.done += rows
            step = max(1, (self.total or 100) // 100)
        if before == 0:
            self._first = True
        if before == 0 or before // step != self.done // step or self.done == self.total:
            self._due.set()

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._due.wait(timeout=max(0.05, self.lease / 3))
            if self._stop.is_set():
                break
            wait = self.min_gap - (time.monotonic() - last)
            if wait > 0 and self._due.is_set() and not self._first:
                self._stop.wait(wait)
            self._first = False
            self._due.clear()
            last = time.monotonic()
            self.write()

    def write(self) -> None:
        """Write the rows done and renew the lease; a write that finds the token gone marks the
        attempt lost. A database busy with the work's own write (SQLite) is tried again later."""
        with self._lock:
            done, total = self.done, self.total
        try:
            with self.engine.begin() as conn:
                count = conn.execute(
                    update(Job.__table__).where(self.token.where())
                    .values(done=done, total=total,
                            lease_until=now_utc() + timedelta(seconds=self.lease))).rowcount
        except DBAPIError:
            log.debug("job %s: progress not written (database busy)", self.token.job_id, exc_info=True)
            return
        if count == 0:
            self.lost = True

    def stop(self) -> None:
        self._stop.set()
        self._due.set()
        if self._thread.is_alive():
            self._thread.join()


# Finishing --------------------------------------------------------------------------------------
def finish(session: Session, token: Token, output: Output, *, now: datetime | None = None,
           settings: Settings = DEFAULTS) -> bool:
    """Mark the attempt's job done with its result, in `session`'s transaction (the work's: commit
    both together); False: the job is no longer this attempt's (taken over) and nothing was written."""
    now = now or now_utc()
    values = {"status": DONE, "result": output.data, "result_name": output.name, "result_type": output.content_type,
              "finished_at": now, "lease_until": None, "payload": None, "error": None,
              "expires_at": now + timedelta(hours=float(settings.job_result_hours))}
    if output.rows is not None:
        values.update(done=output.rows, total=output.rows)
    else:
        values["done"] = func.coalesce(Job.total, Job.done)
    return session.execute(update(Job).where(token.where()).values(**values)
                           .execution_options(synchronize_session=False)).rowcount == 1


def fail(session: Session, token: Token, reason: str, *, retry: bool = False, now: datetime | None = None,
         settings: Settings = DEFAULTS) -> str | None:
    """End the attempt unsuccessfully (committed): queued again when `retry` and tries are left, else
    failed with `reason` (Chinese, shown to the user). Returns the job's new status (None: the job was
    no longer this attempt's)."""
    now = now or now_utc()
    again = retry and token.attempt < int(settings.job_max_attempts)
    values = {"status": QUEUED, "lease_until": None, "locked_by": None, "done": 0} if again else \
        {"status": FAILED, "error": reason[:500], "finished_at": now, "lease_until": None, "payload": None,
         "expires_at": now + timedelta(hours=float(settings.job_result_hours))}
    count = session.execute(update(Job).where(token.where()).values(**values)
                            .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return (QUEUED if again else FAILED) if count else None


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete the finished jobs whose results are past JOB_RESULT_HOURS (committed); return how many."""
    count = session.execute(delete(Job).where(Job.expires_at < (now or now_utc()))
                            .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return count


# Running ------------------------------------------------------------------------------------------
Work = Callable[[Session, Job, Tracker, Settings], Output]


def run_claimed(engine: Engine, job: Job, worker: str, work: Work, settings: Settings = DEFAULTS) -> str:
    """Run a job claimed by `worker`: its work and its finish in one transaction (see the module's
    text). Returns the job's status after the attempt ("lost": it was taken over)."""
    token = Token(job.id, worker, job.attempts)
    tracker = Tracker(engine, token, settings, total=job.total).start()
    try:
        return _attempt(engine, token, work, tracker, settings)
    finally:
        tracker.stop()


def _attempt(engine: Engine, token: Token, work: Work, tracker: Tracker, settings: Settings) -> str:
    with engine.connect() as conn:
        outer = conn.begin()
        if conn.dialect.name == "postgresql":  # a job may run statements longer than a request's
            conn.execute(text(f"SET LOCAL statement_timeout = {int(settings.job_statement_timeout) * 1000}"))
        # The work's own commits do not end this transaction (rollback_only): its finish joins it.
        with Session(bind=conn, join_transaction_mode="rollback_only", expire_on_commit=False) as session:
            try:
                output = work(session, session.get(Job, token.job_id), tracker, settings)
                if not outer.is_active:  # the work rolled itself back (a dry run): a new transaction
                    outer = conn.begin()
                if not finish(session, token, output, settings=settings):
                    raise LeaseLost(token.job_id)
                session.flush()
                outer.commit()
                return DONE
            except LeaseLost:
                log.warning("job %s: taken over by another worker; attempt %s rolled back", token.job_id,
                            token.attempt)
                _rollback(outer)
                return "lost"
            except DomainError as exc:
                _rollback(outer)
                return _failed(engine, token, exc.message, retry=False, settings=settings)
            except Exception:
                log.exception("job %s: attempt %s failed", token.job_id, token.attempt)
                _rollback(outer)
                return _failed(engine, token, BROKE, retry=True, settings=settings)


def _rollback(transaction) -> None:
    if transaction.is_active:
        transaction.rollback()


def _failed(engine: Engine, token: Token, reason: str, *, retry: bool, settings: Settings) -> str:
    with Session(engine) as session:
        return fail(session, token, reason, retry=retry, settings=settings) or "lost"
