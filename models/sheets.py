"""The one way every export writes a spreadsheet row: user text can never become a formula.

A cell whose text begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read by Excel,
WPS and LibreOffice as a formula (OWASP, "CSV injection"): `=HYPERLINK("http://…","点我领取")`
typed as a wish would be a live link in the secretary's export. Such text is written as a text
cell (type `s`, with Excel's quote prefix), never as a formula; characters a worksheet cannot
hold (control characters) are dropped. Numbers, dates and booleans are written as they are.
"""

import io
from collections.abc import Iterable

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def clean_text(value: str) -> str:
    """Drop the characters a worksheet cannot store."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def is_risky(value) -> bool:
    """Whether a spreadsheet would read this value as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def append_row(sheet: Worksheet, values: Iterable) -> None:
    """Append one row; every string is stored as text, whatever it begins with."""
    row = [clean_text(v) if isinstance(v, str) else v for v in values]
    sheet.append(row)
    number = sheet.max_row
    for column, value in enumerate(row, 1):
        if is_risky(value):
            cell = sheet.cell(row=number, column=column)
            cell.data_type = "s"  # openpyxl typed it as a formula ("f") on assignment
            cell.quotePrefix = True  # and Excel keeps it text when the cell is edited


def new_sheet(title: str, header: Iterable[str] | None = None) -> tuple[Workbook, Worksheet]:
    """A workbook with one sheet named `title`, its first row `header` (when given)."""
    book = Workbook()
    sheet = book.active
    sheet.title = clean_text(title)[:31]
    if header is not None:
        append_row(sheet, header)
    return book, sheet


def to_bytes(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
