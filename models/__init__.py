"""The domain: tables and the operations on them. Knows nothing of Flask requests or WeChat."""

from models.activity import Activity, CheckIn, Registration, ReminderSetting
from models.base import Base, DomainError, Forbidden, NotFound, now_utc
from models.bindings import BindingRelease
from models.console_login import ConsoleLogin
from models.handled import HandledMessage
from models.jobs import Job
from models.member import Member, MiniappUser, WechatUser
from models.notices import Notice
from models.org import Grid, Organization
from models.orglife import OrgLifeOccurrence, OrgLifeRule
from models.outbox import OutboxMessage, SubscribeGrant
from models.points import ManualAward, PointEntry
from models.records import MeetingRecord, RecordPhoto
from models.subscriptions import SubscribeRefusal
from models.wishes import Wish, WishEvent, WishPhoto

__all__ = [
    "Activity", "Base", "BindingRelease", "CheckIn", "ConsoleLogin", "DomainError", "Forbidden", "Grid",
    "ManualAward", "MeetingRecord", "Member", "MiniappUser",
    "Notice", "NotFound", "OrgLifeOccurrence", "OrgLifeRule", "Organization", "OutboxMessage", "PointEntry",
    "RecordPhoto", "Registration", "ReminderSetting", "SubscribeGrant", "SubscribeRefusal", "WechatUser", "Wish",
    "WishEvent", "WishPhoto", "HandledMessage", "Job", "now_utc",
]
