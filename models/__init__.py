"""The domain: tables and the operations on them. Knows nothing of Flask requests or WeChat."""

from models.base import Base, DomainError, Forbidden, NotFound, now_utc
from models.member import Member, MiniappUser, WechatUser
from models.org import Grid, Organization
from models.outbox import OutboxMessage
from models.points import ManualAward, PointEntry
from models.wishes import Wish, WishEvent, WishPhoto

__all__ = [
    "Base", "DomainError", "Forbidden", "Grid", "ManualAward", "Member", "MiniappUser", "NotFound",
    "Organization", "OutboxMessage", "PointEntry", "WechatUser", "Wish", "WishEvent", "WishPhoto", "now_utc",
]
