"""Scheduled work of activities: queue the reminders due (the outbox sender delivers them) and make
the WeChat sign-in QR codes ahead of time.

Thin adapters: open a session, call the domain, commit. Never imports app/ or handlers/.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from wechatpy import WeChatClient

from config import Settings
from models.activity import Activity, qr_expire_seconds, remember_qr, scene_for
from models.activity.leave import queue_absence_notes
from models.reminders import queue_activity_reminders


def absence_notes(session_factory: Callable[[], Session], now: datetime, settings: Settings) -> int:
    """Queue the notes to members absent without leave from the occasions that ended in the last day."""
    with session_factory() as session:
        return queue_absence_notes(session, now, settings)


def activity_reminders(session_factory: Callable[[], Session], now: datetime, settings: Settings) -> int:
    """Queue the activity reminders due at `now` (24 h and 1 h before, by default); return how many.

    Safe to rerun for the same `now`: each reminder round reaches each person once.
    """
    with session_factory() as session:
        return queue_activity_reminders(session, now, settings)


def create_sign_in_qr(session: Session, client: WeChatClient, activity: Activity, now: datetime) -> str:
    """Return the WeChat QR code URL for the scene in force, creating it through the API if the one
    kept on the activity is for another scene (a WeChat API call: never on the reply path)."""
    scene = scene_for(activity, now)
    if activity.qr_scene == scene and activity.qr_url:
        return activity.qr_url
    result = client.qrcode.create({
        "expire_seconds": qr_expire_seconds(activity, now), "action_name": "QR_STR_SCENE",
        "action_info": {"scene": {"scene_str": scene}},
    })
    remember_qr(session, activity, scene, result["url"])
    return result["url"]


def prepare_sign_in_qr_codes(session_factory: Callable[[], Session], client: WeChatClient, now: datetime,
                             hours_ahead: float = 24) -> int:
    """Make the QR codes of fixed-code activities starting within `hours_ahead`; return how many were
    made. (Rotating codes change every minute: their page makes them.)"""
    made = 0
    with session_factory() as session:
        soon = session.scalars(select(Activity).where(
            Activity.cancelled.is_(False), Activity.rotating.is_(False), Activity.ends_at >= now,
            Activity.starts_at <= now + timedelta(hours=hours_ahead))).all()
        for activity in soon:
            if activity.qr_scene != scene_for(activity, now) or not activity.qr_url:
                create_sign_in_qr(session, client, activity, now)
                made += 1
    return made
