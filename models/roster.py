"""The member roster: import from .xlsx/.xls/.csv (all or nothing) and export to .xlsx (or .csv)."""

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.orm import Session, contains_eager, joinedload

from config import DEFAULTS, Settings
from models import authz
from models.member import FIELDS, KINDS, Member, dates_in_order, mask_phone, normalize_phone
from models.org import (
    PATH_SEPARATOR,
    Grid,
    NewGrid,
    Organization,
    OrgPlan,
    chunked,
    community_path,
    ensure_grids,
    ensure_org_paths,
    plan_orgs,
    split_org_path,
)
from models.sheets import append_row, csv_row, csv_text, new_sheet, to_bytes
from models.text import FORBIDDEN, bad_character, describe_character
from models.xlsx_reader import SheetError, sheet_rows

COLUMNS = ("姓名", "手机号", "所属组织", "党员类别", "入党日期", "转正日期", "角色", "网格", "网格长")
REQUIRED = ("姓名", "手机号", "所属组织", "党员类别")
# 转正日期 and 网格长 (是/否) are optional: a roster without the column leaves everyone's value as it is.
FULL_MEMBER_DATE = "转正日期"
_YES, _NO = ("是", "y", "yes", "true", "1", "√"), ("否", "n", "no", "false", "0", "")
# A phone as an export masks it for a viewer not responsible for the member: such a row is skipped.
MASKED_PHONE = re.compile(r"1\d{2}\*{4}\d{4}")
_DATE = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$")
# Rows an import writes in one statement (and reports to `progress` at once); rows an export reads
# at a time.
IMPORT_BATCH = 2000
EXPORT_BATCH = 1000


# RowError.code of a row whose organization or grid would be created although its name differs from
# an existing one by a character or two (each door tells how to create it anyway).
ORG_TYPO, GRID_TYPO = "org_typo", "grid_typo"


@dataclass
class RowError:
    row: int  # as the user sees it in the sheet: the header is row 1
    reason: str
    code: str = ""  # "" or ORG_TYPO / GRID_TYPO


@dataclass
class ImportReport:
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    # What the import creates (or would create) in the organization tree, parents first.
    new_orgs: list[str] = field(default_factory=list)
    new_grids: list[NewGrid] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def typos(self) -> bool:
        """Whether some rows were refused only as a likely misspelt organization or grid."""
        return bool(self.typo_errors)

    @property
    def typo_errors(self) -> list[RowError]:
        """The rows refused as a likely misspelt organization or grid: imported once ticked (create_orgs)."""
        return [error for error in self.errors if error.code in (ORG_TYPO, GRID_TYPO)]

    @property
    def blocking_errors(self) -> list[RowError]:
        """The rows refused for another reason: the file must be corrected first."""
        return [error for error in self.errors if error.code not in (ORG_TYPO, GRID_TYPO)]

    def summary(self) -> str:
        if self.errors:
            return f"共 {self.total} 行，发现 {len(self.errors)} 处错误，未导入任何数据。"
        verb, build = ("将新增", "将新建") if self.dry_run else ("新增", "新建")
        tree = ""
        if self.new_orgs or self.new_grids:
            tree = f"{build}组织 {len(self.new_orgs)} 个、网格 {len(self.new_grids)} 个。"
        return (
            f"共 {self.total} 行：{verb} {self.created} 人，更新 {self.updated} 人，"
            f"无变化 {self.unchanged} 人。" + tree + ("（试运行，未写入）" if self.dry_run else "")
        )


class RosterFileError(ValueError):
    """The file cannot be read as a roster at all (wrong type, no header …)."""


class TooManyRows(RosterFileError):
    """The file holds more data rows than allowed."""




def _blank(values) -> bool:
    return values is None or all(v is None or str(v).strip() == "" for v in values)


def _xlsx_rows(data: bytes, settings: Settings) -> Iterator[list]:
    """The header row, then the data rows cut to the header's columns (models.xlsx_reader: read by
    python-calamine in a process of its own, its memory and CPU capped by ROSTER_READ_MEMORY_MB and
    ROSTER_READ_SECONDS). No entity of a DTD is ever expanded: a file using one is refused."""
    try:
        yield from sheet_rows(data, max_rows=settings.roster_max_rows, max_columns=settings.roster_max_columns,
                              memory_mb=settings.roster_read_memory_mb, seconds=settings.roster_read_seconds)
    except SheetError as exc:
        raise RosterFileError(str(exc)) from exc


def _csv_rows(data: bytes) -> Iterator[list]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RosterFileError("无法识别 CSV 文件的编码，请另存为 UTF-8。")
    try:
        for row in csv.reader(io.StringIO(text)):
            yield [csv_text(cell) for cell in row]
    except csv.Error as exc:
        raise RosterFileError("无法读取该 CSV 文件。") from exc


def _trim(header) -> list:
    """The header's cells without the empty ones at its end."""
    cells = list(header or ())
    while cells and (cells[-1] is None or str(cells[-1]).strip() == ""):
        cells.pop()
    return cells


def read_roster(data: bytes, filename: str, settings: Settings = DEFAULTS) -> list[dict]:
    """Read the rows of an .xlsx or .csv roster into dicts keyed by the Chinese column names.

    At most ROSTER_MAX_ROWS data rows and ROSTER_MAX_COLUMNS header columns (from the
    settings); a file holding more is refused with the reason. Only the header's columns are read.
    """
    max_rows, max_columns = settings.roster_max_rows, settings.roster_max_columns
    suffix = Path(filename).suffix.lower()
    if suffix in (".xlsx", ".xls"):  # .xls: the legacy format WPS and old systems still write
        rows = _xlsx_rows(data, settings)
    elif suffix == ".csv":
        rows = _csv_rows(data)
    else:
        raise RosterFileError("只支持 .xlsx、.xls 或 .csv 文件。")
    try:
        return _records(rows, max_rows, max_columns)
    finally:
        rows.close()  # the reader is ended however the reading ended


def roster_fits(data: bytes, filename: str, rows: int, settings: Settings = DEFAULTS) -> bool:
    """Whether a roster file holds at most `rows` data rows, taking no more than that many (a
    district's file is not validated whole in a request only to learn that it is too big for one).
    A file that is no roster at all is refused like read_roster refuses it."""
    if rows >= settings.roster_max_rows:
        read_roster(data, filename, settings)  # the roster's own limit is the lower: it answers
        return True
    try:
        read_roster(data, filename, replace(settings, roster_max_rows=rows))
    except TooManyRows:
        return False
    return True


def _records(rows: Iterator, max_rows: int, max_columns: int) -> list[dict | None]:
    header_row = next(rows, None)
    if header_row is None:
        raise RosterFileError("文件是空的。")
    cells = _trim(header_row)
    if len(cells) > max_columns:
        raise RosterFileError(f"表头超过 {max_columns} 列，请只保留名册需要的列：{'、'.join(COLUMNS)}。")
    header = [str(h).strip() if h is not None else "" for h in cells]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RosterFileError(f"缺少列：{'、'.join(missing)}。表头应为：{'、'.join(COLUMNS)}。")
    records: list[dict | None] = []
    blank_tail = 0
    for values in rows:
        if _blank(values):
            blank_tail += 1
            if len(records) + blank_tail > 2 * max_rows:
                break  # only blank rows for a long while: the rest of the sheet is not read
            continue
        if len(records) + blank_tail >= max_rows:
            raise TooManyRows(f"名册超过 {max_rows} 行，请分成几个文件导入。")
        records.extend([None] * blank_tail)  # keep row numbers right; blank rows are skipped
        blank_tail = 0
        records.append({name: values[i] if i < len(values) else None for i, name in enumerate(header)})
    return records


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a phone number typed into a numeric Excel cell
    return str(value).strip()


def _parse_date(value) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = _DATE.match(str(value))
    if not match:
        raise ValueError
    return date(int(match[1]), int(match[2]), int(match[3]))


def _kind(value: str) -> str | None:
    if value in KINDS:
        return value
    if value + "党员" in KINDS:  # 直管 → 直管党员
        return value + "党员"
    return None


@dataclass(slots=True)
class _Row:
    number: int
    name: str
    phone: str
    org_path: str
    kind: str
    join_date: date | None
    role: str
    grid: str
    grid_head: bool | None  # None: the column is absent, keep the current mark
    full_member_date: date | None = None
    has_full_member_date: bool = False  # False: the column is absent, keep the current date


def _cell_problems(record: dict) -> list[str]:
    """Cells holding characters that may not be stored (control characters, NUL …)."""
    problems = []
    for column, value in record.items():
        char = bad_character(_text(value)) if value is not None else None
        if char is not None:
            label = FORBIDDEN.sub("", str(column))[:20]
            problems.append(f"「{label}」包含不允许的控制字符（{describe_character(char)}）")
    return problems


def _validate(records: list[dict | None], today: date) -> tuple[list[_Row], list[RowError], int]:
    """The valid rows, the errors, and how many rows carry a masked phone (left as they are)."""
    rows, errors, seen, hidden = [], [], {}, 0
    for index, record in enumerate(records):
        number = index + 2
        if record is None:
            continue
        if MASKED_PHONE.fullmatch(_text(record.get("手机号"))):
            hidden += 1  # exported masked to someone not responsible for them: nothing to change
            continue
        problems = _cell_problems(record)  # then nothing else is read
        row = _read_row(number, record, seen, today, problems) if not problems else None
        if problems:
            errors.append(RowError(number, "；".join(problems)))
        else:
            rows.append(row)
    return rows, errors, hidden


def _read_row(number: int, record: dict, seen: dict[str, int], today: date, problems: list[str]) -> _Row:
    """Read one row by the shared rules of models.member.FIELDS, adding what is wrong to `problems`.
    `seen`: the row number of each phone read so far."""

    def check(key: str, value, shown=None) -> str | None:
        problem = FIELDS[key].check(value, today)
        if problem:
            problems.append(FIELDS[key].row_reason(problem, value if shown is None else shown))
        return problem

    name = _text(record.get("姓名"))
    check("name", name)
    raw_phone = _text(record.get("手机号"))
    phone = normalize_phone(raw_phone)
    if check("phone", raw_phone) is None:
        if phone in seen:
            problems.append(FIELDS["phone"].row_reason("duplicate", seen[phone]))
        else:
            seen[phone] = number
    org_path = _org_path(_text(record.get("所属组织")))
    check("org", org_path)
    kind = _kind(_text(record.get("党员类别")))
    check("kind", kind)
    join_date = _read_date(record, "join_date", today, problems)
    full_member_date = None
    if FULL_MEMBER_DATE in record:
        full_member_date = _read_date(record, "full_member_date", today, problems)
        if (full_member_date and not FIELDS["full_member_date"].check(full_member_date, today)
                and not dates_in_order(join_date, full_member_date)):
            problems.append(FIELDS["full_member_date"].row_reason("before_join"))
    role = _text(record.get("角色")) or ("志愿者" if kind == "群众" else "党员")
    check("role", role)
    grid = _text(record.get("网格"))
    check("grid", grid)
    grid_head = _read_grid_head(record, grid, today, problems)
    return _Row(number, name, phone, org_path, kind, join_date, role, grid, grid_head,
                full_member_date, FULL_MEMBER_DATE in record)


@lru_cache(maxsize=4096)
def _org_path(text: str) -> str:
    """The organization path as stored (rows name a few organizations many times over)."""
    return PATH_SEPARATOR.join(split_org_path(text))


def _read_date(record: dict, key: str, today: date, problems: list[str]) -> date | None:
    """The date in the column of FIELDS[key] (None: empty or unreadable, said in `problems`)."""
    rule = FIELDS[key]
    try:
        value = _parse_date(record.get(rule.label))
    except ValueError:
        problems.append(rule.row_reason("unreadable", _text(record.get(rule.label))))
        return None
    problem = rule.check(value, today)
    if problem:
        problems.append(rule.row_reason(problem))
    return value


def _read_grid_head(record: dict, grid: str, today: date, problems: list[str]) -> bool | None:
    """The 网格长 mark (None: no such column, the current marks are kept)."""
    rule = FIELDS["grid_head"]
    if rule.label not in record:
        return None
    mark = _text(record.get(rule.label)).lower()
    if mark not in _YES and mark not in _NO:
        problems.append(rule.row_reason("unreadable", _text(record.get(rule.label))))
        return None
    grid_head = mark in _YES
    problem = rule.check((grid_head, bool(grid)), today)
    if problem:
        problems.append(rule.row_reason(problem))
    return grid_head


def _plan(session: Session, rows: list[_Row]) -> OrgPlan:
    """The organizations and grids importing `rows` creates (see models.org.plan_orgs)."""
    return plan_orgs(session, [r.org_path for r in rows], [(r.org_path, r.grid) for r in rows if r.grid])


def _typo_errors(rows: list[_Row], plan: OrgPlan) -> list[RowError]:
    """The rows naming an organization or grid that looks like a misspelling of another."""
    errors = []
    org_typos: dict[str, tuple[str, str] | None] = {}  # by organization path: rows share a few
    for row in rows:
        problems, code = [], ""
        if row.org_path not in org_typos:
            org_typos[row.org_path] = plan.org_typo(row.org_path)
        typo = org_typos[row.org_path]
        if typo is not None:
            mistyped, meant = typo
            problems.append(f"组织「{mistyped}」不存在，与「{meant}」只差一两个字，是否写错了？")
            code = ORG_TYPO
        grid = NewGrid(community_path(row.org_path), row.grid) if row.grid and plan.grid_typos else None
        if grid is not None and grid in plan.grid_typos:
            problems.append(f"网格「{row.grid}」不存在，与{split_org_path(grid.org)[-1]}的"
                            f"「{plan.grid_typos[grid]}」只差一两个字，是否写错了？")
            code = code or GRID_TYPO
        if problems:
            errors.append(RowError(row.number, "；".join(problems), code))
    return errors


@dataclass(slots=True)
class _Current:
    """What an import compares of an existing member (read as plain rows, not as ORM objects)."""

    id: int
    name: str
    kind: str
    join_date: date | None
    role: str
    org_path: str
    grid: str
    grid_head: bool
    full_member_date: date | None


def _existing(session: Session, phones: Iterable[str]) -> dict[str, _Current]:
    """The members already rostered with these phones, by phone (a query per IN_CHUNK phones)."""
    found = {}
    query = (select(Member.phone, Member.id, Member.name, Member.kind, Member.join_date, Member.role,
                    Organization.full_name, Grid.name, Member.grid_head, Member.full_member_date)
             .join(Organization, Member.org_id == Organization.id).outerjoin(Grid, Member.grid_id == Grid.id))
    for chunk in chunked(phones):
        for phone, *values in session.execute(query.where(Member.phone.in_(chunk))):
            values[6] = values[6] or ""
            found[phone] = _Current(*values)
    return found


def _members(session: Session, ids: Iterable[int]) -> dict[int, Member]:
    """These members as ORM objects with their organization (a query per IN_CHUNK ids)."""
    found = {}
    for chunk in chunked(ids):
        found.update((m.id, m) for m in session.scalars(
            select(Member).where(Member.id.in_(chunk)).options(joinedload(Member.org))))
    return found


def _differs(member: _Current, row: _Row) -> bool:
    current = (member.name, member.kind, member.join_date, member.role, member.org_path, member.grid)
    if row.grid_head is not None and bool(member.grid_head) != row.grid_head:
        return True
    if row.has_full_member_date and member.full_member_date != row.full_member_date:
        return True
    return current != (row.name, row.kind, row.join_date, row.role, row.org_path, row.grid)


def import_members(
    session: Session,
    records: list[dict | None],
    *,
    dry_run: bool = False,
    today: date | None = None,
    progress: Callable[[int], None] | None = None,
    check_row: Callable[[str, str, Member | None], str | None] | None = None,
    create_orgs: bool = False,
) -> ImportReport:
    """Create or update (by phone) the members of a roster; all rows or none; commit unless dry run.

    The report lists the organizations and grids the import creates (would create), planned before
    anything is written. A row whose new organization or grid differs by a character or two from an
    existing one (or from one more rows name) is refused as a likely typo, naming the one probably
    meant, unless `create_orgs`.

    `check_row(org_path, role, existing_member)` may refuse a row that would create or change a
    member (e.g. outside the importer's subtree) by returning the reason.

    `progress(n)` is called as rows are counted and written, n rows at a time (IMPORT_BATCH at
    most): the n add up to the valid rows. The cost does not grow with the rows but by batches:
    organizations and grids are looked up and created once, members read IN_CHUNK phones a query
    and written IMPORT_BATCH rows a statement.
    """
    today = today or date.today()
    with session.no_autoflush:
        rows, errors, hidden = _validate(records, today)
        report = ImportReport(total=len(rows) + len(errors) + hidden, errors=errors, dry_run=dry_run,
                              unchanged=hidden)
        plan = _plan(session, rows)
        typos = {} if create_orgs else {error.row: error for error in _typo_errors(rows, plan)}
        existing = _existing(session, [r.phone for r in rows])
        if check_row is not None:
            refused = _refuse(session, rows, existing, plan, typos, check_row)
            errors += refused
            if refused:  # what the refused rows name is not reported (it may lie outside the subtree)
                numbers = {error.row for error in refused}
                plan = _plan(session, [row for row in rows if row.number not in numbers])
        errors += typos.values()
        errors.sort(key=lambda error: error.row)
        report.new_orgs, report.new_grids = plan.orgs, plan.grids
        if errors:
            return report
        _write(session, rows, existing, report, progress)
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return report


def _refuse(session: Session, rows: list[_Row], existing: dict[str, _Current], plan: OrgPlan,
            typos: dict[int, RowError], check_row: Callable[[str, str, Member | None], str | None]
            ) -> list[RowError]:
    """The rows `check_row` refuses. A likely typo (in `typos`, by row number) of a refused row is
    told instead only when what was probably meant is the importer's to use: else it is dropped."""
    errors = []
    changing = [row for row in rows if row.phone not in existing or _differs(existing[row.phone], row)]
    members = _members(session, [existing[row.phone].id for row in changing if row.phone in existing])
    for row in changing:  # an unchanged row changes nothing, whoever imports it
        current = existing.get(row.phone)
        member = members[current.id] if current is not None else None
        problem = check_row(row.org_path, row.role, member)
        if problem and row.number in typos:
            # Names outside the importer's subtree are not theirs to learn.
            if check_row(plan.meant(row.org_path), row.role, member) is None:
                continue
            del typos[row.number]
        if problem:
            errors.append(RowError(row.number, problem))
    return errors


def _write(session: Session, rows: list[_Row], existing: dict[str, _Current], report: ImportReport,
           progress: Callable[[int], None] | None) -> None:
    """Count the created, updated and unchanged rows in `report`; unless it is a dry run, create
    and update the members (no commit), IMPORT_BATCH rows a statement."""
    changed = [row for row in rows if row.phone not in existing or _differs(existing[row.phone], row)]
    report.created = sum(1 for row in changed if row.phone not in existing)
    report.updated = len(changed) - report.created
    report.unchanged += len(rows) - len(changed)
    if report.dry_run:
        for batch in chunked(rows, IMPORT_BATCH):
            if progress:
                progress(len(batch))
        return
    orgs = ensure_org_paths(session, dict.fromkeys(row.org_path for row in changed))
    community = {path: orgs[community_path(path)].id for path in dict.fromkeys(row.org_path for row in changed)}
    grids = ensure_grids(session, [(community[row.org_path], row.grid) for row in changed if row.grid])
    updated: set[int] = set()
    for batch in chunked(rows, IMPORT_BATCH):
        if progress:  # before the batch's write: on SQLite a progress commit could not pass it
            progress(len(batch))
        creates, updates = [], []
        for row in batch:
            current = existing.get(row.phone)
            if current is not None and not _differs(current, row):
                continue
            values = _values(row, current, orgs[row.org_path].id,
                             grids[(community[row.org_path], row.grid)] if row.grid else None)
            if current is None:
                creates.append(values)
            else:
                updates.append(values)
                updated.add(current.id)
        if creates:  # NULLs written as such: rows with and without a grid in one executemany
            session.execute(insert(Member).execution_options(render_nulls=True), creates)
        if updates:
            session.execute(update(Member), updates)
    _expire(session, updated)


def _values(row: _Row, current: _Current | None, org_id: int, grid_id: int | None) -> dict:
    """The columns a row writes: every row the same keys (one executemany), the current value kept
    where the roster has no column for it."""
    if row.grid_head is not None:
        grid_head = row.grid_head
    else:
        grid_head = bool(current.grid_head) if current is not None and row.grid else False  # no grid, no head
    if row.has_full_member_date or current is None:
        full_member_date = row.full_member_date
    else:
        full_member_date = current.full_member_date
    values = dict(name=row.name, kind=row.kind, join_date=row.join_date, role=row.role, org_id=org_id,
                  grid_id=grid_id, grid_head=grid_head, full_member_date=full_member_date)
    if current is None:
        values["phone"] = row.phone
    else:
        values["id"] = current.id
    return values


def _expire(session: Session, ids: set[int]) -> None:
    """Expire the members of the session updated behind its back, so they are read again."""
    if ids:
        for obj in list(session.identity_map.values()):
            if isinstance(obj, Member) and obj.id in ids:
                session.expire(obj)


def export_members(session: Session, members: Iterable[Member], *, viewer: Member | None = None) -> bytes:
    """Return an .xlsx of the members, with the same columns the import reads, written a row at a time.

    With a `viewer`, each row holds what the viewer's API listing shows: the phone masked and the
    dates left empty for those whose personal data they may not see (a re-import leaves such rows
    as they are). Without one (the operator's CLI), everything in full. The members' `org` and
    `grid` should be loaded with them (see members_in_subtree): nothing is queried per row."""
    book, sheet = new_sheet("党员名册", COLUMNS, widths=(10, 14, 48, 10, 12, 12, 8, 10, 8))
    for row in _export_rows(members, viewer):
        append_row(sheet, row)
    return to_bytes(book)


def export_members_csv(members: Iterable[Member], *, viewer: Member | None = None) -> bytes:
    """The same rows as export_members as CSV in UTF-8 with a BOM (Excel then reads the Chinese),
    text that would be a formula behind an apostrophe (models.sheets.csv_row); it imports back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in _export_rows(members, viewer):
        writer.writerow(csv_row(row))
    return out.getvalue().encode("utf-8-sig")


def _export_rows(members: Iterable[Member], viewer: Member | None) -> Iterator[list]:
    for m in members:
        private = viewer is None or authz.can(viewer, authz.VIEW_PRIVATE, m)
        yield [
            m.name, m.phone if private else mask_phone(m.phone), m.org.full_name, m.kind,
            m.join_date.isoformat() if m.join_date and private else "",
            m.full_member_date.isoformat() if m.full_member_date and private else "",
            m.role, m.grid.name if m.grid else "", "是" if m.grid_head else "否",
        ]


class MemberStream:
    """The members a query selects, read EXPORT_BATCH at a time with their organization and grid
    each time it is iterated (memory stays flat however many there are); `len` counts them in SQL."""

    def __init__(self, session: Session, query: Select) -> None:
        self.session, self.query = session, query
        self._count: int | None = None

    def __iter__(self) -> Iterator[Member]:
        query = self.query.options(contains_eager(Member.org), joinedload(Member.grid))
        return iter(self.session.scalars(query.execution_options(yield_per=EXPORT_BATCH)))

    def __len__(self) -> int:
        if self._count is None:
            self._count = self.session.scalar(
                select(func.count()).select_from(self.query.order_by(None).subquery())) or 0
        return self._count


def members_in_subtree(session: Session, org: Organization | None = None) -> MemberStream:
    """The members of `org`'s subtree (all when None), ordered by organization and name, streamed
    with their organization and grid (see MemberStream)."""
    query = select(Member).join(Member.org).order_by(Organization.full_name, Member.name, Member.id)
    if org is not None:
        query = query.where(Organization.path.startswith(org.path))
    return MemberStream(session, query)
