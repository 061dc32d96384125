"""Leave (请假): a member who cannot come to an occasion asks before it starts; a secretary of the
activity's organization approves or refuses; the member is told either way. Approved leave stops
that member's reminders for the occasion and counts as 请假, not 缺席, in the attendance. After the
occasion, a member absent without leave gets a short note (`queue_absence_notes`).

One request per member and activity (a unique row): asking again while it waits changes the
reason; after a refusal it waits again. A decision is a conditional update of a waiting request,
so two secretaries deciding at once decide once.
"""

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, UniqueConstraint, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, contains_eager, joinedload, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity.audience import in_audience
from models.activity.checkin import existing_checkin
from models.activity.tables import Activity
from models.base import Base, DomainError, Forbidden, NotFound, Page, UTCDateTime, insert_ignore
from models.member import Member
from models.outbox import enqueue
from models.text import clean_text

PENDING, APPROVED, REFUSED = "pending", "approved", "refused"
STATUS_NAMES = {PENDING: "待审批", APPROVED: "已准假", REFUSED: "未准假"}
MAX_REASON = 200


class LeaveRequest(Base):
    __tablename__ = "activity_leave_requests"
    __table_args__ = (UniqueConstraint("activity_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reason: Mapped[str] = mapped_column(String(MAX_REASON))
    status: Mapped[str] = mapped_column(String(10))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))

    activity: Mapped[Activity] = relationship()
    member: Mapped[Member] = relationship(foreign_keys=[member_id])
    decided_by: Mapped[Member | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]


def leave_of(session: Session, activity_id: int, member_id: int) -> LeaveRequest | None:
    return session.scalars(select(LeaveRequest).where(
        LeaveRequest.activity_id == activity_id, LeaveRequest.member_id == member_id)).first()


def request_leave(session: Session, activity: Activity, member: Member, reason: str, now: datetime,
                  settings: Settings = DEFAULTS) -> LeaveRequest:
    """Ask leave of `activity` (before it starts, for a member it is for, not yet signed in); the
    activity's secretaries are told through the outbox. Commit."""
    reason = clean_text((reason or "").strip(), "请假理由", MAX_REASON)
    if not reason:
        raise DomainError("请写明请假理由。", code="leave_reason")
    if activity.starts_at <= now:
        raise DomainError(f"活动 {activity.number} 已经开始，无法请假。", code="closed")
    if not in_audience(session, activity, member):
        raise Forbidden(f"活动 {activity.number} 不在您需要参加的范围内，无需请假。")
    if existing_checkin(session, activity.id, member.id) is not None:
        raise DomainError(f"您已签到活动 {activity.number}，无需请假。", code="already_checked_in")
    current = leave_of(session, activity.id, member.id)
    if current is not None and current.status == APPROVED:
        raise DomainError(f"您对活动 {activity.number} 的请假已获批准。", code="leave_approved")
    values = dict(reason=reason, status=PENDING, requested_at=now, decided_at=None, decided_by_id=None)
    if not insert_ignore(session, LeaveRequest.__table__, activity_id=activity.id, member_id=member.id, **values):
        session.execute(update(LeaveRequest).where(
            LeaveRequest.activity_id == activity.id, LeaveRequest.member_id == member.id,
            LeaveRequest.status != APPROVED).values(**values).execution_options(synchronize_session=False))
    leave = leave_of(session, activity.id, member.id)
    session.refresh(leave)
    _tell_secretaries(session, activity, leave, settings)
    session.commit()
    return leave


def _tell_secretaries(session: Session, activity: Activity, leave: LeaveRequest, settings: Settings) -> None:
    from models.wishes import secretaries_for  # the nearest secretaries of an organization

    body = (f"{leave.member.name} 请假：{activity.number}「{activity.title}」"
            f"（{clock.day_time(activity.starts_at, settings.tz)}），理由：{leave.reason}")
    for secretary in secretaries_for(session, activity.org):
        if secretary.id != leave.member_id:
            enqueue(session, source=f"leave:{leave.id}:asked:{leave.requested_at.isoformat()}", kind="activity",
                    title="请假申请", body=body, member_id=secretary.id)


def pending_leaves(session: Session, activity: Activity) -> list[LeaveRequest]:
    """The requests of `activity` waiting for a decision, oldest first, with their members."""
    return list(session.scalars(
        select(LeaveRequest).where(LeaveRequest.activity_id == activity.id, LeaveRequest.status == PENDING)
        .join(LeaveRequest.member).order_by(LeaveRequest.requested_at, LeaveRequest.id)))


def pending_leaves_for(session: Session, actor: Member, *, page: int = 1, per_page: int = 20) -> Page:
    """The requests waiting for a decision on the (not cancelled) activities `actor` manages — the
    leave queue of a secretary's subtree —, the soonest occasion first, with their members and
    activities: one page in a fixed number of statements."""
    authz.authorize(actor, authz.LIST_LEAVES)
    where = (LeaveRequest.status == PENDING, Activity.cancelled.is_(False), authz.activity_manager_clause(actor))
    queue = (select(LeaveRequest).join(LeaveRequest.activity).join(Activity.org).join(LeaveRequest.member)
             .where(*where))
    total = session.scalar(select(func.count()).select_from(LeaveRequest).join(LeaveRequest.activity)
                           .join(Activity.org).where(*where)) or 0
    page = max(1, page)
    rows = session.scalars(
        queue.options(contains_eager(LeaveRequest.activity).contains_eager(Activity.org),
                      contains_eager(LeaveRequest.member))
        .order_by(Activity.starts_at, Activity.id, LeaveRequest.requested_at, LeaveRequest.id)
        .offset((page - 1) * per_page).limit(per_page)).all()
    return Page(list(rows), total, page, per_page)


def leaves_of(session: Session, activity: Activity) -> list[LeaveRequest]:
    """Every request of `activity`, oldest first, with their members."""
    return list(session.scalars(
        select(LeaveRequest).where(LeaveRequest.activity_id == activity.id).options(joinedload(LeaveRequest.member))
        .order_by(LeaveRequest.requested_at, LeaveRequest.id)))


def approved_member_ids(session: Session, activity_id: int):
    """A SELECT of the members on approved leave from `activity_id` (for `NOT IN`)."""
    return select(LeaveRequest.member_id).where(
        LeaveRequest.activity_id == activity_id, LeaveRequest.status == APPROVED)


def decide_leave(session: Session, activity: Activity, actor: Member, member_id: int, approve: bool,
                 now: datetime, settings: Settings = DEFAULTS) -> LeaveRequest:
    """Approve or refuse a waiting request (a secretary or admin who manages the activity); the
    member is told. Commit."""
    authz.authorize(actor, authz.MANAGE_ACTIVITY, activity.org)
    leave = leave_of(session, activity.id, member_id)
    if leave is None:
        raise NotFound(f"没有该成员对活动 {activity.number} 的请假申请。", data={"what": "leave"})
    decided = session.execute(
        update(LeaveRequest).where(LeaveRequest.id == leave.id, LeaveRequest.status == PENDING)
        .values(status=APPROVED if approve else REFUSED, decided_at=now, decided_by_id=actor.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(leave)
    if not decided:
        session.rollback()
        raise DomainError(f"{leave.member.name} 的请假已处理：{leave.status_name}。", code="leave_decided")
    verdict = "已批准" if approve else "未获批准，请按时参加"
    enqueue(session, source=f"leave:{leave.id}:decided:{now.isoformat()}", kind="activity", title="请假结果",
            body=f"您对活动 {activity.number}「{activity.title}」（{clock.day_time(activity.starts_at, settings.tz)}）"
                 f"的请假{verdict}。", member_id=member_id)
    session.commit()
    return leave


def find_requester(session: Session, activity: Activity, name: str) -> LeaveRequest:
    """The request of `activity` by the member called `name` (the chat names members)."""
    rows = [leave for leave in leaves_of(session, activity) if leave.member.name == name]
    if not rows:
        raise NotFound(f"{name} 没有对活动 {activity.number} 请假。", data={"what": "leave"})
    if len(rows) > 1:
        raise DomainError(f"活动 {activity.number} 有 {len(rows)} 位名叫 {name} 的成员请假，请在管理后台或小程序处理。",
                          code="ambiguous_name")
    return rows[0]


# After the occasion -------------------------------------------------------------------------------
def queue_absence_notes(session: Session, now: datetime, settings: Settings = DEFAULTS) -> int:
    """For every occasion that ended in the last day, a short note in the inbox of each member it was
    for who neither signed in nor had leave approved — for organizational life when
    ABSENCE_NOTE_ORGLIFE is on (the default), for volunteer services when ABSENCE_NOTE_VOLUNTEER is
    (off by default). Once per occasion and member (the outbox's unique source). Commit."""
    from models.activity.audience import expected_members
    from models.activity.tables import VOLUNTEER, CheckIn

    kinds = []
    if settings.absence_note_orglife:
        kinds.append(Activity.kind != VOLUNTEER)
    if settings.absence_note_volunteer:
        kinds.append(Activity.kind == VOLUNTEER)
    if not kinds:
        return 0
    ended = session.scalars(select(Activity).where(
        Activity.cancelled.is_(False), Activity.ends_at <= now, Activity.ends_at > now - timedelta(days=1),
        or_(*kinds)).order_by(Activity.ends_at, Activity.id)).all()
    queued = 0
    for activity in ended:
        excused = set(session.scalars(select(CheckIn.member_id).where(CheckIn.activity_id == activity.id)
                                      .union(approved_member_ids(session, activity.id))))
        body = (f"您未参加{clock.day_time(activity.starts_at, settings.tz)}的{activity.number}「{activity.title}」"
                "，也没有请假。如有特殊情况，请向书记说明。")
        for member in expected_members(session, activity):
            if member.id not in excused:
                queued += enqueue(session, source=f"activity:{activity.id}:absent", kind="activity",
                                  title="缺席提醒", body=body, member_id=member.id)
        session.commit()
    return queued
