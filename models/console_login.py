"""Signing in to the console by scanning a QR code: one login attempt per QR code.

The login page starts an attempt (`start_login`: a random token, valid CONSOLE_LOGIN_SECONDS) and
shows a temporary QR code of the Official Account whose scene is "login_<token>". The secretary
scans it with WeChat; the SCAN event confirms the attempt (`confirm_login`), which only a member
who may use the console can do (authz.USE_CONSOLE): anyone else's scan is refused and recorded on
the attempt, so that the page can say why nothing happened. The browser that started the attempt
polls it (`poll_login`) and, finding it confirmed, takes it with a conditional update: one QR code
signs in one browser, once.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz
from models.base import Base, DomainError, NotFound, UTCDateTime
from models.member import Member, member_for_openid

SCENE_PREFIX = "login_"  # the QR scene: "login_<token>" (WeChat allows 64 characters)
# A confirmed attempt must be taken by its browser (which polls every second) within this long.
PICKUP = timedelta(seconds=60)
# A page reloaded shows the attempt it started as long as this much of it is left.
REUSE_LEFT = timedelta(seconds=60)
# Attempts are deleted this long after they expired.
KEEP = timedelta(days=1)

# What a poll finds.
WAITING, REFUSED, DONE, EXPIRED, USED = "waiting", "refused", "done", "expired", "used"


class ConsoleLogin(Base):
    """One login attempt: one QR code on one browser's login page."""

    __tablename__ = "console_logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # the scene after "login_"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    qr_url: Mapped[str | None] = mapped_column(String(512))  # the QR code's content, from WeChat
    # Who scanned and confirmed it, and when (at most once).
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The code of the last refused scan (authz's refusal: "not_bound", "forbidden"), for the page.
    refused: Mapped[str | None] = mapped_column(String(32))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when its browser signed in

    confirmed_by: Mapped[Member | None] = relationship()

    @property
    def scene(self) -> str:
        return SCENE_PREFIX + self.token


@dataclass(frozen=True)
class Poll:
    """What a poll of an attempt found: its state, the member signed in (DONE), the refusal code
    of the last refused scan (REFUSED)."""

    state: str
    member: Member | None = None
    refused: str | None = None


def start_login(session: Session, now: datetime, settings: Settings = DEFAULTS, *,
                reuse_id: int | None = None) -> ConsoleLogin:
    """Return the attempt `reuse_id` if it is still waiting with time left (a reloaded page keeps
    its QR code), else a new one valid CONSOLE_LOGIN_SECONDS; commit. Old attempts are deleted."""
    if reuse_id is not None:
        login = session.get(ConsoleLogin, reuse_id, populate_existing=True)
        if (login is not None and login.confirmed_by_id is None and login.used_at is None
                and login.expires_at - now >= REUSE_LEFT):
            return login
    session.execute(delete(ConsoleLogin).where(ConsoleLogin.expires_at < now - KEEP)
                    .execution_options(synchronize_session=False))
    login = ConsoleLogin(token=secrets.token_urlsafe(32), created_at=now,
                         expires_at=now + timedelta(seconds=settings.console_login_seconds))
    session.add(login)
    session.commit()
    return login


def remember_qr(session: Session, login: ConsoleLogin, url: str) -> None:
    """Keep the QR code WeChat made for the attempt (a reloaded page shows the same one); commit."""
    login.qr_url = url
    session.commit()


def console_member(session: Session, openid: str) -> Member:
    """The member bound to an Official Account openid, if they may use the console (web
    authorization inside WeChat); else authz's refusal (Forbidden: "not_bound" for a stranger)."""
    member = member_for_openid(session, openid)
    authz.authorize(member, authz.USE_CONSOLE)
    return member


def confirm_login(session: Session, member: Member | None, token: str, *, now: datetime) -> ConsoleLogin:
    """The scan of a login QR code by `member` (None: an openid bound to no one) confirms its
    attempt, once, before it expires; commit. A member who may not use the console is refused
    (authz's Forbidden), and the refusal is recorded on the attempt for its page; a QR code already
    confirmed or expired is refused with that reason."""
    login = session.scalar(select(ConsoleLogin).where(ConsoleLogin.token == token[:64])
                           .execution_options(populate_existing=True))
    if login is None:
        raise NotFound("该登录二维码无法识别，请刷新登录页面后重新扫描。", code="login_unknown")
    if not authz.can(member, authz.USE_CONSOLE):
        refusal = authz.refusal(member, authz.USE_CONSOLE)
        session.execute(update(ConsoleLogin).where(ConsoleLogin.id == login.id,
                                                   ConsoleLogin.confirmed_by_id.is_(None))
                        .values(refused=refusal.code).execution_options(synchronize_session=False))
        session.commit()  # the page learns of the refusal; nothing is signed in
        raise refusal
    confirmed = session.execute(
        update(ConsoleLogin)
        .where(ConsoleLogin.id == login.id, ConsoleLogin.confirmed_by_id.is_(None), ConsoleLogin.expires_at > now)
        .values(confirmed_by_id=member.id, confirmed_at=now, refused=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not confirmed:
        session.rollback()
        if login.confirmed_by_id is not None:
            raise DomainError("该登录二维码已被使用，请刷新登录页面获取新的二维码。", code="login_used")
        raise DomainError("该登录二维码已过期，请刷新登录页面后重新扫描。", code="login_expired")
    session.commit()
    return login


def poll_login(session: Session, login_id: int | None, now: datetime) -> Poll:
    """What the browser that started attempt `login_id` finds when it asks: still WAITING (or
    REFUSED, with the last refusal: another member may still scan), EXPIRED, USED, or DONE — the
    first poll after a confirmation takes the attempt (conditional update, commit) and gets the
    member to sign in."""
    login = session.get(ConsoleLogin, login_id, populate_existing=True) if login_id is not None else None
    if login is None:
        return Poll(EXPIRED)
    if login.used_at is not None:
        return Poll(USED)
    if login.confirmed_by_id is not None:
        if now > login.confirmed_at + PICKUP:
            return Poll(EXPIRED)
        member_id = login.confirmed_by_id
        taken = session.execute(
            update(ConsoleLogin).where(ConsoleLogin.id == login.id, ConsoleLogin.used_at.is_(None))
            .values(used_at=now).execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if not taken:
            return Poll(USED)  # another poll of the same attempt took it first
        member = session.get(Member, member_id)
        if not authz.can(member, authz.USE_CONSOLE):  # lost the role since the scan
            return Poll(REFUSED, refused=authz.refusal(member, authz.USE_CONSOLE).code)
        return Poll(DONE, member=member)
    if now >= login.expires_at:
        return Poll(EXPIRED)
    if login.refused:
        return Poll(REFUSED, refused=login.refused)
    return Poll(WAITING)
