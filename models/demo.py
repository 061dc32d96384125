"""A small demo organization, loaded by `make run` into an empty database."""

from sqlalchemy.orm import Session

from models.member import count_members
from models.roster import COLUMNS, import_members

STREET = "滨江街道党工委"
EAST = f"{STREET}/东湖社区党委"
WEST = f"{STREET}/西湖社区党总支"

DEMO_ROWS = [
    ("张建国", "13800000001", STREET, "直管党员", "1985-07-01", "1986-07-01", "管理员", "", "否"),
    ("李红梅", "13800000002", f"{EAST}/东湖社区第一党支部", "直管党员", "1998-06-18", "1999-06-18", "书记",
     "东湖一网格", "否"),
    ("王志强", "13800000003", f"{EAST}/东湖社区第一党支部", "在职党员", "2010-10-01", "2011-10-01", "党员",
     "东湖一网格", "否"),
    ("赵秀英", "13800000004", f"{EAST}/东湖社区第一党支部/第一党小组", "离退休党员", "1976-03-15", "1977-03-15",
     "党员", "东湖二网格", "否"),
    ("陈晓", "13800000005", f"{EAST}/东湖社区第二党支部", "流动党员", "2016-05-04", "2017-05-04", "党员",
     "东湖二网格", "是"),
    ("刘洋", "13800000006", f"{EAST}/东湖社区第二党支部", "群众", "", "", "志愿者", "东湖二网格", "否"),
    ("周敏", "13800000007", f"{WEST}/西湖社区党支部", "直管党员", "2005-12-01", "2006-12-01", "书记", "西湖网格",
     "否"),
    ("孙立", "13800000008", f"{WEST}/西湖社区党支部", "在职党员", "2012-07-01", "2013-07-01", "党员", "西湖网格",
     "否"),
]


def load_demo(session: Session) -> bool:
    """Load the demo organization if the database has no members; return whether it did."""
    if count_members(session):
        return False
    records = [dict(zip(COLUMNS, row, strict=True)) for row in DEMO_ROWS]
    report = import_members(session, records)
    assert report.ok, report.errors
    return True
