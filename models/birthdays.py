"""Political birthdays (政治生日): a greeting on the anniversary of joining the party."""

import calendar
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models.member import PARTY_KINDS, Member
from models.outbox import enqueue


def is_anniversary(joined: date, day: date) -> bool:
    """Whether `day` is the anniversary of `joined`; 29 February counts on 28 February in other years."""
    if day.year <= joined.year:
        return False
    if (joined.month, joined.day) == (day.month, day.day):
        return True
    return (joined.month, joined.day) == (2, 29) and (day.month, day.day) == (2, 28) \
        and not calendar.isleap(day.year)


# What the anniversary is of, by the member date it is counted from.
SINCE = {"join_date": "入党", "full_member_date": "转正"}


def greeting_text(name: str, years: int, since: str = "入党") -> str:
    return (f"{name}同志：今天是您{since}{years}周年的政治生日！感谢您{years}年来不忘初心、牢记使命，"
            "祝您政治生日快乐！——连心")


@dataclass
class BirthdayRun:
    greeted: int = 0
    already: int = 0


def send_birthday_greetings(session: Session, day: date, *, settings: Settings = DEFAULTS) -> BirthdayRun:
    """Queue a greeting for every party member whose political birthday is `day`, once per member
    and year (the outbox's unique key on source "birthday:<year>" + recipient); commit.

    BIRTHDAY_DATE_FIELD names the member date that counts: join_date (入党日期) or full_member_date
    (转正日期).
    """
    run = BirthdayRun()
    date_field = settings.birthday_date_field
    if date_field not in SINCE:
        raise ValueError(f"political birthdays count from one of {', '.join(SINCE)}, not {date_field!r}")
    column = getattr(Member, date_field)
    members = session.scalars(
        select(Member).where(Member.active.is_(True), Member.kind.in_(PARTY_KINDS), column.is_not(None))
        .order_by(Member.id)
    )
    for member in members:
        joined = getattr(member, date_field)
        if not is_anniversary(joined, day):
            continue
        years = day.year - joined.year
        if enqueue(session, source=f"birthday:{day.year}", kind="greeting", title="政治生日快乐",
                   body=greeting_text(member.name, years, SINCE[date_field]),
                   member_id=member.id):
            run.greeted += 1
        else:
            run.already += 1
    session.commit()
    return run
