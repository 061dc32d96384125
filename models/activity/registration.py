"""Registration (报名): seats, the waiting list, cancellations and promotions."""

from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import clock
from models.activity.audience import in_audience
from models.activity.tables import AUDIENCES, CANCELLED, REGISTERED, WAITING, Activity, Registration
from models.base import DomainError, Forbidden, insert_ignore
from models.member import Member


def registration_of(session: Session, activity_id: int, member_id: int) -> Registration | None:
    return session.scalars(select(Registration).where(
        Registration.activity_id == activity_id, Registration.member_id == member_id)).first()



# Registration ------------------------------------------------------------------------------------
def register(session: Session, activity: Activity, member: Member, now: datetime) -> Registration:
    """Take a seat, or a place on the waiting list when the activity is full; commit."""
    if not activity.registration:
        raise DomainError(f"活动 {activity.number} 无需报名，届时直接签到即可。", code="no_registration")
    if activity.starts_at <= now:
        raise DomainError(f"活动 {activity.number} 已经开始，报名已截止。", code="closed")
    if not in_audience(session, activity, member):
        raise Forbidden(f"活动 {activity.number} 仅限{AUDIENCES[activity.audience]}参加。")
    existing = registration_of(session, activity.id, member.id)
    if existing is not None and existing.status != CANCELLED:
        raise DomainError(registration_text(session, activity, existing), code="already_registered")
    # A seat is a conditional increment: it never passes the capacity, however many ask at once.
    seated = session.execute(
        update(Activity)
        .where(Activity.id == activity.id,
               or_(Activity.capacity.is_(None), Activity.registered_count < Activity.capacity))
        .values(registered_count=Activity.registered_count + 1)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    status = REGISTERED if seated else WAITING
    added = insert_ignore(session, Registration.__table__, activity_id=activity.id, member_id=member.id,
                          status=status, queued_at=now)
    if not added:
        revived = session.execute(
            update(Registration)
            .where(Registration.activity_id == activity.id, Registration.member_id == member.id,
                   Registration.status == CANCELLED)
            .values(status=status, queued_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not revived:
            # The same member registered at the same moment from another request.
            session.rollback()
            raise DomainError("您已报名。", code="already_registered")
    session.commit()
    reg = registration_of(session, activity.id, member.id)
    session.refresh(reg)
    return reg


def cancel_registration(session: Session, activity: Activity, member: Member, now: datetime,
                        settings: Settings = DEFAULTS) -> Member | None:
    """Cancel a registration; a freed seat goes to the first on the waiting list, who is told
    through the outbox. Return the promoted member, if any; commit."""
    from models.outbox import enqueue

    if activity.starts_at <= now:
        raise DomainError(f"活动 {activity.number} 已经开始，无法取消报名。", code="closed")
    reg = registration_of(session, activity.id, member.id)
    if reg is None or reg.status == CANCELLED:
        raise DomainError(f"您没有报名活动 {activity.number}。", code="not_registered")
    was = reg.status
    changed = session.execute(
        update(Registration).where(Registration.id == reg.id, Registration.status == was)
        .values(status=CANCELLED).execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        session.rollback()
        raise DomainError("报名状态刚刚发生变化，请查看活动的最新情况。", code="registration_changed",
                          data={"number": activity.number})
    promoted = None
    if was == REGISTERED:
        # The seat passes to the first waiting member; a conditional update, so two cancellations
        # at once never promote the same person twice.
        waiting = session.scalars(
            select(Registration).where(Registration.activity_id == activity.id, Registration.status == WAITING)
            .order_by(Registration.queued_at, Registration.id)
        ).all()
        for candidate in waiting:
            won = session.execute(
                update(Registration).where(Registration.id == candidate.id, Registration.status == WAITING)
                .values(status=REGISTERED).execution_options(synchronize_session=False)
            ).rowcount
            if won:
                promoted = session.get(Member, candidate.member_id)
                break
        if promoted is None:
            session.execute(
                update(Activity).where(Activity.id == activity.id)
                .values(registered_count=Activity.registered_count - 1)
                .execution_options(synchronize_session=False)
            )
        else:
            enqueue(session, source=f"activity:{activity.id}:promoted:{promoted.id}:{now:%Y%m%d%H%M%S}",
                    kind="activity", member_id=promoted.id, openid=promoted.openid, title="候补转正",
                    body=f"您候补的活动 {activity.number}「{activity.title}」有了空位，已为您转为正式报名。"
                         f"时间：{clock.day_time(activity.starts_at, settings.tz)}。")
    session.commit()
    session.expire_all()
    return promoted


def registration_text(session: Session, activity: Activity, reg: Registration) -> str:
    """Where a member stands: registered, or how many are ahead on the waiting list."""
    if reg.status == REGISTERED:
        return f"您已报名活动 {activity.number}。"
    return f"您在活动 {activity.number} 的候补名单上，前面还有 {waiting_ahead(session, activity, reg)} 人。"


def waiting_ahead(session: Session, activity: Activity, reg: Registration) -> int:
    """How many are ahead of `reg` on the activity's waiting list."""
    return session.scalar(select(func.count(Registration.id)).where(
        Registration.activity_id == activity.id, Registration.status == WAITING,
        or_(Registration.queued_at < reg.queued_at,
            and_(Registration.queued_at == reg.queued_at, Registration.id < reg.id)))) or 0

