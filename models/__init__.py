"""The domain: tables and the operations on them. Knows nothing of Flask requests or WeChat."""

from models.base import Base, DomainError, Forbidden, NotFound, now_utc
from models.member import Member, WechatUser
from models.notices import Notice
from models.org import Grid, Organization
from models.orglife import OrgLifeOccurrence, OrgLifeRule
from models.outbox import OutboxMessage, SubscribeGrant
from models.points import PointEntry

__all__ = [
    "Base", "DomainError", "Forbidden", "Grid", "Member", "NotFound", "Organization",
    "Notice", "OrgLifeOccurrence", "OrgLifeRule", "OutboxMessage", "PointEntry", "SubscribeGrant",
    "WechatUser", "now_utc",
]
