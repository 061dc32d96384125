"""Ad-hoc notices (通知) to a secretary's subtree, with read receipts and reminders of the unread."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, Text, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz, clock
from models.base import Base, DomainError, NotFound, Page, UTCDateTime, now_utc
from models.member import KINDS, Member
from models.org import Organization
from models.outbox import (
    FAILED,
    REPORT_BLOCKED,
    REPORT_SUCCESS,
    SENT,
    UNKNOWN,
    OutboxMessage,
    TemplateReport,
    enqueue_many,
    report_name,
)
from models.text import MAX_NOTICE_BODY, MAX_NOTICE_TITLE, clamp_page, clean_text, fits_id


class Notice(Base):
    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(default=False)
    # The audience besides the subtree: member kinds ("," separated; empty: all) and one grid.
    kinds: Mapped[str] = mapped_column(String(100), default="")
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    # When the last 再提醒 went out: the next one waits NOTICE_REMIND_HOURS after it.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    org: Mapped[Organization] = relationship()

    @property
    def source(self) -> str:
        return notice_source(self.id)


def notice_source(notice_id: int) -> str:
    return f"notice:{notice_id}"


@dataclass(frozen=True)
class Published:
    """What publish_notice did: the notice, and how many it was queued for (not stored: the
    outbox rows are the record)."""

    notice: Notice
    recipients: int


def is_unbound(openid: str | None, miniapp_openid: str | None) -> bool:
    """A member bound to neither the Official Account nor the mini-program: no channel reaches them."""
    return not openid and not miniapp_openid


def audience(session: Session, org: Organization, *, kinds: list[str] | None = None,
             grid_id: int | None = None, exclude: int | None = None) -> list[Member]:
    """Return the active members of `org`'s subtree, optionally of some kinds or one grid, without
    the member `exclude` (a notice's author is not its recipient)."""
    query = (select(Member).join(Organization, Member.org_id == Organization.id)
             .where(Organization.path.startswith(org.path), Member.active.is_(True)))
    if exclude is not None:
        query = query.where(Member.id != exclude)
    if kinds:
        query = query.where(Member.kind.in_(kinds))
    if grid_id is not None:
        query = query.where(Member.grid_id == grid_id)
    return list(session.scalars(query.order_by(Member.id)))


def publish_notice(session: Session, author: Member, body: str, *, title: str = "",
                   kinds: list[str] | None = None, grid_id: int | None = None, urgent: bool = False,
                   org_id: int | None = None) -> Published:
    """Publish a notice to the author's subtree (or a node within it) and queue it for everyone
    in the audience, in one transaction; commit."""
    authz.authorize(author, authz.PUBLISH_NOTICE)
    title = clean_text(title, "通知标题", MAX_NOTICE_TITLE)
    body = clean_text(body, "通知内容").strip()
    if not body:
        raise DomainError("通知内容不能为空。")
    if len(body) > MAX_NOTICE_BODY:
        raise DomainError(f"通知内容过长（最多{MAX_NOTICE_BODY}字）。", code="invalid_text", status=422)
    unknown = [k for k in kinds or [] if k not in KINDS]
    if unknown:
        raise DomainError(f"不认识的成员类别：{'、'.join(unknown)}")
    org = authz.authorized_org(session, author, authz.PUBLISH_NOTICE, org_id)
    members = audience(session, org, kinds=kinds, grid_id=grid_id, exclude=author.id)
    if not members:
        raise DomainError("该范围内没有可通知的成员（不含您本人）。")
    title = (title or body.splitlines()[0])[:30]
    notice = Notice(org_id=org.id, author_id=author.id, title=title, body=body, urgent=urgent,
                    kinds=",".join(kinds or []), grid_id=grid_id)
    session.add(notice)
    session.flush()
    enqueue_many(session, [m.id for m in members], source=notice.source, kind="notice", title=title,
                 body=body, urgent=urgent)
    session.commit()
    return Published(notice, len(members))


def get_notice(session: Session, notice_id: int, viewer: Member, action: str = authz.VIEW_RECEIPT) -> Notice:
    """Return a notice the viewer may do `action` to (a secretary or admin, the notice in their
    subtree); one outside it is not found."""
    authz.authorize(viewer, authz.LIST_NOTICES)
    notice = session.get(Notice, notice_id) if fits_id(notice_id) else None
    if notice is None or not authz.can(viewer, action, notice):
        raise NotFound(f"没有编号为 #{notice_id} 的通知。")
    return notice


def notices_page(session: Session, viewer: Member, *, page: int = 1, per_page: int = 20) -> Page:
    """Return one page of the notices of the viewer's subtree, newest first, with the total."""
    authz.authorize(viewer, authz.LIST_NOTICES)
    page = clamp_page(page)
    where = (Notice.org_id == Organization.id, Organization.path.startswith(viewer.org.path))
    total = session.scalar(select(func.count(Notice.id)).join(Organization, where[0]).where(where[1])) or 0
    items = list(session.scalars(
        select(Notice).join(Organization, where[0]).where(where[1])
        .order_by(Notice.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ))
    return Page(items, total, page, per_page)


@dataclass
class Receipt:
    notice: Notice
    total: int = 0
    delivered: list[str] = field(default_factory=list)  # sent, and no failure reported (已送达)
    confirmed: list[str] = field(default_factory=list)  # of those, WeChat reported success
    refused: list[str] = field(default_factory=list)  # WeChat reported "failed:user block" (用户拒收)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # 状态未知: reason → names
    pending: list[str] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)  # reason → names
    unbound: list[str] = field(default_factory=list)  # bound no WeChat at all: nothing can reach them
    read: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "id": self.notice.id, "title": self.notice.title, "total": self.total,
            "delivered": len(self.delivered), "confirmed": len(self.confirmed),
            "refused": len(self.refused), "refused_names": self.refused,
            "unknown": sum(len(v) for v in self.unknown.values()),
            "unknown_by_reason": {k: {"count": len(v), "names": v} for k, v in self.unknown.items()},
            "pending": len(self.pending),
            "failed": sum(len(v) for v in self.failed.values()),
            "failed_by_reason": {k: {"count": len(v), "names": v} for k, v in self.failed.items()},
            "unbound": len(self.unbound), "unbound_names": self.unbound,
            "read": len(self.read), "unread": len(self.unread),
            "read_names": self.read, "unread_names": self.unread,
        }


def notice_receipt(session: Session, notice_id: int, viewer: Member) -> Receipt:
    """Who was sent the notice, who got it, who could not be reached and why (未绑定: a member bound
    to no WeChat at all, not a failure), who read it. The author is not one of its recipients."""
    notice = get_notice(session, notice_id, viewer)
    receipt = Receipt(notice)
    query = (
        select(OutboxMessage, Member.name, TemplateReport.status, Member.openid, Member.miniapp_openid)
        .join(Member, OutboxMessage.member_id == Member.id)
        .outerjoin(TemplateReport, TemplateReport.msgid == OutboxMessage.wx_msgid)
        .where(OutboxMessage.source == notice.source).order_by(Member.id)
    )
    if notice.author_id is not None:  # notices published before authors were left out
        query = query.where(OutboxMessage.member_id != notice.author_id)
    for row, name, report, openid, miniapp_openid in session.execute(query).all():
        receipt.total += 1
        if row.status != SENT and is_unbound(openid, miniapp_openid):
            receipt.unbound.append(name)
        elif row.status == SENT and report == REPORT_BLOCKED:
            receipt.refused.append(name)
        elif row.status == SENT and report not in (None, REPORT_SUCCESS):
            receipt.failed.setdefault(report_name(report), []).append(name)
        elif row.status == SENT:
            receipt.delivered.append(name)
            if report == REPORT_SUCCESS:
                receipt.confirmed.append(name)
        elif row.status == UNKNOWN:
            receipt.unknown.setdefault(row.last_error or "未收到微信答复", []).append(name)
        elif row.status == FAILED:
            receipt.failed.setdefault(row.last_error or "未知原因", []).append(name)
        else:
            receipt.pending.append(name)
        (receipt.read if row.read_at else receipt.unread).append(name)
    return receipt


def remind_unread(session: Session, notice_id: int, viewer: Member, *, now: datetime | None = None,
                  settings: Settings = DEFAULTS) -> int:
    """Send the notice again to those who have not read it (whatever became of the first sending:
    refused, failed, or 状态未知 after a call that got no answer), leaving out the author and the
    members bound to no WeChat; return how many; commit. At most once per NOTICE_REMIND_HOURS
    (0: no limit), however many ask at once: a conditional update of the notice decides."""
    now = now or now_utc()
    notice = get_notice(session, notice_id, viewer, authz.REMIND_NOTICE)
    query = (
        select(OutboxMessage.member_id, Member.openid, Member.miniapp_openid)
        .join(Member, OutboxMessage.member_id == Member.id)
        .where(OutboxMessage.source == notice.source, OutboxMessage.read_at.is_(None))
        .order_by(OutboxMessage.member_id)
    )
    if notice.author_id is not None:
        query = query.where(OutboxMessage.member_id != notice.author_id)
    unread = session.execute(query).all()
    if not unread:
        raise DomainError(f"通知 #{notice.id} 已全部阅读，无需再提醒。")
    reachable = [row.member_id for row in unread if not is_unbound(row.openid, row.miniapp_openid)]
    if not reachable:
        raise DomainError(f"通知 #{notice.id} 未读的 {len(unread)} 位成员都未绑定微信，无法再提醒。")
    hours = settings.notice_remind_hours
    where = [Notice.id == notice.id]
    if hours > 0:
        where.append(or_(Notice.reminded_at.is_(None), Notice.reminded_at <= now - timedelta(hours=hours)))
    taken = session.execute(
        update(Notice).where(*where)
        .values(reminders=Notice.reminders + 1, reminded_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        session.rollback()
        session.refresh(notice)
        raise _too_soon(notice, hours, settings)
    session.refresh(notice)
    source = f"{notice.source}:r{notice.reminders}"
    enqueue_many(session, reachable, source=source, kind="notice", title=f"再提醒：{notice.title}"[:30],
                 body=notice.body, urgent=notice.urgent)
    session.commit()
    return len(reachable)


def _too_soon(notice: Notice, hours: float, settings: Settings) -> DomainError:
    last = notice.reminded_at
    every = f"{hours:g}"
    return DomainError(
        f"通知 #{notice.id} 已于 {clock.day_time(last, settings.tz)} 再提醒过，每 {every} 小时最多再提醒一次；"
        f"下次可在 {clock.day_time(last + timedelta(hours=hours), settings.tz)} 之后。",
        code="remind_too_soon")


def recipient_count(session: Session, author: Member, *, kinds: list[str] | None = None,
                    grid_id: int | None = None, org_id: int | None = None) -> int:
    """How many members `publish_notice` with these arguments would queue the notice for (the
    console's preview before sending); refused as publish_notice refuses."""
    org = authz.authorized_org(session, author, authz.PUBLISH_NOTICE, org_id)
    return len(audience(session, org, kinds=kinds, grid_id=grid_id, exclude=author.id))


def next_remind_at(notice: Notice, settings: Settings = DEFAULTS) -> datetime | None:
    """When `remind_unread` will next be allowed for the notice (None: now)."""
    hours = settings.notice_remind_hours
    if hours <= 0 or notice.reminded_at is None:
        return None
    return notice.reminded_at + timedelta(hours=hours)
