"""A roster import or export costs a few statements whatever its size: organizations and grids are
resolved once, members read in chunks and written in batches, exports streamed with their
organization and grid. And a large mixed import lands exactly as the rows say."""

import io
import zipfile
from datetime import date, datetime

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import fastpath
from config import DEFAULTS
from models import Grid, Member, Organization
from models import roster as roster_module
from models.directory import export_roster
from models.org import community_path
from models.roster import COLUMNS, RosterFileError, export_members, import_members, members_in_subtree, read_roster
from tests.conftest import STREET

CITY = "滨海市委"  # a tree of its own, apart from the test people's


def branch(street: int, community: int, number: int) -> str:
    return f"{CITY}/第{street}街道/第{community}社区党委/第{community}社区第{number}党支部"


def rows(count: int, street: int = 1, start: int = 0) -> list[dict]:
    """`count` roster rows over 5 new organizations (a street, 2 communities, 2 branches) and 10 grids."""
    made = []
    for n in range(start, start + count):
        community = n % 2 + 1
        grid = f"{community}社区{n % 5 + 1}号网格"
        made.append(dict(zip(COLUMNS, (
            f"党员{n}", f"13{street}{n:08d}", branch(street, community, 1), "在职党员", "2001-07-01",
            "2002-07-01", "党员", grid, "是" if n % 5 == n % 7 == 0 else "否"), strict=True)))
    return made


def changed(records: list[dict]) -> list[dict]:
    """Every tenth row changed (role, grid head, branch, grid, date), in turns."""
    out = []
    for n, record in enumerate(records):
        record = dict(record)
        if n % 10 == 0:
            turn = n // 10 % 5
            if turn == 0:
                record["角色"] = "志愿者"
                record["党员类别"] = "群众"
            elif turn == 1:
                record["网格长"] = "否" if record["网格长"] == "是" else "是"
            elif turn == 2:
                record["所属组织"] = record["所属组织"].replace("第1党支部", "第2党支部")
            elif turn == 3:
                record["网格"] = record["网格"].replace("号网格", "号新网格")
            else:
                record["转正日期"] = "2003-07-01"
        out.append(record)
    return out


def test_an_import_costs_the_same_statements_for_50_and_for_500_rows(session, count_statements):
    import_members(session, rows(1, street=0))  # the city
    with count_statements() as few:
        report = import_members(session, rows(50, street=1))
    assert report.ok and report.created == 50 and len(report.new_orgs) == 5 and len(report.new_grids) == 10
    with count_statements() as many:
        report = import_members(session, rows(500, street=2))
    assert report.ok and report.created == 500 and len(report.new_orgs) == 5 and len(report.new_grids) == 10
    assert many.count == few.count, many.statements
    writes = [s for s in many.statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    # A level of organizations: an INSERT and an UPDATE of their paths; the grids; the members.
    assert len(writes) == 2 * 3 + 1 + 1, writes


def test_a_reimport_unchanged_or_changed_costs_the_same_for_50_and_for_500_rows(session, count_statements):
    few_rows, many_rows = rows(50, street=1), rows(500, street=2)
    import_members(session, few_rows)
    import_members(session, many_rows)
    with count_statements() as few:
        assert import_members(session, few_rows).unchanged == 50
    with count_statements() as many:
        assert import_members(session, many_rows).unchanged == 500
    assert many.count == few.count <= 4, many.statements  # nothing written
    with count_statements() as few:
        report = import_members(session, changed(few_rows))
    assert report.ok and (report.updated, report.unchanged) == (5, 45)
    with count_statements() as many:
        report = import_members(session, changed(many_rows))
    assert report.ok and (report.updated, report.unchanged) == (50, 450)
    assert many.count == few.count, many.statements


def test_statements_grow_only_by_the_batches(session, count_statements, monkeypatch):
    monkeypatch.setattr(roster_module, "IMPORT_BATCH", 100)
    import_members(session, rows(1, street=0))  # the city
    with count_statements() as one:
        import_members(session, rows(100, street=1))
    steps = []
    with count_statements() as five:
        report = import_members(session, rows(500, street=2), progress=steps.append)
    assert report.created == 500
    assert steps == [100] * 5  # progress follows the batches written
    assert five.count - one.count == 4, five.statements  # one INSERT per further batch


def test_progress_adds_up_to_the_valid_rows_also_in_a_dry_run(session):
    records = rows(30) + [None, {**rows(1, start=99)[0], "手机号": "138****0000"}]  # a blank row, a masked one
    steps = []
    report = import_members(session, records, dry_run=True, progress=steps.append)
    assert report.ok and report.dry_run and (report.total, report.created, report.unchanged) == (31, 30, 1)
    assert sum(steps) == 30
    assert session.scalar(select(func.count()).select_from(Member)) == 0
    assert session.scalar(select(func.count()).select_from(Organization)) == 0


def _expected(record: dict) -> tuple:
    head = record["网格长"] == "是"
    kind = record["党员类别"]
    return (record["姓名"], kind, date.fromisoformat(record["入党日期"]),
            date.fromisoformat(record["转正日期"]) if record["转正日期"] else None,
            record["角色"], record["所属组织"], record["网格"] or "", head)


def test_a_large_mixed_import_lands_row_by_row(session, engine):
    first = rows(600, street=3)
    import_members(session, first)
    mixed = changed(first)[:550]  # 50 members left out: they stay as they are
    for n in range(40):  # new members, some in a new branch of a new community, some without a grid
        record = rows(1, street=3, start=1000 + n)[0]
        if n % 2:
            record["所属组织"] = f"{CITY}/第3街道/第9社区党委/第9社区第1党支部"
            record["网格"] = "9社区1号网格" if n % 4 == 1 else ""
            record["网格长"] = "是" if n == 1 else "否"
        mixed.append(record)
    # A row naming no grid: no grid head, whatever the column said before.
    mixed[5] = {**mixed[5], "网格": "", "网格长": "否"}
    report = import_members(session, mixed)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (40, 56, 494)
    street = f"{CITY}/第3街道"
    assert set(report.new_orgs) == {f"{street}/第9社区党委", f"{street}/第9社区党委/第9社区第1党支部",
                                    f"{street}/第1社区党委/第1社区第2党支部"}
    with Session(engine) as s:
        members = {m.phone: m for m in s.scalars(select(Member))}
        assert len(members) == 640
        for record in mixed + first[550:]:
            m = members[record["手机号"]]
            actual = (m.name, m.kind, m.join_date, m.full_member_date, m.role, m.org.full_name,
                      m.grid.name if m.grid else "", m.grid_head)
            assert actual == _expected(record), record
            if m.grid:  # grids belong to the member's community
                assert m.grid.org.full_name == community_path(record["所属组织"])
            assert m.org.path == m.org.parent.path + f"{m.org.id}/"
        # One grid per name and community (none is ever removed), one node per path.
        grids = {(community_path(r["所属组织"]), r["网格"]) for r in mixed + first if r["网格"]}
        assert {(g.org.full_name, g.name) for g in s.scalars(select(Grid))} == grids
        names = [o.full_name for o in s.scalars(select(Organization))]
        assert len(names) == len(set(names)) == 1 + 1 + 3 + 4  # city, street, communities, branches
    # The same roster again changes nothing.
    assert import_members(session, mixed).unchanged == 590


def test_an_import_keeps_the_sessions_members_current_and_moves_the_role_cache(session, monkeypatch):
    import_members(session, rows(20))
    held = session.scalars(select(Member).where(Member.phone == rows(1)[0]["手机号"])).one()
    assert held.role == "党员"
    invalidated = []
    monkeypatch.setattr(fastpath, "_caches", [type("Cache", (), {"invalidate": lambda self: invalidated.append(1)})()])
    fastpath.install_role_listeners()
    report = import_members(session, changed(rows(20)))
    assert report.updated == 2
    assert held.role == "志愿者" and held.kind == "群众"  # read again, not stale
    assert invalidated == [1]
    invalidated.clear()
    import_members(session, changed(rows(20)))  # nothing changed: the cached roles stay
    assert invalidated == []


def test_the_members_export_costs_the_same_for_5_and_for_50_members(session, make_member, count_statements):
    secretary = make_member("书记", "13700000000", org=f"{STREET}/东湖社区党委", role="书记")
    viewer = session.get(Member, secretary.id)
    for n in range(5):
        make_member(f"党员{n}", f"1370000{n + 1:04d}", org=f"{STREET}/东湖社区党委/第{n % 2}党支部", grid=f"网格{n}")
    session.expire_all()
    with count_statements() as few_cli:
        data = export_members(session, members_in_subtree(session))
    with count_statements() as few_api:
        export_roster(session, viewer)
    assert len(list(load_workbook(io.BytesIO(data)).active.iter_rows())) == 1 + 6
    for n in range(5, 50):
        make_member(f"党员{n}", f"1370000{n + 1:04d}", org=f"{STREET}/东湖社区党委/第{n % 7}党支部", grid=f"网格{n}")
    session.expire_all()
    with count_statements() as many_cli:
        data = export_members(session, members_in_subtree(session))
    with count_statements() as many_api:
        api_data = export_roster(session, viewer)
    assert many_cli.count == few_cli.count <= 2, many_cli.statements
    assert many_api.count == few_api.count, many_api.statements
    sheet = list(load_workbook(io.BytesIO(api_data)).active.iter_rows(values_only=True))
    assert len(sheet) == 1 + 51
    # The secretary's own row in full, the members of the subtree in full (they are responsible).
    assert {row[1] for row in sheet[1:]} >= {"13700000000", "13700000050"}
    exported = members_in_subtree(session)
    assert len(exported) == 51 and len(list(exported)) == 51  # sized, and iterable again


# Reading .xlsx (python-calamine in a capped process of its own: models/xlsx_reader.py) -----------
def _openpyxl_rows(data: bytes, width: int) -> list[tuple]:
    """What openpyxl's own read-only reader gives for the data rows (the reference)."""
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sheet = book.active
    sheet.reset_dimensions()
    found = list(sheet.iter_rows(min_row=2, max_col=width, values_only=True))
    book.close()
    return found


def _workbook(write_only: bool) -> bytes:
    book = Workbook(write_only=write_only)
    if write_only:
        sheet = book.create_sheet("名册")
    else:  # a first sheet of notes; the workbook opens on the roster, the sheet that is read
        book.active.append(["说明", "请在「名册」表中填写"])
        sheet = book.create_sheet("名册")
        book.active = sheet
    header = ["姓名", "手机号", "所属组织", "党员类别", "入党日期", "角色", "网格", "网格长"]
    sheet.append(header)
    sheet.append(["张三", 13800000001, BRANCH_PATH, "直管党员", datetime(2001, 7, 1), "书记", "一网格", True])
    sheet.append(["李&四<", "13800000002", BRANCH_PATH, "在职", "2010/10/1", None, "", "否"])
    sheet.append([None] * 8)
    sheet.append(["王五", 13800000003.0, BRANCH_PATH, "群众", date(1976, 3, 15), "", None, 0])
    sheet.append(["  赵六 ", "=1+1", BRANCH_PATH, "直管党员", 1.5, "党员", "二网格", "是", "多余的一格"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


BRANCH_PATH = f"{STREET}/东湖社区党委/东湖社区第一党支部"
HEADER = ["姓名", "手机号", "所属组织", "党员类别", "入党日期", "角色", "网格", "网格长"]


@pytest.mark.parametrize("write_only", [False, True])
def test_an_xlsx_is_read_as_openpyxl_reads_it(write_only):
    data = _workbook(write_only)
    records = read_roster(data, "名册.xlsx")
    reference = _openpyxl_rows(data, 8)
    assert [None if r is None else tuple(r[h] for h in HEADER) for r in records] == \
        [None if all(v is None for v in row) else row for row in reference]
    assert records[0]["入党日期"] == datetime(2001, 7, 1) and records[0]["手机号"] == 13800000001
    assert type(records[0]["手机号"]) is int and type(records[0]["入党日期"]) is datetime
    assert records[1]["姓名"] == "李&四<" and records[2] is None
    assert records[3]["入党日期"] == datetime(1976, 3, 15) and records[3]["网格长"] == 0
    assert records[4]["手机号"] is None  # a formula without a stored result reads as an empty cell


def test_a_legacy_xls_is_read_like_the_xlsx_from_its_first_sheet():
    import xlwt  # the tests' writer of the .xls format (Excel 97–2003, WPS's default in many offices)

    book = xlwt.Workbook()
    sheet = book.add_sheet("名册")
    book.add_sheet("说明").write(0, 0, "名册在第一个工作表")
    dated = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for column, value in enumerate(HEADER):
        sheet.write(0, column, value)
    lines = (["张三", 13800000001, BRANCH_PATH, "直管党员", datetime(2001, 7, 1), "书记", "一网格", "是"], [],
             ["李&四<", "13800000002", BRANCH_PATH, "在职", "2010/10/1", "", "", "否"])
    for row, values in enumerate(lines, 1):
        for column, value in enumerate(values):
            sheet.write(row, column, value, dated if isinstance(value, datetime) else xlwt.Style.default_style)
    buffer = io.BytesIO()
    book.save(buffer)

    records = read_roster(buffer.getvalue(), "名册.xls")
    assert [None if r is None else tuple(r[h] for h in HEADER) for r in records] == [
        ("张三", 13800000001, BRANCH_PATH, "直管党员", datetime(2001, 7, 1), "书记", "一网格", "是"), None,
        ("李&四<", "13800000002", BRANCH_PATH, "在职", "2010/10/1", None, None, "否")]
    assert type(records[0]["手机号"]) is int
    with pytest.raises(RosterFileError, match="无法读取该 Excel 文件，请确认是 .xlsx 或 .xls 格式"):
        read_roster(b"\xd0\xcf\x11\xe0 not really an old workbook", "名册.xls")


def _rewritten(data: bytes, edit) -> bytes:
    """The workbook with its roster sheet's XML passed through `edit`."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            part = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                part = edit(part)
            target.writestr(item, part)
    return out.getvalue()


def test_an_xlsx_using_the_entities_of_a_dtd_is_refused_unexpanded():
    def laughs(part: bytes) -> bytes:  # a billion laughs: &j; would be 10^10 characters
        entities = b'<!ENTITY a "aaaaaaaaaa">' + b"".join(
            b'<!ENTITY %s "%s">' % (bytes([c]), b"&%s;" % bytes([c - 1]) * 10) for c in range(ord("b"), ord("k")))
        row = part.index(b'<row r="2"')
        start, end = part.index(b"<t>", row) + 3, part.index(b"</t>", row)  # 张三's name
        return b"<!DOCTYPE worksheet [" + entities + b"]>" + part[:start] + b"&j;" + part[end:]

    with pytest.raises(RosterFileError, match="无法读取该 Excel 文件"):
        read_roster(_rewritten(_workbook(True), laughs), "名册.xlsx")


def test_two_cells_far_apart_end_the_reader_not_the_server():
    """calamine would densify A1:XFD1048576 (550 GB): the capped reader process ends, this one
    answers with the reason and reads the next file as usual."""
    far = b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    data = _rewritten(_workbook(True), lambda part: part.replace(b"</sheetData>", far))
    with pytest.raises(RosterFileError, match="过大或结构异常"):
        read_roster(data, "名册.xlsx")
    assert len(read_roster(_workbook(True), "名册.xlsx")) == 5


def test_a_stray_cell_far_below_the_roster_is_not_read():
    far = b'<row r="900000"><c r="A900000" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'
    data = _rewritten(_workbook(True), lambda part: part.replace(b"</sheetData>", far))
    records = read_roster(data, "名册.xlsx")
    assert len(records) == 5 and records[0]["姓名"] == "张三"


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not a zip", b"<html>no workbook</html>"])
def test_a_file_that_is_no_workbook_is_refused(data):
    with pytest.raises(RosterFileError, match="无法读取该 Excel 文件"):
        read_roster(data, "名册.xlsx")


def test_a_roster_over_the_row_limit_is_refused():
    settings = DEFAULTS.replace(ROSTER_MAX_ROWS=3)
    with pytest.raises(RosterFileError, match="名册超过 3 行"):
        read_roster(_workbook(True), "名册.xlsx", settings)
    assert len(read_roster(_workbook(True), "名册.xlsx", DEFAULTS.replace(ROSTER_MAX_ROWS=5))) == 5
