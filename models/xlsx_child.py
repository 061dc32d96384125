"""Read one worksheet of an untrusted .xlsx (or .xls) and print its rows as JSON lines (run by models.xlsx_reader).

    python -I models/xlsx_child.py MAX_ROWS MAX_COLUMNS MEMORY_MB CPU_SECONDS  < book.xlsx

This runs as a process of its own, started for each file, so that its limits are its own: the
address space and the CPU time are capped before anything of the file is read. python-calamine
densifies a sheet to its cells' bounding box, so two cells far apart (A1 and XFD1048576) ask for
hundreds of GB: here that aborts this process, not the server. Nothing of the app is imported
(`-I`: neither the working directory nor the script's own is on the path).

Output: the header row cut to MAX_COLUMNS + 1 cells, then at most 2 × MAX_ROWS + 1 data rows cut
to the header's width (a blank row as []); values are JSON, a date or time {"$": kind, "v": ISO}.
A file that is no workbook ends with exit status 3 and nothing printed.
"""

import io
import json
import resource
import sys
import zipfile
from datetime import date, datetime, time, timedelta

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
UNREADABLE = 3


def limit(memory_mb: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def active_tab(data: bytes) -> int:
    """The sheet the workbook opens on (what openpyxl calls `active`), 0 when it says nothing."""
    from defusedxml.ElementTree import fromstring

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("xl/workbook.xml") as part:
            text = part.read(1 << 20)
        view = fromstring(text).find(f"{MAIN}bookViews/{MAIN}workbookView")
        return int(view.get("activeTab", 0)) if view is not None else 0
    except Exception:  # a workbook part calamine may still read, or none: calamine decides
        return 0


def sheet_index(book, data: bytes) -> int:
    """The active sheet if it is a worksheet, else the first visible worksheet (an .xls: the first)."""
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    sheets = book.sheets_metadata
    active = active_tab(data)
    if 0 <= active < len(sheets) and sheets[active].typ == SheetTypeEnum.WorkSheet:
        return active
    for index, sheet in enumerate(sheets):
        if sheet.typ == SheetTypeEnum.WorkSheet and sheet.visible == SheetVisibleEnum.Visible:
            return index
    return 0


def value(cell):
    """A cell as openpyxl gives it in read-only, data-only mode: a date as a datetime, a whole number
    as an int, an empty cell as None."""
    if cell == "":
        return None
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < 2 ** 53:
        return int(cell)  # stored without a fraction: openpyxl reads 13800000001 as an int
    if isinstance(cell, datetime):
        return {"$": "datetime", "v": cell.isoformat()}
    if isinstance(cell, date):
        return {"$": "datetime", "v": datetime(cell.year, cell.month, cell.day).isoformat()}
    if isinstance(cell, time):
        return {"$": "time", "v": cell.isoformat()}
    if isinstance(cell, timedelta):
        return {"$": "timedelta", "v": cell.total_seconds()}
    return cell


def trimmed_width(row: list) -> int:
    width = len(row)
    while width and (row[width - 1] is None or str(row[width - 1]).strip() == ""):
        width -= 1
    return width


def main() -> int:
    max_rows, max_columns, memory_mb, cpu_seconds = (int(a) for a in sys.argv[1:5])
    limit(memory_mb, cpu_seconds)
    data = sys.stdin.buffer.read()
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet = book.get_sheet_by_index(sheet_index(book, data))
        rows = sheet.to_python(skip_empty_area=False, nrows=2 * max_rows + 2)
    except (CalamineError, ValueError):
        return UNREADABLE
    out = sys.stdout
    header = [value(c) for c in rows[0][:max_columns + 1]] if rows else []
    out.write(json.dumps(header, ensure_ascii=False) + "\n")
    width = trimmed_width(header)
    for row in rows[1:] if width else ():
        cells = [value(c) for c in row[:width]]
        out.write(json.dumps(cells if any(c is not None for c in cells) else [], ensure_ascii=False) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
