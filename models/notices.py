"""Ad-hoc notices (通知) to a secretary's subtree, with read receipts and reminders of the unread."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz, clock
from models.base import Base, DomainError, NotFound, Page, UTCDateTime, now_utc
from models.member import KINDS, Member
from models.org import Organization
from models.outbox import (
    FAILED,
    REPORT_BLOCKED,
    REPORT_NAMES,
    REPORT_SUCCESS,
    SENT,
    UNKNOWN,
    OutboxMessage,
    TemplateReport,
    enqueue_select,
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


def audience_ids(org: Organization, *, kinds: list[str] | None = None, grid_id: int | None = None,
                 exclude: int | None = None) -> Select:
    """The ids of the active members of `org`'s subtree, optionally of some kinds or one grid,
    without the member `exclude` (a notice's author is not its recipient), as a SELECT: the subtree
    is `org_id IN (…)`, so the members come by `ix_members_org_id`, never a scan of the district."""
    subtree = select(Organization.id).where(Organization.path.startswith(org.path))
    query = select(Member.id).where(Member.org_id.in_(subtree), Member.active.is_(True))
    if exclude is not None:
        query = query.where(Member.id != exclude)
    if kinds:
        query = query.where(Member.kind.in_(kinds))
    if grid_id is not None:
        query = query.where(Member.grid_id == grid_id)
    return query


def audience(session: Session, org: Organization, *, kinds: list[str] | None = None,
             grid_id: int | None = None, exclude: int | None = None) -> list[Member]:
    """Return the members `audience_ids` names, by id."""
    ids = audience_ids(org, kinds=kinds, grid_id=grid_id, exclude=exclude)
    return list(session.scalars(select(Member).where(Member.id.in_(ids)).order_by(Member.id)))


def publish_notice(session: Session, author: Member, body: str, *, title: str = "",
                   kinds: list[str] | None = None, grid_id: int | None = None, urgent: bool = False,
                   org_id: int | None = None) -> Published:
    """Publish a notice to the author's subtree (or a node within it) and queue it for everyone
    in the audience, in one transaction; commit. The deliveries are one INSERT … SELECT from the
    audience: the statements do not grow with it."""
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
    members = audience_ids(org, kinds=kinds, grid_id=grid_id, exclude=author.id)
    if not session.scalar(select(members.exists())):
        raise _nobody()
    title = (title or body.splitlines()[0])[:30]
    notice = Notice(org_id=org.id, author_id=author.id, title=title, body=body, urgent=urgent,
                    kinds=",".join(kinds or []), grid_id=grid_id)
    session.add(notice)
    session.flush()
    recipients = enqueue_select(session, members, source=notice.source, kind="notice", title=title,
                                body=body, urgent=urgent)
    if not recipients:  # the audience left between the check and the insert
        session.rollback()
        raise _nobody()
    session.commit()
    return Published(notice, recipients)


def _nobody() -> DomainError:
    return DomainError("该范围内没有可通知的成员（不含您本人）。")


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


RECEIPT_PER_PAGE = 100  # names a receipt lists per group and page, unless asked otherwise
NAMED_GROUPS = ("refused", "unknown", "failed", "unbound")  # the groups whose names a receipt lists


@dataclass
class Receipt:
    """A notice's receipt: the count of every group (counted in SQL), and one page of names
    (`page`, `per_page`, in member order) of each group that lists them and of the read and the
    unread. A small notice's names fit the first page."""

    notice: Notice
    page: int = 1
    per_page: int = RECEIPT_PER_PAGE
    total: int = 0
    # Counts: delivered (sent, and no failure reported: 已送达), confirmed (of those, WeChat reported
    # success), refused (WeChat reported "failed:user block": 用户拒收), unknown (状态未知), pending,
    # failed, unbound (bound to no WeChat at all: nothing can reach them), read, unread.
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # unknown/failed: reason → count
    # Names, one page of each.
    refused: list[str] = field(default_factory=list)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # reason → names
    failed: dict[str, list[str]] = field(default_factory=dict)  # reason → names
    unbound: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def count(self, group: str) -> int:
        return self.counts.get(group, 0)

    @property
    def pages(self) -> int:
        """Pages of names of the longest list."""
        longest = max([self.count(g) for g in (*NAMED_GROUPS, "read", "unread")], default=0)
        return (longest + self.per_page - 1) // self.per_page

    def by_reason(self, group: str) -> dict[str, dict]:
        names = getattr(self, group)
        return {reason: {"count": count, "names": names.get(reason, [])}
                for reason, count in self.reasons.get(group, {}).items()}

    def as_dict(self) -> dict:
        return {
            "id": self.notice.id, "title": self.notice.title, "total": self.total,
            "page": self.page, "per_page": self.per_page, "pages": self.pages,
            "delivered": self.count("delivered"), "confirmed": self.count("confirmed"),
            "refused": self.count("refused"), "refused_names": self.refused,
            "unknown": self.count("unknown"), "unknown_by_reason": self.by_reason("unknown"),
            "pending": self.count("pending"),
            "failed": self.count("failed"), "failed_by_reason": self.by_reason("failed"),
            "unbound": self.count("unbound"), "unbound_names": self.unbound,
            "read": self.count("read"), "unread": self.count("unread"),
            "read_names": self.read, "unread_names": self.unread,
        }


def _report_name_sql(report):
    """`report_name` in SQL."""
    return case(*[(report == status, name) for status, name in REPORT_NAMES.items()],
                (report.contains("block"), REPORT_NAMES[REPORT_BLOCKED]),
                else_=literal("发送失败（", String) + report + literal("）", String))


def _receipt_rows(notice: Notice):
    """Each recipient of the notice as (member_id, name, grp, reason, is_read): the group the
    receipt counts them in, the reason of an unknown or failed one (else NULL), whether they read it."""
    report, status = TemplateReport.status, OutboxMessage.status
    sent = status == SENT
    unbound = and_(func.coalesce(Member.openid, "") == "", func.coalesce(Member.miniapp_openid, "") == "")
    reported_failure = and_(sent, report.is_not(None), report.not_in([REPORT_SUCCESS, REPORT_BLOCKED]))
    group = case(
        (and_(~sent, unbound), "unbound"),
        (and_(sent, report == REPORT_BLOCKED), "refused"),
        (reported_failure, "failed"),
        (and_(sent, report == REPORT_SUCCESS), "confirmed"),
        (sent, "delivered"),
        (status == UNKNOWN, "unknown"),
        (status == FAILED, "failed"),
        else_="pending")
    reason = case(
        (reported_failure, _report_name_sql(report)),
        (and_(~unbound, status == UNKNOWN), func.coalesce(func.nullif(OutboxMessage.last_error, ""), "未收到微信答复")),
        (and_(~unbound, status == FAILED), func.coalesce(func.nullif(OutboxMessage.last_error, ""), "未知原因")),
        else_=None)
    query = (
        select(OutboxMessage.member_id, Member.name, group.label("grp"), reason.label("reason"),
               case((OutboxMessage.read_at.is_not(None), 1), else_=0).label("is_read"))
        .join(Member, OutboxMessage.member_id == Member.id)
        .outerjoin(TemplateReport, TemplateReport.msgid == OutboxMessage.wx_msgid)
        .where(OutboxMessage.source == notice.source)
    )
    if notice.author_id is not None:  # notices published before authors were left out
        query = query.where(OutboxMessage.member_id != notice.author_id)
    return query.subquery()


def notice_receipt(session: Session, notice_id: int, viewer: Member, *, page: int = 1,
                   per_page: int = RECEIPT_PER_PAGE) -> Receipt:
    """Who was sent the notice, who got it, who could not be reached and why (未绑定: a member bound
    to no WeChat at all, not a failure), who read it. The author is not one of its recipients.
    Three statements whatever the audience: the notice, the counts (GROUP BY), one page of names
    of every group (a window function numbers each group's members)."""
    notice = get_notice(session, notice_id, viewer)
    page, per_page = clamp_page(page), max(1, per_page)
    receipt = Receipt(notice, page, per_page)
    rows = _receipt_rows(notice)
    counted = session.execute(select(rows.c.grp, rows.c.reason, rows.c.is_read, func.count())
                              .group_by(rows.c.grp, rows.c.reason, rows.c.is_read)).all()
    for grp, reason, is_read, count in sorted(counted, key=lambda r: (r.grp, r.reason or "")):
        receipt.total += count
        receipt.counts[grp] = receipt.count(grp) + count
        receipt.counts["read" if is_read else "unread"] = receipt.count("read" if is_read else "unread") + count
        if reason is not None:
            reasons = receipt.reasons.setdefault(grp, {})
            reasons[reason] = reasons.get(reason, 0) + count
    receipt.counts["delivered"] = receipt.count("delivered") + receipt.count("confirmed")
    if not receipt.total:
        return receipt
    _name_page(session, receipt, rows)
    return receipt


def _lists(receipt: Receipt) -> list[tuple[str, str | None]]:
    """The name lists a receipt fills, as (attribute, reason): every non-empty group that lists
    names (one list per reason of those that have reasons), the read and the unread."""
    keys = []
    for grp in NAMED_GROUPS:
        if receipt.count(grp):
            reasons = receipt.reasons.get(grp)
            keys += [(grp, reason) for reason in sorted(reasons)] if reasons else [(grp, None)]
    return keys + [("read", None), ("unread", None)]


def _in_list(columns, grp: str, reason: str | None):
    """Whether a row of `_receipt_rows` (its `columns`) is in the list (grp, reason), in SQL."""
    if grp in ("read", "unread"):
        return columns.is_read == (1 if grp == "read" else 0)
    return and_(columns.grp == grp, columns.reason == reason) if reason is not None else columns.grp == grp


def _name_page(session: Session, receipt: Receipt, rows) -> None:
    """Fill in one page of names of each list: one statement, one window in member order that keeps a
    running count of every list (no sort by group: each row is numbered in its lists as it comes)."""
    keys = _lists(receipt)
    running = [func.sum(case((_in_list(rows.c, grp, reason), 1), else_=0))
               .over(order_by=rows.c.member_id, rows=(None, 0)).label(f"n{i}")
               for i, (grp, reason) in enumerate(keys)]
    numbered = select(rows, *running).subquery()
    first, last = (receipt.page - 1) * receipt.per_page, receipt.page * receipt.per_page
    in_page = [and_(_in_list(numbered.c, grp, reason), numbered.c[f"n{i}"] > first, numbered.c[f"n{i}"] <= last)
               for i, (grp, reason) in enumerate(keys)]
    named = session.execute(select(numbered).where(or_(*in_page)).order_by(numbered.c.member_id)).mappings()
    for row in named:
        for i, (grp, reason) in enumerate(keys):
            if not first < row[f"n{i}"] <= last:
                continue
            if grp in ("read", "unread"):
                if (grp == "read") == bool(row["is_read"]):
                    getattr(receipt, grp).append(row["name"])
            elif row["grp"] == grp and (reason is None or row["reason"] == reason):
                names = getattr(receipt, grp)
                (names.setdefault(reason, []) if reason is not None else names).append(row["name"])


def remind_unread(session: Session, notice_id: int, viewer: Member, *, now: datetime | None = None,
                  settings: Settings = DEFAULTS) -> int:
    """Send the notice again to those who have not read it (whatever became of the first sending:
    refused, failed, or 状态未知 after a call that got no answer), leaving out the author and the
    members bound to no WeChat; return how many; commit. At most once per NOTICE_REMIND_HOURS
    (0: no limit), however many ask at once: a conditional update of the notice decides. The
    reminders are one INSERT … SELECT of the unread: nothing loads the recipients."""
    now = now or now_utc()
    notice = get_notice(session, notice_id, viewer, authz.REMIND_NOTICE)
    unread = [OutboxMessage.source == notice.source, OutboxMessage.read_at.is_(None)]
    if notice.author_id is not None:
        unread.append(OutboxMessage.member_id != notice.author_id)
    bound = or_(func.coalesce(Member.openid, "") != "", func.coalesce(Member.miniapp_openid, "") != "")
    counted = session.execute(
        select(func.count(), func.count(case((bound, 1))))
        .select_from(OutboxMessage).join(Member, OutboxMessage.member_id == Member.id).where(*unread)
    ).one()
    if not counted[0]:
        raise DomainError(f"通知 #{notice.id} 已全部阅读，无需再提醒。")
    if not counted[1]:
        raise DomainError(f"通知 #{notice.id} 未读的 {counted[0]} 位成员都未绑定微信，无法再提醒。")
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
    reachable = (select(OutboxMessage.member_id).join(Member, OutboxMessage.member_id == Member.id)
                 .where(*unread, bound))
    count = enqueue_select(session, reachable, source=source, kind="notice",
                           title=f"再提醒：{notice.title}"[:30], body=notice.body, urgent=notice.urgent)
    session.commit()
    return count


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
    ids = audience_ids(org, kinds=kinds, grid_id=grid_id, exclude=author.id)
    return session.scalar(select(func.count()).select_from(ids.subquery())) or 0


def next_remind_at(notice: Notice, settings: Settings = DEFAULTS) -> datetime | None:
    """When `remind_unread` will next be allowed for the notice (None: now)."""
    hours = settings.notice_remind_hours
    if hours <= 0 or notice.reminded_at is None:
        return None
    return notice.reminded_at + timedelta(hours=hours)
