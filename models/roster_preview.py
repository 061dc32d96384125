"""What importing a roster would change, row by row, before anything is written: the members it
creates, the fields it changes on those it updates (old → new), and the organizations and grids it
creates, the likely misspelt ones flagged with the name probably meant. And the template workbook.

The import itself stays models.directory.import_roster (models.roster.import_members): the preview
is its dry run, twice (as asked, and with the flagged organizations allowed, so that the counts and
the rows are those the import will have once the secretary ticks them), plus a read of the rows for
the per-field changes shown.
"""

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from config import DEFAULTS, Settings
from models import authz
from models.directory import import_roster
from models.member import KINDS, Member, normalize_phone
from models.org import NewGrid, plan_orgs, split_org_path
from models.roster import COLUMNS, MASKED_PHONE, ImportReport, read_roster
from models.sheets import append_row, new_sheet, to_bytes

TEMPLATE_EXAMPLE = ("张三", "13800000000", "滨江街道党工委/东湖社区党委/东湖社区第一党支部", "在职党员",
                    "2010-07-01", "2011-07-01", "党员", "第一网格", "否")
TEMPLATE_WIDTHS = (10, 14, 48, 10, 12, 12, 8, 10, 8)


@dataclass
class FieldChange:
    label: str
    old: str
    new: str


@dataclass
class RowChange:
    row: int  # as the sheet numbers it: the header is row 1
    name: str
    org: str
    member_id: int | None = None  # None: a new member
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class NewOrg:
    full_name: str
    meant: str | None = None  # the existing (or more used) name it likely misspells


@dataclass
class NewGridPreview:
    grid: NewGrid
    meant: str | None = None


@dataclass
class Preview:
    report: ImportReport  # the dry run as asked (create_orgs as given)
    full: ImportReport  # the dry run with the flagged names allowed
    created: list[RowChange] = field(default_factory=list)
    updated: list[RowChange] = field(default_factory=list)
    new_orgs: list[NewOrg] = field(default_factory=list)
    new_grids: list[NewGridPreview] = field(default_factory=list)

    @property
    def typos(self) -> bool:
        return any(o.meant for o in self.new_orgs) or any(g.meant for g in self.new_grids)

    @property
    def errors(self) -> list:
        """The rows refused for another reason than a likely typo: the import cannot be applied."""
        return self.report.blocking_errors

    @property
    def applicable(self) -> bool:
        return not self.errors and self.full.ok


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


def _date(value) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value)
    digits = [p for p in text.replace("年", "-").replace("月", "-").replace("日", "").replace("/", "-")
              .replace(".", "-").split("-") if p.strip()]
    if len(digits) == 3 and all(p.strip().isdigit() for p in digits):
        try:
            return date(int(digits[0]), int(digits[1]), int(digits[2])).isoformat()
        except ValueError:
            return text
    return text


def _kind(text: str) -> str:
    return text + "党员" if text not in KINDS and text + "党员" in KINDS else text


def _shown(record: dict, member: Member | None) -> list[tuple[str, str, str]]:
    """(column, current value, value in the row) of each column the row holds."""
    kind = _kind(_text(record.get("党员类别")))
    row = {
        "姓名": _text(record.get("姓名")),
        "所属组织": "/".join(split_org_path(_text(record.get("所属组织")))),
        "党员类别": kind,
        "入党日期": _date(record.get("入党日期")),
        "角色": _text(record.get("角色")) or ("志愿者" if kind == "群众" else "党员"),
        "网格": _text(record.get("网格")),
    }
    if "转正日期" in record:
        row["转正日期"] = _date(record.get("转正日期"))
    if "网格长" in record:
        row["网格长"] = "是" if _text(record.get("网格长")).lower() in ("是", "y", "yes", "true", "1", "√") else "否"
    if member is None:
        return [(column, "", value) for column, value in row.items()]
    current = {
        "姓名": member.name, "所属组织": member.org.full_name, "党员类别": member.kind,
        "入党日期": member.join_date.isoformat() if member.join_date else "", "角色": member.role,
        "网格": member.grid.name if member.grid else "",
        "转正日期": member.full_member_date.isoformat() if member.full_member_date else "",
        "网格长": "是" if member.grid_head else "否",
    }
    return [(column, current[column], value) for column, value in row.items()]


def _rows(session: Session, records: list[dict | None]) -> tuple[list[RowChange], list[RowChange]]:
    """The new members and the changed fields of the existing ones (one statement for them all)."""
    numbered = [(i + 2, r) for i, r in enumerate(records)
                if r is not None and not MASKED_PHONE.fullmatch(_text(r.get("手机号")))]
    phones = [normalize_phone(_text(r.get("手机号"))) for _, r in numbered]
    existing = {m.phone: m for m in session.scalars(
        select(Member).where(Member.phone.in_(phones)).options(selectinload(Member.org), selectinload(Member.grid)))}
    created, updated = [], []
    for (number, record), phone in zip(numbered, phones, strict=True):
        member = existing.get(phone)
        shown = _shown(record, member)
        name, org = shown[0][2], shown[1][2]
        if member is None:
            created.append(RowChange(number, name, org))
            continue
        changes = [FieldChange(column, old, new) for column, old, new in shown if old != new]
        if changes:
            updated.append(RowChange(number, name, org, member.id, changes))
    return created, updated


def _tree_changes(session: Session, records: list[dict | None], report: ImportReport
                  ) -> tuple[list[NewOrg], list[NewGridPreview]]:
    """The organizations and grids the import creates, each likely typo with the name meant."""
    rows = [r for r in records if r is not None]
    paths = ["/".join(split_org_path(_text(r.get("所属组织")))) for r in rows]
    plan = plan_orgs(session, paths, [(p, _text(r.get("网格"))) for p, r in zip(paths, rows, strict=True)
                                      if _text(r.get("网格"))])
    orgs = [NewOrg(name, next((meant for typo, meant in plan.org_typos.items()
                               if name == typo or name.startswith(typo + "/")), None))
            for name in report.new_orgs]
    grids = [NewGridPreview(grid, plan.grid_typos.get(grid)) for grid in report.new_grids]
    return orgs, grids


def preview_import(session: Session, actor: Member | None, data: bytes, filename: str, *,
                   create_orgs: bool = False, settings: Settings = DEFAULTS) -> Preview:
    """The dry run of importing `data` into the actor's subtree, with its per-row changes. Raises
    as models.directory.import_roster does (not allowed, unreadable file)."""
    report = import_roster(session, actor, data, filename, dry_run=True, create_orgs=create_orgs, settings=settings)
    full = report if create_orgs else import_roster(session, actor, data, filename, dry_run=True,
                                                    create_orgs=True, settings=settings)
    preview = Preview(report, full)
    if not full.ok:
        return preview  # a row refused: what the others would do is not shown
    records = read_roster(data, filename, settings)
    preview.created, preview.updated = _rows(session, records)
    preview.new_orgs, preview.new_grids = _tree_changes(session, records, full)
    session.rollback()  # the reads leave nothing behind
    return preview


def template_workbook() -> bytes:
    """The roster's columns (those the import reads) with one example row."""
    book, sheet = new_sheet("党员名册", COLUMNS, widths=TEMPLATE_WIDTHS)
    append_row(sheet, TEMPLATE_EXAMPLE)
    return to_bytes(book)


def may_import(actor: Member | None) -> bool:
    return authz.can(actor, authz.IMPORT_MEMBERS)
