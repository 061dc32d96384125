"""Wiring of the scheduler: settings, database sessions and Redis from the app, as plain objects."""

import logging
import sys

from flask import Flask
from sqlalchemy.orm import sessionmaker

from app.extensions import db, get_redis
from scheduler.service import SchedulerService

log = logging.getLogger(__name__)


def build_scheduler(app: Flask, *, name: str | None = None) -> SchedulerService:
    """Return a scheduler bound to the app's database and Redis (not started)."""
    with app.app_context():
        engine = db.engine
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    return SchedulerService(factory, get_redis(app), app.extensions["settings"], name=name)


def maybe_start_embedded(app: Flask) -> SchedulerService | None:
    """Start a scheduler inside this process when SCHEDULER_EMBEDDED is set (`make run`'s single
    dev process). Web workers under gunicorn never do: with two workers every job would run twice."""
    if not app.extensions["settings"].scheduler_embedded:
        return None
    if "gunicorn" in sys.modules:
        log.warning("SCHEDULER_EMBEDDED is ignored under gunicorn; run `flask --app app scheduler run`.")
        return None
    service = build_scheduler(app)
    service.start()
    app.extensions["scheduler"] = service
    log.info("embedded scheduler %s started (the leader lock still decides who runs jobs)", service.name)
    return service
