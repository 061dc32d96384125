"""Organizational-life rules (组织生活): a branch's regular meetings, their occurrences, and the
notices and reminders sent for each occurrence — once per rule and period, whatever runs twice."""

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, ForeignKey, Integer, Select, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity import (
    KIND_ALIASES,
    KINDS,
    VOLUNTEER,
    Activity,
    NewActivity,
    approved_member_ids,
    create_activity,
    reschedule_activity,
)
from models.base import Base, DomainError, NotFound, UTCDateTime, now_utc
from models.member import PARTY_KINDS, Member
from models.org import Organization
from models.outbox import enqueue_select
from models.text import MAX_PLACE, MAX_RULE, clean_text, fits_id

MONTHLY_WEEKDAY, MONTHLY_DAY, QUARTERLY_DAY = "monthly_weekday", "monthly_day", "quarterly_day"
NTH = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "最后一": -1}
QUARTER_MONTH = {"首": 1, "第一个": 1, "第二个": 2, "第三个": 3, "末": 3}
# The forms a rule may take, one example of each (the doors word them for their users).
RULE_FORMS = ("每月第一个周五 15:00 主题党日", "每月15日 09:30 组织生活日", "每季度首月10日 14:00 支部党员大会")
_RULE = re.compile(
    r"(?:每月第?(?P<nth>[一二三四五1-5]|最后一)个(?:周|星期|礼拜)(?P<wd>[一二三四五六日天])"
    r"|每月(?P<day>\d{1,2})[日号]|每月(?P<last>最后一天)"
    r"|每季度(?P<qm>首|第一个|第二个|第三个|末)月(?P<qday>\d{1,2})[日号])"
    r"\s*(?P<time>" + clock.TIME_IN_TEXT + r")\s*(?P<title>\S.*)?"
)


class OrgLifeRule(Base):
    __tablename__ = "orglife_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    spec: Mapped[str] = mapped_column(String(100))  # as the secretary wrote it, e.g. 每月第一个周五
    kind: Mapped[str] = mapped_column(String(20))
    nth: Mapped[int | None] = mapped_column(Integer)  # 1–5, or -1 for the last
    weekday: Mapped[int | None] = mapped_column(Integer)  # 0 = Monday
    day: Mapped[int | None] = mapped_column(Integer)  # 1–31; 31 means the month's last day
    quarter_month: Mapped[int | None] = mapped_column(Integer)  # 1–3: month of the quarter
    start_time: Mapped[str] = mapped_column(String(5))  # HH:MM, local time
    title: Mapped[str] = mapped_column(String(100))
    place: Mapped[str] = mapped_column(String(MAX_PLACE), default="")  # 地点, given to its occasions
    notice_days: Mapped[int] = mapped_column(Integer)  # ORGLIFE_NOTICE_DAYS unless given
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    org: Mapped[Organization] = relationship()

    @property
    def period_kind(self) -> str:
        return "quarter" if self.kind == QUARTERLY_DAY else "month"


class OrgLifeOccurrence(Base):
    """One occasion of a rule in one period: created once, whatever runs twice."""

    __tablename__ = "orglife_occurrences"
    __table_args__ = (UniqueConstraint("rule_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("orglife_rules.id"), index=True)
    period: Mapped[str] = mapped_column(String(10))  # 2026-10 or 2026-Q4
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    moved: Mapped[bool] = mapped_column(Boolean, default=False)
    moves: Mapped[int] = mapped_column(Integer, default=0)
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The activity members sign in to (activities issue): created once with the occurrence.
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    rule: Mapped[OrgLifeRule] = relationship()
    activity: Mapped[Activity | None] = relationship()


# Parsing and the calendar -------------------------------------------------------------------
@dataclass
class RuleSpec:
    spec: str
    kind: str
    start_time: str
    title: str
    nth: int | None = None
    weekday: int | None = None
    day: int | None = None
    quarter_month: int | None = None
    place: str = ""


# A rule's place, after its title: "每月第一个周五 15:00 主题党日 地点:社区会议室" (full-width colons
# arrive folded to ":").
_PLACE = re.compile(r"\s*地点[:：]\s*(?P<place>.+)$")


def parse_rule(text: str) -> RuleSpec:
    """Parse "每月第一个周五 15:00 主题党日" (and the other forms; the time as 新活动 takes it:
    下午3点, 15点, 3点半) into a rule's fields."""
    match = _RULE.fullmatch((text or "").strip())
    if not match:
        raise DomainError("没看懂这条规则。", data={"what": "orglife_rule", "forms": list(RULE_FORMS)})
    start = f"{clock.parse_time(match['time'])[0]:%H:%M}"  # the time words of 新活动: 15:00, 下午3点, 3点半
    title, place = match["title"] or "", ""
    if found := _PLACE.search(title):
        title, place = title[:found.start()], found["place"].strip()[:MAX_PLACE]
    title = (title.strip() or "组织生活")[:50]
    spec = text.strip()[: match.start("time")].strip()
    if match["nth"]:
        weekday = clock.WEEKDAY_NUMBERS[match["wd"]]
        return RuleSpec(spec, MONTHLY_WEEKDAY, start, title, nth=NTH[match["nth"]], weekday=weekday, place=place)
    if match["last"]:
        return RuleSpec(spec, MONTHLY_DAY, start, title, day=31, place=place)
    day = int(match["day"] or match["qday"])
    if not 1 <= day <= 31:
        raise DomainError("日期应在1日到31日之间。")
    if match["qm"]:
        return RuleSpec(spec, QUARTERLY_DAY, start, title, day=day,
                        quarter_month=QUARTER_MONTH[match["qm"]], place=place)
    return RuleSpec(spec, MONTHLY_DAY, start, title, day=day, place=place)


def period_of(rule: OrgLifeRule, day: date) -> str:
    if rule.period_kind == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


def _period_start(period: str) -> tuple[int, int]:
    year, part = period.split("-")
    if part.startswith("Q"):
        return int(year), (int(part[1]) - 1) * 3 + 1
    return int(year), int(part)


def next_period(period: str) -> str:
    year, month = _period_start(period)
    if "Q" in period:
        quarter = (month - 1) // 3 + 1
        return f"{year + 1}-Q1" if quarter == 4 else f"{year}-Q{quarter + 1}"
    return f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"


def occurrence_date(rule: OrgLifeRule, period: str) -> date | None:
    """The rule's date in a period (None when the month has no such day, e.g. a fifth Friday)."""
    year, month = _period_start(period)
    if rule.kind == QUARTERLY_DAY:
        month += rule.quarter_month - 1
    last = calendar.monthrange(year, month)[1]
    if rule.kind in (MONTHLY_DAY, QUARTERLY_DAY):
        return date(year, month, min(rule.day, last))  # 31st in a 30-day month: its last day
    if rule.nth == -1:
        day = date(year, month, last)
        return day - timedelta(days=(day.weekday() - rule.weekday) % 7)
    first = date(year, month, 1)
    day = first + timedelta(days=(rule.weekday - first.weekday()) % 7 + 7 * (rule.nth - 1))
    return day if day.month == month else None


def _at(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    hh, mm = hhmm.split(":")
    return datetime.combine(day, time(int(hh), int(mm)), tzinfo=tz)


def scheduled_start(rule: OrgLifeRule, period: str, tz: ZoneInfo) -> datetime | None:
    day = occurrence_date(rule, period)
    return _at(day, rule.start_time, tz) if day else None


# Rules: create, list, delete, move ---------------------------------------------------------
def create_rule(session: Session, author: Member, text: str, *, notice_days: int | None = None,
                org_id: int | None = None, settings: Settings = DEFAULTS) -> OrgLifeRule:
    """Add a rule for the author's organization (or one within it), its notice going `notice_days`
    before (ORGLIFE_NOTICE_DAYS unless given); commit."""
    authz.authorize(author, authz.MANAGE_ORGLIFE)
    spec = parse_rule(clean_text(text, "组织生活规则", MAX_RULE))
    org = authz.authorized_org(session, author, authz.MANAGE_ORGLIFE, org_id)
    if notice_days is None:
        notice_days = settings.orglife_notice_days
    rule = OrgLifeRule(org_id=org.id, author_id=author.id, spec=spec.spec, kind=spec.kind, nth=spec.nth,
                       weekday=spec.weekday, day=spec.day, quarter_month=spec.quarter_month,
                       start_time=spec.start_time, title=spec.title, place=spec.place, notice_days=notice_days)
    session.add(rule)
    session.commit()
    return rule


def list_rules(session: Session, viewer: Member) -> list[OrgLifeRule]:
    """Return the active rules of the viewer's subtree."""
    authz.authorize(viewer, authz.MANAGE_ORGLIFE)
    return list(session.scalars(
        select(OrgLifeRule).join(Organization, OrgLifeRule.org_id == Organization.id)
        .where(Organization.path.startswith(viewer.org.path), OrgLifeRule.active.is_(True))
        .order_by(OrgLifeRule.id)
    ))


def get_rule(session: Session, rule_id: int, viewer: Member) -> OrgLifeRule:
    """Return an active rule of the viewer's subtree; one outside it is not found."""
    authz.authorize(viewer, authz.MANAGE_ORGLIFE)
    rule = session.get(OrgLifeRule, rule_id) if fits_id(rule_id) else None
    if rule is None or not rule.active or not authz.can(viewer, authz.MANAGE_ORGLIFE, rule):
        raise NotFound(f"没有编号为 {rule_id} 的组织生活规则。")
    return rule


def delete_rule(session: Session, rule_id: int, viewer: Member) -> OrgLifeRule:
    """Stop a rule (its past occurrences stay); commit."""
    rule = get_rule(session, rule_id, viewer)
    rule.active = False
    session.commit()
    return rule


def next_start(session: Session, rule: OrgLifeRule, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The next start of a rule after `now`, moved occurrences included."""
    period = period_of(rule, now.astimezone(tz).date())
    for _ in range(14):
        start = _start(session, rule, period, tz)
        if start is not None and start > now:
            return start
        period = next_period(period)
    return None


def _occurrence(session: Session, rule_id: int, period: str) -> OrgLifeOccurrence | None:
    return session.scalars(select(OrgLifeOccurrence).where(
        OrgLifeOccurrence.rule_id == rule_id, OrgLifeOccurrence.period == period)).first()


def _start(session: Session, rule: OrgLifeRule, period: str, tz: ZoneInfo) -> datetime | None:
    occurrence = _occurrence(session, rule.id, period)
    if occurrence is not None:
        return occurrence.starts_at
    return scheduled_start(rule, period, tz)


def ensure_occurrence(session: Session, rule: OrgLifeRule, period: str, starts_at: datetime
                      ) -> OrgLifeOccurrence:
    """Return the rule's occasion in a period, creating it once (race-safe, no commit)."""
    occurrence = _occurrence(session, rule.id, period)
    if occurrence is not None:
        return occurrence
    try:
        with session.begin_nested():
            occurrence = OrgLifeOccurrence(rule_id=rule.id, period=period, starts_at=starts_at)
            session.add(occurrence)
    except IntegrityError:
        occurrence = _occurrence(session, rule.id, period)
    return occurrence


def activity_kind(rule: OrgLifeRule) -> str:
    """The activity kind of a rule's occasions: its title when that names one (主题党日, 党课 …)."""
    title = rule.title.strip()
    kind = KIND_ALIASES.get(title, title)
    if kind in KINDS and kind != VOLUNTEER:
        return kind
    return next((k for k in KINDS if k != VOLUNTEER and k in title), "其他")


def ensure_activity(session: Session, occurrence: OrgLifeOccurrence, now: datetime) -> Activity | None:
    """Return the occurrence's activity, creating and linking it once; commits.

    Two runs at once may each create one: the link is a conditional update, and the run that loses
    it removes its own, so an occurrence ends with exactly one activity. A past occasion gets none.
    """
    if occurrence.activity_id is not None:
        return occurrence.activity
    if occurrence.starts_at <= now:
        return None
    rule = occurrence.rule
    activity = create_activity(session, None, NewActivity(kind=activity_kind(rule), title=rule.title,
                               starts_at=occurrence.starts_at, org=rule.org, audience="subtree",
                               place=rule.place), now=now)
    linked = session.execute(
        update(OrgLifeOccurrence)
        .where(OrgLifeOccurrence.id == occurrence.id, OrgLifeOccurrence.activity_id.is_(None))
        .values(activity_id=activity.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if linked != 1:
        session.delete(activity)
    session.commit()
    session.refresh(occurrence)
    return occurrence.activity


def move_occurrence(session: Session, rule_id: int, viewer: Member, new_start: datetime, *,
                    now: datetime, tz: ZoneInfo) -> OrgLifeOccurrence:
    """Move the rule's occurrence of the period `new_start` falls in (e.g. off a public holiday);
    if its notice already went out, tell the members of the change; commit."""
    rule = get_rule(session, rule_id, viewer)
    if new_start <= now:
        raise DomainError("不能改到已经过去的时间。")
    period = period_of(rule, new_start.astimezone(tz).date())
    scheduled = scheduled_start(rule, period, tz)
    occurrence = ensure_occurrence(session, rule, period, scheduled or new_start)
    old = occurrence.starts_at
    occurrence.starts_at, occurrence.moved = new_start, True
    occurrence.moves += 1
    if occurrence.activity is not None:
        reschedule_activity(session, occurrence.activity, new_start)
    else:
        session.commit()
        ensure_activity(session, occurrence, now)
    if occurrence.notice_sent_at is not None:
        body = (f"{rule.title}改期：原定{clock.weekday_time(old, tz)}，改为{clock.weekday_time(new_start, tz)}，"
                f"请相互转告、准时参加。{_sign_in_text(occurrence)}")
        enqueue_select(session, recipients(rule), source=f"orglife:{rule.id}:{period}:moved{occurrence.moves}",
                       kind="notice", title=f"{rule.title}改期", body=body)
        # The reminder follows the new time.
        occurrence.reminder_sent_at = None
    session.commit()
    return occurrence


def recipients(rule: OrgLifeRule) -> Select:
    """The ids of the party members of the rule's organization and below, as a SELECT to queue
    from (`enqueue_select`): a street's rule is one INSERT … SELECT, not a row per member."""
    subtree = select(Organization.id).where(Organization.path.startswith(rule.org.path))
    return select(Member.id).where(Member.org_id.in_(subtree), Member.active.is_(True),
                                   Member.kind.in_(PARTY_KINDS))


# The job's work -----------------------------------------------------------------------------
@dataclass
class OrgLifeRun:
    notices: int = 0
    reminders: int = 0
    occurrences: int = 0


def send_due_orglife(session: Session, now: datetime, *, settings: Settings = DEFAULTS) -> OrgLifeRun:
    """Create the occasions whose notice time has come and queue their notices and reminders: a
    rule's notice at ORGLIFE_NOTICE_TIME its `notice_days` before, the reminder
    ORGLIFE_REMINDER_HOURS before the start.

    Idempotent: an occasion is unique per rule and period, each message per (source, recipient),
    so a second run — or two schedulers at once — queue nothing new. Commits.
    """
    run = OrgLifeRun()
    tz = settings.tz
    rules = list(session.scalars(select(OrgLifeRule).where(OrgLifeRule.active.is_(True))
                                 .order_by(OrgLifeRule.id)))
    for rule in rules:
        period = period_of(rule, now.astimezone(tz).date())
        for _ in range(2):  # this period and the next (a notice may fall in the period before)
            _send_for(session, rule, period, now, settings, run)
            period = next_period(period)
    session.commit()
    return run


def _send_for(session: Session, rule: OrgLifeRule, period: str, now: datetime, settings: Settings,
              run: OrgLifeRun) -> None:
    tz = settings.tz
    start = _start(session, rule, period, tz)
    if start is None or start <= now:
        return
    notice_day = start.astimezone(tz).date() - timedelta(days=rule.notice_days)
    notice_at = _at(notice_day, settings.orglife_notice_time, tz)
    reminder_at = start - timedelta(hours=settings.orglife_reminder_hours)
    if now < notice_at and now < reminder_at:
        return
    occurrence = ensure_occurrence(session, rule, period, start)
    ensure_activity(session, occurrence, now)
    members = recipients(rule)
    sign_in = _sign_in_text(occurrence)
    when = clock.weekday_time(start, tz)
    due_reminder = now >= reminder_at
    if not due_reminder and occurrence.notice_sent_at is None:
        # Only the first run to mark it queues (a conditional update), though enqueue's unique
        # key would refuse a second message anyway.
        if _mark(session, occurrence, "notice_sent_at", now):
            run.notices += enqueue_select(
                session, members, source=f"orglife:{rule.id}:{period}:notice",
                kind="notice", title=f"{rule.title}通知",
                body=f"{when}举行{rule.title}{_place(rule)}，请{rule.org.name}全体党员准时参加。{sign_in}",
                data=_fields_of(occurrence, start))
            run.occurrences += 1
    if due_reminder and occurrence.reminder_sent_at is None:
        if _mark(session, occurrence, "reminder_sent_at", now):
            moves = f":m{occurrence.moves}" if occurrence.moves else ""
            on_leave = approved_member_ids(session, occurrence.activity_id)
            run.reminders += enqueue_select(
                session, members.where(Member.id.not_in(on_leave)),
                source=f"orglife:{rule.id}:{period}:reminder{moves}",
                kind="reminder", title=f"{rule.title}提醒",
                body=f"今天{start.astimezone(tz):%H:%M}举行{rule.title}{_place(rule)}，请准时参加。{sign_in}",
                data=_fields_of(occurrence, start))


def _place(rule: OrgLifeRule) -> str:
    return f"（地点：{rule.place}）" if rule.place else ""


def _fields_of(occurrence: OrgLifeOccurrence, start: datetime) -> dict:
    """What template fields may show of an occasion: its start and place."""
    return {"starts_at": start, "place": occurrence.activity.place if occurrence.activity else None}


def _sign_in_text(occurrence: OrgLifeOccurrence) -> str:
    activity = occurrence.activity
    if activity is None:
        return ""
    return f"活动 {activity.number}：到场后扫描现场二维码，或发送「签到 签到码」（现场公布）签到。"


def _mark(session: Session, occurrence: OrgLifeOccurrence, column: str, now: datetime) -> bool:
    done = session.execute(
        update(OrgLifeOccurrence)
        .where(OrgLifeOccurrence.id == occurrence.id, getattr(OrgLifeOccurrence, column).is_(None))
        .values({column: now})
        .execution_options(synchronize_session=False)
    ).rowcount
    setattr(occurrence, column, now)
    return done == 1
