"""Mini-program subscribe messages: the consents and refusals a member gave, as wx.requestSubscribeMessage
reports them.

`wx.requestSubscribeMessage` answers `{"errMsg": "requestSubscribeMessage:ok", "<template id>":
"accept" | "reject" | "ban" | "filter", ...}`. A template id stands for a kind of message through the
MINIAPP_TEMPLATE_<KIND> settings (the settings are passed in). Each "accept" is one more
one-time consent (a SubscribeGrant, spent by the sender); any other answer is kept as the member's
latest refusal of that kind, with its reason and time, until a later "accept" supersedes it.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from config import Settings
from models.base import Base, DomainError, UTCDateTime, now_utc
from models.outbox import INBOX_KINDS, SubscribeGrant, grant_subscription, record_subscription

ACCEPT = "accept"
# WeChat's answers other than accept: the user refused; the platform banned the template; the
# template was filtered out (same title as another one requested).
REFUSALS = {"reject": "用户拒绝", "ban": "模板已被封禁", "filter": "模板被过滤"}
ANSWERS = (ACCEPT, *REFUSALS)
KIND_NAMES = {"notice": "通知", "reminder": "提醒", "greeting": "祝福", "wish": "微心愿", "activity": "活动"}
OK_MESSAGE = "requestSubscribeMessage:ok"
MAX_TEMPLATES = 20


class SubscribeRefusal(Base):
    """A member's latest refusal of subscribe messages of one kind (gone once they accept again)."""

    __tablename__ = "subscribe_refusals"
    __table_args__ = (UniqueConstraint("member_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(10))  # reject, ban or filter
    template_id: Mapped[str] = mapped_column(String(128))
    refused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


@dataclass
class SubscriptionState:
    kind: str
    template_id: str | None
    answer: str | None  # what this request answered for the kind (None: not asked)
    remaining: int
    refused: str | None  # the standing refusal's reason, if any
    refused_at: datetime | None

    @property
    def name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)


@dataclass
class SubscribeOutcome:
    items: list[SubscriptionState]
    unknown: list[str]  # template ids the answer held that no setting names

    @property
    def message(self) -> str:
        accepted = [s.name for s in self.items if s.answer == ACCEPT]
        refused = [s.name for s in self.items if s.answer in REFUSALS]
        parts = []
        if accepted:
            parts.append(f"已订阅：{'、'.join(accepted)}")
        if refused:
            parts.append(f"未订阅：{'、'.join(refused)}")
        return "；".join(parts) + "。"


def template_ids(settings: Settings) -> dict[str, str]:
    """The subscribe template ids by kind, from the MINIAPP_TEMPLATE_<KIND> settings (kinds
    without one left out)."""
    ids = {kind: getattr(settings, f"miniapp_template_{kind}").strip() for kind in INBOX_KINDS}
    return {kind: template_id for kind, template_id in ids.items() if template_id}


def record_consents(session: Session, member_id: int, kind: str, count: int, settings: Settings) -> SubscribeOutcome:
    """Record `count` consents for one kind (the older request shape, {"template": kind, "count": n});
    commit."""
    if kind in INBOX_KINDS:
        session.execute(delete(SubscribeRefusal).where(
            SubscribeRefusal.member_id == member_id, SubscribeRefusal.kind == kind))
    record_subscription(session, member_id, kind, count)
    items = [state for state in subscription_states(session, member_id, settings) if state.kind == kind]
    for state in items:
        state.answer = ACCEPT
    return SubscribeOutcome(items, [])


def record_subscribe_answer(session: Session, member_id: int, answer: dict, settings: Settings,
                            now: datetime | None = None) -> SubscribeOutcome:
    """Record what wx.requestSubscribeMessage answered for a member; commit.

    Raises DomainError (422) for a failed request, answers that are not one of ANSWERS, or an
    answer naming no configured template; template ids no setting names are reported back, the
    others recorded all the same.
    """
    now = now or now_utc()
    if not isinstance(answer, dict):
        raise DomainError("订阅结果格式有误。", code="invalid", status=422)
    err_msg = answer.get("errMsg", OK_MESSAGE)
    if not isinstance(err_msg, str) or not err_msg.endswith(":ok"):
        raise DomainError(f"订阅消息授权未成功（{str(err_msg)[:100]}），未记录任何订阅。",
                          code="subscribe_failed", status=422)
    kind_of = {template_id: kind for kind, template_id in template_ids(settings).items()}
    results = {key: value for key, value in answer.items() if key not in ("errMsg", "errCode")}
    if len(results) > MAX_TEMPLATES:
        raise DomainError(f"一次最多记录 {MAX_TEMPLATES} 个订阅消息模板。", code="invalid", status=422)
    bad = sorted(key for key, value in results.items() if value not in ANSWERS)
    if bad:
        raise DomainError(f"订阅结果应为 accept、reject、ban 或 filter：{'、'.join(bad)[:200]}。",
                          code="invalid", status=422)
    known = {kind_of[key]: (key, value) for key, value in results.items() if key in kind_of}
    unknown = sorted(key for key in results if key not in kind_of)
    if not known:
        raise DomainError("订阅结果中没有本系统的订阅消息模板，请重新进入小程序后再试。",
                          code="unknown_template", status=422)
    for kind, (template_id, value) in known.items():
        if value == ACCEPT:
            grant_subscription(session, member_id, kind, 1)
            session.execute(delete(SubscribeRefusal).where(
                SubscribeRefusal.member_id == member_id, SubscribeRefusal.kind == kind))
        else:
            _refuse(session, member_id, kind, value, template_id, now)
    session.commit()
    answered = {kind: value for kind, (_, value) in known.items()}
    states = subscription_states(session, member_id, settings)
    for state in states:
        state.answer = answered.get(state.kind)
    return SubscribeOutcome([s for s in states if s.answer], unknown)


def _refuse(session: Session, member_id: int, kind: str, reason: str, template_id: str, now: datetime) -> None:
    values = dict(reason=reason, template_id=template_id[:128], refused_at=now)
    where = (SubscribeRefusal.member_id == member_id, SubscribeRefusal.kind == kind)
    if session.execute(update(SubscribeRefusal).where(*where).values(**values)).rowcount:
        return
    try:
        with session.begin_nested():
            session.add(SubscribeRefusal(member_id=member_id, kind=kind, **values))
    except IntegrityError:  # recorded concurrently: the latest one wins
        session.execute(update(SubscribeRefusal).where(*where).values(**values))


def subscription_states(session: Session, member_id: int, settings: Settings) -> list[SubscriptionState]:
    """Every kind with its template id, the consents left and the standing refusal."""
    remaining = dict(session.execute(select(SubscribeGrant.kind, SubscribeGrant.remaining).where(
        SubscribeGrant.member_id == member_id)).all())
    refusals = {r.kind: r for r in session.scalars(select(SubscribeRefusal).where(
        SubscribeRefusal.member_id == member_id))}
    ids = template_ids(settings)
    return [SubscriptionState(kind, ids.get(kind), None, remaining.get(kind, 0),
                              refusals[kind].reason if kind in refusals else None,
                              refusals[kind].refused_at if kind in refusals else None)
            for kind in INBOX_KINDS]
