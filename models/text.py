"""Input text and numbers: what may be stored, and how long or large it may be.

Every domain function that stores text a person typed (or a file carried) passes it through
`clean_text`; every id or count that reaches a query passes through `fits_id` / `check_int`. The
doors (API schemas, chatbot, roster import) refuse the same things earlier with their own words,
but the domain is the one place that guarantees nothing else is ever stored.

Refused characters: C0 controls except tab, LF and CR (NUL among them: PostgreSQL refuses it in
text), DEL, C1 controls, the noncharacters U+FFFE/U+FFFF and lone surrogates. None of them has a
use in a name, a wish or a notice, and several make a WeChat reply XML invalid.
"""

import re

from models.base import DomainError

# The largest value the databases' INTEGER columns hold: ids and counts beyond it are not found
# (ids) or refused (counts), never sent to the database (SQLite overflows past 64 bits, PostgreSQL
# past 32).
MAX_INT = 2**31 - 1

# Characters refused in every stored text (code points, as Python sees them).
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")
# The same rule as an ECMA-262 pattern for the OpenAPI document (a client can check it too).
# Surrogates are left out: in a JavaScript regex without the u flag they would refuse every
# emoji; the server still refuses a lone surrogate.
SAFE_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff]*$"

# Longest stored texts, in characters. Column lengths where the column has one; Text columns get
# a bound here so that one signed message cannot store hundreds of kilobytes.
MAX_NAME = 50  # a person's name
MAX_PHONE = 20
MAX_PHONE_TYPED = 30  # a phone number as typed, with spaces or dashes, before normalizing
MAX_TITLE = 100  # wish, activity and org-life titles
MAX_NOTICE_TITLE = 200
MAX_DETAILS = 2000  # wish details, fulfilment notes
MAX_NOTICE_BODY = 2000
MAX_NOTE = 500  # history notes: reasons of refusal, return, release, withdrawal
MAX_REASON = 200  # point awards and their decisions
MAX_PLACE = 200
MAX_ADDRESS = 200
MAX_GRID = 100
MAX_ORG = 100  # one organization name in a path
MAX_RULE = 100  # an org-life rule as typed
MAX_QUERY = 50  # a search query
MAX_CODE = 64  # sign-in codes, tokens, scenes
MAX_POINTS = 10000  # points of a wish, an activity or a manual award (either sign)
MAX_CAPACITY = 100000  # places of an activity
MAX_PAGE = 100000


class InvalidText(DomainError):
    code = "invalid_text"
    status = 422


def bad_character(value: str) -> str | None:
    """Return the first refused character of `value`, or None when there is none."""
    found = FORBIDDEN.search(value)
    return found[0] if found else None


def describe_character(char: str) -> str:
    return f"U+{ord(char):04X}"


def text_problem(value: str, label: str, max_length: int | None = None) -> str | None:
    """Return the Chinese reason `value` may not be stored as `label`, or None when it may."""
    char = bad_character(value)
    if char is not None:
        return f"{label}包含不允许的控制字符（{describe_character(char)}），请删除后重试。"
    if max_length is not None and len(value) > max_length:
        return f"{label}太长了：最多{max_length}字，现有{len(value)}字。"
    return None


def clean_text(value: str | None, label: str, max_length: int | None = None) -> str:
    """Return `value` ('' for None) when it may be stored as `label`; raise InvalidText if not."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidText(f"{label}应为文本。")
    problem = text_problem(value, label, max_length)
    if problem:
        raise InvalidText(problem)
    return value


def fits_id(value) -> bool:
    """Whether `value` can be an id in the database (1 … MAX_INT); a bigger one is never found."""
    return isinstance(value, int) and 0 < value <= MAX_INT


def check_int(value: int | None, label: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int | None:
    """Return `value` when it lies within minimum … maximum (None passes); raise InvalidText if not."""
    if value is None:
        return None
    if not minimum <= value <= maximum:
        raise InvalidText(f"{label}应在{minimum}到{maximum}之间。")
    return value


def clamp_page(page: int | None) -> int:
    """A page number the database can take: past the last page is simply empty."""
    if not page or page < 1:
        return 1
    return min(page, MAX_PAGE)


def parse_number(digits: str, label: str = "编号") -> int:
    """The int of a typed string of digits; more than 12 significant digits is refused (Python
    would parse thousands, and no id, count or amount here comes near)."""
    if len(digits.lstrip("0")) > 12:
        raise InvalidText(f"{label}太大了，请检查后重试。")
    return int(digits)
