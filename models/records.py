"""Meeting records (会议记录): what an organizational-life occasion was about and decided, kept by
its secretary as the branch's 基础资料, and the record book a branch hands to inspectors — a Word
document (python-docx) or a workbook, one occasion after another in date order, each with its
attendance (应到 / 实到 / 请假 / 缺席, by name) and its record.

One record per occasion: writing it again replaces the text (the photos stay). Photos sent by
the recorder within RECORD_PHOTO_MINUTES of writing it are attached.
"""

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity import VOLUNTEER, Activity, attendance
from models.base import Base, DomainError, NotFound, UTCDateTime, insert_ignore
from models.member import Member
from models.org import Organization
from models.sheets import append_row, new_sheet, to_bytes
from models.text import clean_text, fits_id

MAX_TOPIC, MAX_NAME, MAX_CONTENT, MAX_DECISIONS = 100, 20, 5000, 2000
MAX_PHOTOS = 9
# Characters a Word document cannot hold (XML 1.0 forbids most control characters).
_NOT_IN_XML = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)])


class MeetingRecord(Base):
    __tablename__ = "meeting_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), unique=True)
    topic: Mapped[str] = mapped_column(String(MAX_TOPIC))
    chair: Mapped[str] = mapped_column(String(MAX_NAME), default="")  # 主持人
    recorder: Mapped[str] = mapped_column(String(MAX_NAME), default="")  # 记录人
    content: Mapped[str] = mapped_column(Text)
    decisions: Mapped[str] = mapped_column(Text, default="")
    written_by_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)

    activity: Mapped[Activity] = relationship()
    photos: Mapped[list["RecordPhoto"]] = relationship(order_by="RecordPhoto.id")


class RecordPhoto(Base):
    __tablename__ = "meeting_record_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("meeting_records.id"), index=True)
    media_id: Mapped[str] = mapped_column(String(200))
    added_by_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class RecordText:
    """What a secretary writes; topic empty: the occasion's title; recorder empty: the writer."""

    content: str
    topic: str = ""
    chair: str = ""
    recorder: str = ""
    decisions: str = ""


def record_of(session: Session, activity_id: int) -> MeetingRecord | None:
    return session.scalars(select(MeetingRecord).where(MeetingRecord.activity_id == activity_id)).first()


def write_record(session: Session, activity: Activity, actor: Member, text: RecordText, now: datetime
                 ) -> MeetingRecord:
    """Write (or rewrite) the record of an organizational-life occasion that has started. Commit."""
    authz.authorize(actor, authz.MANAGE_ACTIVITY, activity.org)
    if activity.kind == VOLUNTEER:
        raise DomainError(f"活动 {activity.number} 是志愿服务，不需要会议记录。", code="not_org_life")
    if activity.starts_at > now:
        raise DomainError(f"活动 {activity.number} 还没有开始，会后再记录。", code="not_started")
    values = dict(
        topic=clean_text(text.topic.strip(), "议题", MAX_TOPIC) or activity.title[:MAX_TOPIC],
        chair=clean_text(text.chair.strip(), "主持人", MAX_NAME),
        recorder=clean_text(text.recorder.strip(), "记录人", MAX_NAME) or actor.name[:MAX_NAME],
        content=clean_text(text.content.strip(), "会议内容", MAX_CONTENT),
        decisions=clean_text(text.decisions.strip(), "决议", MAX_DECISIONS),
        written_by_id=actor.id, written_at=now)
    if not values["content"]:
        raise DomainError("请写明会议内容。", code="record_content")
    if not insert_ignore(session, MeetingRecord.__table__, activity_id=activity.id, **values):
        record = record_of(session, activity.id)
        for key, value in values.items():
            setattr(record, key, value)
    session.commit()
    return record_of(session, activity.id)


def attach_record_photo(session: Session, actor: Member, media_id: str, now: datetime,
                        settings: Settings = DEFAULTS) -> MeetingRecord | None:
    """Attach a photo to the record `actor` wrote in the last RECORD_PHOTO_MINUTES (None: none, or it
    holds MAX_PHOTOS already). Commit."""
    since = now - timedelta(minutes=settings.record_photo_minutes)
    record = session.scalars(
        select(MeetingRecord).where(MeetingRecord.written_by_id == actor.id, MeetingRecord.written_at >= since)
        .order_by(MeetingRecord.written_at.desc(), MeetingRecord.id.desc())).first()
    if record is None or len(record.photos) >= MAX_PHOTOS:
        return None
    session.add(RecordPhoto(record_id=record.id, media_id=media_id, added_by_id=actor.id, at=now))
    session.commit()
    session.refresh(record)
    return record


def record_photo(session: Session, actor: Member, activity: Activity, photo_id: int) -> RecordPhoto:
    """A photo of the record of `activity`, for those who manage the activity (the record's own
    readers); a photo of another record is not found."""
    authz.authorize(actor, authz.MANAGE_ACTIVITY, activity.org)
    photo = session.scalars(select(RecordPhoto).join(MeetingRecord, MeetingRecord.id == RecordPhoto.record_id)
                            .where(RecordPhoto.id == photo_id, MeetingRecord.activity_id == activity.id)
                            ).first() if fits_id(photo_id) else None
    if photo is None:
        raise NotFound("没有这张照片。", data={"what": "record_photo"})
    return photo


# The record book ----------------------------------------------------------------------------------
@dataclass
class BookEntry:
    activity: Activity
    expected: list[str]
    present: list[str]
    on_leave: list[str]
    absent: list[str]
    late: list[str]
    record: MeetingRecord | None


def record_book(session: Session, actor: Member, org: Organization, year: int, now: datetime,
                settings: Settings = DEFAULTS) -> list[BookEntry]:
    """The organizational-life occasions of `org` itself in `year` (local time) that have started,
    in date order, each with its attendance and record."""
    authz.authorize(actor, authz.MANAGE_ACTIVITY, org)
    first, last = clock.year_bounds(year, settings.tz)
    activities = session.scalars(
        select(Activity).where(Activity.org_id == org.id, Activity.kind != VOLUNTEER,
                               Activity.cancelled.is_(False), Activity.starts_at >= first,
                               Activity.starts_at < last, Activity.starts_at <= now)
        .order_by(Activity.starts_at, Activity.id)).all()
    ids = [a.id for a in activities]
    records = {r.activity_id: r for r in session.scalars(
        select(MeetingRecord).where(MeetingRecord.activity_id.in_(ids)).options(selectinload(MeetingRecord.photos)))}
    return [_entry(session, activity, records.get(activity.id), settings)
            for activity in activities]


def _entry(session: Session, activity: Activity, record: MeetingRecord | None, settings: Settings) -> BookEntry:
    report = attendance(session, activity, settings)
    return BookEntry(
        activity, [m.name for m in report.expected], [c.member.name for c in report.present],
        [m.name for m in report.on_leave], [m.name for m in report.absent],
        [c.member.name for c in report.present if c.member_id in report.late], record)


def _names(names: list[str]) -> str:
    return "、".join(names) if names else "无"


def record_book_docx(entries: list[BookEntry], org: Organization, year: int, settings: Settings = DEFAULTS
                     ) -> bytes:
    """The record book as a Word document: a title page line, then one section per occasion."""
    from docx import Document  # python-docx and lxml load only when a record book is asked for
    from docx.shared import Pt

    document = Document()
    document.styles["Normal"].font.size = Pt(12)
    document.add_heading(_xml(f"{org.name} {year}年 会议记录"), level=0)
    if not entries:
        document.add_paragraph("本年度没有组织生活记录。")
    for entry in entries:
        activity, record = entry.activity, entry.record
        document.add_heading(_xml(f"{clock.full_date(activity.starts_at, settings.tz)} "
                                  f"{activity.kind}：{record.topic if record else activity.title}"), level=1)
        lines = [f"时间：{clock.day_time(activity.starts_at, settings.tz)}", f"地点：{activity.place or '未填写'}"]
        if record is not None:
            lines += [f"主持人：{record.chair or '未填写'}", f"记录人：{record.recorder}"]
        lines += [f"应到：{len(entry.expected)} 人　实到：{len(entry.present)} 人　"
                  f"请假：{len(entry.on_leave)} 人　缺席：{len(entry.absent)} 人",
                  f"实到人员：{_names(entry.present)}", f"请假人员：{_names(entry.on_leave)}",
                  f"缺席人员：{_names(entry.absent)}"]
        if entry.late:
            lines.append(f"迟到人员：{_names(entry.late)}")
        for line in lines:
            document.add_paragraph(_xml(line))
        if record is None:
            document.add_paragraph("（尚无会议记录）")
            continue
        document.add_paragraph(_xml("会议内容："))
        for paragraph in record.content.splitlines():
            document.add_paragraph(_xml(paragraph))
        if record.decisions:
            document.add_paragraph(_xml(f"决议：{record.decisions}"))
        if record.photos:
            document.add_paragraph(f"照片：{len(record.photos)} 张（存于连心系统）")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _xml(text: str) -> str:
    return text.translate(_NOT_IN_XML)


BOOK_COLUMNS = ("日期", "类型", "议题", "地点", "主持人", "记录人", "应到", "实到", "请假", "缺席",
                "实到人员", "请假人员", "缺席人员", "迟到人员", "会议内容", "决议", "照片数")


def record_book_xlsx(entries: list[BookEntry], org: Organization, year: int, settings: Settings = DEFAULTS
                     ) -> bytes:
    book, sheet = new_sheet(f"{year}年会议记录", BOOK_COLUMNS, widths=(12, 12, 24, 16, 8, 8, 6, 6, 6, 6,
                                                                     30, 20, 20, 20, 60, 30, 8))
    for entry in entries:
        activity, record = entry.activity, entry.record
        append_row(sheet, [
            clock.full_date(activity.starts_at, settings.tz), activity.kind,
            record.topic if record else activity.title, activity.place,
            record.chair if record else "", record.recorder if record else "",
            len(entry.expected), len(entry.present), len(entry.on_leave), len(entry.absent),
            _names(entry.present), _names(entry.on_leave), _names(entry.absent), _names(entry.late),
            record.content if record else "（尚无会议记录）", record.decisions if record else "",
            len(record.photos) if record else 0])
    return to_bytes(book)
