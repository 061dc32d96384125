"""Dates and times as people type them, for every command that takes them (新活动, 修改活动,
组织生活 改期): 2026-12-04, 12月4日, 明天, 周五, 下周五; 15:00, 15点, 下午3点, 3点半, 15:00-17:00."""

import re
from datetime import date, datetime, time, timedelta

from models import DomainError, clock

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


_PART = r"(?:(上午|早上|中午|下午|晚上))?(\d{1,2})(?:[:点](\d{2}|半)?)?"
_TIME = re.compile(_PART + r"(?:[-~至到]" + _PART + r")?")
_AFTERNOON = ("下午", "晚上")


def _clock(part: str | None, hour: str, minute: str | None, after_noon: bool) -> time:
    """One time of day: 下午3点 is 15:00; after an afternoon start, 5点 is 17:00 too."""
    hours = int(hour)
    if (part in _AFTERNOON or (part == "中午" and hours < 3) or (part is None and after_noon)) and hours < 12:
        hours += 12
    return time(hours, 30 if minute == "半" else int(minute or 0))


def parse_time(text: str) -> tuple[time, time | None]:
    """Read "15:00", "15点", "下午3点", "3点半", "15:00-17:00", "下午3点-5点"."""
    found = _TIME.fullmatch(text.strip())
    if found is None:
        raise DomainError(f"时间「{text}」看不懂，例如：15:00、下午3点 或 15:00-17:00。", code="bad_time")
    try:
        start = _clock(found[1], found[2], found[3], False)
        end = _clock(found[4], found[5], found[6], start.hour >= 12) if found[5] else None
    except ValueError:
        raise DomainError(f"时间「{text}」不存在。", code="bad_time") from None
    return start, end


def parse_when(date_text: str, time_text: str, now: datetime, settings) -> tuple[datetime, datetime | None]:
    """Return the aware start (and end, if given) of local date and time texts."""
    zone = settings.tz
    day = parse_date(date_text, now.astimezone(zone).date())
    start, end = parse_time(time_text)
    starts_at = datetime.combine(day, start, tzinfo=zone)
    ends_at = datetime.combine(day, end, tzinfo=zone) if end else None
    return starts_at, ends_at


