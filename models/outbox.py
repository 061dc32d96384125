"""The transactional outbox: every message to a person is a row written with the action behind it.

The scheduler's sender (scheduler/) is the only code that drains it through WeChat's API. Every row
addressed to a member is also that member's inbox entry (消息), whatever channel delivers it, so
opening a row records the read receipt.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
    literal,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, DomainError, NotFound, Page, UTCDateTime, now_utc
from models.text import fits_id

# pending: waiting (maybe until next_attempt_at); claimed: taken by a sender, no call made yet;
# sending: a call is being made; sent; failed (every channel refused, or retries used up);
# unknown: the call may have reached WeChat but no answer came back (a read timeout, a connection
# dropped after sending, a sender killed during the call), so whether it was delivered cannot be
# known: never resent blindly (a duplicate is worse than a gap; the inbox still holds it, and a
# notice's 再提醒 sends it again on purpose).
PENDING, CLAIMED, SENDING = "pending", "claimed", "sending"
SENT, FAILED, UNKNOWN = "sent", "failed", "unknown"
# Delivery channels, in the order they are tried.
TEMPLATE, SUBSCRIBE, CUSTOM = "template", "subscribe", "custom"
CHANNEL_NAMES = {TEMPLATE: "公众号模板消息", SUBSCRIBE: "小程序订阅消息", CUSTOM: "客服消息"}
# Kinds whose messages belong in the member's inbox (a late chatbot reply does not).
INBOX_KINDS = ("notice", "reminder", "greeting", "wish", "activity")
_REMINDER_OF = re.compile(r"(notice:\d+):r\d+")


class OutboxMessage(Base):
    __tablename__ = "outbox"
    # A source (a notice, a late reply, a reminder …) reaches one recipient once. The pending rows
    # in claim order (the sender's claim walks this partial index: no sort of the backlog).
    __table_args__ = (
        UniqueConstraint("source", "recipient"),
        Index("ix_outbox_pending", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    # "m<member id>" for a member, "o<openid>" for a follower not bound to one.
    recipient: Mapped[str] = mapped_column(String(80))
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # reply, notice, reminder, greeting, wish, activity
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sending state.
    channel: Mapped[str | None] = mapped_column(String(10))  # the channel that delivered it
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    # Why each refused channel refused, one "channel:errcode:reason" a line.
    refusals: Mapped[str] = mapped_column(Text, default="")
    # The inbox.
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What template fields may draw on besides title and body ({"starts_at": ISO 8601, "place": …}).
    data: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # The msgid WeChat answered a template message with; its TEMPLATESENDJOBFINISH report names it.
    wx_msgid: Mapped[str | None] = mapped_column(String(32), index=True)


# TEMPLATESENDJOBFINISH statuses.
REPORT_SUCCESS, REPORT_BLOCKED = "success", "failed:user block"
REPORT_NAMES = {REPORT_SUCCESS: "已送达", REPORT_BLOCKED: "用户拒收", "failed: system failed": "微信系统发送失败"}


class TemplateReport(Base):
    """WeChat's final word on one template message (the TEMPLATESENDJOBFINISH event), by msgid.

    Kept apart from the outbox row so that a report arriving before the sender wrote the msgid down
    is not lost; the first report of a msgid is kept, a repeated one changes nothing."""

    __tablename__ = "template_reports"

    msgid: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


def report_name(status: str | None) -> str | None:
    """The receipt's word for a report status (None: no report)."""
    if status is None:
        return None
    return REPORT_NAMES.get(status, "用户拒收" if "block" in status else f"发送失败（{status}）")


def record_template_report(session: Session, msgid: str, status: str, now: datetime | None = None) -> bool:
    """Record WeChat's final status of the template message `msgid`; commit. Return False when the
    report is not usable or that msgid was reported before (a repeat changes nothing)."""
    msgid, status = (msgid or "").strip(), (status or "").strip()
    if not msgid or not status or len(msgid) > 32:
        return False
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = session.execute(insert(TemplateReport.__table__).values(
        msgid=msgid, status=status[:40], received_at=now or now_utc()).on_conflict_do_nothing(
        index_elements=["msgid"])).rowcount
    session.commit()
    return added == 1


class SubscribeGrant(Base):
    """Mini-program subscribe-message consents a member gave for one kind of message.

    A one-time consent allows one send; the mini-program records each consent (the API issue's
    endpoint calls `grant_subscription`) and the sender spends one per message.
    """

    __tablename__ = "subscribe_grants"
    __table_args__ = (UniqueConstraint("member_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


def enqueue(
    session: Session,
    *,
    source: str,
    kind: str,
    body: str,
    title: str = "",
    member_id: int | None = None,
    openid: str | None = None,
    data: Mapping | None = None,
) -> bool:
    """Add a message for a member (or a bare follower's openid) to the outbox, in the caller's
    transaction; return False if that source already queued it for that recipient. `data` holds
    what template fields may draw on (`starts_at` a datetime, `place` …).

    A message to one person is never urgent (only a notice is, and notices go out through
    `enqueue_many`); it may be sent at once."""
    if member_id is None and not openid:
        raise ValueError("a message needs a member or an openid")
    recipient = f"m{member_id}" if member_id is not None else f"o{openid}"
    return _insert_new(session, [dict(
        source=source, recipient=recipient, openid=openid, member_id=member_id, kind=kind, title=title,
        body=body, urgent=False, next_attempt_at=None, data=_data(data))]) == 1


def enqueue_many(session: Session, member_ids, *, source: str, kind: str, body: str, title: str = "",
                 urgent: bool = False, data: Mapping | None = None) -> int:
    """Queue one message for many members in the caller's transaction, in multi-row INSERTs (a
    notice to a whole street is thousands of rows); return how many were new."""
    return _insert_new(session, [dict(
        source=source, recipient=f"m{member_id}", openid=None, member_id=member_id, kind=kind,
        title=title, body=body, urgent=urgent, next_attempt_at=None, data=_data(data))
        for member_id in member_ids])


def enqueue_select(session: Session, member_ids: Select, *, source: str, kind: str, body: str,
                   title: str = "", urgent: bool = False, data: Mapping | None = None) -> int:
    """Queue one message for every member whose id `member_ids` (a one-column SELECT) yields, in
    the caller's transaction, as ONE `INSERT … SELECT … ON CONFLICT (source, recipient) DO NOTHING`
    (a notice to 50,000 is one statement, not 50,000 rows through Python); return how many were
    new. The rows are what `enqueue_many` writes, in member id order."""
    table = OutboxMessage.__table__
    postgres = session.get_bind().dialect.name == "postgresql"
    ids = member_ids.subquery()
    member_id = ids.c[0]
    columns = {
        "source": literal(source, String), "recipient": literal("m", String) + cast(member_id, String),
        "member_id": member_id, "kind": literal(kind, String), "title": literal(title, String),
        "body": literal(body, Text), "urgent": literal(bool(urgent)), "status": literal(PENDING, String),
        "attempts": literal(0), "refusals": literal("", Text),
        "created_at": literal(now_utc(), table.c.created_at.type),
    }  # openid and next_attempt_at NULL, as enqueue_many writes them
    value = _data(data)
    if value is not None:
        data_type = table.c.data.type
        # A bound string is text to PostgreSQL: say it is json (SQLite's CAST AS JSON would make a number).
        columns["data"] = (cast if postgres else type_coerce)(literal(value, data_type), data_type)
    rows = select(*(expression.label(name) for name, expression in columns.items())).select_from(ids) \
        .where(member_id.is_not(None)).order_by(member_id)  # a WHERE: SQLite's ON CONFLICT needs one
    insert = postgresql_insert if postgres else sqlite_insert
    statement = insert(table).from_select(list(columns), rows).on_conflict_do_nothing(
        index_elements=["source", "recipient"])
    return session.connection().execute(statement).rowcount


def _data(data: Mapping | None) -> dict | None:
    """The JSON column's value: datetimes as ISO 8601 (UTC), empty values left out."""
    if not data:
        return None
    out = {}
    for key, value in data.items():
        if value in (None, ""):
            continue
        out[key] = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
    return out or None


def _insert_new(session: Session, rows: list[dict]) -> int:
    """INSERT … ON CONFLICT (source, recipient) DO NOTHING, as one statement compiled once and
    sent in multi-row batches (SQLAlchemy's insertmanyvalues); return how many rows were new."""
    if not rows:
        return 0
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)
    now = now_utc()
    for row in rows:
        row.update(status=PENDING, attempts=0, refusals="", created_at=now)
    statement = insert(OutboxMessage.__table__).on_conflict_do_nothing(
        index_elements=["source", "recipient"]).returning(OutboxMessage.__table__.c.id)
    return len(session.connection().execute(statement, rows).all())


def grant_subscription(session: Session, member_id: int, kind: str, count: int = 1) -> None:
    """Record `count` more one-time subscribe consents of a member for `kind` messages (no commit)."""
    grant = session.scalars(
        select(SubscribeGrant).where(SubscribeGrant.member_id == member_id, SubscribeGrant.kind == kind)
    ).first()
    if grant is None:
        try:
            with session.begin_nested():
                session.add(SubscribeGrant(member_id=member_id, kind=kind, remaining=count))
            return
        except IntegrityError:
            pass  # created concurrently: add to it below
    session.execute(
        update(SubscribeGrant)
        .where(SubscribeGrant.member_id == member_id, SubscribeGrant.kind == kind)
        .values(remaining=SubscribeGrant.remaining + count)
    )


def record_subscription(session: Session, member_id: int, kind: str, count: int = 1) -> int:
    """Record the subscribe consents the mini-program reports for a member; commit; return how
    many remain for that kind."""
    if kind not in INBOX_KINDS:
        raise DomainError(f"不认识的消息类别：{kind}")
    if not 1 <= count <= 100:
        raise DomainError("授权次数应在1到100之间。")
    grant_subscription(session, member_id, kind, count)
    session.commit()
    return session.scalar(select(SubscribeGrant.remaining).where(
        SubscribeGrant.member_id == member_id, SubscribeGrant.kind == kind)) or 0


# The inbox ----------------------------------------------------------------------------------
@dataclass
class InboxPage(Page):
    unread: int = 0


def inbox_page(session: Session, member_id: int, *, page: int = 1, per_page: int = 20,
               unread_only: bool = False) -> InboxPage:
    """Return one page of a member's inbox, newest first, with the total and the unread count."""
    where = [OutboxMessage.member_id == member_id, OutboxMessage.kind.in_(INBOX_KINDS)]
    if unread_only:
        where.append(OutboxMessage.read_at.is_(None))
    total = session.scalar(select(func.count(OutboxMessage.id)).where(*where)) or 0
    items = list(session.scalars(select(OutboxMessage).where(*where).order_by(OutboxMessage.id.desc())
                                 .offset((page - 1) * per_page).limit(per_page)))
    return InboxPage(items, total, page, per_page, unread=count_unread(session, member_id))


def list_inbox(session: Session, member_id: int, *, limit: int = 10, unread_only: bool = False
               ) -> list[OutboxMessage]:
    """Return a member's latest inbox messages, newest first."""
    query = select(OutboxMessage).where(
        OutboxMessage.member_id == member_id, OutboxMessage.kind.in_(INBOX_KINDS),
    )
    if unread_only:
        query = query.where(OutboxMessage.read_at.is_(None))
    return list(session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))


def count_unread(session: Session, member_id: int) -> int:
    return session.scalar(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.member_id == member_id, OutboxMessage.kind.in_(INBOX_KINDS),
            OutboxMessage.read_at.is_(None),
        )
    ) or 0


def open_message(session: Session, member_id: int, message_id: int, now: datetime | None = None
                 ) -> OutboxMessage:
    """Return one of the member's inbox messages and record that it was read; commit."""
    message = session.get(OutboxMessage, message_id) if fits_id(message_id) else None
    if message is None or message.member_id != member_id or message.kind not in INBOX_KINDS:
        raise NotFound(f"没有编号为 {message_id} 的消息。")
    # Conditional: the first opening is the receipt's time, whatever opens it again. Opening a
    # reminder of a notice ("notice:7:r1") is reading the notice ("notice:7") too.
    sources = [message.source]
    reminded = _REMINDER_OF.fullmatch(message.source)
    if reminded:
        sources.append(reminded[1])
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.member_id == member_id, OutboxMessage.source.in_(sources),
               OutboxMessage.read_at.is_(None))
        .values(read_at=now or now_utc())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(message)
    return message


def inbox_number(session: Session, member_id: int, position: int, now: datetime | None = None
                 ) -> OutboxMessage:
    """Open the `position`-th message of the member's inbox as 消息 lists it (1 = the newest) and
    record that it was read; commit. The numbers are the member's own, not outbox ids."""
    where = (OutboxMessage.member_id == member_id, OutboxMessage.kind.in_(INBOX_KINDS))
    message_id = None
    if position >= 1:
        message_id = session.scalar(select(OutboxMessage.id).where(*where).order_by(OutboxMessage.id.desc())
                                    .offset(position - 1).limit(1))
    if message_id is None:
        total = session.scalar(select(func.count(OutboxMessage.id)).where(*where)) or 0
        raise NotFound(f"没有第 {position} 条消息，您共有 {total} 条消息。" if total else "您还没有消息。")
    return open_message(session, member_id, message_id, now)


def mark_all_read(session: Session, member_id: int, now: datetime | None = None) -> int:
    """Record every unread message of the member's inbox as read now (notice receipts count them);
    commit; return how many were unread."""
    count = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.member_id == member_id, OutboxMessage.kind.in_(INBOX_KINDS),
               OutboxMessage.read_at.is_(None))
        .values(read_at=now or now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return count
