"""The domain: tables and the operations on them. Knows nothing of Flask requests or WeChat."""

from models.activity import Activity, CheckIn, Registration, ReminderSetting
from models.base import Base, DomainError, Forbidden, NotFound, now_utc
from models.member import Member, MiniappUser, WechatUser
from models.org import Grid, Organization
from models.outbox import OutboxMessage
from models.points import ManualAward, PointEntry
from models.wishes import Wish, WishEvent, WishPhoto

__all__ = [
    "Activity", "Base", "CheckIn", "DomainError", "Forbidden", "Grid", "ManualAward", "Member", "MiniappUser",
    "NotFound", "Organization", "OutboxMessage", "PointEntry", "Registration", "ReminderSetting", "WechatUser", "Wish",
    "WishEvent", "WishPhoto", "now_utc",
]
