"""Local time: the one place that turns stored UTC moments into the local day and its Chinese words.

The zone is the TIMEZONE setting (`settings.tz`); every function takes it, none assumes one. The
formats are the ones the doors show: 12月4日, 12月4日 15:00, 12月4日（周五）15:00, 2026年12月4日.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.base import DomainError

# 周一 … 周日, by datetime.weekday(); 天 is the spoken form of 日 (周天, 礼拜天).
WEEKDAYS = "一二三四五六日"
WEEKDAY_NUMBERS = {name: number for number, name in enumerate(WEEKDAYS)} | {"天": 6}


def local(moment: datetime, tz: ZoneInfo) -> datetime:
    """The moment as local time."""
    return moment.astimezone(tz)


def month_day(moment: datetime | date, tz: ZoneInfo | None = None) -> str:
    """12月4日 (a date is shown as it is; a moment in local time)."""
    day = moment.astimezone(tz) if isinstance(moment, datetime) else moment
    return f"{day.month}月{day.day}日"


def clock_time(moment: datetime, tz: ZoneInfo) -> str:
    """15:00"""
    return f"{moment.astimezone(tz):%H:%M}"


def day_time(moment: datetime, tz: ZoneInfo) -> str:
    """12月4日 15:00"""
    return f"{month_day(moment, tz)} {clock_time(moment, tz)}"


def weekday_time(moment: datetime, tz: ZoneInfo) -> str:
    """12月4日（周五）15:00"""
    day = moment.astimezone(tz)
    return f"{day.month}月{day.day}日（周{WEEKDAYS[day.weekday()]}）{day:%H:%M}"


def full_date(moment: datetime, tz: ZoneInfo, *, with_time: bool = False) -> str:
    """2026年12月4日 (or 2026年12月4日 15:00): the form WeChat's template time and date fields take."""
    day = moment.astimezone(tz)
    text = f"{day.year}年{day.month}月{day.day}日"
    return f"{text} {day:%H:%M}" if with_time else text


def stamp(moment: datetime | None, tz: ZoneInfo) -> str:
    """2026-12-04 15:00 (spreadsheets); empty for no moment."""
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if moment else ""


def month_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The start of `now`'s local month, as an aware time."""
    return now.astimezone(tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which the local days `first` to `last` (inclusive) start and end."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def year_bounds(year: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which a local calendar year starts and ends."""
    return day_bounds(date(year, 1, 1), date(year, 12, 31), tz)


# Times of day as people type them (新活动, 修改活动, 组织生活 and its 改期): 15:00, 15点, 下午3点, 3点半,
# 15:00-17:00. Here, not in a door, because the domain reads them too (an org-life rule's time).
_PART = r"(?:(上午|早上|中午|下午|晚上))?(\d{1,2})(?:[:点](\d{2}|半)?)?"
_TIME = re.compile(_PART + r"(?:[-~至到]" + _PART + r")?")
_AFTERNOON = ("下午", "晚上")
# One time of day inside a longer text (a rule: "每月第一个周五 下午3点 主题党日"): a ":" or 点 is
# required, so that a bare number is never taken for an hour.
TIME_IN_TEXT = r"(?:上午|早上|中午|下午|晚上)?\d{1,2}(?::\d{2}|点(?:\d{2}|半)?)"


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
