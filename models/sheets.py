"""The one way every export writes a spreadsheet (or a CSV): streamed row by row, user text never a formula.

A cell whose text begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read by Excel,
WPS and LibreOffice as a formula (OWASP, "CSV injection"): `=HYPERLINK("http://…","点我领取")`
typed as a wish would be a live link in the secretary's export. Such text is written as a text
cell (type `s`, with Excel's quote prefix), never as a formula; characters a worksheet cannot
hold (control characters) are dropped. Numbers, dates and booleans are written as they are.

Workbooks are openpyxl's write-only kind: each row goes to a temporary file as it is appended, so an
export of 50,000 members holds one row in memory, not a worksheet of cell objects. Set column widths
(`sheet.column_dimensions`) before the first row.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # openpyxl loads when a workbook is made, not with every process (0.3 s)
    from openpyxl import Workbook
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# What openpyxl refuses in a cell (openpyxl.cell.cell.ILLEGAL_CHARACTERS_RE): control characters.
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def clean_text(value: str) -> str:
    """Drop the characters a worksheet cannot store."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def is_risky(value) -> bool:
    """Whether a spreadsheet would read this value as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def csv_row(values: Iterable) -> list:
    """One row for a CSV file opened in a spreadsheet: text a spreadsheet would take for a formula
    is written behind an apostrophe (`'=1+1`: Excel shows the text, without the apostrophe);
    `csv_text` reads such a cell back as it was."""
    return [("'" + v if is_risky(v) else v) if isinstance(v, str) else ("" if v is None else v)
            for v in (clean_text(v) if isinstance(v, str) else v for v in values)]


def csv_text(cell: str) -> str:
    """A cell of a CSV file as its text was before csv_row protected it."""
    return cell[1:] if cell.startswith("'") and is_risky(cell[1:]) else cell


def append_row(sheet: WriteOnlyWorksheet, values: Iterable) -> None:
    """Append one row; every string is stored as text, whatever it begins with."""
    sheet.append([_cell(sheet, clean_text(v)) if isinstance(v, str) else v for v in values])


def _cell(sheet: WriteOnlyWorksheet, text: str):
    if not is_risky(text):
        return text
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"  # openpyxl would type it as a formula ("f")
    cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
    return cell


def new_sheet(title: str, header: Iterable[str] | None = None,
              widths: Iterable[float] = ()) -> tuple[Workbook, WriteOnlyWorksheet]:
    """A write-only workbook with one sheet named `title`, its columns `widths` wide (from A), its
    first row `header` (when given)."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(clean_text(title)[:31])
    for number, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(number)].width = width
    if header is not None:
        append_row(sheet, header)
    return book, sheet


def to_bytes(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
