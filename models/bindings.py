"""A secretary frees a member's binding (解绑 姓名), with an audit trail and a word to the member.

The member's own 解绑 lives in models.member; this is the manager's door for the case the chatbot
sends people to their secretary with ("该党员信息已被其他微信号绑定"): a WeChat account that is not
the member's holds the member, or the member changed phones and cannot unbind the old account.
Every release is kept (who, whom, when, which identities were bound, why), and the member gets an
inbox message through the outbox in the same transaction.
"""

import unicodedata
from datetime import datetime

from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz, clock
from models.base import Base, DomainError, NotFound, UTCDateTime, now_utc
from models.member import Member, is_valid_mobile, normalize_phone
from models.org import Organization
from models.outbox import enqueue

REASON_MAX = 100  # characters of a reason kept with a release
NAME_SHOWN = 20  # characters of a name echoed in an answer


class BindingRelease(Base):
    """One binding freed by a manager: the audit trail of 解绑 姓名."""

    __tablename__ = "binding_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)  # whom
    released_by_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)  # who
    released_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)  # when
    # Which binding: the identities the member was bound to until then (None: not bound there),
    # and since when.
    openid: Mapped[str | None] = mapped_column(String(64))  # the Official Account openid
    miniapp_openid: Mapped[str | None] = mapped_column(String(64))  # the mini-program openid
    bound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")

    member: Mapped[Member] = relationship(foreign_keys=[member_id])
    released_by: Mapped[Member] = relationship(foreign_keys=[released_by_id])

    @property
    def channels(self) -> list[str]:
        """The bindings freed, in words."""
        return [word for word, value in (("公众号", self.openid), ("小程序", self.miniapp_openid)) if value]


class AmbiguousMember(DomainError):
    """Several members the manager is responsible for carry the name: the phone must say which."""

    code = "ambiguous"

    def __init__(self, message: str, candidates: list[Member]):
        super().__init__(message)
        self.candidates = candidates


def release_source(release_id: int) -> str:
    return f"binding-release:{release_id}"


def find_member_to_release(session: Session, actor: Member | None, name: str, phone: str | None = None
                           ) -> Member:
    """The one member named `name` (and with `phone`, if given) whose binding `actor` may free.

    Raises Forbidden for a non-manager, or when the only matches are people the actor is not
    responsible for (themself, a peer secretary); NotFound when nobody in the actor's subtree
    matches; AmbiguousMember (with the candidates) when the name alone names several."""
    authz.authorize(actor, authz.LIST_MEMBERS)  # the search runs over the members of their subtree
    name = unicodedata.normalize("NFKC", name or "").strip()
    if not name:
        raise DomainError("请写明要解除绑定的成员姓名。", code="no_name")
    shown = name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN] + "…"
    query = (select(Member).join(Organization, Member.org_id == Organization.id)
             .where(Member.name == name, Member.active.is_(True), authz.subtree_clause(actor.org)))
    if phone is not None:
        phone = normalize_phone(phone)
        if not is_valid_mobile(phone):
            raise DomainError("手机号格式不对，请填写11位手机号码。", code="bad_phone")
        query = query.where(Member.phone == phone)
    found = list(session.scalars(query.order_by(Member.id)))
    allowed = [m for m in found if authz.can(actor, authz.RELEASE_BINDING, m)]
    if not allowed:
        if found:
            authz.authorize(actor, authz.RELEASE_BINDING, found[0])  # raises, with the reason
        which = f"姓名为「{shown}」、手机号为{phone}的成员" if phone else f"名为「{shown}」的成员"
        raise NotFound(f"在您管理的组织中没有找到{which}。")
    if len(allowed) > 1:
        raise AmbiguousMember(f"您负责的成员中有{len(allowed)}位名为「{name}」，请同时写明手机号以确认是哪一位。",
                              allowed)
    return allowed[0]


def release_binding(session: Session, actor: Member | None, name: str, phone: str | None = None, *,
                    reason: str = "", now: datetime | None = None, settings: Settings = DEFAULTS
                    ) -> BindingRelease:
    """Free every WeChat identity (Official Account and mini-program) bound to the member `actor`
    names, record it, and queue an inbox message to the member, in one transaction; commit.

    The release is a conditional update on the identities read: of two managers freeing the same
    member at once, or a release racing the member's own 解绑 or a new 绑定, exactly one acts."""
    now = now or now_utc()
    reason = " ".join((reason or "").split())  # kept as typed (full-width punctuation and all)
    if len(reason) > REASON_MAX:
        raise DomainError(f"解绑原因最多{REASON_MAX}字。", code="reason_too_long")
    member = find_member_to_release(session, actor, name, phone)
    old_openid, old_miniapp, old_bound_at = member.openid, member.miniapp_openid, member.bound_at
    if old_openid is None and old_miniapp is None:
        session.rollback()
        raise DomainError(f"「{member.name}」目前没有绑定微信，无需解绑。", code="not_bound")

    def same(column, value):
        return column.is_(None) if value is None else column == value

    freed = session.execute(
        update(Member)
        .where(Member.id == member.id, same(Member.openid, old_openid), same(Member.miniapp_openid, old_miniapp))
        .values(openid=None, miniapp_openid=None, unionid=None, bound_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if freed != 1:
        session.rollback()
        raise DomainError(f"「{member.name}」的绑定刚刚已有变动，请稍后再试。", code="conflict")
    release = BindingRelease(member_id=member.id, released_by_id=actor.id, released_at=now, openid=old_openid,
                             miniapp_openid=old_miniapp, bound_at=old_bound_at, reason=reason)
    session.add(release)
    session.flush()
    because = f"\n原因：{reason}" if reason else ""
    enqueue(session, source=release_source(release.id), kind="notice", member_id=member.id,
            title="您的微信绑定已解除",
            body=(f"{member.name}，您的党员信息与微信的绑定已于{clock.day_time(now, settings.tz)}由{actor.name}"
                  f"（{actor.org.name}）解除。{because}\n如需继续使用，请用本人微信重新绑定。"))
    session.commit()
    session.refresh(member)
    return release

