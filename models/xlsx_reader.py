"""Rows of an uploaded .xlsx (or .xls), read by python-calamine in a process of its own, memory and CPU capped.

calamine (Rust) reads a 50,000-row roster in about half a second where openpyxl's read-only mode
takes ten; but it densifies a sheet to the bounding box of its cells, and a 2 KB file with cells at
A1 and XFD1048576 asks for 550 GB and aborts the process holding it. So the reading runs in a child
(models/xlsx_child.py) whose address space and CPU time are capped before it reads the file: a
hostile workbook ends that child, and the caller gets a SheetError with a reason to show.
"""

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

CHILD = Path(__file__).with_name("xlsx_child.py")
UNREADABLE = 3  # the child's exit status for a file that is no workbook

NOT_A_WORKBOOK = "无法读取该 Excel 文件，请确认是 .xlsx 或 .xls 格式。"
TOO_BIG = "该 Excel 文件过大或结构异常（例如很远的单元格里还有内容），无法读取；请只保留名册的行和列，另存后再导入。"


class SheetError(ValueError):
    """The workbook cannot be read; the message says why, in Chinese."""


def _decode(item: dict):
    kind = item.get("$")
    if kind == "datetime":
        return datetime.fromisoformat(item["v"])
    if kind == "time":
        return time.fromisoformat(item["v"])
    if kind == "timedelta":
        return timedelta(seconds=item["v"])
    return item


def sheet_rows(data: bytes, *, max_rows: int, max_columns: int, memory_mb: int, seconds: int) -> Iterator[list]:
    """The active sheet's first row cut to `max_columns` + 1 cells, then at most 2 × `max_rows` + 1
    data rows cut to that row's width (a blank row as []), as openpyxl's read-only, data-only mode
    gives them (None for an empty cell, a date as a datetime).

    The child may use `memory_mb` of address space and `seconds` of CPU and of wall time, and print
    no more than `memory_mb`; its output is taken whole before any row is given. Raises SheetError
    (before the first row) when the file cannot be read."""
    budget = memory_mb << 20
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), str(max_rows), str(max_columns), str(memory_mb), str(seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        watchdog = threading.Timer(seconds, child.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                child.stdin.write(data)
                child.stdin.close()
            except BrokenPipeError:
                pass  # the child ended before reading it all: its status says why
            chunks, size = [], 0
            while size <= budget and (chunk := child.stdout.read1(1 << 20)):
                chunks.append(chunk)
                size += len(chunk)
            if size > budget:
                child.kill()
            status = child.wait()
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        if status == UNREADABLE:
            raise SheetError(NOT_A_WORKBOOK)
        if status != 0 or size > budget:
            errors.seek(0)
            tail = errors.read()[-400:].decode("utf-8", "replace").strip().replace("\n", " | ")
            raise SheetError(TOO_BIG) from ChildProcessError(
                f"xlsx reader exit status {status}, {size} bytes printed: {tail}")
    output = b"".join(chunks)
    chunks.clear()
    for line in output.splitlines():
        yield json.loads(line, object_hook=_decode)
