"""The organization tree (街道党工委 → 社区党委/党总支 → 党支部 → 党小组) and its grids."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, NotFound, UTCDateTime, now_utc

# Depth in the tree → what a node at that depth is usually called.
LEVEL_NAMES = {1: "街道党工委", 2: "社区党委", 3: "党支部", 4: "党小组"}
PATH_SEPARATOR = "/"
# A chatbot reply has room for this many grid names in a hint.
_LISTED_GRIDS = 30


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
