"""Political birthdays (政治生日): a greeting on the anniversary of joining the party."""

import calendar
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def greeting_text(name: str, years: int) -> str:
    return (f"{name}同志：今天是您入党{years}周年的政治生日！感谢您{years}年来不忘初心、牢记使命，"
            "祝您政治生日快乐！——连心")


@dataclass
class BirthdayRun:
    greeted: int = 0
    already: int = 0


def send_birthday_greetings(session: Session, day: date, *, date_field: str = "join_date") -> BirthdayRun:
    """Queue a greeting for every party member whose political birthday is `day`, once per member
    and year (the outbox's unique key on source "birthday:<year>" + recipient); commit.

    `date_field` names the member attribute that counts (join_date: 入党日期; another one such as
    full_member_date when the roster has it).
    """
    run = BirthdayRun()
    column = getattr(Member, date_field, None)
    if column is None:
        raise ValueError(f"members have no date field {date_field!r}")
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
                   body=greeting_text(member.name, years), member_id=member.id):
            run.greeted += 1
        else:
            run.already += 1
    session.commit()
    return run
