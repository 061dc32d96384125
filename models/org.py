"""The organization tree (街道党工委 → 社区党委/党总支 → 党支部 → 党小组) and its grids."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, UTCDateTime, now_utc

# Depth in the tree → what a node at that depth is usually called.
LEVEL_NAMES = {1: "街道党工委", 2: "社区党委", 3: "党支部", 4: "党小组"}
PATH_SEPARATOR = "/"


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
