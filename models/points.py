"""The points ledger (积分): append-only; a balance is the sum of a member's entries.

No entry is ever updated or deleted; a correction is a new (negative) entry. Manual awards and
corrections wait in `ManualAward` until a second secretary or an admin approves them; only then
do they reach the ledger.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz, clock
from models.base import Base, DomainError, Forbidden, NotFound, UTCDateTime, now_utc
from models.member import Member
from models.org import Organization, community_of
from models.text import MAX_POINTS, MAX_REASON, check_int, clean_text, fits_id

AWARD_PENDING, AWARD_APPROVED, AWARD_REFUSED = "待审批", "已批准", "已驳回"


class PointEntry(Base):
    __tablename__ = "point_entries"
    # A source (a wish, an activity, a manual award) credits a member once.
    __table_args__ = (UniqueConstraint("member_id", "source", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # wish, activity, manual
    source_id: Mapped[str] = mapped_column(String(64))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)


class ManualAward(Base):
    """A manual award or correction by a secretary, waiting for a second person's approval."""

    __tablename__ = "manual_awards"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default=AWARD_PENDING, index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str] = mapped_column(String(200), default="")

    # For showing an award (待办): who gets it and who filed it.
    member: Mapped[Member] = relationship(foreign_keys=[member_id], viewonly=True)
    requested_by: Mapped[Member] = relationship(foreign_keys=[requested_by_id], viewonly=True)


def balance(session: Session, member_id: int) -> int:
    """Return the sum of a member's ledger entries."""
    total = session.scalar(select(func.sum(PointEntry.amount)).where(PointEntry.member_id == member_id))
    return int(total or 0)


def credit(session: Session, *, member_id: int, amount: int, reason: str, source: str, source_id: str,
           recorded_by_id: int | None = None, now: datetime | None = None) -> bool:
    """Add a ledger entry in the caller's transaction; return False if this source already credited
    this member (the unique key decides, so concurrent credits count once)."""
    try:
        with session.begin_nested():
            session.add(PointEntry(member_id=member_id, amount=amount, reason=reason[:200], source=source,
                                   source_id=str(source_id), recorded_by_id=recorded_by_id,
                                   created_at=now or now_utc()))
    except IntegrityError:
        return False
    return True


def recent_entries(session: Session, member_id: int, limit: int = 5) -> list[PointEntry]:
    return list(session.scalars(
        select(PointEntry).where(PointEntry.member_id == member_id)
        .order_by(PointEntry.created_at.desc(), PointEntry.id.desc()).limit(limit)
    ))


@dataclass
class Rank:
    place: int
    member_id: int
    name: str
    points: int


def ranking(session: Session, org: Organization | None = None, *, since: datetime | None = None,
            limit: int = 10) -> list[Rank]:
    """Return the members of `org`'s subtree (all when None) ranked by points earned since `since`."""
    total = func.sum(PointEntry.amount).label("total")
    query = (
        select(Member.id, Member.name, total)
        .join(PointEntry, PointEntry.member_id == Member.id)
        .join(Organization, Organization.id == Member.org_id)
        .group_by(Member.id, Member.name)
        .having(func.sum(PointEntry.amount) > 0)
        .order_by(total.desc(), Member.id)
        .limit(limit)
    )
    if org is not None:
        query = query.where(Organization.path.startswith(org.path))
    if since is not None:
        query = query.where(PointEntry.created_at >= since)
    rows = session.execute(query)
    return [Rank(i, mid, name, int(points)) for i, (mid, name, points) in enumerate(rows, 1)]


@dataclass
class Statement:
    balance: int
    entries: list[PointEntry]


def statement(session: Session, member_id: int, limit: int = 10) -> Statement:
    """Return a member's balance and latest ledger entries."""
    return Statement(balance(session, member_id), recent_entries(session, member_id, limit))


@dataclass
class Board:
    org: Organization
    period: str  # month, all
    since: datetime | None
    ranks: list[Rank]


PERIODS = ("month", "all")


def ranking_for(session: Session, viewer: Member, org_id: int | None = None, *, period: str = "month",
                now: datetime | None = None, limit: int = 10, settings: Settings = DEFAULTS) -> Board:
    """Return the ranking of an organization's subtree (the viewer's community by default): open to
    the members of that community, and to the managers above it."""
    if period not in PERIODS:
        raise DomainError("期间应为 month（本月）或 all（总榜）。", code="invalid", status=422)
    community = community_of(viewer.org)
    if org_id is None:
        org = community
    else:
        org = session.get(Organization, org_id) if fits_id(org_id) else None
        if org is None:
            raise NotFound("未找到该组织。")
        authz.authorize(viewer, authz.VIEW_RANKING, org)
    since = clock.month_start(now or now_utc(), settings.tz) if period == "month" else None
    return Board(org, period, since, ranking(session, org, since=since, limit=limit))


def request_award(session: Session, actor: Member, member_id: int, amount: int, reason: str,
                  now: datetime | None = None) -> ManualAward:
    """Propose a manual award (or, negative, a correction); it counts only once approved. Commit."""
    reason = clean_text(reason, "原因", MAX_REASON).strip()
    check_int(amount, "积分数", minimum=-MAX_POINTS, maximum=MAX_POINTS)
    authz.authorize(actor, authz.REQUEST_AWARD)
    if not reason:
        raise DomainError("手动录入积分必须填写原因。", code="reason_required")
    if amount == 0:
        raise DomainError("积分数不能为0。")
    member = session.get(Member, member_id) if fits_id(member_id) else None
    if member is None:
        raise NotFound("未找到该党员。")
    if not authz.can(actor, authz.AWARD_POINTS, member):
        if member.org.is_within(actor.org):
            raise Forbidden("不能为自己或同级的书记、管理员录入积分，请由上级录入。")
        raise Forbidden("只能为本组织及下级组织的成员录入积分。")
    award = ManualAward(member_id=member.id, amount=amount, reason=reason[:200],
                        requested_by_id=actor.id, requested_at=now or now_utc())
    session.add(award)
    session.commit()
    return award


def decide_award(session: Session, actor: Member, award_id: int, approve: bool, note: str = "",
                 now: datetime | None = None) -> ManualAward:
    """Approve (credit the ledger) or refuse a pending manual award, by a second manager. Commit."""
    now = now or now_utc()
    note = clean_text(note, "审批意见", MAX_REASON)
    award = session.get(ManualAward, award_id) if fits_id(award_id) else None
    if award is None:
        raise NotFound(f"未找到积分申请 #{award_id}。")
    member = session.get(Member, award.member_id)
    problem = authz.award_decision_problem(actor, award.requested_by_id, member)
    if problem:
        raise Forbidden(problem)
    status = AWARD_APPROVED if approve else AWARD_REFUSED
    # A conditional update: of two approvers at once, one decides.
    changed = session.execute(
        update(ManualAward)
        .where(ManualAward.id == award.id, ManualAward.status == AWARD_PENDING)
        .values(status=status, decided_by_id=actor.id, decided_at=now, decision_note=note[:200])
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        session.rollback()
        raise DomainError(f"积分申请 #{award_id} 已处理过。", code="already_decided", status=409)
    if approve:
        credit(session, member_id=award.member_id, amount=award.amount, reason=award.reason,
               source="manual", source_id=str(award.id), recorded_by_id=award.requested_by_id, now=now)
    session.commit()
    session.refresh(award)
    return award


# What a listed award shows and its check asks, loaded with the awards (no query per award): the
# recipient with their organization (authz judges by it), and who filed it.
AWARD_SHOWN = (joinedload(ManualAward.member).joinedload(Member.org), joinedload(ManualAward.requested_by))


def pending_awards(session: Session, actor: Member) -> list[ManualAward]:
    """Return the manual awards waiting for `actor`'s approval (not their own)."""
    authz.authorize(actor, authz.LIST_AWARDS)
    query = (select(ManualAward).join(Member, Member.id == ManualAward.member_id)
             .join(Organization, Organization.id == Member.org_id)
             .where(ManualAward.status == AWARD_PENDING, ManualAward.requested_by_id != actor.id)
             .order_by(ManualAward.id).options(*AWARD_SHOWN))
    query = query.where(Organization.path.startswith(actor.org.path))
    return [award for award in session.scalars(query)
            if authz.award_decision_problem(actor, award.requested_by_id, award.member) is None]


def requested_awards(session: Session, actor: Member, *, limit: int = 10) -> list[ManualAward]:
    """Return the manual awards `actor` filed, latest first, whatever their state (what they wait for)."""
    authz.authorize(actor, authz.REQUEST_AWARD)
    return list(session.scalars(
        select(ManualAward).where(ManualAward.requested_by_id == actor.id)
        .order_by(ManualAward.id.desc()).limit(limit).options(*AWARD_SHOWN)
    ))


__all__ = ["Board", "ManualAward", "PointEntry", "Rank", "Statement", "balance", "credit", "decide_award",
           "pending_awards", "ranking", "ranking_for", "recent_entries", "request_award",
           "requested_awards", "statement"]
