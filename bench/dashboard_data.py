"""A year of a community's work, inserted in bulk: monthly 主题党日 per branch, a monthly volunteer
service for the community, sign-ins, wishes in every state, monthly notices with their deliveries
and reads. Used by bench/dashboard.py (a community of thousands) and docs/screenshot.py (the demo
data of models/demo.py, with a year of activity added)."""

import random
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from models import Member
from models.activity.tables import Activity, CheckIn
from models.notices import Notice, notice_source
from models.org import Organization, ensure_grid, ensure_org_path
from models.outbox import SENT, OutboxMessage
from models.wishes import CLAIMED, DONE, FULFILLED, OPEN, PENDING, Wish

STREET = "滨江街道党工委"
COMMUNITY = f"{STREET}/东湖社区党委"
KINDS = ("直管党员", "在职党员", "在职党员", "离退休党员", "流动党员", "群众")
CHUNK = 2000


def _bulk(session: Session, table, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(table), rows[start:start + CHUNK])


def build_community(session: Session, members: int, *, branches: int = 10, seed: int = 1) -> Member:
    """A community of `members` members in `branches` branches (and a second community of a tenth
    of the size), with its secretary; commit; return the secretary."""
    rng = random.Random(seed)
    community = ensure_org_path(session, COMMUNITY)
    nodes = [ensure_org_path(session, f"{COMMUNITY}/东湖社区第{n + 1}党支部") for n in range(branches)]
    west = ensure_org_path(session, f"{STREET}/西湖社区党总支/西湖社区党支部")
    grids = [ensure_grid(session, community, f"东湖{n + 1}网格") for n in range(5)]
    secretary = Member(name="陈书记", phone="13000000000", role="书记", kind="直管党员", org_id=community.id,
                       openid="o-boss", join_date=date(1990, 7, 1))
    session.add(secretary)
    session.flush()
    rows = []
    for n in range(members + members // 10):
        org = west if n >= members else nodes[n % branches]
        kind = KINDS[n % len(KINDS)]
        rows.append({"name": f"党员{n:05d}", "phone": f"139{n:08d}", "kind": kind,
                     "role": "志愿者" if kind == "群众" else "党员", "org_id": org.id,
                     "grid_id": grids[n % len(grids)].id if org is not west else None,
                     "openid": f"o-{n:06d}" if rng.random() < 0.7 else None, "join_date": date(2001, 7, 1),
                     "active": True, "grid_head": False})
    _bulk(session, Member, rows)
    session.commit()
    return secretary


class _Year:
    """The rows of a year of work, gathered before one bulk insert per table."""

    def __init__(self, session: Session, now: datetime, seed: int):
        self.rng = random.Random(seed)
        self.now = now
        self.orgs = list(session.scalars(select(Organization)))
        members = session.execute(select(Member.id, Member.org_id, Member.kind, Member.openid)).all()
        self.by_org: dict[int, list] = {}
        for m in members:
            self.by_org.setdefault(m.org_id, []).append(m)
        self.poster = members[0].id
        self.activities, self.checkins, self.wishes, self.notices, self.outbox = [], [], [], [], []
        self.activity_id = session.scalar(select(Activity.id).order_by(Activity.id.desc()).limit(1)) or 0
        self.notice_id = session.scalar(select(Notice.id).order_by(Notice.id.desc()).limit(1)) or 0

    def below(self, org: Organization) -> list:
        return [m for o in self.orgs if o.path.startswith(org.path) for m in self.by_org.get(o.id, [])]

    def activity(self, org: Organization, month: datetime) -> None:
        self.activity_id += 1
        volunteer = org.level == 2
        name = "志愿服务" if volunteer else "主题党日"
        self.activities.append({
            "id": self.activity_id, "kind": name, "title": f"{month.month}月{name}", "org_id": org.id,
            "audience": "open" if volunteer else "branch", "starts_at": month,
            "ends_at": month + timedelta(hours=2), "code": f"{self.activity_id:06d}",
            "token": f"bench-{self.activity_id}", "secret": "s" * 32, "registration": False, "registered_count": 0,
            "points": 0, "rotating": False, "reminded": "", "cancelled": False, "place": ""})
        pool = self.below(org) if volunteer else [m for m in self.by_org.get(org.id, []) if m.kind != "群众"]
        share = 0.25 if volunteer else self.rng.uniform(0.55, 0.9)
        self.checkins += [{"activity_id": self.activity_id, "member_id": m.id, "checked_in_at": month,
                           "method": "code"} for m in pool if self.rng.random() < share]

    def wishes_of(self, org: Organization, month: datetime, recent: bool) -> None:
        for w in range(self.rng.randint(3, 8)):
            status = [DONE, DONE, DONE, OPEN, CLAIMED, FULFILLED, PENDING][self.rng.randrange(7)] if recent else DONE
            created = min(month + timedelta(days=w), self.now)
            late = status == CLAIMED and w % 2
            self.wishes.append({
                "title": f"心愿{len(self.wishes) + 1}", "org_id": org.id, "points": 5, "status": status,
                "poster_id": self.poster, "created_at": created, "updated_at": created, "category": "其他",
                "details": "", "claim_count": 0, "fulfil_note": "",
                "fulfil_by": self.now + timedelta(days=-1 if late else 5),
                "completed_at": min(created + timedelta(days=6), self.now) if status == DONE else None,
                "beneficiary_name": "", "beneficiary_address": "", "beneficiary_phone": ""})

    def notice(self, org: Organization, month: datetime) -> None:
        self.notice_id += 1
        title, body = f"{month.month}月工作通知", "请按时参加本月主题党日。"
        self.notices.append({"id": self.notice_id, "org_id": org.id, "author_id": self.poster, "title": title,
                             "body": body, "urgent": False, "kinds": "", "reminders": 0, "created_at": month})
        for m in self.below(org):
            read = month + timedelta(hours=3) if m.openid and self.rng.random() < 0.8 else None
            self.outbox.append({
                "source": notice_source(self.notice_id), "recipient": m.openid or f"member:{m.id}",
                "openid": m.openid, "member_id": m.id, "kind": "notice", "title": title, "body": body,
                "status": SENT, "attempts": 1, "created_at": month, "sent_at": month, "read_at": read,
                "urgent": False, "refusals": ""})


def add_year_of_activity(session: Session, now: datetime, *, seed: int = 1) -> None:
    """Twelve months up to `now` of activities, sign-ins, wishes and notices for every branch and
    community in the database (members as they are); commit."""
    year = _Year(session, now, seed)
    communities = [o for o in year.orgs if o.level == 2]
    branches = [o for o in year.orgs if o.level == 3]
    for back in range(12):
        number, month_index = divmod(now.year * 12 + now.month - 1 - back, 12)
        month = min(datetime(number, month_index + 1, 8, 7, 0, tzinfo=UTC), now - timedelta(hours=2))
        for org in branches + communities:
            year.activity(org, month)
        for org in communities:
            year.wishes_of(org, month, back < 2)
            year.notice(org, month)
    for table, rows in ((Activity, year.activities), (CheckIn, year.checkins), (Wish, year.wishes),
                        (Notice, year.notices), (OutboxMessage, year.outbox)):
        _bulk(session, table, rows)
    if session.get_bind().dialect.name == "postgresql":  # the ids were given: move the sequences past them
        for table in ("activities", "notices"):
            session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))"))
    session.commit()


def now_utc() -> datetime:
    return datetime.now(UTC)
