"""The domain: tables and the operations on them. Knows nothing of Flask requests or WeChat."""

from models.activity import Activity, CheckIn, Registration, ReminderSetting
from models.base import Base, DomainError, Forbidden, NotFound, now_utc
from models.member import Member, WechatUser
from models.org import Grid, Organization
from models.outbox import OutboxMessage
from models.points import PointEntry

__all__ = [
    "Activity", "CheckIn", "Registration", "ReminderSetting",
    "Base", "DomainError", "Forbidden", "Grid", "Member", "NotFound", "Organization",
    "OutboxMessage", "PointEntry", "WechatUser", "now_utc",
]
