"""The member directory for secretaries and admins: list, view, edit, import, export, the org tree.

Every operation takes the acting member and checks it with models.authz first.
"""

import unicodedata
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz
from models.base import DomainError, NotFound, Page
from models.member import KINDS, ROLES, Member, is_valid_mobile, normalize_phone
from models.org import Organization, ensure_grid
from models.roster import ImportReport, export_members, import_members, read_roster
from models.text import MAX_GRID, MAX_NAME, MAX_PHONE_TYPED, MAX_QUERY, clamp_page, clean_text, fits_id

UPDATABLE = ("name", "phone", "kind", "role", "join_date", "full_member_date", "org_id", "grid", "grid_head",
             "active")


@dataclass
class OrgNode:
    org: Organization
    members: int = 0  # active members directly in this node
    total_members: int = 0  # active members in the whole subtree
    children: list["OrgNode"] = field(default_factory=list)


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
) -> Page:
    """Return a page of the members of a subtree the actor manages (default: the actor's own)."""
    q = clean_text(q, "搜索内容", MAX_QUERY)
    page = clamp_page(page)
    org = _org(session, org_id, actor)
    authz.authorize(actor, authz.LIST_MEMBERS, org)
    query = select(Member).join(Member.org).where(Organization.path.startswith(org.path))
    if kind:
        query = query.where(Member.kind == kind)
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
    ).all()
    return Page(list(items), total, page, per_page)


def get_member(session: Session, actor: Member | None, member_id: int) -> Member:
    """Return a member the actor may see."""
    member = _member(session, member_id)
    authz.authorize(actor, authz.VIEW_MEMBER, member)
    return member


def update_member(session: Session, actor: Member | None, member_id: int, changes: dict) -> Member:
    """Change a member's record (only the fields in `changes`); commit."""
    member = _member(session, member_id)
    authz.authorize(actor, authz.UPDATE_MEMBER, member)
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    for key, label, longest in (("name", "姓名", MAX_NAME), ("phone", "手机号", MAX_PHONE_TYPED),
                                ("grid", "网格", MAX_GRID)):
        if key in changes:
            clean_text(changes[key], label, longest)

    org = member.org
    if changes.get("org_id") is not None:
        org = session.get(Organization, changes["org_id"]) if fits_id(changes["org_id"]) else None
        if org is None:
            raise DomainError("未找到该组织。", code="org_not_found", status=422)
    role = changes.get("role") or member.role
    if role not in ROLES:
        raise DomainError(f"角色应为{'、'.join(ROLES)}之一。", code="invalid", status=422)
    if (org.id, role) != (member.org_id, member.role):
        problem = authz.assignable(actor, org.full_name, role, member.id)
        if problem:
            raise DomainError(problem + "。", code="forbidden", status=403)

    if "name" in changes:
        name = unicodedata.normalize("NFKC", changes["name"] or "").strip()
        if not name or len(name) > 50:
            raise DomainError("姓名不能为空，且不超过50个字。", code="invalid", status=422)
        member.name = name
    if "phone" in changes:
        phone = normalize_phone(changes["phone"] or "")
        if not is_valid_mobile(phone):
            raise DomainError("手机号应为11位手机号。", code="invalid", status=422)
        member.phone = phone
    if changes.get("kind") is not None:
        if changes["kind"] not in KINDS:
            raise DomainError(f"党员类别应为{'、'.join(KINDS)}之一。", code="invalid", status=422)
        member.kind = changes["kind"]
    if "join_date" in changes:
        join_date: date | None = changes["join_date"]
        if join_date is not None and join_date > date.today():
            raise DomainError("入党日期不能晚于今天。", code="invalid", status=422)
        member.join_date = join_date
    if "full_member_date" in changes:
        full_member_date: date | None = changes["full_member_date"]
        if full_member_date is not None and full_member_date > date.today():
            raise DomainError("转正日期不能晚于今天。", code="invalid", status=422)
        member.full_member_date = full_member_date
    if ({"join_date", "full_member_date"} & set(changes) and member.full_member_date and member.join_date
            and member.full_member_date < member.join_date):
        raise DomainError("转正日期不能早于入党日期。", code="invalid", status=422)
    if changes.get("active") is not None:
        member.active = changes["active"]
    member.role = role
    if org.id != member.org_id:
        member.org_id = org.id
        member.org = org
        member.grid_id = None  # grids belong to a community; the old one may not fit
    try:
        if "grid" in changes:
            grid = (changes["grid"] or "").strip()
            member.grid_id = ensure_grid(session, org, grid).id if grid else None
        if changes.get("grid_head") is not None:
            if changes["grid_head"] and member.grid_id is None:
                session.rollback()
                raise DomainError("请先设置该成员所在的网格，再设为网格长。", code="invalid", status=422)
            member.grid_head = changes["grid_head"]
        if member.grid_id is None:
            member.grid_head = False  # no grid, no grid head
        session.commit()
    except IntegrityError:
        # The unique phone: another member has it (caught on the flush or the commit).
        session.rollback()
        raise DomainError("该手机号已登记为其他成员。", code="conflict", status=409) from None
    session.refresh(member)
    return member


def import_roster(
    session: Session, actor: Member | None, data: bytes, filename: str, *, dry_run: bool = False,
    create_orgs: bool = False, settings: Settings = DEFAULTS,
) -> ImportReport:
    """Import a roster file into the actor's subtree (all rows or none); see models.roster.

    `settings`: ROSTER_MAX_ROWS / ROSTER_MAX_COLUMNS bound the file."""
    authz.authorize(actor, authz.IMPORT_MEMBERS)
    records = read_roster(data, filename, settings)

    def check_row(org_path: str, role: str, existing: Member | None) -> str | None:
        if existing is not None and not authz.responsible(
            actor, existing.org.full_name, existing.role, existing.id
        ):
            if existing.id == actor.id:
                return "不能通过导入修改您自己的信息"
            if authz.within(existing.org.full_name, actor.org.full_name):
                return "不能修改与您同级的书记或管理员"
            return "该手机号已登记为您管理范围之外的成员，不能修改"
        return authz.assignable(actor, org_path, role, existing.id if existing else None)

    return import_members(session, records, dry_run=dry_run, check_row=check_row, create_orgs=create_orgs)


def export_roster(session: Session, actor: Member | None) -> bytes:
    """Return an .xlsx of the members of the actor's subtree, as the actor sees them in the API:
    phones and dates of those they are not responsible for masked."""
    authz.authorize(actor, authz.EXPORT_MEMBERS)
    members = session.scalars(
        select(Member).join(Member.org)
        .where(Organization.path.startswith(actor.org.path))
        .order_by(Organization.full_name, Member.name, Member.id)
    ).all()
    return export_members(session, members, viewer=actor)


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
