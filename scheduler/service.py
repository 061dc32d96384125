"""The scheduler: APScheduler jobs with stable ids, run only by the instance holding a Redis
leader lock, and `run_due(now)` to bring every job up to a given instant (catch-up, tests, CLI).

Plain objects in (a session factory, a Redis client, the settings); the Flask wiring is app/'s.
"""

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session

from config import Settings
from models.base import now_utc
from models.birthdays import send_birthday_greetings
from models.handled import purge_handled
from models.orglife import send_due_orglife
from models.rhythm import send_rhythm_notes
from scheduler.activity_jobs import absence_notes, activity_reminders, prepare_sign_in_qr_codes
from scheduler.background import BackgroundWorkers
from scheduler.locks import RedisLock
from scheduler.photo_jobs import keep_chat_photos
from scheduler.sender import Sender
from scheduler.wechat_api import official_account_client
from scheduler.wish_jobs import release_overdue_wishes, remind_wish_deadlines

log = logging.getLogger(__name__)

LEADER_KEY = "lx:scheduler:leader"
LAST_RUN_KEY = "lx:scheduler:last-run"  # hash: job id → ISO time of the run last done


@dataclass
class Job:
    id: str
    trigger: object  # an APScheduler trigger
    run: Callable[[datetime, datetime], object]  # (now, the run time it stands for) → a summary
    catch_up: bool = True  # run_due replays its latest missed run time


@dataclass
class DueReport:
    ran: dict = field(default_factory=dict)  # job id → summary

    def lines(self) -> list[str]:
        return [f"{job}: {summary}" for job, summary in self.ran.items()] or ["nothing was due"]


class SchedulerService:
    def __init__(self, session_factory: Callable[[], Session], store: redis.Redis, settings: Settings, *,
                 name: str | None = None, sender: Sender | None = None) -> None:
        self.session_factory = session_factory
        self.store = store
        self.settings = settings
        self.name = name or f"scheduler-{uuid.uuid4().hex[:8]}"
        self.tz = settings.tz
        self.grace = timedelta(hours=float(settings.scheduler_grace_hours))
        self.ttl = float(settings.scheduler_leader_ttl)
        self.lock = RedisLock(store, LEADER_KEY, self.ttl, owner=self.name)
        self.sender = sender or Sender(session_factory, store, settings, name=f"{self.name}-sender")
        self.background = BackgroundWorkers(session_factory, settings, name=f"{self.name}-jobs")
        self.jobs = self.build_jobs()
        self.is_leader = False
        self._scheduler: BackgroundScheduler | None = None
        self._run_lock = threading.Lock()
        self._stopping = threading.Event()
        self._heart: threading.Thread | None = None
        self.became_leader = False

    # The jobs ---------------------------------------------------------------------------------
    def build_jobs(self) -> list[Job]:
        cfg = self.settings
        birthday_h, birthday_m = cfg.birthday_time.split(":")
        return [
            # Every quarter of an hour: the notices and reminders whose time has come.
            Job("orglife", CronTrigger(minute="*/15", timezone=self.tz), self._orglife),
            # Daily from RHYTHM_CHECK_DAY: branches told of the required meetings neither held nor scheduled.
            Job("rhythm", CronTrigger(hour=9, minute=30, timezone=self.tz), self._rhythm),
            # Daily: political birthdays (the run time's local date is the day greeted).
            Job("birthdays", CronTrigger(hour=int(birthday_h), minute=int(birthday_m), timezone=self.tz),
                self._birthdays),
            # 微心愿: remind claimers near their fulfil-by date, release claims past it.
            Job("wishes", CronTrigger(minute=5, timezone=self.tz), self._wishes),
            # Activities: reminders 24 h and 1 h before; WeChat sign-in QR codes made ahead of time.
            Job("activity_reminders", CronTrigger(minute="*/5", timezone=self.tz), self._activity_reminders),
            # Half-hourly: a note to each member absent without leave from an occasion just ended.
            Job("absence_notes", CronTrigger(minute="20,50", timezone=self.tz), self._absence_notes),
            Job("activity_qr_codes", CronTrigger(minute="*/30", timezone=self.tz), self._activity_qr_codes,
                catch_up=False),
            # Every five minutes: a copy of the photos sent in chat, before WeChat drops them (3 days).
            Job("photos", CronTrigger(minute="*/5", timezone=self.tz), self._photos),
            # Hourly: forget the handled-message keys older than a day (WeChat retries within seconds).
            Job("handled_messages", CronTrigger(minute=50, timezone=self.tz), self._purge_handled),
            # Background jobs (imports, exports): handed to the worker threads, never run in this one.
            Job("background", IntervalTrigger(seconds=int(cfg.job_poll_interval), timezone=self.tz),
                self._background, catch_up=False),
            # The outbox, last: what the jobs above queued goes out in the same run.
            Job("outbox", IntervalTrigger(seconds=int(cfg.scheduler_drain_interval),
                                          timezone=self.tz), self._drain, catch_up=False),
        ]

    def _orglife(self, now: datetime, at: datetime) -> str:
        with self.session_factory() as session:
            run = send_due_orglife(session, now, settings=self.settings)
        return f"{run.notices} notices, {run.reminders} reminders queued"

    def _rhythm(self, now: datetime, at: datetime) -> str:
        with self.session_factory() as session:
            return f"{send_rhythm_notes(session, now, self.settings)} rhythm notes queued"

    def _birthdays(self, now: datetime, at: datetime) -> str:
        with self.session_factory() as session:
            run = send_birthday_greetings(session, at.astimezone(self.tz).date(), settings=self.settings)
        return f"{run.greeted} greetings queued"

    def _wishes(self, now: datetime, at: datetime) -> str:
        with self.session_factory() as session:
            reminded = remind_wish_deadlines(session, now, self.settings)
            released = release_overdue_wishes(session, now)
        return f"{reminded} deadline reminders, {released} claims released"

    def _activity_reminders(self, now: datetime, at: datetime) -> str:
        return f"{activity_reminders(self.session_factory, now, self.settings)} reminders queued"

    def _absence_notes(self, now: datetime, at: datetime) -> str:
        return f"{absence_notes(self.session_factory, now, self.settings)} absence notes queued"

    def _activity_qr_codes(self, now: datetime, at: datetime) -> str:
        if not self.settings.wechat_app_secret:
            return "skipped: WECHAT_APP_SECRET is not set (sign-in pages show the code instead)"
        client = official_account_client(self.settings, self.store)
        return f"{prepare_sign_in_qr_codes(self.session_factory, client, now)} QR codes made"

    def _photos(self, now: datetime, at: datetime) -> str:
        if not self.settings.wechat_app_secret:
            return "skipped: WECHAT_APP_SECRET is not set (no photos can come from chat)"
        client = official_account_client(self.settings, self.store)
        return str(keep_chat_photos(self.session_factory, client, self.settings.photo_dir, now))

    def _purge_handled(self, now: datetime, at: datetime) -> str:
        with self.session_factory() as session:
            return f"{purge_handled(session, now)} handled-message keys purged"

    def _background(self, now: datetime, at: datetime) -> str:
        return self.background.tick()

    def _drain(self, now: datetime, at: datetime, *, live: bool = False) -> str:
        stats = self.sender.drain(None if live else now)
        return (f"{stats.sent} sent, {stats.failed} failed, {stats.retry} to retry, {stats.deferred} deferred, "
                f"{stats.unknown} unknown, {stats.postponed} postponed")

    # Catching up ------------------------------------------------------------------------------
    def last_run(self, job_id: str) -> datetime | None:
        value = self.store.hget(LAST_RUN_KEY, job_id)
        return datetime.fromisoformat(value) if value else None

    def _record(self, job_id: str, at: datetime) -> None:
        self.store.hset(LAST_RUN_KEY, job_id, at.isoformat())

    def latest_due(self, job: Job, now: datetime) -> datetime | None:
        """The latest run time of `job` at or before `now` that has not run and is within grace."""
        since = max(now - self.grace, (self.last_run(job.id) or now - self.grace) + timedelta(microseconds=1))
        latest = None
        fire = job.trigger.get_next_fire_time(None, since)
        while fire is not None and fire <= now:
            latest = fire
            fire = job.trigger.get_next_fire_time(None, fire + timedelta(microseconds=1))
        return latest

    def run_due(self, now: datetime) -> DueReport:
        """Run once every job whose run time came by `now` and has not run for it (within the
        grace window; missed runs coalesce into one), then drain the outbox as of `now`."""
        report = DueReport()
        with self._run_lock:
            for job in self.jobs:
                if not job.catch_up:
                    continue
                at = self.latest_due(job, now)
                if at is None:
                    continue
                report.ran[job.id] = job.run(now, at)
                self._record(job.id, at)
            report.ran["outbox"] = self._drain(now, now)
            self._record("outbox", now)
        return report

    # Leadership -------------------------------------------------------------------------------
    def heartbeat(self) -> bool:
        """Take or keep the leader lock; return whether this instance leads.

        A new leader must catch up on what was missed (`became_leader` tells the caller so)."""
        try:
            leader = self.lock.acquire()
        except redis.RedisError:
            log.exception("scheduler %s: Redis unreachable; not leading", self.name)
            leader = False
        self.became_leader = leader and not self.is_leader
        if self.became_leader:
            log.info("scheduler %s is now the leader", self.name)
        elif not leader and self.is_leader:
            log.warning("scheduler %s lost the leader lock", self.name)
        self.is_leader = leader
        return leader

    def catch_up(self) -> None:
        """Run what came due while no leader ran (coalesced, within the grace window)."""
        if not self.is_leader:
            return
        try:
            for line in self.run_due(now_utc()).lines():
                log.info("catch-up %s", line)
        except Exception:
            log.exception("scheduler %s: catch-up failed", self.name)

    def _keep_leading(self) -> None:
        # Its own thread, so a long job can never starve the renewal and lose the lock.
        while not self._stopping.is_set():
            if self.heartbeat() and self.became_leader and self._scheduler is not None:
                self._scheduler.add_job(self.catch_up, id="catch-up", name="catch-up", replace_existing=True)
            self._stopping.wait(max(0.2, self.ttl / 3))

    def _guarded(self, job: Job) -> Callable[[], None]:
        def run() -> None:
            # Check again right before running: a leader that lost its lock must not run jobs.
            if not self.is_leader or not self.lock.renew():
                self.is_leader = False
                return
            now = now_utc()
            with self._run_lock:
                summary = self._drain(now, now, live=True) if job.id == "outbox" else job.run(now, now)
                self._record(job.id, now)
            log.info("job %s: %s", job.id, summary)

        return run

    def start(self) -> BackgroundScheduler:
        """Start the jobs in a background thread; only the leader's actually run."""
        grace = int(self.grace.total_seconds())
        scheduler = BackgroundScheduler(
            timezone=self.tz,
            job_defaults={"coalesce": True, "misfire_grace_time": grace, "max_instances": 1},
        )
        for job in self.jobs:
            scheduler.add_job(self._guarded(job), job.trigger, id=job.id, name=job.id, replace_existing=True)
        scheduler.start()
        self._scheduler = scheduler
        self._stopping.clear()
        self._heart = threading.Thread(target=self._keep_leading, name=f"{self.name}-leader", daemon=True)
        self._heart.start()
        return scheduler

    def shutdown(self) -> None:
        self._stopping.set()
        if self._heart is not None:
            self._heart.join()
            self._heart = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.background.shutdown()
        if self.is_leader:
            self.lock.release()
            self.is_leader = False
