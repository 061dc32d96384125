"""The member directory for secretaries and admins: list, view, edit, import, export, the org tree.

Every operation takes the acting member and checks it with models.authz first.
"""

import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, selectinload

from config import DEFAULTS, Settings
from models import authz
from models.base import DomainError, NotFound, Page
from models.member import FIELDS, Member, dates_in_order, normalize_phone
from models.org import Organization, ensure_grid
from models.roster import ImportReport, export_members, import_members, members_in_subtree, read_roster
from models.text import MAX_QUERY, clamp_page, clean_text, fits_id

UPDATABLE = ("name", "phone", "kind", "role", "join_date", "full_member_date", "org_id", "grid", "grid_head",
             "active")



class Progress(Protocol):
    """What a long import reports to (a background job's models.jobs.Tracker)."""

    def set_total(self, total: int) -> None: ...

    def progress(self, rows: int = 1) -> None: ...


@dataclass
class OrgNode:
    org: Organization
    members: int = 0  # active members directly in this node
    total_members: int = 0  # active members in the whole subtree
    children: list["OrgNode"] = field(default_factory=list)


@dataclass(frozen=True)
class MemberFilters:
    """Filters of a member listing besides organization, kind and search."""

    grid_id: int | None = None  # only that grid's members
    bound: bool | None = None  # True: bound to WeChat (Official Account or mini-program); False: to neither


def _member(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id) if fits_id(member_id) else None
    if member is None:
        raise NotFound("未找到该成员。")
    return member


def _org(session: Session, org_id: int | None, actor: Member | None) -> Organization | None:
    if org_id is None:
        return actor.org if actor is not None else None
    org = session.get(Organization, org_id) if fits_id(org_id) else None
    if org is None:
        raise NotFound("未找到该组织。")
    return org


def list_members(
    session: Session,
    actor: Member | None,
    *,
    org_id: int | None = None,
    kind: str | None = None,
    q: str | None = None,
    page: int = 1,
    per_page: int = 20,
    more: "MemberFilters | None" = None,
) -> Page:
    """Return a page of the members of a subtree the actor manages (default: the actor's own);
    `more` narrows it further (the console's filters)."""
    q = clean_text(q, "搜索内容", MAX_QUERY)
    page = clamp_page(page)
    org = _org(session, org_id, actor)
    authz.authorize(actor, authz.LIST_MEMBERS, org)
    query = select(Member).join(Member.org).where(Organization.path.startswith(org.path))
    if kind:
        query = query.where(Member.kind == kind)
    if more is not None and more.grid_id is not None:
        query = query.where(Member.grid_id == more.grid_id)
    if more is not None and more.bound is not None:
        unbound = and_(Member.openid.is_(None), Member.miniapp_openid.is_(None))
        query = query.where(~unbound if more.bound else unbound)
    if q:
        text = unicodedata.normalize("NFKC", q).strip()
        digits = normalize_phone(text)
        conditions = [Member.name.contains(text, autoescape=True)]
        if digits:
            # Digits match only phones the actor sees in full: else a few searches by prefix
            # would spell out a masked phone.
            conditions.append(and_(Member.phone.contains(digits, autoescape=True), authz.private_clause(actor)))
        query = query.where(or_(*conditions))
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = session.scalars(
        query.order_by(Organization.full_name, Member.name, Member.id)
        .offset((page - 1) * per_page).limit(per_page)
        .options(contains_eager(Member.org), selectinload(Member.grid))  # no query per row
    ).all()
    return Page(list(items), total, page, per_page)


def get_member(session: Session, actor: Member | None, member_id: int) -> Member:
    """Return a member the actor may see."""
    member = _member(session, member_id)
    authz.authorize(actor, authz.VIEW_MEMBER, member)
    return member


# How an edit's value is read before the shared check (models.member.FIELDS), in the order the
# fields are checked; a None value of the fields not listed in _CLEARABLE leaves the field as it is.
_EDITED = {
    "name": lambda value: unicodedata.normalize("NFKC", value or "").strip(),
    "phone": lambda value: value or "",  # checked as typed, stored as digits
    "kind": lambda value: value,
    "join_date": lambda value: value,
    "full_member_date": lambda value: value,
}
_CLEARABLE = ("name", "phone", "join_date", "full_member_date")


def update_member(session: Session, actor: Member | None, member_id: int, changes: dict) -> Member:
    """Change a member's record (only the fields in `changes`); commit."""
    member = _member(session, member_id)
    authz.authorize(actor, authz.UPDATE_MEMBER, member)
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    for key in ("name", "phone", "grid"):
        if key in changes:
            clean_text(changes[key], FIELDS[key].label, FIELDS[key].max_length)
    org, role = _placement(session, actor, member, changes)
    _edit_fields(member, changes, date.today())
    if changes.get("active") is not None:
        member.active = changes["active"]
    member.role = role
    if org.id != member.org_id:
        member.org_id = org.id
        member.org = org
        member.grid_id = None  # grids belong to a community; the old one may not fit
    try:
        _edit_grid(session, member, org, changes)
        session.commit()
    except IntegrityError:
        # The unique phone: another member has it (caught on the flush or the commit).
        session.rollback()
        raise DomainError("该手机号已登记为其他成员。", code="conflict", status=409) from None
    session.refresh(member)
    return member


def _placement(session: Session, actor: Member | None, member: Member, changes: dict
               ) -> tuple[Organization, str]:
    """The organization and role the member will have, checked: the actor may assign them."""
    org = member.org
    if changes.get("org_id") is not None:
        org = session.get(Organization, changes["org_id"]) if fits_id(changes["org_id"]) else None
        if org is None:
            raise DomainError("未找到该组织。", code="org_not_found", status=422)
    role = changes.get("role") or member.role
    if FIELDS["role"].check(role, date.today()):
        raise FIELDS["role"].edit_error("invalid", role)
    if (org.id, role) != (member.org_id, member.role):
        problem = authz.assignable(actor, org.full_name, role, member.id)
        if problem:
            raise DomainError(problem + "。", code="forbidden", status=403)
    return org, role


def _edit_fields(member: Member, changes: dict, today: date) -> None:
    """Check and set the member's own fields among `changes` (the shared rules of models.member)."""
    for key, read in _EDITED.items():
        if key not in changes or (changes[key] is None and key not in _CLEARABLE):
            continue
        value = read(changes[key])
        problem = FIELDS[key].check(value, today)
        if problem:
            raise FIELDS[key].edit_error(problem, value)
        setattr(member, key, normalize_phone(value) if key == "phone" else value)
    if ({"join_date", "full_member_date"} & set(changes)
            and not dates_in_order(member.join_date, member.full_member_date)):
        raise FIELDS["full_member_date"].edit_error("before_join")


def _edit_grid(session: Session, member: Member, org: Organization, changes: dict) -> None:
    """Set the member's grid and grid-head mark among `changes` (no grid, no grid head)."""
    if "grid" in changes:
        grid = (changes["grid"] or "").strip()
        member.grid_id = ensure_grid(session, org, grid).id if grid else None
    if changes.get("grid_head") is not None:
        rule = FIELDS["grid_head"]
        problem = rule.check((changes["grid_head"], member.grid_id is not None), date.today())
        if problem:
            session.rollback()
            raise rule.edit_error(problem)
        member.grid_head = changes["grid_head"]
    if member.grid_id is None:
        member.grid_head = False  # no grid, no grid head


def import_roster(
    session: Session, actor: Member | None, data: bytes, filename: str, *, dry_run: bool = False,
    create_orgs: bool = False, settings: Settings = DEFAULTS, progress: Progress | None = None,
) -> ImportReport:
    """Import a roster file into the actor's subtree (all rows or none); see models.roster.

    `settings`: ROSTER_MAX_ROWS / ROSTER_MAX_COLUMNS bound the file; `progress` (a background job's)
    is told the file's rows once read, then the rows done."""
    authz.authorize(actor, authz.IMPORT_MEMBERS)
    records = read_roster(data, filename, settings)
    if progress is not None:
        progress.set_total(len(records))
    return import_members(session, records, dry_run=dry_run, create_orgs=create_orgs,
                          progress=progress.progress if progress is not None else None,
                          check_row=partial(authz.import_row_problem, actor))


def export_roster(session: Session, actor: Member | None) -> bytes:
    """Return an .xlsx of the members of the actor's subtree, as the actor sees them in the API:
    phones and dates of those they are not responsible for masked."""
    authz.authorize(actor, authz.EXPORT_MEMBERS)
    # Streamed with each member's organization and grid: a few statements, whatever the count.
    return export_members(session, members_in_subtree(session, actor.org), viewer=actor)


def org_tree(session: Session, actor: Member | None) -> OrgNode:
    """Return the actor's subtree with the number of active members of each node."""
    authz.authorize(actor, authz.VIEW_ORGS)
    root = actor.org
    orgs = session.scalars(
        select(Organization).where(Organization.path.startswith(root.path))
        .order_by(Organization.level, Organization.full_name)
    ).all()
    counts = dict(session.execute(
        select(Member.org_id, func.count(Member.id))
        .where(Member.org_id.in_([o.id for o in orgs]), Member.active.is_(True))
        .group_by(Member.org_id)
    ).all())
    nodes = {o.id: OrgNode(o, members=counts.get(o.id, 0)) for o in orgs}
    for org in orgs:
        if org.id != root.id and org.parent_id in nodes:
            nodes[org.parent_id].children.append(nodes[org.id])

    def total(node: OrgNode) -> int:
        node.total_members = node.members + sum(total(child) for child in node.children)
        return node.total_members

    total(nodes[root.id])
    return nodes[root.id]
