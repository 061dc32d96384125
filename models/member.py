"""Members (党员, 志愿者, 书记, 管理员), their WeChat identities, and binding."""

import re
import unicodedata
from datetime import date, datetime, timedelta

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models.base import Base, DomainError, UTCDateTime, now_utc
from models.org import Grid, Organization
from models.text import MAX_NAME, MAX_PHONE_TYPED, clean_text

KINDS = ("直管党员", "在职党员", "流动党员", "离退休党员", "群众")
PARTY_KINDS = KINDS[:4]
ROLES = ("党员", "志愿者", "书记", "管理员")
# Roles that manage the subtree of their organization.
MANAGER_ROLES = ("书记", "管理员")


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), index=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="直管党员")
    role: Mapped[str] = mapped_column(String(10), default="党员")
    join_date: Mapped[date | None] = mapped_column(Date)  # political birthday
    full_member_date: Mapped[date | None] = mapped_column(Date)  # 转正日期: full member since
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)
    # 网格长: the head of their grid, who may confirm the wishes of that grid's residents.
    grid_head: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The Official Account openid bound by 绑定, the mini-program openid, and the unionid that
    # links both when WeChat gives one.
    openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    miniapp_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), unique=True)
    bound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

    org: Mapped[Organization] = relationship()
    grid: Mapped[Grid | None] = relationship(foreign_keys=[grid_id])

    @property
    def is_manager(self) -> bool:
        return self.role in MANAGER_ROLES

    def heads_grid(self, grid_id: int | None) -> bool:
        """Whether this member is the (active) head of the grid `grid_id`."""
        return bool(self.grid_head and self.active and grid_id is not None and self.grid_id == grid_id)

    @property
    def is_party_member(self) -> bool:
        return self.kind in PARTY_KINDS


class WechatUser(Base):
    """What we know of an Official Account follower, bound or not."""

    __tablename__ = "wechat_users"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_binds: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    located_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


class MiniappUser(Base):
    """What we know of a mini-program user (by mini-program openid), bound or not."""

    __tablename__ = "miniapp_users"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    failed_binds: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


# Binding through the Official Account (column "openid") or the mini-program ("miniapp_openid"):
# where the failed attempts are counted, and how the user is told to unbind.
_BIND_CHANNELS = {
    "openid": (WechatUser, "发送「解绑」", "发送「我的」查看"),
    "miniapp_openid": (MiniappUser, "在小程序中解除绑定", "在小程序中查看"),
}

_NOT_DIGITS = re.compile(r"\D")


def normalize_phone(raw: str) -> str:
    """Return the digits of a mainland mobile number, without a +86 prefix."""
    digits = _NOT_DIGITS.sub("", unicodedata.normalize("NFKC", str(raw)))
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


def is_valid_mobile(phone: str) -> bool:
    return len(phone) == 11 and phone.startswith("1")


def mask_phone(phone: str | None) -> str:
    """Return "138****5678" for "13812345678"."""
    if not phone:
        return ""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}****{phone[-4:]}"


# Built once: this lookup runs for nearly every chatbot message.
_BY_OPENID = select(Member).where(Member.openid == bindparam("openid"), Member.active.is_(True)).limit(1)


def member_for_openid(session: Session, openid: str) -> Member | None:
    """Return the active member bound to an Official Account openid, or None."""
    return session.scalars(_BY_OPENID, {"openid": openid}).first()


_ROLE_BY_OPENID = (select(Member.role).where(Member.openid == bindparam("openid"), Member.active.is_(True))
                   .limit(1))


def role_for_openid(session: Session, openid: str) -> str | None:
    """Return the role of the member bound to `openid` (None: not bound).

    Answers from a pooled connection of its own, outside the session's transaction: 帮助 and the
    permission check need nothing else, and a session's transaction would cost more than the query.
    """
    with session.get_bind().connect() as conn:
        return conn.execute(_ROLE_BY_OPENID, {"openid": openid}).scalar()


def member_for_miniapp_openid(session: Session, openid: str) -> Member | None:
    """Return the active member bound to a mini-program openid, or None."""
    return session.scalars(
        select(Member).where(Member.miniapp_openid == openid, Member.active.is_(True))
    ).first()


def ensure_wechat_user(session: Session, openid: str, model: type = WechatUser):
    """Return the follower row of `openid`, creating it if missing (race-safe, no commit)."""
    user = session.get(model, openid)
    if user is not None:
        return user
    try:
        with session.begin_nested():
            user = model(openid=openid)
            session.add(user)
    except IntegrityError:
        # Another request created it between our read and our insert.
        user = session.get(model, openid)
    return user


def bind_openid(
    session: Session,
    openid: str,
    name: str,
    phone: str,
    *,
    now: datetime | None = None,
    column: str = "openid",
    unionid: str | None = None,
    settings: Settings = DEFAULTS,
) -> Member:
    """Bind `openid` to the rostered member with exactly this name and phone; commit.

    `column` says which identity is bound: "openid" (Official Account, the default) or
    "miniapp_openid" (mini-program; a `unionid` from WeChat is then kept on the member too).
    Failed attempts are counted per openid; after BIND_MAX_FAILURES (from the settings) the openid
    is locked out for BIND_LOCKOUT_SECONDS. Every guess first reserves an attempt (a conditional
    UPDATE, committed) and only then is checked, so however many guesses arrive at once, at most
    BIND_MAX_FAILURES per lock-out are ever checked.
    """
    max_failures, lockout = settings.bind_max_failures, timedelta(seconds=settings.bind_lockout_seconds)
    name = clean_text(name, "姓名", MAX_NAME)
    phone = clean_text(phone, "手机号", MAX_PHONE_TYPED)
    model, unbind_hint, show_hint = _BIND_CHANNELS[column]
    target = getattr(Member, column)
    now = now or now_utc()
    user = ensure_wechat_user(session, openid, model)
    session.refresh(user)
    if user.locked_until and user.locked_until > now:
        session.commit()
        raise _locked(user.locked_until, now)

    if column == "openid":
        current = member_for_openid(session, openid)
    else:
        current = member_for_miniapp_openid(session, openid)
    if current is not None:
        session.commit()
        if current.name == unicodedata.normalize("NFKC", name).strip() and current.phone == normalize_phone(phone):
            return current  # the same member again (a retry, a second tap): already done
        raise DomainError(f"您的微信已绑定为「{current.name}」。如需更换，请先{unbind_hint}。", code="already_bound")

    name = unicodedata.normalize("NFKC", name).strip()
    phone = normalize_phone(phone)
    if not is_valid_mobile(phone):
        # Not a guess at anyone's number: refused without spending one of the tries.
        session.commit()
        raise DomainError("手机号格式不对，请填写11位手机号码（可带空格或短横线）。", code="bad_phone")

    used = _reserve_bind_attempt(session, openid, now, max_failures, lockout, model)
    if used is None:
        session.refresh(user)
        until = user.locked_until if user.locked_until and user.locked_until > now else now + lockout
        session.commit()
        raise _locked(until, now)

    member = session.scalars(
        select(Member).where(Member.name == name, Member.phone == phone, Member.active.is_(True))
    ).first()
    if member is None:
        session.commit()  # the attempt reserved above stays counted
        left = max(0, max_failures - used)
        if left:
            tries = f"请核对后重试（还可再试{left}次，失败{max_failures}次将暂停绑定{_minutes(lockout)}分钟）"
        else:
            tries = f"失败已达{max_failures}次，绑定暂停{_minutes(lockout)}分钟后才能再试"
        raise DomainError(
            f"未找到与该姓名和手机号匹配的登记信息，{tries}，或联系所在支部书记登记。",
            code="no_match",
        )

    values = {column: openid, "bound_at": now}
    if unionid and member.unionid is None:
        values["unionid"] = unionid
    # A conditional update: of two people binding the same member at once, exactly one wins.
    try:
        claimed = session.execute(
            update(Member)
            .where(Member.id == member.id, target.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    except IntegrityError:
        # The openid was bound to another member by a concurrent request.
        session.rollback()
        raise DomainError(f"您的微信刚刚已完成绑定，请{show_hint}。", code="already_bound") from None
    if claimed != 1:
        session.rollback()
        raise DomainError(
            "该党员信息已被其他微信号绑定。如非本人操作，请联系所在支部书记解除该绑定后再绑定。", code="taken"
        )
    session.execute(
        update(model).where(model.openid == openid).values(failed_binds=0, locked_until=None)
    )
    session.commit()
    session.refresh(member)
    return member


def _minutes(span: timedelta) -> int:
    return max(1, int(span.total_seconds() // 60))


def _locked(until: datetime, now: datetime) -> DomainError:
    return DomainError(f"绑定失败次数过多，请{_minutes(until - now)}分钟后再试。", code="locked", status=429)


def _reserve_bind_attempt(session, openid, now, max_failures, lockout, model=WechatUser) -> int | None:
    """Count one attempt before it is checked, atomically; commit. Return how many attempts the
    counter holds with this one (the row's own count, whatever ran at the same time); None: no
    attempt is left.

    A counter whose lock-out has run out starts again; the attempt that uses up the last try sets
    the lock-out at once. The conditional UPDATE is the arbiter: concurrent guesses queue on the
    row (PostgreSQL) or the database lock (SQLite), and each sees the count the others left.
    """
    session.execute(
        update(model)
        .where(model.openid == openid, model.locked_until <= now)
        .values(failed_binds=0, locked_until=None)
    )
    reserved = session.execute(
        update(model)
        .where(model.openid == openid, model.failed_binds < max_failures,
               or_(model.locked_until.is_(None), model.locked_until <= now))
        .values(failed_binds=model.failed_binds + 1,
                locked_until=case((model.failed_binds + 1 >= max_failures, now + lockout), else_=None))
        .returning(model.failed_binds)
        .execution_options(synchronize_session=False)
    ).scalar()
    session.commit()
    return reserved


def unbind_openid(session: Session, openid: str) -> Member:
    """Release the member bound to `openid`; commit."""
    member = member_for_openid(session, openid)
    if member is None:
        raise DomainError("您的微信尚未绑定党员信息。", code="not_bound")
    member.openid = None
    member.bound_at = None
    session.commit()
    return member


def record_location(session: Session, openid: str, latitude: float, longitude: float, now=None) -> None:
    """Keep the follower's last reported position (LOCATION events); commit."""
    user = ensure_wechat_user(session, openid)
    user.latitude, user.longitude, user.located_at = latitude, longitude, now or now_utc()
    session.commit()


def set_subscribed(session: Session, openid: str, subscribed: bool) -> None:
    """Record a follow or unfollow; commit."""
    user = ensure_wechat_user(session, openid)
    user.subscribed = subscribed
    session.commit()


def count_members(session: Session) -> int:
    return session.scalar(select(func.count(Member.id))) or 0


def login_miniapp(session: Session, openid: str, unionid: str | None = None, *,
                  now: datetime | None = None) -> Member | None:
    """Record a mini-program login and return the member it belongs to, or None; commit.

    The member is the one bound to this mini-program openid, or else the one carrying the same
    `unionid` (the same person bound through the Official Account): that member is then linked.
    """
    now = now or now_utc()
    user = ensure_wechat_user(session, openid, MiniappUser)
    user.last_login_at = now
    if unionid:
        user.unionid = unionid
    member = member_for_miniapp_openid(session, openid)
    if member is None and unionid:
        candidate = session.scalars(
            select(Member).where(Member.unionid == unionid, Member.active.is_(True))
        ).first()
        if candidate is not None:
            # Conditional: never take over a member already bound to another mini-program openid.
            try:
                with session.begin_nested():
                    linked = session.execute(
                        update(Member)
                        .where(Member.id == candidate.id, Member.miniapp_openid.is_(None))
                        .values(miniapp_openid=openid, bound_at=func.coalesce(Member.bound_at, now))
                        .execution_options(synchronize_session=False)
                    ).rowcount
            except IntegrityError:
                linked = 0  # this openid is still held by a deactivated member
            if linked == 1:
                member = candidate
    elif member is not None and unionid and member.unionid is None:
        try:
            with session.begin_nested():
                member.unionid = unionid
        except IntegrityError:
            member.unionid = None  # another member carries it; leave the link as it was
    session.commit()
    if member is not None:
        session.refresh(member)
    return member


def unbind_miniapp(session: Session, openid: str) -> Member:
    """Release the member bound to a mini-program openid (and forget its unionid link); commit."""
    member = member_for_miniapp_openid(session, openid)
    if member is None:
        raise DomainError("您的微信尚未绑定党员信息。", code="not_bound")
    member.miniapp_openid = None
    member.unionid = None
    if member.openid is None:
        member.bound_at = None
    session.commit()
    return member
