"""Members (党员, 志愿者, 书记, 管理员), their WeChat identities, and binding."""

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

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
from models.org import PATH_SEPARATOR, Grid, Organization
from models.text import MAX_GRID, MAX_NAME, MAX_ORG, MAX_PHONE_TYPED, clean_text

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


# What each field of a member's record may hold ----------------------------------------------
# One table for every way a record changes: an edit through the API or the console
# (models.directory.update_member) and a roster row (models.roster) run the same checks. Each door
# reads its input its own way first (the API takes typed values, a roster cell is text), then asks
# `FIELDS[key].check(value, today)`; the problem found is worded by `edit` (a sentence, raised) or
# `row` (a phrase, one of a row's reasons), formatted with the value as given (`{value}`), its
# length (`{length}`), the rule's `{label}` and `{max_length}`.
@dataclass(frozen=True)
class FieldRule:
    key: str  # the API's field, the Member attribute
    label: str  # the Chinese name: the roster's column
    check: Callable[[Any, date], str | None]  # (value, today) → a problem, or None
    edit: Mapping[str, str] = field(default_factory=dict)  # problem → sentence of an edit's error
    row: Mapping[str, str] = field(default_factory=dict)  # problem → phrase of a roster row's error
    max_length: int | None = None  # longest text as typed (the API refuses it before `check`)

    def edit_error(self, problem: str, value: Any = "") -> DomainError:
        return DomainError(self._word(self.edit, problem, value), code="invalid", status=422)

    def row_reason(self, problem: str, value: Any = "") -> str:
        return self._word(self.row, problem, value)

    def _word(self, words: Mapping[str, str], problem: str, value: Any) -> str:
        return words[problem].format(value=value, label=self.label, length=len(str(value)),
                                     max_length=self.max_length)


def _text_problem(longest: int) -> Callable[[Any, date], str | None]:
    return lambda value, _today: "empty" if not value else "long" if len(value) > longest else None


def _phone_problem(raw: str, _today: date) -> str | None:
    """The phone as typed: empty, too long, or not a mainland mobile number."""
    if not raw:
        return "empty"
    if len(raw) > MAX_PHONE_TYPED:
        return "long"
    return None if is_valid_mobile(normalize_phone(raw)) else "invalid"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, date], str | None]:
    return lambda value, _today: None if value in choices else "invalid"


def _not_future(value: date | None, today: date) -> str | None:
    return "future" if value is not None and value > today else None


def dates_in_order(join_date: date | None, full_member_date: date | None) -> bool:
    """Whether a member becomes a full member (转正) no earlier than they joined (both may be unknown)."""
    return not (join_date and full_member_date and full_member_date < join_date)


def _org_path_problem(path: str, _today: date) -> str | None:
    if not path:
        return "empty"
    return "long" if any(len(part) > MAX_ORG for part in path.split(PATH_SEPARATOR)) else None


_NAME_WORDS = f"姓名不能为空，且不超过{MAX_NAME}个字。"
_PHONE_WORDS = "手机号应为11位手机号。"
FIELDS: dict[str, FieldRule] = {rule.key: rule for rule in (
    FieldRule("name", "姓名", _text_problem(MAX_NAME), max_length=MAX_NAME,
              edit={"empty": _NAME_WORDS, "long": _NAME_WORDS},
              row={"empty": "姓名为空", "long": "姓名过长"}),
    FieldRule("phone", "手机号", _phone_problem, max_length=MAX_PHONE_TYPED,
              edit={"empty": _PHONE_WORDS, "long": _PHONE_WORDS, "invalid": _PHONE_WORDS},
              row={"empty": "手机号为空", "long": "手机号过长", "invalid": "手机号「{value}」不是11位手机号",
                   "duplicate": "手机号与第 {value} 行重复"}),
    FieldRule("org", "所属组织", _org_path_problem,
              row={"empty": "所属组织为空", "long": f"所属组织的每一级名称不超过{MAX_ORG}字"}),
    FieldRule("kind", "党员类别", _one_of(KINDS),
              edit={"invalid": f"党员类别应为{'、'.join(KINDS)}之一。"},
              row={"invalid": f"党员类别应为{'、'.join(KINDS)}之一"}),
    FieldRule("join_date", "入党日期", _not_future,
              edit={"future": "入党日期不能晚于今天。"},
              row={"future": "入党日期晚于今天", "unreadable": "入党日期「{value}」无法识别，应如 2001-07-01"}),
    FieldRule("full_member_date", "转正日期", _not_future,
              edit={"future": "转正日期不能晚于今天。", "before_join": "转正日期不能早于入党日期。"},
              row={"future": "转正日期晚于今天", "before_join": "转正日期早于入党日期",
                   "unreadable": "转正日期「{value}」无法识别，应如 2002-07-01"}),
    FieldRule("role", "角色", _one_of(ROLES),
              edit={"invalid": f"角色应为{'、'.join(ROLES)}之一。"},
              row={"invalid": f"角色应为{'、'.join(ROLES)}之一"}),
    FieldRule("grid", "网格", lambda value, _today: "long" if len(value) > MAX_GRID else None, max_length=MAX_GRID,
              edit={"long": "{label}太长了：最多{max_length}字，现有{length}字。"},
              row={"long": f"网格名称过长（最多{MAX_GRID}字）"}),
    # The value: (whether the member heads their grid, whether they have a grid).
    FieldRule("grid_head", "网格长", lambda value, _today: "no_grid" if value[0] and not value[1] else None,
              edit={"no_grid": "请先设置该成员所在的网格，再设为网格长。"},
              row={"no_grid": "网格长须填写所在网格", "unreadable": "网格长应填「是」或「否」，而不是「{value}」"}),
)}


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
