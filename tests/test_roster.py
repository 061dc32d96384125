"""members import / export: the roster files secretaries keep in Excel."""

import csv
import io
from datetime import datetime

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from models import Grid, Member, Organization
from models.roster import COLUMNS, import_members, read_roster

EAST = "滨江街道党工委/东湖社区党委"
# The header of the rosters below: the columns of a sheet made before 转正日期 was added.
HEADER = ("姓名", "手机号", "所属组织", "党员类别", "入党日期", "角色", "网格", "网格长")
GOOD = [
    ("张三", "13800000001", f"{EAST}/东湖社区第一党支部", "直管党员", "2001-07-01", "书记", "一网格"),
    ("李四", "13800000002", f"{EAST}/东湖社区第一党支部", "在职", "2010/10/1", "", "一网格"),
    ("王五", "13800000003", f"{EAST}/东湖社区第二党支部/第一党小组", "离退休党员", "1976年3月15日", "党员", "二网格"),
    ("赵六", "13800000004", "滨江街道党工委/西湖社区党总支", "群众", "", "", ""),
]


def xlsx(rows, header=HEADER) -> bytes:
    book = Workbook()
    book.active.append(header)
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows, encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_import_creates_tree_grids_and_members(session):
    report = import_members(session, read_roster(xlsx(GOOD), "roster.xlsx"))
    assert report.ok and (report.created, report.updated) == (4, 0)
    names = set(session.scalars(select(Organization.full_name)))
    assert "滨江街道党工委/东湖社区党委/东湖社区第二党支部/第一党小组" in names
    assert len(names) == 6
    li = session.scalars(select(Member).where(Member.phone == "13800000002")).one()
    assert (li.kind, li.role, li.join_date.isoformat()) == ("在职党员", "党员", "2010-10-01")
    zhao = session.scalars(select(Member).where(Member.name == "赵六")).one()
    assert (zhao.kind, zhao.role, zhao.join_date) == ("群众", "志愿者", None)
    # Grids belong to the community, so both branches of 东湖 share "一网格"/"二网格".
    assert {g.org.name for g in session.scalars(select(Grid))} == {"东湖社区党委"}


def test_reimport_updates_by_phone_and_never_duplicates(session):
    import_members(session, read_roster(xlsx(GOOD), "r.xlsx"))
    changed = [list(r) for r in GOOD]
    changed[0][0] = "张三丰"
    report = import_members(session, read_roster(xlsx(changed), "r.xlsx"))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 3)
    assert count(session, Member) == 4
    assert session.scalars(select(Member.name).where(Member.phone == "13800000001")).one() == "张三丰"


def test_bad_rows_are_reported_with_row_numbers_and_nothing_is_written(session):
    rows = list(GOOD) + [
        ("", "13800000005", "滨江街道党工委", "直管党员", "", "", ""),
        ("钱七", "1380000", "滨江街道党工委", "直管党员", "", "", ""),
        ("孙八", "13800000001", "滨江街道党工委", "直管党员", "", "", ""),
        ("周九", "13800000009", "", "外星党员", "明天", "队长", ""),
        ("吴十", "13800000010", "滨江街道党工委", "直管党员", "2999-01-01", "", ""),
    ]
    report = import_members(session, read_roster(xlsx(rows), "r.xlsx"))
    assert not report.ok
    by_row = {e.row: e.reason for e in report.errors}
    assert set(by_row) == {6, 7, 8, 9, 10}
    assert "姓名为空" in by_row[6]
    assert "不是11位手机号" in by_row[7]
    assert "与第 2 行重复" in by_row[8]
    assert all(w in by_row[9] for w in ("所属组织为空", "党员类别", "入党日期", "角色"))
    assert "晚于今天" in by_row[10]
    assert "未导入任何数据" in report.summary()
    assert count(session, Member) == 0 and count(session, Organization) == 0


def test_dry_run_reports_without_writing(session):
    report = import_members(session, read_roster(xlsx(GOOD), "r.xlsx"), dry_run=True)
    assert report.ok and report.created == 4 and "试运行" in report.summary()
    assert count(session, Member) == 0 and count(session, Organization) == 0


def test_csv_in_utf8_and_gbk_and_blank_rows(session):
    for encoding in ("utf-8-sig", "gb18030"):
        records = read_roster(csv_bytes([GOOD[0], ("", "", "", "", "", "", ""), GOOD[1]], encoding), "r.csv")
        report = import_members(session, records)
        assert report.ok, report.errors
    assert count(session, Member) == 2


def test_unreadable_files_are_refused_with_a_reason():
    import pytest

    from models.roster import RosterFileError

    for data, name, words in [
        (b"abc", "r.txt", "只支持"),
        (b"not a zip", "r.xlsx", "无法读取"),
        (xlsx([], header=("名字", "电话")), "r.xlsx", "缺少列"),
    ]:
        with pytest.raises(RosterFileError, match=words):
            read_roster(data, name)


def test_cli_import_export_round_trip(app, tmp_path, session):
    runner = app.test_cli_runner()
    source = tmp_path / "roster.xlsx"
    source.write_bytes(xlsx(GOOD))
    dry = runner.invoke(args=["members", "import", str(source), "--dry-run"])
    assert dry.exit_code == 0 and "将新增 4 人" in dry.output
    assert count(session, Member) == 0
    result = runner.invoke(args=["members", "import", str(source)])
    assert result.exit_code == 0 and "新增 4 人" in result.output
    target = tmp_path / "out.xlsx"
    result = runner.invoke(args=["members", "export", str(target)])
    assert result.exit_code == 0 and "已导出 4 人" in result.output
    sheet = load_workbook(target).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == COLUMNS
    assert ("张三", "13800000001") in {r[:2] for r in rows[1:]}
    again = runner.invoke(args=["members", "import", str(target)])
    assert "无变化 4 人" in again.output


def test_cli_import_of_a_bad_file_exits_nonzero_and_lists_rows(app, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(csv_bytes([("张三", "123", "滨江街道党工委", "直管党员", "", "", "")]))
    result = app.test_cli_runner().invoke(args=["members", "import", str(source)])
    assert result.exit_code == 1
    assert "第 2 行" in result.output and "未导入任何数据" in result.output


def test_demo_load_only_into_an_empty_database(app, session):
    runner = app.test_cli_runner()
    assert "已载入演示组织" in runner.invoke(args=["demo", "load"]).output
    assert count(session, Member) == 8
    assert "未载入" in runner.invoke(args=["demo", "load"]).output


# 网格长 (optional column) -------------------------------------------------------------------------------
OLD_COLUMNS = HEADER[:7]  # a roster made before the 网格长 column


def grid_heads(session):
    session.expire_all()
    return {m.name: m.grid_head for m in session.scalars(select(Member))}


def test_grid_heads_are_marked_by_the_optional_column(session):
    rows = [GOOD[0] + ("否",), GOOD[1] + ("是",), GOOD[2] + ("",), GOOD[3] + (None,)]
    report = import_members(session, read_roster(xlsx(rows), "r.xlsx"))
    assert report.ok, report.errors
    assert grid_heads(session) == {"张三": False, "李四": True, "王五": False, "赵六": False}

    # A roster without the column imports as before and leaves the marks alone.
    report = import_members(session, read_roster(xlsx(GOOD, header=OLD_COLUMNS), "r.xlsx"))
    assert report.ok and report.unchanged == 4
    assert grid_heads(session)["李四"] is True
    # With the column, a change of the mark alone is an update.
    report = import_members(session, read_roster(xlsx([GOOD[1] + ("否",)]), "r.xlsx"))
    assert report.updated == 1 and grid_heads(session)["李四"] is False


def test_a_grid_head_needs_a_grid_and_a_yes_or_no(session):
    rows = [GOOD[3] + ("是",), GOOD[0] + ("也许",)]
    report = import_members(session, read_roster(xlsx(rows), "r.xlsx"))
    assert [(e.row, e.reason) for e in report.errors] == [
        (2, "网格长须填写所在网格"), (3, "网格长应填「是」或「否」，而不是「也许」")]
    assert count(session, Member) == 0


def test_the_export_writes_the_grid_head_column(session):
    import_members(session, read_roster(xlsx([GOOD[0] + ("是",), GOOD[1]]), "r.xlsx"))
    from models.roster import export_members, members_in_subtree

    data = export_members(session, members_in_subtree(session))
    rows = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert rows[0] == COLUMNS and rows[0][-1] == "网格长"
    assert {r[0]: r[-1] for r in rows[1:]} == {"张三": "是", "李四": "否"}
    # And it reads back unchanged.
    assert import_members(session, read_roster(data, "back.xlsx")).unchanged == 2


# 转正日期 (optional column) ---------------------------------------------------------------------------
WITH_FULL = HEADER[:5] + ("转正日期",) + HEADER[5:7]  # 姓名 … 入党日期, 转正日期, 角色, 网格


def with_full(row, full_member_date):
    return row[:5] + (full_member_date,) + row[5:7]


def full_member_dates(session):
    session.expire_all()
    return {m.name: m.full_member_date and m.full_member_date.isoformat() for m in session.scalars(select(Member))}


def test_full_member_dates_import_in_the_join_date_formats_and_export_back(session):
    rows = [with_full(GOOD[0], "2002-07-01"), with_full(GOOD[1], "2011/10/1"),
            with_full(GOOD[2], "1977年3月15日"), with_full(GOOD[3], "")]
    report = import_members(session, read_roster(xlsx(rows, header=WITH_FULL), "r.xlsx"))
    assert report.ok, report.errors
    assert full_member_dates(session) == {"张三": "2002-07-01", "李四": "2011-10-01", "王五": "1977-03-15",
                                          "赵六": None}
    # An Excel date cell works too, and a change of the date alone is an update.
    report = import_members(session, read_roster(
        xlsx([with_full(GOOD[0], datetime(2002, 8, 1))], header=WITH_FULL), "r.xlsx"))
    assert report.updated == 1 and full_member_dates(session)["张三"] == "2002-08-01"

    from models.roster import export_members, members_in_subtree

    data = export_members(session, members_in_subtree(session))
    exported = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert exported[0] == COLUMNS and COLUMNS.index("转正日期") == COLUMNS.index("入党日期") + 1
    column = COLUMNS.index("转正日期")
    assert {r[0]: r[column] for r in exported[1:]} == {"张三": "2002-08-01", "李四": "2011-10-01",
                                                      "王五": "1977-03-15", "赵六": None}
    # The export reads back unchanged; a roster without the column leaves the dates alone.
    assert import_members(session, read_roster(data, "back.xlsx")).unchanged == 4
    assert import_members(session, read_roster(xlsx(GOOD), "old.xlsx")).unchanged == 4
    assert full_member_dates(session)["李四"] == "2011-10-01"
    # With the column, an empty cell clears the date.
    report = import_members(session, read_roster(xlsx([with_full(GOOD[1], "")], header=WITH_FULL), "r.xlsx"))
    assert report.updated == 1 and full_member_dates(session)["李四"] is None


def test_bad_full_member_dates_are_reported_and_nothing_is_written(session):
    rows = [with_full(GOOD[0], "去年七月"), with_full(GOOD[1], "2999-01-01"), with_full(GOOD[2], "1975-03-15")]
    report = import_members(session, read_roster(xlsx(rows, header=WITH_FULL), "r.xlsx"))
    assert [(e.row, e.reason) for e in report.errors] == [
        (2, "转正日期「去年七月」无法识别，应如 2002-07-01"), (3, "转正日期晚于今天"), (4, "转正日期早于入党日期")]
    assert count(session, Member) == 0


def test_cli_round_trip_of_full_member_dates(app, tmp_path, session):
    source = tmp_path / "roster.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(WITH_FULL)
    writer.writerows([with_full(GOOD[0], "2002.7.1"), with_full(GOOD[1], "")])
    source.write_bytes(buffer.getvalue().encode("gb18030"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["members", "import", str(source)])
    assert result.exit_code == 0 and "新增 2 人" in result.output, result.output
    target = tmp_path / "out.xlsx"
    assert runner.invoke(args=["members", "export", str(target)]).exit_code == 0
    rows = list(load_workbook(target).active.iter_rows(values_only=True))
    column = rows[0].index("转正日期")
    assert {r[0]: r[column] for r in rows[1:]} == {"张三": "2002-07-01", "李四": None}
    assert "无变化 2 人" in runner.invoke(args=["members", "import", str(target)]).output
