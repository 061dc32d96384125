"""The district of bench/district.py: N members and a year of their activity, written fast.

`build(url, size)` fills an empty PostgreSQL database (its schema made here with
`Base.metadata.create_all`) in a few seconds for 50,000 members, with COPY:

- 1 street (街道党工委), 20 communities (社区党委), ~N/250 branches (党支部, ≈200 at 50k) spread over
  the communities, two 党小组 under each branch; N/1000 grids per community (at least 2);
- members of the four party kinds (about 47 % 在职党员, the kind with a default quota) and
  volunteers (群众, 志愿者, at community level); one 书记 per branch and per community, a street
  书记 and a street 管理员; most bound to the Official Account (openid, wechat_users), some to the
  mini-program, one grid head per grid;
- a year of activities (the local calendar year `meta["year"]`): per branch 12 主题党日, 4 支部党员大会,
  4 党课 and 6 志愿服务, per community 4 党课 for its whole subtree, 2 street-wide ones, and 2 per
  branch in the coming weeks; check-ins (≈10 per member per year: ≈500,000 at 50k) for those that
  have started;
- wishes (N/20) in every state, two notices per community with their (sent, partly read) outbox rows.

Deterministic for a seed and a day. `write_roster` writes the same people as an import file (.xlsx,
the roster's columns). The people the benchmark acts as are returned in the meta dict.
"""

import io
import pkgutil
import random
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import models
from models import Base
from models.org import looks_mistyped

TZ = ZoneInfo("Asia/Shanghai")
STREET = "滨江街道党工委"
# 20 community names, no two alike enough to pass for a misspelling of the other (models.org).
COMMUNITIES = ("金桂园", "银杏苑", "翠竹坊", "枫叶湾", "梧桐里", "海棠居", "芙蓉巷", "樱花岭", "柳荫街", "松涛阁",
               "梅岭村", "兰亭路", "菊香坪", "荷塘月", "槐树坞", "杏林湖", "桃源新", "丹霞山", "白鹭洲", "紫云台")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国红梅志文玉春海燕立新德辉晓东"
# Party kinds and their shares (在职党员 has the default yearly quota).
PARTY_KINDS = (("在职党员", 0.47), ("直管党员", 0.33), ("离退休党员", 0.15), ("流动党员", 0.05))
WISH_STATES = ("待审核", "待认领", "已认领", "待确认", "已完成", "已撤回", "未通过")
WISH_CATEGORIES = ("生活用品", "维修", "陪伴探访", "学习用品", "就医出行", "其他")
METHODS = ("qr", "code", "app", "proxy")
_MINUTES = [timedelta(minutes=m) for m in range(-20, 31)]  # sign-in time around the start
CHECKIN_COLUMNS = ("activity_id", "member_id", "checked_in_at", "method", "proxy_by_id", "distance_m",
                   "checked_out_at", "service_minutes")
# Activities per branch in the year: (kind, how many, audience, share of the audience that comes).
BRANCH_ACTIVITIES = (("主题党日", 12, "branch", 0.45), ("支部党员大会", 4, "branch", 0.45),
                     ("党课", 4, "branch", 0.45), ("志愿服务", 6, "open", 0.15))
COMMUNITY_ACTIVITIES = (("党课", 4, "subtree", 0.2),)
STREET_ACTIVITIES = (("主题党日", 2, "subtree", 0.1),)
MEMBERS_PER_BRANCH = 250
VOLUNTEER_SHARE = 0.05
BOUND_SHARE = 0.85  # bound to the Official Account
MINIAPP_SHARE = 0.4
GRID_SHARE = 0.8
# The people the benchmark logs in as (their mini-program openids: the local WeChat stand-in's
# "o-local-<code>" for a login code).
LOGIN_PREFIX = "o-local-"


def load_every_model() -> None:
    """Import every module of models/ (and the app), so that create_all sees every table, also
    the ones a module not imported by models/__init__ declares."""
    for info in pkgutil.walk_packages(models.__path__, "models."):
        import_module(info.name)
    import_module("app")


def naive(moment: datetime) -> datetime:
    """A UTC timestamp as the UTCDateTime columns store it (naive)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


class District:
    """The rows of a district, generated in memory (one list of dicts per table)."""

    def __init__(self, size: int, seed: int = 15, today: date | None = None) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC)
        self.stamp = naive(self.now)
        self.today = today or self.now.astimezone(TZ).date()
        # The year of activity: the last calendar year mostly behind us.
        self.year = (self.today - timedelta(days=60)).year
        self.rows: dict[str, list[dict]] = {}
        self.meta: dict = {"size": size, "seed": seed, "year": self.year}
        self._ids: dict[str, int] = {}
        self.checkin_lines: list[str] = []

    def next_id(self, table: str) -> int:
        self._ids[table] = self._ids.get(table, 0) + 1
        return self._ids[table]

    def add(self, table: str, **values) -> dict:
        if "id" not in values:
            values["id"] = self.next_id(table)
        self.rows.setdefault(table, []).append(values)
        return values

    # The tree -----------------------------------------------------------------------------
    def org(self, name: str, parent: dict | None) -> dict:
        oid = self.next_id("organizations")
        return self.add("organizations", id=oid, name=name,
                        full_name=f"{parent['full_name']}/{name}" if parent else name,
                        parent_id=parent["id"] if parent else None, level=parent["level"] + 1 if parent else 1,
                        path=f"{parent['path'] if parent else '/'}{oid}/", created_at=naive(self.now))

    def tree(self) -> None:
        for a in COMMUNITIES:
            for b in COMMUNITIES:
                assert a == b or not looks_mistyped(f"{a}社区党委", f"{b}社区党委"), (a, b)
        street = self.org(STREET, None)
        communities = [self.org(f"{name}社区党委", street) for name in COMMUNITIES]
        branches = []
        count = max(len(communities), round(self.size / MEMBERS_PER_BRANCH))
        for n in range(count):
            community = communities[n % len(communities)]
            number = n // len(communities) + 1
            branch = self.org(f"{community['name'].removesuffix('社区党委')}社区第{number}党支部", community)
            branch["groups"] = [self.org(f"第{k}党小组", branch) for k in ("一", "二")]
            branch["community"] = community
            branches.append(branch)
        per_community = max(2, self.size // 1000)
        grids = {c["id"]: [self.add("grids", org_id=c["id"], name=f"第{k}网格") for k in range(1, per_community + 1)]
                 for c in communities}
        self.street, self.communities, self.branches, self.grids = street, communities, branches, grids

    # People -------------------------------------------------------------------------------
    def person(self, org: dict, community: dict, *, kind: str, role: str, grid: bool = True) -> dict:
        rng = self.rng
        mid = self.next_id("members")
        party = kind != "群众"
        joined = date(rng.randint(1965, 2023), rng.randint(1, 12), rng.randint(1, 28)) if party else None
        grid_row = rng.choice(self.grids[community["id"]]) if grid and rng.random() < GRID_SHARE else None
        head = grid_row is not None and grid_row["id"] not in self._heads
        if head:
            self._heads.add(grid_row["id"])
        bound = rng.random() < BOUND_SHARE
        member = self.add(
            "members", id=mid, name=rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2))),
            phone=f"13{mid:09d}", kind=kind, role=role, join_date=joined,
            full_member_date=joined.replace(year=joined.year + 1) if joined else None,
            org_id=org["id"], grid_id=grid_row["id"] if grid_row else None, grid_head=head,
            openid=f"o-bench-{mid}" if bound else None,
            miniapp_openid=f"mp-bench-{mid}" if rng.random() < MINIAPP_SHARE else None,
            unionid=None, bound_at=self.stamp - timedelta(days=rng.randint(1, 700)) if bound else None,
            active=True, created_at=self.stamp - timedelta(days=800), updated_at=self.stamp)
        member["org_path"], member["grid_name"] = org["full_name"], grid_row["name"] if grid_row else ""
        if bound:
            self.add("wechat_users", id=None, openid=member["openid"], subscribed=True, failed_binds=0,
                     created_at=member["bound_at"], updated_at=member["bound_at"])
        return member

    def people(self) -> None:
        rng = self.rng
        self._heads: set[int] = set()
        kinds, weights = zip(*PARTY_KINDS, strict=True)
        street, first = self.street, self.communities[0]
        self.admin = self.person(street, first, kind="直管党员", role="管理员", grid=False)
        self.street_secretary = self.person(street, first, kind="直管党员", role="书记", grid=False)
        self.community_secretaries = {c["id"]: self.person(c, c, kind="直管党员", role="书记", grid=False)
                                      for c in self.communities}
        self.branch_members: dict[int, list[dict]] = {}
        self.volunteers: dict[int, list[dict]] = {c["id"]: [] for c in self.communities}
        managers = 2 + len(self.communities)
        volunteers = round(self.size * VOLUNTEER_SHARE)
        party = self.size - managers - volunteers
        for n, branch in enumerate(self.branches):
            share = party // len(self.branches) + (1 if n < party % len(self.branches) else 0)
            people = [self.person(branch, branch["community"], kind="直管党员", role="书记", grid=False)]
            for _ in range(share - 1):
                where = rng.choice(branch["groups"]) if rng.random() < 0.3 else branch
                people.append(self.person(where, branch["community"], kind=rng.choices(kinds, weights)[0],
                                          role="党员"))
            self.branch_members[branch["id"]] = people
        for n in range(volunteers):
            community = self.communities[n % len(self.communities)]
            self.volunteers[community["id"]].append(self.person(community, community, kind="群众", role="志愿者"))

    # A year of activity -------------------------------------------------------------------
    def activity(self, org: dict, kind: str, audience: str, starts: datetime, author: dict) -> dict:
        aid = self.next_id("activities")
        return self.add("activities", id=aid, kind=kind, title=f"{org['name']}{kind}（{starts:%m月%d日}）",
                        org_id=org["id"], audience=audience, starts_at=naive(starts),
                        ends_at=naive(starts + timedelta(hours=2)), place="党群服务中心", latitude=None,
                        longitude=None, radius_m=None, registration=False, capacity=None, registered_count=0,
                        points=10 if kind == "志愿服务" else 0, code=f"{aid % 1_000_000:06d}", rotating=False,
                        secret=f"{aid:032x}", token=f"bench-activity-{aid}", qr_scene=None, qr_url=None,
                        reminded="", cancelled=False, created_by_id=author["id"],
                        created_at=naive(starts - timedelta(days=7)))

    def when(self, index: int, count: int) -> datetime:
        """The `index`-th of `count` dates spread over the year, at a local afternoon hour."""
        day = date(self.year, 1, 1) + timedelta(days=int((index + self.rng.random()) * 365 / count))
        return datetime(day.year, day.month, day.day, self.rng.choice((9, 14, 15, 19)), tzinfo=TZ)

    def check_ins(self, activity: dict, audience: list[dict], share: float) -> None:
        """Sign-ins of a share of `audience` (kept as COPY lines: half a million of them at 50k)."""
        starts = activity["starts_at"]
        if starts > self.stamp:
            return
        random, volunteer, aid = self.rng.random, activity["kind"] == "志愿服务", activity["id"]
        lines = self.checkin_lines
        for member in audience:
            draw = random()
            if draw >= share:
                continue
            draw /= share  # uniform again: the minute, the method and the service time from it
            at = starts + _MINUTES[int(draw * len(_MINUTES))]
            method = METHODS[int(draw * 1000) % len(METHODS)]
            if volunteer:
                minutes = 60 + int(draw * 7919) % 121
                out = (at + timedelta(minutes=minutes)).isoformat()
                lines.append(f"{aid}\t{member['id']}\t{at.isoformat()}\t{method}\t\\N\t\\N\t{out}\t{minutes}\n")
            else:
                lines.append(f"{aid}\t{member['id']}\t{at.isoformat()}\t{method}\t\\N\t\\N\t\\N\t\\N\n")

    def activities(self) -> None:
        for branch in self.branches:
            people = self.branch_members[branch["id"]]
            secretary = people[0]
            party = [m for m in people if m["kind"] != "群众"]
            neighbours = people + self.volunteers[branch["community"]["id"]]
            for kind, count, audience, share in BRANCH_ACTIVITIES:
                for n in range(count):
                    activity = self.activity(branch, kind, audience, self.when(n, count), secretary)
                    self.check_ins(activity, neighbours if audience == "open" else party, share)
            for days in (7, 21):  # coming up: what a member's activity list shows
                day = self.today + timedelta(days=days)
                start = datetime(day.year, day.month, day.day, 14, tzinfo=TZ)
                self.activity(branch, "主题党日", "branch", start, secretary)
        for community in self.communities:
            party = [m for b in self.branches if b["community"] is community for m in self.branch_members[b["id"]]]
            for kind, count, audience, share in COMMUNITY_ACTIVITIES:
                for n in range(count):
                    activity = self.activity(community, kind, audience, self.when(n, count),
                                             self.community_secretaries[community["id"]])
                    self.check_ins(activity, party, share)
        everyone = [m for people in self.branch_members.values() for m in people]
        for kind, count, audience, share in STREET_ACTIVITIES:
            for n in range(count):
                self.check_ins(self.activity(self.street, kind, audience, self.when(n, count), self.street_secretary),
                               everyone, share)

    # Wishes and notices -------------------------------------------------------------------
    def wishes(self) -> None:
        rng = self.rng
        everyone = [m for people in self.branch_members.values() for m in people] + \
            [v for vs in self.volunteers.values() for v in vs]
        for n in range(max(len(WISH_STATES), self.size // 20)):
            branch = self.branches[n % len(self.branches)]
            status = WISH_STATES[n % len(WISH_STATES)]
            poster = self.branch_members[branch["id"]][0]
            created = self.now - timedelta(days=rng.randint(1, 330), minutes=rng.randint(0, 600))
            taken = status in ("已认领", "待确认", "已完成")
            claimer = rng.choice(everyone) if taken else None
            claimed = created + timedelta(days=1) if taken else None
            errand = rng.choice(("修水龙头", "买米", "理发", "读报", "就医陪同"))
            self.add("wishes", title=f"帮助{rng.choice(SURNAMES)}大爷{errand}",
                     details="独居老人，行动不便。", category=rng.choice(WISH_CATEGORIES),
                     beneficiary_name=rng.choice(SURNAMES) + "大爷", beneficiary_address=f"{branch['name']}附近{n}号",
                     beneficiary_phone=f"15{n:09d}", beneficiary_member_id=None, org_id=branch["id"],
                     grid_id=rng.choice(self.grids[branch["community"]["id"]])["id"], points=10, status=status,
                     poster_id=poster["id"], claimer_id=claimer["id"] if claimer else None,
                     claim_count=1 if taken else 0, claimed_at=naive(claimed) if claimed else None,
                     fulfil_by=naive(claimed + timedelta(days=14)) if claimed else None,
                     fulfilled_at=naive(claimed + timedelta(days=3)) if status in ("待确认", "已完成") else None,
                     fulfil_note="已完成" if status in ("待确认", "已完成") else "",
                     completed_at=naive(claimed + timedelta(days=4)) if status == "已完成" else None,
                     confirmed_by_id=poster["id"] if status == "已完成" else None,
                     created_at=naive(created), updated_at=naive(created))

    def notices(self) -> None:
        rng = self.rng
        for community in self.communities:
            author = self.community_secretaries[community["id"]]
            audience = [m for b in self.branches if b["community"] is community for m in self.branch_members[b["id"]]]
            audience += self.volunteers[community["id"]]
            for n in range(2):
                created = self.now - timedelta(days=30 * (n + 1))
                notice = self.add("notices", org_id=community["id"], author_id=author["id"],
                                  title=f"{community['name']}第{n + 1}号通知",
                                  body="请各位党员按时参加本月主题党日活动。",
                                  urgent=False, kinds="", grid_id=None, reminders=0, reminded_at=None,
                                  created_at=naive(created))
                created, sent_at, read_at = (naive(created + timedelta(minutes=m)) for m in (0, 5, 180))
                for member in audience:
                    sent = member["openid"] is not None
                    self.add("outbox", source=f"notice:{notice['id']}", recipient=f"m{member['id']}", openid=None,
                             member_id=member["id"], kind="notice", title=notice["title"], body=notice["body"],
                             urgent=False, status="sent" if sent else "failed", attempts=1,
                             last_error=None if sent else "无可用渠道", created_at=created,
                             sent_at=sent_at if sent else None, channel="template" if sent else None,
                             next_attempt_at=None, claimed_at=created, claimed_by=None, refusals="", data=None,
                             read_at=read_at if sent and rng.random() < 0.6 else None, wx_msgid=None)

    def generate(self) -> "District":
        self.tree()
        self.people()
        self.activities()
        self.wishes()
        self.notices()
        # The branch whose report is asked for: the one nearest the usual size.
        branch = min(self.branches, key=lambda b: abs(len(self.branch_members[b["id"]]) - MEMBERS_PER_BRANCH))
        member = next(m for m in self.branch_members[branch["id"]][1:]
                      if m["kind"] != "群众" and m["org_id"] == branch["id"])
        self.meta.update(
            street_id=self.street["id"], branch_id=branch["id"], branch_name=branch["full_name"],
            branch_members=len(self.branch_members[branch["id"]]),
            people={"admin": self.admin["id"], "street_secretary": self.street_secretary["id"],
                    "branch_secretary": self.branch_members[branch["id"]][0]["id"], "member": member["id"]},
            street_secretary_openid=self.street_secretary["openid"] or f"o-bench-{self.street_secretary['id']}",
            counts={table: len(rows) for table, rows in self.rows.items()} | {
                "activity_checkins": len(self.checkin_lines)})
        for key, mid in self.meta["people"].items():
            person = self.rows["members"][mid - 1]
            person["miniapp_openid"] = LOGIN_PREFIX + f"bench-{key}"
            if key == "street_secretary" and person["openid"] is None:
                person["openid"] = self.meta["street_secretary_openid"]
                person["bound_at"] = naive(self.now)
                self.add("wechat_users", id=None, openid=person["openid"], subscribed=True, failed_binds=0,
                         created_at=person["bound_at"], updated_at=person["bound_at"])
        return self


# Writing ------------------------------------------------------------------------------------
def _cell(value) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _complete(table, rows: list[dict]) -> list[str]:
    """The columns to write: those given, plus the table's non-null columns without a server default
    that a newer schema may have added, filled from their Python default."""
    given = [c.name for c in table.columns if c.name in rows[0] and not (c.name == "id" and rows[0]["id"] is None)]
    for column in table.columns:
        if column.name in given or column.nullable or column.server_default is not None or column.primary_key:
            continue
        default = column.default
        if default is None:
            raise SystemExit(f"district builder: {table.name}.{column.name} has no value and no default")
        for row in rows:
            row[column.name] = default.arg(None) if default.is_callable else default.arg
        given.append(column.name)
    return given


def copy_rows(raw, table, rows: list[dict]) -> None:
    if not rows:
        return
    columns = _complete(table, rows)
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_cell(row[c]) for c in columns))
        buffer.write("\n")
    buffer.seek(0)
    with raw.cursor() as cursor:
        cursor.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN", buffer)


def create_schema(url: str) -> None:
    load_every_model()
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def build(url: str, size: int, seed: int = 15) -> tuple[dict, list[tuple]]:
    """Fill the empty database at `url` with a district of `size` members; return its meta and
    its roster (a row per member, the import's columns)."""
    if make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("the district benchmark needs PostgreSQL (it writes with COPY)")
    started = time.perf_counter()
    district = District(size, seed).generate()
    generated = time.perf_counter()
    create_schema(url)
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        for table in Base.metadata.sorted_tables:
            copy_rows(raw.driver_connection, table, district.rows.get(table.name, []))
            if table.name == "activity_checkins":
                with raw.driver_connection.cursor() as cursor:
                    cursor.copy_expert(f"COPY activity_checkins ({', '.join(CHECKIN_COLUMNS)}) FROM STDIN",
                                       io.StringIO("".join(district.checkin_lines)))
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in district.rows and "id" in table.columns and table.c.id.autoincrement is not False \
                    and district.rows[table.name][0].get("id") is not None:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                  f"(SELECT max(id) FROM {table.name}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    district.meta.update(generate_seconds=generated - started, build_seconds=time.perf_counter() - started)
    return district.meta, roster_rows(district)


# The roster file -----------------------------------------------------------------------------
ROSTER_COLUMNS = ("姓名", "手机号", "所属组织", "党员类别", "入党日期", "转正日期", "角色", "网格", "网格长")


def roster_rows(district: District) -> list[tuple]:
    """Every member as a roster row (the columns the import reads)."""
    return [(m["name"], m["phone"], m["org_path"], m["kind"], m["join_date"].isoformat() if m["join_date"] else "",
             m["full_member_date"].isoformat() if m["full_member_date"] else "", m["role"], m["grid_name"],
             "是" if m["grid_head"] else "否") for m in district.rows["members"]]


def write_roster(path: str, rows: Iterable[tuple]) -> None:
    """An .xlsx roster (write-only workbook: a row at a time)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("党员名册")
    sheet.append(list(ROSTER_COLUMNS))
    for row in rows:
        sheet.append(list(row))
    book.save(path)
