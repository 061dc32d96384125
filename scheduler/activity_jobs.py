"""Scheduled work of activities: queue the reminders due (the outbox sender delivers them).

A thin adapter for the scheduler framework: it opens a session, calls the domain and commits.
Never imports app/ or handlers/.
"""

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from models.reminders import queue_activity_reminders


def activity_reminders(session_factory: Callable[[], Session], now: datetime, settings: Mapping) -> int:
    """Queue the activity reminders due at `now` (24 h and 1 h before, by default); return how many.

    Safe to rerun for the same `now`: each reminder round reaches each person once.
    """
    with session_factory() as session:
        return queue_activity_reminders(session, now, settings)
