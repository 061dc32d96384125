"""The organization tree (街道党工委 → 社区党委/党总支 → 党支部 → 党小组) and its grids."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, insert, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, NotFound, UTCDateTime, now_utc

# Depth in the tree → what a node at that depth is usually called.
LEVEL_NAMES = {1: "街道党工委", 2: "社区党委", 3: "党支部", 4: "党小组"}
PATH_SEPARATOR = "/"
# A chatbot reply has room for this many grid names in a hint.
_LISTED_GRIDS = 30
# The most values bound in one IN list: SQLite allows 32,766 parameters in a statement.
IN_CHUNK = 5000
# Characters that tell siblings apart on purpose ("第一/第二党支部", "东湖/西湖社区", "A/B区"): two
# names that differ only in these are two organizations, not a typo.
_DISTINGUISHING = set("0123456789零〇一二三四五六七八九十百千两甲乙丙丁戊己庚辛东西南北中上下前后左右内外新老大小") \
    | set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The names from the root down, joined by "/": unique, and how imports name a node.
    full_name: Mapped[str] = mapped_column(String(500), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    level: Mapped[int] = mapped_column()
    # The ids from the root down as "/1/4/9/": a subtree is every node whose path starts with it.
    path: Mapped[str] = mapped_column(String(255), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    parent: Mapped["Organization | None"] = relationship(remote_side=[id])

    def is_within(self, ancestor: "Organization") -> bool:
        """Return whether this node is `ancestor` or below it."""
        return self.path.startswith(ancestor.path)

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES.get(self.level, "党组织")


class Grid(Base):
    """A grid (网格) of a community."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))

    org: Mapped[Organization] = relationship()


def split_org_path(full_name: str) -> list[str]:
    """Split "滨江街道党工委/东湖社区党委/…" into its names, ignoring stray spaces and slashes."""
    parts = [p.strip() for p in full_name.replace("／", PATH_SEPARATOR).split(PATH_SEPARATOR)]
    return [p for p in parts if p]


def get_org_by_full_name(session: Session, full_name: str) -> Organization | None:
    """Return the node named by a path of names, or None."""
    key = PATH_SEPARATOR.join(split_org_path(full_name))
    return session.scalars(select(Organization).where(Organization.full_name == key)).first()


def ensure_org_path(session: Session, full_name: str) -> Organization:
    """Return the node named by a path of names, creating the missing nodes (flushes, no commit)."""
    names = split_org_path(full_name)
    if not names:
        raise ValueError("empty organization path")
    parent = None
    for depth in range(1, len(names) + 1):
        key = PATH_SEPARATOR.join(names[:depth])
        node = session.scalars(select(Organization).where(Organization.full_name == key)).first()
        if node is None:
            node = Organization(name=names[depth - 1], full_name=key, level=depth, parent=parent)
            session.add(node)
            session.flush()  # the id is needed for the path
            node.path = (parent.path if parent else PATH_SEPARATOR) + f"{node.id}{PATH_SEPARATOR}"
            session.flush()
        parent = node
    return parent


def chunked(items: Iterable, size: int = IN_CHUNK) -> Iterator[list]:
    """`items` in lists of at most `size` (for IN lists and batches of rows)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def orgs_by_full_name(session: Session, full_names: Iterable[str]) -> dict[str, Organization]:
    """The existing nodes among these full names (a query per IN_CHUNK names)."""
    found: dict[str, Organization] = {}
    for names in chunked(dict.fromkeys(full_names)):
        found.update((o.full_name, o) for o in
                     session.scalars(select(Organization).where(Organization.full_name.in_(names))))
    return found


def ensure_org_paths(session: Session, full_names: Iterable[str]) -> dict[str, Organization]:
    """The nodes named by these paths of names, by full name (their ancestors too), creating the
    missing ones parents first: one INSERT and one UPDATE (of the paths) per level of new nodes,
    however many there are (flushes, no commit). New nodes are numbered in the order the paths name
    them, as ensure_org_path one path after the other would."""
    wanted: dict[str, list[str]] = {}  # full name → its names, as first named
    for full_name in full_names:
        names = split_org_path(full_name)
        for depth in range(1, len(names) + 1):
            wanted.setdefault(PATH_SEPARATOR.join(names[:depth]), names[:depth])
    nodes = orgs_by_full_name(session, wanted)
    levels: dict[int, list[list[str]]] = {}
    for key, names in wanted.items():
        if key not in nodes:
            levels.setdefault(len(names), []).append(names)
    for depth in sorted(levels):
        parents = {PATH_SEPARATOR.join(names): nodes[PATH_SEPARATOR.join(names[:-1])] if depth > 1 else None
                   for names in levels[depth]}
        # The rows in the order given; no sort_by_parameter_order (SQLite would insert them one by one).
        created = session.scalars(
            insert(Organization).returning(Organization).execution_options(render_nulls=True),
            [{"name": split_org_path(key)[-1], "full_name": key, "level": depth,
              "parent_id": parent.id if parent else None, "path": ""} for key, parent in parents.items()],
        ).all()
        for node in sorted(created, key=lambda node: node.id):
            parent = parents[node.full_name]
            node.path = (parent.path if parent else PATH_SEPARATOR) + f"{node.id}{PATH_SEPARATOR}"
            nodes[node.full_name] = node
        session.flush()  # the paths, in one executemany
    return nodes


def ensure_grids(session: Session, grids: Iterable[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The ids of these grids, by (community id, name), creating the missing ones in one INSERT
    (in the order given); a query per IN_CHUNK communities for the existing ones (no commit)."""
    wanted = dict.fromkeys(grids)
    ids: dict[tuple[int, str], int] = {}
    for communities in chunked(dict.fromkeys(org_id for org_id, _ in wanted)):
        ids.update(((org_id, name), grid_id) for grid_id, org_id, name in session.execute(
            select(Grid.id, Grid.org_id, Grid.name).where(Grid.org_id.in_(communities))))
    missing = [{"org_id": org_id, "name": name} for org_id, name in wanted if (org_id, name) not in ids]
    if missing:
        ids.update(((org_id, name), grid_id) for grid_id, org_id, name in session.execute(
            insert(Grid).returning(Grid.id, Grid.org_id, Grid.name), missing))
    return ids


def community_of(org: Organization) -> Organization:
    """Return the community (level 2) above or at `org`; the root when the tree is shallower."""
    node = org
    while node.level > 2 and node.parent is not None:
        node = node.parent
    return node


def ensure_grid(session: Session, org: Organization, name: str) -> Grid:
    """Return the grid `name` of the community of `org`, creating it if missing (flushes)."""
    community = community_of(org)
    grid = session.scalars(select(Grid).where(Grid.org_id == community.id, Grid.name == name)).first()
    if grid is None:
        grid = Grid(org=community, name=name)
        session.add(grid)
        session.flush()
    return grid


def grids_for(session: Session, org: Organization) -> list[Grid]:
    """Return the grids a manager of `org` reaches: those of its community (grids belong to the
    community, above a branch) and those of every community below `org`."""
    return list(session.scalars(
        select(Grid).join(Organization, Grid.org_id == Organization.id)
        .where(or_(Organization.path.startswith(org.path), Grid.org_id == community_of(org).id))
        .order_by(Organization.path, Grid.name)
    ))


def grid_labels(grids: list[Grid]) -> list[str]:
    """Name each grid; a name found in two communities is written "社区/网格"."""
    names = [g.name for g in grids]
    return [f"{g.org.name}{PATH_SEPARATOR}{g.name}" if names.count(g.name) > 1 else g.name for g in grids]


def describe_grids(grids: list[Grid]) -> str:
    """A hint listing the grids a manager reaches (at most a screenful)."""
    if not grids:
        return "您的管理范围内还没有网格（可在名册的「网格」列中为成员填写）。"
    labels = grid_labels(grids)
    more = f"等{len(labels)}个" if len(labels) > _LISTED_GRIDS else ""
    return f"您管理范围内的网格：{'、'.join(labels[:_LISTED_GRIDS])}{more}。"


def find_grid(session: Session, org: Organization, name: str) -> Grid:
    """Return the grid called `name` among those a manager of `org` reaches.

    "东湖一" finds "东湖一网格"; "东湖社区党委/一网格" names the community when two have the name.
    """
    grids = grids_for(session, org)
    wanted = name.strip()
    community = ""
    if PATH_SEPARATOR in wanted:
        community, _, wanted = (p.strip() for p in wanted.rpartition(PATH_SEPARATOR))
    candidates = [g for g in grids if not community or g.org.name == community]
    found = [g for g in candidates if g.name == wanted] or \
        [g for g in candidates if g.name == wanted + "网格"]
    if len(found) == 1:
        return found[0]
    if found:
        raise NotFound(f"有{len(found)}个网格名为「{found[0].name}」，请写明社区，例如："
                       f"{grid_labels(grids)[grids.index(found[0])]}")
    raise NotFound(f"没有找到「{name}」网格。{describe_grids(grids)}")


def edit_distance(a: str, b: str, *, limit: int = 2) -> int:
    """The edit distance of two short strings: insertions, deletions, substitutions and two
    neighbours swapped count one each. Anything above `limit` is reported as `limit + 1`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return min(previous[-1], limit + 1)


def looks_mistyped(name: str, other: str) -> bool:
    """Whether `name` differs from `other` by a character or two, in a way that is no deliberate
    distinction ("东湖社区第一党支布" for "东湖社区第一党支部"; not "第二党支部", not "西湖社区")."""
    if name == other or max(len(name), len(other)) < 3:
        return False
    if [c for c in name if c in _DISTINGUISHING] != [c for c in other if c in _DISTINGUISHING]:
        return False  # their numbers, directions or letters differ: "第三党支布" is no 第一党支部
    # Two characters only between names of the same (longer) length: two slips, or two swapped;
    # a name with two more characters is another name ("东湖花园社区党委").
    allowance = 2 if len(name) == len(other) >= 6 else 1
    return edit_distance(name, other, limit=allowance) <= allowance


@dataclass(frozen=True)
class NewGrid:
    org: str  # the full name of the community the grid belongs to
    name: str


@dataclass
class OrgPlan:
    """What an import would add to the tree, and what of it looks like a misspelling."""

    orgs: list[str] = field(default_factory=list)  # full names, each parent before its children
    grids: list[NewGrid] = field(default_factory=list)
    # A path to create (the top one of its new nodes) → the path it likely misspells.
    org_typos: dict[str, str] = field(default_factory=dict)
    # A grid to create → the name of the grid of that community it likely misspells.
    grid_typos: dict[NewGrid, str] = field(default_factory=dict)

    def meant(self, full_name: str) -> str:
        """`full_name` with its likely typo corrected (itself when it has none)."""
        typo = self.org_typo(full_name)
        return full_name if typo is None else typo[1] + full_name[len(typo[0]):]

    def org_typo(self, full_name: str) -> tuple[str, str] | None:
        """(the mistyped new path, the path likely meant) when `full_name` is or lies below one."""
        for typo, meant in self.org_typos.items():
            if full_name == typo or full_name.startswith(typo + PATH_SEPARATOR):
                return typo, meant
        return None


def community_path(full_name: str) -> str:
    """The full name of the community a node belongs to (see community_of), from names alone."""
    return PATH_SEPARATOR.join(split_org_path(full_name)[:2])


def _likely_meant(name: str, existing: Iterable[str], new: dict[str, int], order: list[str]) -> str | None:
    """The name `name` (a new one, used `new[name]` times) likely misspells: an existing one, or
    else a new one used more often (or as often, and seen first)."""
    for other in existing:
        if looks_mistyped(name, other):
            return other
    seen_before = True  # `order` lists the new names as first seen: those before `name` win a tie
    for other in order:
        if other == name:
            seen_before = False
        elif looks_mistyped(name, other) and (new[other], seen_before) > (new[name], False):
            return other
    return None


def plan_orgs(session: Session, paths: Iterable[str], grids: Iterable[tuple[str, str]] = ()) -> OrgPlan:
    """Plan the organizations and grids an import of rows with these organization paths and
    (organization path, grid name) pairs would create, without writing anything; a new name that
    differs by a character or two from a sibling (existing, or new and used by more rows) is
    recorded as a likely typo. A few queries and a pass over the rows, whatever their number: names
    are compared only among the siblings of a parent."""
    uses: dict[str, int] = {}
    for path in paths:
        key = PATH_SEPARATOR.join(split_org_path(path))
        if key:
            uses[key] = uses.get(key, 0) + 1
    prefixes = {PATH_SEPARATOR.join(names[:depth]) for names in map(split_org_path, uses)
                for depth in range(1, len(names) + 1)}
    known = orgs_by_full_name(session, prefixes)
    plan = OrgPlan(orgs=sorted(prefixes - set(known)))
    _plan_org_typos(session, plan, uses, known)
    _plan_grids(session, plan, grids, known)
    return plan


def _children_names(session: Session, parents: Iterable[Organization | None]) -> dict[int | None, list[str]]:
    """The names of the existing children of each of `parents` (None: the roots), by parent id, sorted."""
    ids = {parent.id if parent else None for parent in parents}
    children: dict[int | None, list[str]] = {parent_id: [] for parent_id in ids}
    if None in ids:
        children[None] = list(session.scalars(
            select(Organization.name).where(Organization.parent_id.is_(None)).order_by(Organization.name)))
    for chunk in chunked(sorted(parent_id for parent_id in ids if parent_id is not None)):
        for parent_id, name in session.execute(select(Organization.parent_id, Organization.name)
                                               .where(Organization.parent_id.in_(chunk))
                                               .order_by(Organization.parent_id, Organization.name)):
            children[parent_id].append(name)
    return children


def _plan_org_typos(session: Session, plan: OrgPlan, uses: dict[str, int], known: dict[str, Organization]) -> None:
    """Record in `plan` the new organizations that look like a misspelling of a sibling."""
    # The top new node of each path, grouped by parent: compared with the parent's existing children
    # and with the other new ones.
    tops: dict[str, dict[str, int]] = {}  # parent's full name ("" for the roots) → new name → rows
    for path, count in uses.items():
        names = split_org_path(path)
        depth = next((d for d in range(1, len(names) + 1) if PATH_SEPARATOR.join(names[:d]) not in known), 0)
        if depth:
            siblings = tops.setdefault(PATH_SEPARATOR.join(names[:depth - 1]), {})
            siblings[names[depth - 1]] = siblings.get(names[depth - 1], 0) + count
    children = _children_names(session, [known.get(parent_name) for parent_name in tops])
    for parent_name, new in tops.items():
        parent = known.get(parent_name)
        existing = children[parent.id if parent else None]
        order = list(new)  # as the rows first name them
        for name in order:
            meant = _likely_meant(name, existing, new, order)
            if meant is not None:
                prefix = f"{parent_name}{PATH_SEPARATOR}" if parent_name else ""
                plan.org_typos[prefix + name] = prefix + meant


def _plan_grids(session: Session, plan: OrgPlan, grids: Iterable[tuple[str, str]],
                known: dict[str, Organization]) -> None:
    """Record in `plan` the new grids, and those that look like a misspelling of another."""
    grid_uses: dict[NewGrid, int] = {}
    for path, name in grids:
        grid = NewGrid(community_path(path), name.strip())
        if grid.org and grid.name:
            grid_uses[grid] = grid_uses.get(grid, 0) + 1
    by_community: dict[str, list[NewGrid]] = {}
    for grid in grid_uses:
        by_community.setdefault(grid.org, []).append(grid)
    ids = [known[community].id for community in by_community if community in known]
    existing_grids: dict[int, list[str]] = {org_id: [] for org_id in ids}
    for chunk in chunked(ids):
        for org_id, name in session.execute(select(Grid.org_id, Grid.name).where(Grid.org_id.in_(chunk))
                                            .order_by(Grid.org_id, Grid.name)):
            existing_grids[org_id].append(name)
    for community, wanted in by_community.items():
        node = known.get(community)
        existing = existing_grids[node.id] if node else []
        taken = set(existing)
        new = {g.name: grid_uses[g] for g in wanted if g.name not in taken}
        order = [g.name for g in wanted if g.name in new]
        plan.grids += [NewGrid(community, name) for name in order]
        for name in order:
            meant = _likely_meant(name, existing, new, order)
            if meant is not None:
                plan.grid_typos[NewGrid(community, name)] = meant
