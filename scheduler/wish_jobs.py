"""微心愿 deadline jobs: thin adapters the scheduler registers; the rules live in models.wishes.

Each takes the session and the "now" to run for, so tests and operators can run it for any time;
a rerun for the same now sends nothing twice (the outbox's unique source keys).
"""

from datetime import datetime

from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models.wishes import release_overdue_claims, remind_due_claims


def remind_wish_deadlines(session: Session, now: datetime, settings: Settings = DEFAULTS) -> int:
    """Remind claimers whose fulfil-by date is near; return how many reminders were queued."""
    return remind_due_claims(session, now, settings=settings)


def release_overdue_wishes(session: Session, now: datetime) -> int:
    """Release claims past their fulfil-by date; return how many were released."""
    return release_overdue_claims(session, now)

