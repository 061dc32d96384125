"""Dates and times as people type them, for every command that takes them (新活动, 修改活动,
组织生活 改期): 2026-12-04, 12月4日, 明天, 周五, 下周五; 15:00, 15点, 下午3点, 3点半, 15:00-17:00."""

import re
from datetime import date, datetime, timedelta

from models import DomainError, clock
from models.clock import parse_time

__all__ = ["parse_date", "parse_time", "parse_when"]

_RELATIVE = {"今天": 0, "明天": 1, "后天": 2}


def parse_date(text: str, today: date) -> date:
    """Read a date as people write it: 2026-12-04, 2026/12/4, 2026年12月4日, 12月4日, 12-04, 明天, 周五."""
    text = text.strip()
    if text in _RELATIVE:
        return today + timedelta(days=_RELATIVE[text])
    found = re.fullmatch(r"(下)?(?:周|星期|礼拜)([一二三四五六日天])", text)
    if found:
        if found[1]:  # 下周五: the Friday of next week
            return today + timedelta(days=7 - today.weekday() + clock.WEEKDAY_NUMBERS[found[2]])
        return today + timedelta(days=(clock.WEEKDAY_NUMBERS[found[2]] - today.weekday()) % 7)
    found = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text)
    with_year = found is not None
    if found:
        year, month, day = (int(g) for g in found.groups())
    else:
        found = re.fullmatch(r"(\d{1,2})[-/.月](\d{1,2})[日号]?", text)
        if found is None:
            raise DomainError(f"日期「{text}」看不懂，可以写：2026-12-04、12月4日、明天、周五。", code="bad_date")
        year, month, day = today.year, int(found[1]), int(found[2])
    try:
        result = date(year, month, day)
    except ValueError:
        raise DomainError(f"日期「{text}」不存在。", code="bad_date") from None
    if not with_year and result < today:
        result = result.replace(year=today.year + 1)  # "1月5日" written in December means next year
    return result


def parse_when(date_text: str, time_text: str, now: datetime, settings) -> tuple[datetime, datetime | None]:
    """Return the aware start (and end, if given) of local date and time texts."""
    zone = settings.tz
    day = parse_date(date_text, now.astimezone(zone).date())
    start, end = parse_time(time_text)
    starts_at = datetime.combine(day, start, tzinfo=zone)
    ends_at = datetime.combine(day, end, tzinfo=zone) if end else None
    return starts_at, ends_at


