"""微心愿: a resident's small wish, posted or proposed, claimed by exactly one person, fulfilled,
confirmed, and credited once.

Every operation is one function and one transaction (it commits). State changes are conditional
updates (`UPDATE wishes … WHERE id=… AND status=…`) checked by their row count, never
read-then-write: `with_for_update()` renders nothing on SQLite, and a read-then-write gives many
winners there. The chatbot, the REST API and the scheduler call these same functions.
"""

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    Text,
    case,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, joinedload, mapped_column, relationship, selectinload

from config import DEFAULTS, Settings
from models import authz, clock
from models.base import Base, DomainError, Forbidden, NotFound, UTCDateTime, now_utc
from models.member import Member, is_valid_mobile, mask_phone, normalize_phone
from models.org import Grid, Organization, community_of
from models.outbox import enqueue
from models.points import ManualAward, credit, pending_awards
from models.sheets import append_row, new_sheet, to_bytes
from models.text import (
    MAX_ADDRESS,
    MAX_DETAILS,
    MAX_NAME,
    MAX_NOTE,
    MAX_PHONE,
    MAX_POINTS,
    MAX_TITLE,
    check_int,
    clamp_page,
    clean_text,
    fits_id,
)

CATEGORIES = ("生活用品", "维修", "陪伴探访", "学习用品", "就医出行", "其他")
# States. 未通过: a proposal the secretary turned down.
PENDING, OPEN, CLAIMED, FULFILLED, DONE = "待审核", "待认领", "已认领", "待确认", "已完成"
WITHDRAWN, REFUSED = "已撤回", "未通过"
STATES = (PENDING, OPEN, CLAIMED, FULFILLED, DONE, WITHDRAWN, REFUSED)
# Claims a person still has to fulfil (counted against the open-claims limit).
HELD = (CLAIMED, FULFILLED)
WITHDRAWABLE = (PENDING, OPEN, CLAIMED, FULFILLED)
# States anyone may see; the others only those involved (authz.VIEW_WISH).
PUBLIC = (OPEN, CLAIMED, FULFILLED, DONE)
MAX_PHOTOS = 9

# Words in a wish's text → its category, when none is given. A wish that asks someone to do
# something is a service (the first three; tutoring counts as 陪伴探访), whatever things it
# mentions ("辅导作业" is no request for school supplies, "电风扇坏了" no request for a fan).
_SERVICE_WORDS = {
    "维修": ("修", "漏", "坏", "换灯", "疏通", "安装"),
    "陪伴探访": ("陪", "探访", "看望", "聊天", "探望", "辅导", "补课", "补习", "家教", "讲解", "读报"),
    "就医出行": ("就医", "看病", "医院", "出行", "复诊", "接送", "挂号", "取药", "轮椅", "拐杖"),
}
_SUPPLY_WORDS = {
    "学习用品": ("书", "文具", "学习", "作业本", "笔", "字典"),
    "生活用品": ("米", "油", "衣", "被子", "棉被", "电器", "用品", "风扇", "棉"),
}
# Words that hold a category word without meaning it (书记 is no book).
_NOT_CATEGORY_WORDS = ("书记", "秘书", "教育局")


class Wish(Base):
    __tablename__ = "wishes"

    id: Mapped[int] = mapped_column(primary_key=True)  # shown as "#12"
    title: Mapped[str] = mapped_column(String(100))
    details: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(10), default="其他")
    beneficiary_name: Mapped[str] = mapped_column(String(100), default="")
    beneficiary_address: Mapped[str] = mapped_column(String(200), default="")
    beneficiary_phone: Mapped[str] = mapped_column(String(20), default="")
    # Set when the beneficiary is a bound member: they may then confirm the fulfilment themself.
    beneficiary_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    points: Mapped[int] = mapped_column(Integer)  # always given: WISH_DEFAULT_POINTS unless chosen
    status: Mapped[str] = mapped_column(String(10), index=True)
    poster_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    claimer_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    # Incremented by each claim: keys a claim's reminders so a re-claim gets its own.
    claim_count: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfil_by: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfil_note: Mapped[str] = mapped_column(Text, default="")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    org: Mapped[Organization] = relationship()
    grid: Mapped[Grid | None] = relationship()
    poster: Mapped[Member] = relationship(foreign_keys=[poster_id])
    claimer: Mapped[Member | None] = relationship(foreign_keys=[claimer_id])
    photos: Mapped[list["WishPhoto"]] = relationship(order_by="WishPhoto.id", viewonly=True)
    events: Mapped[list["WishEvent"]] = relationship(order_by="(WishEvent.at, WishEvent.id)", viewonly=True)

    @property
    def number(self) -> str:
        return f"#{self.id}"

    @property
    def is_public(self) -> bool:
        """Open or taken: anyone may see it (a proposal, a refused or withdrawn wish: those involved)."""
        return self.status in PUBLIC

    @property
    def is_taken(self) -> bool:
        """Claimed, and not given back: its claimer sees the beneficiary."""
        return self.status in (CLAIMED, FULFILLED, DONE)


class WishEvent(Base):
    """One transition of a wish: who, when, from, to, why."""

    __tablename__ = "wish_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))  # None: the scheduler
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(10))
    to_status: Mapped[str] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    actor: Mapped[Member | None] = relationship()


class WishPhoto(Base):
    __tablename__ = "wish_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id"), index=True)
    media_id: Mapped[str] = mapped_column(String(200))
    added_by_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


# Helpers ---------------------------------------------------------------------------------------
def guess_category(text: str) -> str:
    """Return the category of the service word that appears first in `text`, else of the first
    supply word (其他 when none)."""
    for word in _NOT_CATEGORY_WORDS:
        text = text.replace(word, " ")
    for table in (_SERVICE_WORDS, _SUPPLY_WORDS):
        found = [(at, category) for category, words in table.items() for w in words
                 if (at := text.find(w)) >= 0]
        if found:
            return min(found)[1]
    return "其他"


def sentence(text: str, end: str = "。") -> str:
    """`text` ended once: a free text (a reason, a note) as the user typed it, followed by our own
    punctuation, without 「。。」 or 「，。」 — a text that already ends a sentence keeps its end,
    one that ends in a comma or a colon has it replaced."""
    text = (text or "").rstrip()
    if not text:
        return ""
    if text[-1] in _SENTENCE_ENDS:
        return text
    return text.rstrip(_SOFT_ENDS).rstrip() + end


_SENTENCE_ENDS = "。！？!?…"
_SOFT_ENDS = "，,、；;：:. "


def get_wish(session: Session, wish_id: int) -> Wish:
    """Return the wish, freshly read, or raise NotFound."""
    wish = session.get(Wish, wish_id, populate_existing=True) if fits_id(wish_id) else None
    if wish is None:
        raise NotFound(f"未找到心愿 #{wish_id}。", data={"what": "wish"})
    return wish


def view_wish(session: Session, viewer: Member | None, wish_id: int) -> Wish:
    """Return the wish if `viewer` may see it; NotFound otherwise (as if it did not exist)."""
    wish = get_wish(session, wish_id)
    if not authz.can(viewer, authz.VIEW_WISH, wish):
        raise NotFound(f"未找到心愿 #{wish_id}。", data={"what": "wish"})
    return wish


def managed_wish(session: Session, manager: Member | None, wish_id: int) -> Wish:
    """Return the wish if it is one `manager` manages (of their subtree) or may confirm (a grid head,
    the bound beneficiary); NotFound otherwise, open or not (the console shows only these)."""
    wish = get_wish(session, wish_id)
    if not (authz.can(manager, authz.MANAGE_WISHES, wish.org) or authz.can(manager, authz.CONFIRM_WISH, wish)):
        raise NotFound(f"未找到心愿 #{wish_id}。", data={"what": "wish"})
    return wish


def _mask_text(text: str, keep: int) -> str:
    if not text:
        return ""
    return text[:keep] + "*" * min(4, max(1, len(text) - keep))


def beneficiary_of(wish: Wish, viewer: Member | None) -> dict:
    """Return the beneficiary's name, address and phone, masked unless `viewer` may see them."""
    if authz.can(viewer, authz.VIEW_BENEFICIARY, wish):
        return {"name": wish.beneficiary_name, "address": wish.beneficiary_address,
                "phone": wish.beneficiary_phone, "masked": False}
    return {"name": _mask_text(wish.beneficiary_name, 1), "address": _mask_text(wish.beneficiary_address, 6),
            "phone": mask_phone(wish.beneficiary_phone), "masked": True}


def secretaries_for(session: Session, org: Organization) -> list[Member]:
    """Return the nearest secretaries at or above `org` (the admins above when there are none)."""
    above = literal(org.path).startswith(Organization.path)
    for role in ("书记", "管理员"):
        rows = session.execute(
            select(Member, Organization.level).join(Organization, Organization.id == Member.org_id)
            .where(above, Member.role == role, Member.active.is_(True))
            .order_by(Organization.level.desc(), Member.id)
        ).all()
        if rows:
            nearest = rows[0][1]
            return [m for m, level in rows if level == nearest]
    return []


def _record(session: Session, wish_id: int, actor_id: int | None, action: str, frm: str | None, to: str,
            note: str, now: datetime) -> WishEvent:
    event = WishEvent(wish_id=wish_id, actor_id=actor_id, action=action, from_status=frm, to_status=to,
                      note=(note or "")[:500], at=now)
    session.add(event)
    session.flush()
    return event


def _move(session: Session, wish_id: int, frm: str, to: str, now: datetime, *where, **values) -> bool:
    """Change the status from `frm` to `to` if it is still `frm` (and `where` holds)."""
    result = session.execute(
        update(Wish).where(Wish.id == wish_id, Wish.status == frm, *where)
        .values(status=to, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _tell(session: Session, event: WishEvent, members, body: str, title: str = "微心愿") -> None:
    """Queue a notice to each member (once per event and member), in the caller's transaction."""
    seen = set()
    for m in members:
        if m is None or m.id in seen:
            continue
        seen.add(m.id)
        enqueue(session, source=f"wish-event:{event.id}", kind="wish", title=title, body=body, member_id=m.id)


def _refuse(session: Session, wish_id: int, doing: str) -> DomainError:
    """Explain, from the wish's current state, why a conditional update changed nothing."""
    session.rollback()
    wish = get_wish(session, wish_id)
    return DomainError(f"心愿 #{wish_id} 当前状态为「{wish.status}」，无法{doing}。",
                       code="wrong_state", status=409)


# Posting ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Beneficiary:
    """Who a wish is for: a name, an address and a phone, and the member when they are one (who may
    then confirm the fulfilment themself)."""

    name: str = ""
    address: str = ""
    phone: str = ""
    member_id: int | None = None


@dataclass(frozen=True)
class NewWish:
    """A wish to publish (or propose): what it asks, for whom, where, and for how many points (None:
    the default; only secretaries and admins choose)."""

    title: str
    details: str = ""
    category: str | None = None
    points: int | None = None
    org_id: int | None = None
    grid_id: int | None = None
    beneficiary: Beneficiary = field(default_factory=Beneficiary)

    @classmethod
    def of(cls, title: str, details: str = "", **fields) -> "NewWish":
        """From flat fields, the beneficiary's as beneficiary_name, beneficiary_address,
        beneficiary_phone and beneficiary_member_id (the API's form)."""
        person = {key.removeprefix("beneficiary_"): fields.pop(key) for key in list(fields)
                  if key.startswith("beneficiary_")}
        return cls(title, details, beneficiary=Beneficiary(**person), **fields)


def post_wish(session: Session, actor: Member, draft: NewWish, *, now: datetime | None = None,
              settings: Settings = DEFAULTS) -> Wish:
    """A secretary, admin or grid head (for their own grid) publishes a wish, open for claiming at
    once. Commit.

    Only secretaries and admins set the points (at most WISH_MAX_POINTS); a grid head's wish is
    worth WISH_DEFAULT_POINTS, whatever they ask for."""
    now = now or now_utc()
    person = draft.beneficiary
    person = Beneficiary(clean_text(person.name, "受助人姓名", MAX_NAME),
                         clean_text(person.address, "受助人地址", MAX_ADDRESS),
                         clean_text(person.phone, "受助人电话", MAX_PHONE), person.member_id)
    authz.authorize(actor, authz.PUBLISH_WISH)
    points = wish_points(actor, draft.points, settings)
    org_id, grid_id = draft.org_id, draft.grid_id
    if not authz.can(actor, authz.MANAGE_WISHES):
        # A grid head publishes for their own grid only.
        if org_id not in (None, actor.org_id) or grid_id not in (None, actor.grid_id):
            raise Forbidden("网格长只能在本网格发布心愿。")
        grid_id = actor.grid_id
    org = _org(session, org_id) if org_id else actor.org
    authz.authorize(actor, authz.PUBLISH_WISH, org)
    person = _beneficiary_fields(person)
    if person.member_id is not None:
        person, grid_id = _beneficiary_member(session, actor, person, grid_id)
    if grid_id is not None:
        grid = session.get(Grid, grid_id) if fits_id(grid_id) else None
        if grid is None or grid.org_id != community_of(org).id:
            raise DomainError("该网格不属于心愿所在的社区。", code="invalid_grid", status=422)
    draft = replace(draft, org_id=org.id, grid_id=grid_id, points=points, beneficiary=person)
    wish = _new_wish(session, actor, draft, OPEN, now)
    _record(session, wish.id, actor.id, "发布", None, OPEN, "", now)
    session.commit()
    return wish


_LANDLINE = re.compile(r"[0-9+()\- ]{5,20}")


def _beneficiary_fields(person: Beneficiary) -> Beneficiary:
    """The beneficiary's name, address and phone, checked: within the columns' lengths, the phone a
    mobile number (stored as its 11 digits, so it is masked as one) or a landline."""
    name, address, phone = ((value or "").strip() for value in (person.name, person.address, person.phone))
    if len(name) > 100:
        raise DomainError("受助人姓名太长，请控制在100字以内。", code="invalid", status=422)
    if len(address) > 200:
        raise DomainError("受助人地址太长，请控制在200字以内。", code="invalid", status=422)
    if phone:
        phone = unicodedata.normalize("NFKC", phone)
        mobile = normalize_phone(phone)
        if is_valid_mobile(mobile):
            phone = mobile
        elif not (_LANDLINE.fullmatch(phone) and sum(c.isdigit() for c in phone) >= 5):
            raise DomainError("受助人电话格式不对，请填写11位手机号或固定电话（如 0571-88886666）。",
                              code="invalid_phone", status=422)
    return Beneficiary(name, address, phone, person.member_id)


def _beneficiary_member(session: Session, actor: Member, person: Beneficiary,
                        grid_id: int | None) -> tuple[Beneficiary, int | None]:
    """The beneficiary completed from their member record (name, phone), and the wish's grid (theirs
    unless one is given); they must be someone `actor` publishes for."""
    member_id = person.member_id
    beneficiary = session.get(Member, member_id) if fits_id(member_id) else None
    if beneficiary is None:
        raise NotFound("未找到受助人。")
    authz.authorize(actor, authz.PUBLISH_WISH, beneficiary)
    person = replace(person, name=person.name or beneficiary.name, phone=person.phone or beneficiary.phone)
    return person, grid_id if grid_id is not None else beneficiary.grid_id


def wish_points(actor: Member, points: int | None, settings: Settings = DEFAULTS) -> int:
    """The points a wish posted by `actor` is worth: managers choose (0 … WISH_MAX_POINTS), others
    get WISH_DEFAULT_POINTS."""
    if points is None or not authz.can(actor, authz.SET_WISH_POINTS):
        return settings.wish_default_points
    if points > settings.wish_max_points:
        raise DomainError(f"心愿积分不能超过 {settings.wish_max_points} 分。", code="too_many_points", status=422)
    return points


def propose_wish(session: Session, actor: Member, text: str, *, category: str | None = None,
                 title: str | None = None, now: datetime | None = None, settings: Settings = DEFAULTS) -> Wish:
    """Anyone bound proposes a wish (for themself, worth WISH_DEFAULT_POINTS); it waits for their
    secretary's approval. Commit.

    Without a `title` (the chatbot's 许愿), the text's beginning is the title."""
    now = now or now_utc()
    text = clean_text(text, "心愿内容", MAX_DETAILS).strip()
    if not text:
        raise DomainError("请写下心愿内容", data={"what": "wish_text"})
    title = (title or "").strip() or (text if len(text) <= 30 else text[:30] + "…")
    draft = NewWish(title, text, category, settings.wish_default_points, actor.org_id, actor.grid_id,
                    Beneficiary(actor.name, "", actor.phone, actor.id))
    wish = _new_wish(session, actor, draft, PENDING, now)
    event = _record(session, wish.id, actor.id, "提交", None, PENDING, "", now)
    _tell(session, event, secretaries_for(session, actor.org),
          f"{actor.name} 提交了心愿 #{wish.id}「{wish.title}」，请审核：发送「审核 #{wish.id} 通过」"
          f"或「审核 #{wish.id} 不通过 理由」。")
    session.commit()
    return wish


def create_wish(session: Session, actor: Member, draft: NewWish, *, now: datetime | None = None,
                settings: Settings = DEFAULTS) -> Wish:
    """Post the wish if `actor` may publish directly (secretaries, admins, grid heads); otherwise
    propose it (待审核) for themself at the default points, ignoring the draft's points, beneficiary,
    organization and grid. Commit."""
    if authz.can(actor, authz.PUBLISH_WISH):
        return post_wish(session, actor, draft, now=now, settings=settings)
    return propose_wish(session, actor, draft.details or draft.title, category=draft.category,
                        title=draft.title, now=now, settings=settings)


def _org(session: Session, org_id: int) -> Organization:
    org = session.get(Organization, org_id) if fits_id(org_id) else None
    if org is None:
        raise NotFound("未找到该组织。")
    return org


def _new_wish(session: Session, actor: Member, draft: NewWish, status: str, now: datetime) -> Wish:
    """Add the wish (its organization, grid and points resolved in `draft`), checked; flush."""
    title = clean_text(draft.title, "心愿标题").strip()
    details = clean_text(draft.details, "心愿详情", MAX_DETAILS)
    points = draft.points
    check_int(points, "积分", maximum=MAX_POINTS)
    if not title:
        raise DomainError("心愿标题不能为空。")
    if len(title) > MAX_TITLE:
        raise DomainError("心愿标题太长，请控制在100字以内。")
    category = draft.category or guess_category(f"{title} {details}")
    if category not in CATEGORIES:
        raise DomainError(f"类别应为{'、'.join(CATEGORIES)}之一。")
    if points < 0:
        raise DomainError("积分不能为负数。")
    person = draft.beneficiary
    wish = Wish(title=title, details=(details or "").strip(), category=category, org_id=draft.org_id,
                grid_id=draft.grid_id, points=points, status=status, poster_id=actor.id,
                beneficiary_name=person.name or "", beneficiary_address=person.address or "",
                beneficiary_phone=person.phone or "", beneficiary_member_id=person.member_id,
                created_at=now, updated_at=now)
    session.add(wish)
    session.flush()
    return wish


def review_wish(session: Session, actor: Member, wish_id: int, approve: bool, reason: str = "",
                now: datetime | None = None) -> Wish:
    """The secretary above approves a proposal (待审核 → 待认领) or turns it down (→ 未通过). Commit."""
    now = now or now_utc()
    reason = clean_text(reason, "理由", MAX_NOTE)
    wish = get_wish(session, wish_id)
    authz.authorize(actor, authz.REVIEW_WISH, wish)
    reason = (reason or "").strip()
    if not approve and not reason:
        raise DomainError("请写明不通过的理由", data={"what": "review_reason", "number": wish.number})
    to = OPEN if approve else REFUSED
    if not _move(session, wish_id, PENDING, to, now):
        raise _refuse(session, wish_id, "审核")
    action = "审核通过" if approve else "审核不通过"
    event = _record(session, wish_id, actor.id, action, PENDING, to, reason, now)
    body = (f"您提交的心愿 #{wish_id}「{wish.title}」已通过审核，等待志愿者认领。" if approve
            else sentence(f"您提交的心愿 #{wish_id}「{wish.title}」未通过审核：{reason}"))
    _tell(session, event, [wish.poster], body)
    session.commit()
    return get_wish(session, wish_id)


# Claiming and fulfilling ---------------------------------------------------------------------------
def open_claims(session: Session, member_id: int) -> int:
    return session.scalar(
        select(func.count(Wish.id)).where(Wish.claimer_id == member_id, Wish.status.in_(HELD))
    ) or 0


def claim_wish(session: Session, actor: Member, wish_id: int, *, now: datetime | None = None,
               settings: Settings = DEFAULTS) -> Wish:
    """Claim an open wish: exactly one claimer however many press at once, who holds at most
    WISH_MAX_OPEN_CLAIMS and has WISH_FULFIL_DAYS to fulfil it. Commit."""
    now = now or now_utc()
    max_open = settings.wish_max_open_claims
    wish = get_wish(session, wish_id)
    if wish.beneficiary_member_id == actor.id:
        raise DomainError(f"心愿 #{wish_id} 是您本人的心愿，不能自己认领。", code="own_wish")
    if wish.status != OPEN:
        # Refusing on a read is safe (only granting needs the conditional update), and it spares
        # the crowd that lost a race a lock and a write.
        raise _claim_refusal(session, wish, actor, max_open)
    # Serialize one person's claims so the open-claims limit holds: on PostgreSQL this row lock
    # waits for their other claim to commit; on SQLite the UPDATE below takes the database's write
    # lock before it evaluates its subquery, which does the same.
    session.execute(select(Member.id).where(Member.id == actor.id).with_for_update())
    # An alias, so the subquery counts all the actor's wishes rather than correlating with the row.
    other = aliased(Wish)
    held = (select(func.count(other.id)).where(other.claimer_id == actor.id, other.status.in_(HELD))
            .scalar_subquery())
    claimed = _move(session, wish_id, OPEN, CLAIMED, now, held < max_open, claimer_id=actor.id,
                    claimed_at=now, fulfil_by=now + timedelta(days=settings.wish_fulfil_days),
                    claim_count=Wish.claim_count + 1)
    if not claimed:
        session.rollback()
        raise _claim_refusal(session, get_wish(session, wish_id), actor, max_open)
    wish = get_wish(session, wish_id)
    event = _record(session, wish_id, actor.id, "认领", OPEN, CLAIMED, "", now)
    _tell(session, event, secretaries_for(session, wish.org),
          f"{actor.name} 认领了心愿 #{wish_id}「{wish.title}」，"
          f"计划 {clock.month_day(wish.fulfil_by, settings.tz)} 前完成。")
    session.commit()
    return wish


def _claim_refusal(session: Session, wish: Wish, actor: Member, max_open: int) -> DomainError:
    """Explain why `actor` could not claim `wish`."""
    number = f"#{wish.id}"
    if wish.status in HELD and wish.claimer_id == actor.id:
        return DomainError(f"您已认领心愿 {number}，请按时完成。", code="already_yours", status=409)
    if wish.status in (CLAIMED, FULFILLED, DONE):
        return DomainError(f"心愿 {number} 已被认领，谢谢您的热心！", code="already_claimed", status=409)
    if wish.status == OPEN and open_claims(session, actor.id) >= max_open:
        return DomainError(f"您已有 {max_open} 个未完成的心愿，请先完成后再认领新的。",
                           code="too_many_claims", status=409)
    if wish.status == PENDING:
        return DomainError(f"心愿 {number} 尚未通过审核，暂不能认领。", code="wrong_state", status=409)
    if wish.status == OPEN:
        return DomainError(f"认领心愿 {number} 未成功，请重试。", code="retry", status=409)
    return DomainError(f"心愿 {number} {wish.status}，不能认领。", code="wrong_state", status=409)


def release_wish(session: Session, actor: Member, wish_id: int, reason: str = "",
                 now: datetime | None = None) -> Wish:
    """The claimer gives a claim up (已认领 → 待认领). Commit."""
    now = now or now_utc()
    reason = clean_text(reason, "理由", MAX_NOTE)
    get_wish(session, wish_id)
    if not _move(session, wish_id, CLAIMED, OPEN, now, Wish.claimer_id == actor.id,
                 claimer_id=None, claimed_at=None, fulfil_by=None):
        session.rollback()
        wish = get_wish(session, wish_id)
        if wish.status == OPEN and _last_claimer(session, wish_id) == actor.id:
            # Given up already (by them, or released by the deadline): say so, not a state error.
            how = ("已超过完成期限，系统已释放您的认领" if wish.events and wish.events[-1].action == "超期释放"
                   else "您已放弃过")
            raise DomainError(f"心愿 #{wish_id} {how}，它已重新开放认领，无需再次放弃。",
                              code="already_released", status=409)
        if wish.claimer_id != actor.id:
            raise Forbidden(f"心愿 #{wish_id} 不是您认领的，无法放弃。")
        raise _refuse(session, wish_id, "放弃")
    _record(session, wish_id, actor.id, "放弃", CLAIMED, OPEN, reason, now)
    session.commit()
    return get_wish(session, wish_id)


def _last_claimer(session: Session, wish_id: int) -> int | None:
    """Who claimed the wish last (None: nobody ever did)."""
    return session.scalar(
        select(WishEvent.actor_id).where(WishEvent.wish_id == wish_id, WishEvent.action == "认领")
        .order_by(WishEvent.at.desc(), WishEvent.id.desc()).limit(1)
    )


def fulfil_wish(session: Session, actor: Member, wish_id: int, note: str = "",
                now: datetime | None = None) -> Wish:
    """The claimer reports the wish fulfilled (已认领 → 待确认). Commit."""
    now = now or now_utc()
    note = clean_text(note, "完成说明", MAX_DETAILS)
    get_wish(session, wish_id)
    if not _move(session, wish_id, CLAIMED, FULFILLED, now, Wish.claimer_id == actor.id,
                 fulfilled_at=now, fulfil_note=(note or "").strip()):
        session.rollback()
        wish = get_wish(session, wish_id)
        if wish.claimer_id != actor.id:
            raise Forbidden(f"心愿 #{wish_id} 不是您认领的，只有认领人可以提交完成。")
        raise _refuse(session, wish_id, "提交完成")
    wish = get_wish(session, wish_id)
    event = _record(session, wish_id, actor.id, "完成", CLAIMED, FULFILLED, note, now)
    beneficiary = session.get(Member, wish.beneficiary_member_id) if wish.beneficiary_member_id else None
    _tell(session, event, [*secretaries_for(session, wish.org), beneficiary],
          sentence(f"{actor.name} 已完成心愿 #{wish_id}「{wish.title}」" + (f"：{note}" if note else ""))
          + f"请核实后发送「确认 #{wish_id}」，或「驳回 #{wish_id} 理由」。")
    session.commit()
    return wish


def add_photo(session: Session, actor: Member, wish_id: int, media_id: str, *,
              now: datetime | None = None) -> Wish:
    """The claimer adds a photo (an uploaded file's reference) to a wish they hold, at most
    MAX_PHOTOS. Commit."""
    now = now or now_utc()
    wish = get_wish(session, wish_id)
    if wish.claimer_id != actor.id or wish.status not in HELD:
        raise Forbidden(f"只有心愿 #{wish_id} 的认领人可以在完成前后上传照片。")
    if len(wish.photos) >= MAX_PHOTOS:
        raise DomainError(f"心愿 #{wish_id} 最多上传 {MAX_PHOTOS} 张照片。", code="too_many_photos", status=409)
    session.add(WishPhoto(wish_id=wish.id, media_id=media_id, added_by_id=actor.id, at=now))
    session.commit()
    return get_wish(session, wish_id)


def photo_of(session: Session, viewer: Member | None, wish_id: int, photo_id: int) -> WishPhoto:
    """Return a photo of a wish for those who may see the beneficiary (a photo may show them)."""
    wish = view_wish(session, viewer, wish_id)
    photo = next((p for p in wish.photos if p.id == photo_id), None)
    if photo is None:
        raise NotFound(f"心愿 #{wish_id} 没有这张照片。")
    authz.authorize(viewer, authz.VIEW_WISH_PHOTO, wish)
    return photo


def attach_photo(session: Session, actor: Member, media_id: str, *, now: datetime | None = None,
                 settings: Settings = DEFAULTS) -> Wish | None:
    """Attach a photo to the wish `actor` reported fulfilled in the last WISH_PHOTO_MINUTES; None if
    none. Commit."""
    now = now or now_utc()
    wish = session.scalars(
        select(Wish).where(Wish.claimer_id == actor.id, Wish.status == FULFILLED,
                           Wish.fulfilled_at >= now - timedelta(minutes=settings.wish_photo_minutes))
        .order_by(Wish.fulfilled_at.desc(), Wish.id.desc())
    ).first()
    if wish is None:
        return None
    session.add(WishPhoto(wish_id=wish.id, media_id=media_id, added_by_id=actor.id, at=now))
    session.commit()
    return wish


def confirm_wish(session: Session, actor: Member, wish_id: int, now: datetime | None = None) -> Wish:
    """The secretary above (or the bound beneficiary) confirms (待确认 → 已完成); the claimer is
    credited the wish's points once, however many confirm at once. Commit."""
    now = now or now_utc()
    wish = get_wish(session, wish_id)
    authz.authorize(actor, authz.CONFIRM_WISH, wish)
    if wish.status != FULFILLED or not _move(session, wish_id, FULFILLED, DONE, now, completed_at=now,
                                             confirmed_by_id=actor.id):
        session.rollback()
        wish = get_wish(session, wish_id)
        if wish.status == DONE:
            raise DomainError(f"心愿 #{wish_id} 已确认完成，积分已发放，无需重复确认。",
                              code="already_confirmed", status=409)
        raise _refuse(session, wish_id, "确认")
    wish = get_wish(session, wish_id)
    event = _record(session, wish_id, actor.id, "确认", FULFILLED, DONE, "", now)
    # The ledger's unique key (member, "wish", id) is the second guard against a double credit.
    credited = credit(session, member_id=wish.claimer_id, amount=wish.points,
                      reason=f"完成微心愿 #{wish_id}「{wish.title}」"[:200], source="wish",
                      source_id=str(wish_id), recorded_by_id=actor.id, now=now)
    gained = f"，获得 {wish.points} 积分" if credited and wish.points else ""
    _tell(session, event, [wish.claimer],
          f"您完成的心愿 #{wish_id}「{wish.title}」已确认{gained}。感谢您的付出！")
    session.commit()
    return wish


def return_wish(session: Session, actor: Member, wish_id: int, reason: str,
                now: datetime | None = None, *, settings: Settings = DEFAULTS) -> Wish:
    """驳回: send a reported fulfilment back to the claimer (待确认 → 已认领), with a reason. Commit."""
    now = now or now_utc()
    reason = clean_text(reason, "驳回理由", MAX_NOTE)
    wish = get_wish(session, wish_id)
    authz.authorize(actor, authz.RETURN_WISH, wish)
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("请写明驳回理由", data={"what": "return_reason", "number": wish.number})
    # Leave the claimer at least two days after a rejection before the deadline releases the claim.
    fulfil_by = max(wish.fulfil_by or now, now + timedelta(days=2))
    if not _move(session, wish_id, FULFILLED, CLAIMED, now, fulfilled_at=None, fulfil_by=fulfil_by):
        raise _refuse(session, wish_id, "驳回")
    wish = get_wish(session, wish_id)
    event = _record(session, wish_id, actor.id, "驳回", FULFILLED, CLAIMED, reason, now)
    _tell(session, event, [wish.claimer],
          sentence(f"您提交完成的心愿 #{wish_id}「{wish.title}」被驳回：{reason}")
          + f"请在 {clock.month_day(fulfil_by, settings.tz)} 前"
          f"处理后再次发送「完成 #{wish_id} 说明」。")
    session.commit()
    return wish


def withdraw_wish(session: Session, actor: Member, wish_id: int, reason: str = "",
                  now: datetime | None = None) -> Wish:
    """A secretary above withdraws a wish not yet completed (→ 已撤回). Commit."""
    now = now or now_utc()
    reason = clean_text(reason, "撤回理由", MAX_NOTE)
    wish = get_wish(session, wish_id)
    authz.authorize(actor, authz.WITHDRAW_WISH, wish)
    frm = wish.status
    if frm not in WITHDRAWABLE or not _move(session, wish_id, frm, WITHDRAWN, now):
        raise _refuse(session, wish_id, "撤回")
    event = _record(session, wish_id, actor.id, "撤回", frm, WITHDRAWN, reason, now)
    if frm in HELD and wish.claimer is not None:
        _tell(session, event, [wish.claimer], sentence(f"您认领的心愿 #{wish_id}「{wish.title}」已被撤回"
              + (f"：{reason}" if reason else "")) + "感谢您的热心！")
    session.commit()
    return get_wish(session, wish_id)


# Deadlines (run by the scheduler with its "now") ------------------------------------------------------
def remind_due_claims(session: Session, now: datetime, *, settings: Settings = DEFAULTS) -> int:
    """Remind claimers whose fulfil-by date is within WISH_REMIND_DAYS days; once per claim. Commit."""
    due = session.scalars(
        select(Wish).where(Wish.status == CLAIMED, Wish.fulfil_by > now,
                           Wish.fulfil_by <= now + timedelta(days=settings.wish_remind_days))
    ).all()
    sent = 0
    for wish in due:
        sent += enqueue(
            session, source=f"wish:{wish.id}:claim{wish.claim_count}:remind", kind="wish", title="微心愿提醒",
            member_id=wish.claimer_id,
            body=f"您认领的心愿 #{wish.id}「{wish.title}」需在 {clock.month_day(wish.fulfil_by, settings.tz)} 前完成。"
                 f"完成后请发送「完成 #{wish.id} 说明」；如无法完成，请发送「放弃 #{wish.id}」。",
        )
    session.commit()
    return sent


def release_overdue_claims(session: Session, now: datetime) -> int:
    """Release claims past their fulfil-by date, telling the claimer and the secretary.
    One transaction per wish; a rerun finds nothing left to release."""
    overdue = session.execute(
        select(Wish.id, Wish.claim_count).where(Wish.status == CLAIMED, Wish.fulfil_by <= now)
    ).all()
    released = 0
    for wish_id, claim_count in overdue:
        wish = get_wish(session, wish_id)
        claimer = wish.claimer
        # Only this claim, only if it is still overdue (a 驳回 may have just extended it).
        if not _move(session, wish_id, CLAIMED, OPEN, now, Wish.claim_count == claim_count,
                     Wish.fulfil_by <= now, claimer_id=None, claimed_at=None, fulfil_by=None):
            session.rollback()
            continue
        event = _record(session, wish_id, None, "超期释放", CLAIMED, OPEN, "超过完成期限，系统自动释放", now)
        _tell(session, event, [claimer],
              f"您认领的心愿 #{wish_id}「{wish.title}」已超过完成期限，系统已释放认领，其他人可以重新认领。")
        _tell(session, event, secretaries_for(session, wish.org),
              f"{claimer.name if claimer else ''} 认领的心愿 #{wish_id}「{wish.title}」超期未完成，"
              "已重新开放认领。")
        session.commit()
        released += 1
    return released


# Reading ---------------------------------------------------------------------------------------
def list_open_wishes(session: Session, viewer: Member | None, *, page: int = 1,
                     per_page: int) -> tuple[list[Wish], int]:
    """Return a page of wishes open for claiming (the chatbot's: WISH_PAGE_SIZE a page), the viewer's
    community first, and the total."""
    query = select(Wish).join(Organization, Organization.id == Wish.org_id).where(Wish.status == OPEN)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = [Wish.created_at.desc(), Wish.id.desc()]
    if viewer is not None:
        community = community_of(viewer.org)
        order.insert(0, case((Organization.path.startswith(community.path), 0), else_=1))
    page = clamp_page(page)
    wishes = session.scalars(query.order_by(*order).offset((page - 1) * per_page).limit(per_page)
                             .options(selectinload(Wish.org))).all()  # each line names its organization
    return list(wishes), total


# What a listed wish shows besides itself, loaded for the whole page in one statement each (no query
# per row): its organization, grid, poster, claimer and photos.
LISTED = (selectinload(Wish.org), selectinload(Wish.grid), selectinload(Wish.poster), selectinload(Wish.claimer),
          selectinload(Wish.photos))


def browse_wishes(session: Session, viewer: Member | None, *, status: str | None = None,
                  org_id: int | None = None, category: str | None = None, page: int = 1,
                  per_page: int = 20) -> tuple[list[Wish], int]:
    """Return a page of wishes filtered by state, organization subtree and category, and the total,
    showing only what `viewer` may see (authz.VIEW_WISH as a query), latest first."""
    query = select(Wish).join(Organization, Organization.id == Wish.org_id)
    visible = [Wish.status.in_(PUBLIC)]
    if viewer is not None:
        visible += [Wish.poster_id == viewer.id, Wish.beneficiary_member_id == viewer.id]
        if authz.can(viewer, authz.MANAGE_WISHES):
            visible.append(Organization.path.startswith(viewer.org.path))
    query = query.where(or_(*visible))
    if status:
        query = query.where(Wish.status == status)
    if org_id is not None:
        query = query.where(Organization.path.startswith(_org(session, org_id).path))
    if category:
        query = query.where(Wish.category == category)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    offset = (clamp_page(page) - 1) * per_page
    page = query.order_by(Wish.id.desc()).offset(offset).limit(per_page).options(*LISTED)
    return list(session.scalars(page)), total


# What waits for a person ------------------------------------------------------------------------
def _to_review(actor: Member):
    """The proposals `actor` may review (review_wish's rule as a query), oldest first."""
    query = (select(Wish).join(Organization, Organization.id == Wish.org_id)
             .where(Wish.status == PENDING).order_by(Wish.created_at, Wish.id))
    if not authz.can(actor, authz.MANAGE_WISHES):
        return query.where(false())
    return query.where(Organization.path.startswith(actor.org.path))


def _to_confirm(actor: Member):
    """The fulfilments `actor` may confirm or send back (authz.CONFIRM_WISH as a query: not their
    own), oldest first."""
    mine = [Wish.beneficiary_member_id == actor.id]
    if authz.can(actor, authz.MANAGE_WISHES):
        mine.append(Organization.path.startswith(actor.org.path))
    if actor.heads_grid(actor.grid_id):
        mine.append(Wish.grid_id == actor.grid_id)
    return (select(Wish).join(Organization, Organization.id == Wish.org_id)
            .where(Wish.status == FULFILLED, Wish.claimer_id != actor.id, or_(*mine))
            .order_by(Wish.fulfilled_at, Wish.id))


def _first(session: Session, query, limit: int) -> tuple[list[Wish], int]:
    """The first `limit` rows of `query` and how many there are. The rows are read first and
    counted only when there are more than fit, so "exactly one" is what one statement saw (a
    concurrent confirmation between a count and a read cannot leave an empty list with a count of 1)."""
    fetch = max(limit, 2)
    # A waiting line names the poster (to review) or the claimer (to confirm), and the console its
    # organization: loaded for all rows at once.
    rows = list(session.scalars(query.limit(fetch).options(selectinload(Wish.poster), selectinload(Wish.claimer),
                                                           selectinload(Wish.org))))
    if len(rows) < fetch:
        return rows[:limit], len(rows)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return rows[:limit], max(total, len(rows))


@dataclass
class Waiting:
    """What waits for a person's decision, oldest first, at most `limit` of each kind, and how many
    of each kind there are in all."""

    review: list[Wish]
    review_total: int
    confirm: list[Wish]
    confirm_total: int
    awards: list[ManualAward]
    awards_total: int

    @property
    def total(self) -> int:
        return self.review_total + self.confirm_total + self.awards_total


def waiting_for(session: Session, actor: Member, *, limit: int = 10, with_awards: bool = True) -> Waiting:
    """待办: the proposals `actor` may review, the fulfilments they may confirm (a grid head: their
    grid's; a bound beneficiary: their own) and the manual point awards waiting for their approval
    (left out without `with_awards`: the console's wishes page)."""
    review, review_total = _first(session, _to_review(actor), limit)
    confirm, confirm_total = _first(session, _to_confirm(actor), limit)
    awards = pending_awards(session, actor) if with_awards and authz.can(actor, authz.LIST_AWARDS) else []
    return Waiting(review, review_total, confirm, confirm_total, awards[:limit], len(awards))


@dataclass
class Sole:
    """The outcome of a bare 确认 or 审核: the wish acted on when exactly one was waiting; else the
    waiting ones (at most `limit`) and how many there are (0: none)."""

    done: Wish | None
    waiting: list[Wish]
    total: int


def confirm_sole(session: Session, actor: Member, *, limit: int = 10, now: datetime | None = None) -> Sole:
    """Confirm the one fulfilment waiting for `actor`, if exactly one is (see confirm_wish). Commit."""
    waiting, total = _first(session, _to_confirm(actor), limit)
    if total != 1:
        return Sole(None, waiting, total)
    return Sole(confirm_wish(session, actor, waiting[0].id, now=now), [], 1)


def review_sole(session: Session, actor: Member, approve: bool, reason: str = "", *, limit: int = 10,
                now: datetime | None = None) -> Sole:
    """Review the one proposal waiting for `actor`, if exactly one is (see review_wish). Commit."""
    waiting, total = _first(session, _to_review(actor), limit)
    if total != 1:
        return Sole(None, waiting, total)
    return Sole(review_wish(session, actor, waiting[0].id, approve, reason, now=now), [], 1)


def my_wishes(session: Session, member: Member, limit: int = 10) -> list[Wish]:
    """Return the wishes `member` claims, claimed and completed, or proposed, latest first."""
    return list(session.scalars(
        select(Wish).where(or_(Wish.claimer_id == member.id, Wish.poster_id == member.id))
        .order_by(Wish.updated_at.desc(), Wish.id.desc()).limit(limit).options(*LISTED)  # the API shows them all
    ))


def wish_history(session: Session, wish_id: int) -> list[WishEvent]:
    """A wish's transitions, oldest first, with who made them (loaded at once)."""
    return list(session.scalars(
        select(WishEvent).where(WishEvent.wish_id == wish_id).order_by(WishEvent.at, WishEvent.id)
        .options(selectinload(WishEvent.actor))
    ))


EXPORT_COLUMNS = ("编号", "标题", "类别", "状态", "组织", "网格", "受助人", "地址", "电话", "积分", "发布人",
                  "发布时间", "认领人", "认领时间", "完成期限", "完成时间", "确认时间")


# What an exported row shows besides the wish, in the wishes' own statement (many-to-one: joined, so the
# export is one statement however many rows it has).
EXPORTED = (joinedload(Wish.org), joinedload(Wish.grid), joinedload(Wish.poster), joinedload(Wish.claimer))
EXPORT_BATCH = 1000


def export_wishes(session: Session, actor: Member, *, org: Organization | None = None,
                  status: str | None = None, org_id: int | None = None, settings: Settings = DEFAULTS) -> bytes:
    """Return an .xlsx of the wishes of `org`'s subtree (the actor's own by default), for a manager;
    times in local time."""
    authz.authorize(actor, authz.EXPORT_WISHES)
    if org is None and org_id is not None:
        org = _org(session, org_id)
    org = org or actor.org
    authz.authorize(actor, authz.EXPORT_WISHES, org)

    def when(moment: datetime | None) -> str:
        return clock.stamp(moment, settings.tz)  # empty for no moment

    query = (select(Wish).where(Wish.org_id.in_(select(Organization.id).where(Organization.path.startswith(org.path))))
             .order_by(Wish.id).options(*EXPORTED).execution_options(yield_per=EXPORT_BATCH))
    if status:
        query = query.where(Wish.status == status)
    book, sheet = new_sheet("微心愿", EXPORT_COLUMNS)
    for w in session.scalars(query):  # streamed: EXPORT_BATCH wishes in memory at a time
        shown = beneficiary_of(w, actor)  # exactly what the actor's API view shows
        # Formula-like text and control characters are handled by the one writer (models.sheets).
        append_row(sheet, [
            f"#{w.id}", w.title, w.category, w.status, w.org.full_name, w.grid.name if w.grid else "",
            shown["name"], shown["address"], shown["phone"], w.points, w.poster.name,
            when(w.created_at), w.claimer.name if w.claimer else "", when(w.claimed_at), when(w.fulfil_by),
            when(w.fulfilled_at), when(w.completed_at),
        ])
    return to_bytes(book)
