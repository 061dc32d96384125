"""The .xlsx reader's process is held to its limits by the caller too: a reader that runs past its
seconds, or prints more than it could hold, is stopped and the file refused. (Real workbooks, the
hostile ones included, are read in tests/test_roster_scale.py; these stand-in readers misbehave on
purpose, which no real workbook does on demand.)"""

import pytest

from models import xlsx_reader
from models.xlsx_reader import SheetError, sheet_rows


def stand_in(tmp_path, monkeypatch, body: str) -> None:
    script = tmp_path / "reader.py"
    script.write_text("import sys\nsys.stdin.buffer.read()\n" + body)
    monkeypatch.setattr(xlsx_reader, "CHILD", script)


def test_a_reader_past_its_seconds_is_stopped(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, "import time\nprint('[\"姓名\"]', flush=True)\ntime.sleep(60)\n")
    with pytest.raises(SheetError, match="过大或结构异常") as refused:
        next(sheet_rows(b"PK", max_rows=10, max_columns=5, memory_mb=256, seconds=1))
    assert "exit status -9" in str(refused.value.__cause__)  # killed: nothing of it is given


def test_a_reader_printing_more_than_its_memory_is_stopped(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, "while True:\n    print('[\"' + 'x' * 1000 + '\"]')\n")
    with pytest.raises(SheetError, match="过大或结构异常"):
        list(sheet_rows(b"PK", max_rows=10, max_columns=5, memory_mb=1, seconds=30))


def test_a_reader_ended_by_a_signal_refuses_the_file(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, "import os, signal\nos.kill(os.getpid(), signal.SIGABRT)\n")
    with pytest.raises(SheetError, match="过大或结构异常") as refused:
        list(sheet_rows(b"PK", max_rows=10, max_columns=5, memory_mb=256, seconds=30))
    assert "exit status -6" in str(refused.value.__cause__)
