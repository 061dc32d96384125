"""Lists, reports and exports cost what a page is, not what it holds: the statements a request runs do
not grow with the rows it returns (no query per row for an organization, a grid, a poster or a
claimer, no audience per activity), and a branch's report reads the branch, not the district."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import DEFAULTS
from models import Member, now_utc
from models.activity import REGISTERED, Activity, CheckIn, NewActivity, Registration, create_activity
from models.org import ensure_org_path, get_org_by_full_name
from models.quota import quota_report, quotas_from_settings
from tests.conftest import BRANCH, COMMUNITY, GROUP, OTHER_BRANCH, SECOND_BRANCH, STREET

GRIDS = ("东湖一网格", "东湖二网格", "东湖三网格", "东湖四网格", "东湖五网格", "东湖六网格")


def _wishes(api_client, api_login, make_member, engine, count: int, start: int) -> None:
    """`count` open wishes, each in its own grid, each claimed by a volunteer of its own."""
    secretary = api_login(make_member(f"书记{start}", f"1390000{start:04d}", org=BRANCH, role="书记"))
    for n in range(start, start + count):
        grid = GRIDS[n % len(GRIDS)] + str(n)
        head = make_member(f"网格长{n}", f"1370000{n:04d}", org=BRANCH, grid=grid)
        with Session(engine) as s:
            s.get(Member, head.id).grid_head = True
            s.commit()
        body = {"title": f"修水龙头{n}", "details": "厨房水龙头漏水", "beneficiary_member_id": head.id}
        response = api_client.post("/api/v1/wishes", json=body, headers=secretary)
        assert response.status_code == 200, response.get_json()
        claimer = api_login(make_member(f"志愿者{n}", f"1360000{n:04d}", org=OTHER_BRANCH, role="志愿者",
                                        kind="群众"))
        wish_id = response.get_json()["id"]
        assert api_client.post(f"/api/v1/wishes/{wish_id}/claim", headers=claimer).status_code == 200


def test_the_wishes_page_costs_the_same_for_2_and_for_12_wishes(api_client, api_login, make_member, engine,
                                                                count_statements):
    viewer = api_login(make_member("刘洋", "13800000005", org=BRANCH))
    _wishes(api_client, api_login, make_member, engine, 2, 0)
    api_client.get("/api/v1/wishes?per_page=20", headers=viewer)  # the viewer's token once looked up
    with count_statements() as few:
        assert len(api_client.get("/api/v1/wishes?per_page=20", headers=viewer).get_json()["items"]) == 2
    _wishes(api_client, api_login, make_member, engine, 10, 2)
    with count_statements() as many:
        items = api_client.get("/api/v1/wishes?per_page=20", headers=viewer).get_json()["items"]
    assert len(items) == 12 and len({w["claimer"]["name"] for w in items}) == 12
    assert many.count == few.count, many.statements


def test_the_members_page_costs_the_same_for_3_and_for_13_members(api_client, api_login, make_member,
                                                                   count_statements):
    admin = api_login(make_member("张建国", "13800000001", org=STREET, role="管理员"))
    for n in range(2):
        make_member(f"党员{n}", f"1350000{n:04d}", org=BRANCH if n % 2 else SECOND_BRANCH, grid=f"网格{n}")
    api_client.get("/api/v1/admin/members?per_page=50", headers=admin)
    with count_statements() as few:
        assert api_client.get("/api/v1/admin/members?per_page=50", headers=admin).get_json()["total"] == 3
    for n in range(2, 12):
        make_member(f"党员{n}", f"1350000{n:04d}", org=BRANCH if n % 2 else SECOND_BRANCH, grid=f"网格{n}")
    with count_statements() as many:
        items = api_client.get("/api/v1/admin/members?per_page=50", headers=admin).get_json()["items"]
    assert len(items) == 13 and len({m["grid"] for m in items}) == 13
    assert many.count == few.count, many.statements


def test_the_activities_page_costs_the_same_for_1_and_for_3_organizations(api_client, api_login, make_member,
                                                                         engine, count_statements):
    admin = make_member("张建国", "13800000001", org=STREET, role="管理员")
    member = api_login(make_member("王志强", "13800000003", org=BRANCH))

    def publish(org_name: str, n: int) -> None:
        with Session(engine) as s:
            create_activity(s, s.get(Member, admin.id), NewActivity(
                kind="主题党日", title=f"学习{n}", starts_at=now_utc() + timedelta(days=n + 1),
                org=get_org_by_full_name(s, org_name), audience="subtree"), now=now_utc())

    publish(BRANCH, 0)
    api_client.get("/api/v1/activities", headers=member)
    with count_statements() as few:
        assert api_client.get("/api/v1/activities", headers=member).get_json()["total"] == 1
    for n, org_name in enumerate((STREET, COMMUNITY, BRANCH), start=1):
        publish(org_name, n)
    with count_statements() as many:
        items = api_client.get("/api/v1/activities", headers=member).get_json()["items"]
    assert len(items) == 4 and len({a["org"]["id"] for a in items}) == 3
    assert many.count == few.count, many.statements


# Reports and exports ------------------------------------------------------------------------------
# Their data is written straight into the tables (a report counts rows; no rule of the domain is
# needed to make them), in 2026, the year every report below is asked for.
def when(month: int, day: int = 10) -> datetime:
    return datetime(2026, month, day, 7, 0, tzinfo=UTC)  # 15:00 in Shanghai


GROUP2, GROUP3 = f"{BRANCH}/第二党小组", f"{BRANCH}/第三党小组"


class Town:
    """Organizations, members, activities, registrations, sign-ins, wishes and points, written directly."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.phones = iter(range(10_000_000, 99_999_999))

    def org(self, name: str) -> int:
        with Session(self.engine) as s:
            node = ensure_org_path(s, name)
            s.commit()
            return node.id

    def members(self, org: str, n: int, *, kind: str = "在职党员", active: bool = True, **fields) -> list[int]:
        org_id = self.org(org)
        with Session(self.engine) as s:
            made = [Member(name=f"成员{next(self.phones)}", phone=f"150{next(self.phones)}", kind=kind,
                           org_id=org_id, active=active, **fields) for _ in range(n)]
            s.add_all(made)
            s.commit()
            return [m.id for m in made]

    def activity(self, org: str, *, audience: str = "branch", kind: str = "主题党日", start: datetime | None = None,
                 registration: bool = False, cancelled: bool = False) -> int:
        org_id = self.org(org)
        start = start or when(3)
        with Session(self.engine) as s:
            activity = Activity(kind=kind, title=f"{kind}{next(self.phones)}", org_id=org_id, audience=audience,
                                starts_at=start, ends_at=start + timedelta(hours=2), code="246810",
                                registration=registration, cancelled=cancelled)
            s.add(activity)
            s.commit()
            return activity.id

    def sign_in(self, activity_id: int, member_ids, *, proxy_by: int | None = None) -> None:
        with Session(self.engine) as s:
            start = s.get(Activity, activity_id).starts_at
            s.add_all(CheckIn(activity_id=activity_id, member_id=m, checked_in_at=start, method="proxy" if proxy_by
                              else "code", proxy_by_id=proxy_by) for m in member_ids)
            s.commit()

    def register(self, activity_id: int, member_ids, status: str = REGISTERED) -> None:
        with Session(self.engine) as s:
            s.add_all(Registration(activity_id=activity_id, member_id=m, status=status) for m in member_ids)
            s.commit()


@pytest.fixture
def town(engine):
    return Town(engine)


def _same_cost(api_client, headers, path: str, count_statements, grow) -> tuple:
    """The statements of GET `path` before and after `grow()` adds rows (each measured after one call
    that warms the caller's token): (few, many, the responses)."""
    api_client.get(path, headers=headers)
    with count_statements() as few:
        before = api_client.get(path, headers=headers)
    grow()
    api_client.get(path, headers=headers)
    with count_statements() as many:
        after = api_client.get(path, headers=headers)
    assert before.status_code == after.status_code == 200, after.get_json()
    return few, many, before, after


def _sheet(response) -> list[tuple]:
    return list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))


def _year_of_branch_life(town: Town, members: list[int], months=range(1, 13)) -> None:
    """A 主题党日 of BRANCH and a 志愿服务 of the community each month; `members` come to every other one."""
    for month in months:
        town.sign_in(town.activity(BRANCH, start=when(month)), members[month % 2::2])
        town.sign_in(town.activity(COMMUNITY, kind="志愿服务", audience="open", start=when(month, 20)), members[::3])


def test_the_quota_report_and_its_export_cost_the_same_for_3_and_for_23_members(api_client, api_login, make_member,
                                                                               town, count_statements):
    secretary = api_login(make_member("李书记", "13900000001", org=BRANCH, role="书记", kind="在职党员"))
    members = town.members(BRANCH, 2) + town.members(GROUP, 1)
    _year_of_branch_life(town, members, months=(1, 2))

    def grow():
        more = town.members(BRANCH, 12) + town.members(GROUP, 8, kind="直管党员") + town.members(GROUP2, 1)
        _year_of_branch_life(town, members + more, months=(3, 4, 5))

    few, many, before, after = _same_cost(api_client, secretary, "/api/v1/admin/reports/quota?year=2026&per_page=500",
                                          count_statements, grow)
    assert before.get_json()["total"] == 4 and after.get_json()["total"] == 17  # 在职党员 only (the quota's kind)
    assert many.count == few.count, many.statements

    few, many, before, after = _same_cost(api_client, secretary, "/api/v1/admin/reports/quota.xlsx?year=2026",
                                          count_statements, lambda: town.members(SECOND_BRANCH, 5)
                                          + town.members(GROUP, 10) + town.members(GROUP3, 1))
    assert len(_sheet(before)) == 1 + 17 and len(_sheet(after)) == 1 + 28
    assert {r[2] for r in _sheet(after)[1:]} == {BRANCH, GROUP, GROUP2, GROUP3}  # no query per organization
    assert many.count == few.count, many.statements


def test_the_quota_report_pages_in_sql_with_the_totals_of_the_whole_report(api_client, api_login, make_member, town):
    secretary = api_login(make_member("李书记", "13900000001", org=BRANCH, role="书记", kind="直管党员"))
    members = town.members(BRANCH, 5)
    for month in range(1, 5):  # members[0] attends 4 organizational-life meetings, members[1] 2
        activity = town.activity(BRANCH, start=when(month))
        town.sign_in(activity, members[:1] + (members[1:2] if month % 2 else []))
    for month in (6, 7):  # and members[0] serves twice: done
        town.sign_in(town.activity(BRANCH, kind="志愿服务", start=when(month)), members[:1])
    pages = [api_client.get(f"/api/v1/admin/reports/quota?year=2026&per_page=2&page={n}", headers=secretary)
             .get_json() for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5] * 4 and [p["behind"] for p in pages] == [4] * 4
    assert [p["pages"] for p in pages] == [3] * 4
    rows = [r for p in pages for r in p["items"]]
    assert [r["member_id"] for r in rows] == members[2:] + [members[1], members[0]]  # most behind first, then id
    assert [(r["org_life"], r["volunteer"], r["shortfall"], r["behind"]) for r in rows] == \
        [(0, 0, 6, True)] * 3 + [(2, 0, 4, True), (4, 2, 0, False)]
    assert pages[3]["items"] == []


def test_the_quota_report_of_a_branch_is_the_same_whatever_other_branches_hold(session, town, engine):
    members = town.members(BRANCH, 4) + town.members(GROUP, 2)
    town.members(BRANCH, 1, active=False)
    town.members(BRANCH, 1, kind="群众")
    _year_of_branch_life(town, members)
    street_day = town.activity(STREET, audience="subtree", start=when(7))  # outside the subtree: still counts
    town.sign_in(street_day, members[:2])
    town.sign_in(town.activity(BRANCH, start=when(8), cancelled=True), members)  # cancelled: not counted
    town.sign_in(town.activity(BRANCH, start=datetime(2025, 12, 31, 15, 0, tzinfo=UTC)), members)  # 2025 (local)
    quotas = quotas_from_settings(DEFAULTS)

    def report() -> list[tuple]:
        session.expire_all()
        branch = get_org_by_full_name(session, BRANCH)
        rows = quota_report(session, branch, 2026, quotas)
        return [(r.member.id, r.org_life, r.volunteer, r.shortfall) for r in rows]

    alone = report()
    # Six 主题党日 each (the street's 党课 too for the first two); twelve services for every third.
    assert alone == [(m, 6 + (i < 2), 12 if i % 3 == 0 else 0, 0 if i % 3 == 0 else 2)
                     for i, m in sorted(enumerate(members), key=lambda im: (im[0] % 3 == 0, im[1]))]
    # Thousands of sign-ins elsewhere: other branches, their members, the same year.
    crowd = town.members(OTHER_BRANCH, 40) + town.members(SECOND_BRANCH, 20)
    with Session(engine) as s:
        other = town.org(OTHER_BRANCH)
        activities = [Activity(kind="主题党日" if n % 3 else "志愿服务", title=f"活动{n}", org_id=other,
                               starts_at=when(1 + n % 12, 1 + n % 27), ends_at=when(1 + n % 12, 1 + n % 27),
                               code="135790") for n in range(60)]
        s.add_all(activities)
        s.flush()
        s.add_all(CheckIn(activity_id=a.id, member_id=m, checked_in_at=a.starts_at, method="code")
                  for a in activities for m in crowd)
        s.commit()
        assert s.scalar(select(func.count(CheckIn.id))) > 3600
    assert report() == alone


def _every_audience(town: Town, month: int = 3) -> dict[str, int]:
    """People everywhere, and an activity of each audience rule at each level, signed in by some of
    its audience and by some outsiders; the activities' ids by a name."""
    people = {
        "branch": town.members(BRANCH, 3), "branch_crowd": town.members(BRANCH, 1, kind="群众"),
        "branch_gone": town.members(BRANCH, 1, active=False), "group": town.members(GROUP, 2),
        "second": town.members(SECOND_BRANCH, 2), "second_crowd": town.members(SECOND_BRANCH, 1, kind="群众"),
        "community": town.members(COMMUNITY, 1), "other": town.members(OTHER_BRANCH, 2),
        "street": town.members(STREET, 1, role="管理员"),
    }
    start = when(month)
    made = {f"{rule}@{name}": town.activity(org, audience=rule, start=start)
            for rule in ("branch", "subtree", "open")
            for name, org in (("street", STREET), ("community", COMMUNITY), ("branch", BRANCH), ("group", GROUP),
                              ("other", OTHER_BRANCH))}
    made["registration@branch"] = town.activity(BRANCH, audience="open", registration=True, start=start)
    town.register(made["registration@branch"], people["branch"][:2] + people["other"][:1])
    town.register(made["registration@branch"], people["group"][:1], status="waiting")
    town.register(made["registration@branch"], people["branch"][2:], status="cancelled")
    made["cancelled@branch"] = town.activity(BRANCH, start=start, cancelled=True)
    for n, activity_id in enumerate(made.values()):
        town.sign_in(activity_id, people["branch"][: 1 + n % 3] + people["other"][n % 2:])
    town.sign_in(made["branch@branch"], people["group"][:1], proxy_by=people["street"][0])
    return made


def test_period_attendance_counts_what_each_activitys_attendance_counts(session, town):
    from models.activity import attendance, expected_count, expected_members, period_attendance
    from models.activity.reports import counts_signed_in_only

    made = _every_audience(town)
    town.activity(BRANCH, start=when(5))  # outside the period
    street = get_org_by_full_name(session, STREET)
    rows = period_attendance(session, street, when(3, 1), when(4, 1))
    assert {a.id for a, _, _ in rows} == set(made.values()) - {made["cancelled@branch"]}
    for activity, present, expected in rows:
        report = attendance(session, activity)
        assert (present, expected) == (len(report.present), len(report.expected)), activity.title
        if counts_signed_in_only(activity):  # open to volunteers: counted against those who came
            assert expected == present, activity.title
        else:
            assert expected == expected_count(session, activity) == len(expected_members(session, activity))
    counts = {a.id: (present, expected) for a, present, expected in rows}
    # The branch: its own 3 party members and its 党小组's 2; the street's subtree: every active party
    # member (3 + 2 + 2 + 1 + 2 + 1); an activity open to volunteers: those who came.
    assert counts[made["branch@branch"]] == (3 + 2 + 1, 5)  # three of it, two outsiders, one by proxy
    assert counts[made["subtree@street"]][1] == 11
    for key in ("open@group", "open@community", "open@other"):
        assert counts[made[key]][0] == counts[made[key]][1]
    assert counts[made["branch@community"]][1] == 1
    assert counts[made["registration@branch"]][1] == 3
    branch = get_org_by_full_name(session, BRANCH)
    assert {a.id for a, _, _ in period_attendance(session, branch, when(3, 1), when(4, 1))} == {
        made[f"{rule}@{name}"] for rule in ("branch", "subtree", "open") for name in ("branch", "group")
    } | {made["registration@branch"]}


def test_the_period_attendance_export_costs_the_same_for_16_and_for_64_activities(api_client, api_login, make_member,
                                                                                 town, count_statements):
    admin = api_login(make_member("张建国", "13900000001", org=STREET, role="管理员"))
    _every_audience(town, month=3)
    path = "/api/v1/admin/reports/attendance.xlsx?from=2026-01-01&to=2026-12-31"
    few, many, before, after = _same_cost(api_client, admin, path, count_statements,
                                          lambda: [_every_audience(town, month) for month in (4, 5, 6)])
    assert len(_sheet(before)) == 1 + 16 and len(_sheet(after)) == 1 + 64
    assert many.count == few.count, many.statements


def test_an_activitys_attendance_costs_the_same_for_few_and_many_attendees(api_client, api_login, make_member,
                                                                          town, count_statements):
    secretary = api_login(make_member("李书记", "13900000001", org=BRANCH, role="书记"))
    proxy = town.members(COMMUNITY, 1, role="书记")[0]  # outside the branch's audience
    activity = town.activity(BRANCH, start=when(3))
    town.sign_in(activity, town.members(BRANCH, 2) + town.members(OTHER_BRANCH, 1))
    town.sign_in(activity, town.members(GROUP, 1), proxy_by=proxy)
    town.members(BRANCH, 2)  # absent
    paths = (f"/api/v1/admin/activities/{activity}/attendance", f"/api/v1/admin/activities/{activity}/attendance.xlsx")

    def measure() -> list:
        counted = []
        for path in paths:
            api_client.get(path, headers=secretary)
            with count_statements() as c:
                response = api_client.get(path, headers=secretary)
            assert response.status_code == 200
            counted.append((c, response))
        return counted

    few = measure()
    town.sign_in(activity, town.members(BRANCH, 10) + town.members(GROUP, 3) + town.members(OTHER_BRANCH, 2)
                 + town.members(SECOND_BRANCH, 3) + town.members(STREET, 1))
    town.sign_in(activity, town.members(GROUP, 2), proxy_by=town.members(SECOND_BRANCH, 1, role="书记")[0])
    town.members(GROUP, 4)  # absent
    many = measure()
    for (c_few, _), (c_many, _) in zip(few, many, strict=True):
        assert c_many.count == c_few.count, c_many.statements
    body = many[0][1].get_json()
    assert len(body["attendees"]) == 25 and body["expected"] == 25 and body["present"] == 18
    assert len(body["absent"]) == 7
    proxies = [a["proxy_by"] for a in body["attendees"] if a["proxy_by"] is not None]
    assert len(proxies) == 3 and len(set(proxies)) == 2
    assert len(_sheet(many[1][1])) == 5 + 25 + 7  # the title, time, counts, blank and header rows, then everyone


def test_the_wishes_export_costs_the_same_for_2_and_for_14_wishes(api_client, api_login, make_member, town, engine,
                                                                  count_statements):
    from models.org import ensure_grid
    from models.wishes import CLAIMED, OPEN, Wish

    secretary = api_login(make_member("刘书记", "13900000001", org=COMMUNITY, role="书记"))

    def wishes(n: int, start: int) -> None:
        orgs = (BRANCH, GROUP, SECOND_BRANCH)
        posters = town.members(BRANCH, n)
        claimers = town.members(OTHER_BRANCH, n, kind="群众")
        with Session(engine) as s:
            for i in range(n):
                org = ensure_org_path(s, orgs[i % 3])
                grid = ensure_grid(s, org, f"网格{start + i}")
                s.add(Wish(title=f"修水龙头{start + i}", org_id=org.id, grid_id=grid.id,
                           points=5, status=CLAIMED if i % 2 else OPEN, poster_id=posters[i],
                           claimer_id=claimers[i] if i % 2 else None, beneficiary_name="李奶奶",
                           beneficiary_phone="13800000000", beneficiary_address="东湖路1号"))
            s.commit()

    wishes(2, 0)
    few, many, before, after = _same_cost(api_client, secretary, "/api/v1/admin/wishes/export", count_statements,
                                          lambda: wishes(12, 2))
    rows = _sheet(after)[1:]
    assert len(_sheet(before)) == 1 + 2 and len(rows) == 14
    assert len({r[5] for r in rows}) == 14 and len({r[10] for r in rows}) == 14  # a grid, a poster each
    assert len({r[12] for r in rows if r[12]}) == 7 and {r[4] for r in rows} == {BRANCH, GROUP, SECOND_BRANCH}
    assert many.count == few.count, many.statements


def test_my_progress_costs_the_same_for_2_and_for_24_sign_ins(api_client, api_login, make_member, town,
                                                               count_statements):
    me = make_member("王志强", "13900000003", org=BRANCH, kind="在职党员")
    headers = api_login(me)
    _year_of_branch_life(town, [me.id], months=(1, 2))
    few, many, before, after = _same_cost(api_client, headers, "/api/v1/me/quota?year=2026", count_statements,
                                          lambda: _year_of_branch_life(town, [me.id], months=range(3, 13)))
    assert before.get_json()["progress"]["org_life"] == 1 and after.get_json()["progress"]["org_life"] == 6
    assert after.get_json()["progress"]["volunteer"] == 12
    assert many.count == few.count, many.statements


def test_the_ranking_costs_the_same_for_2_and_for_12_members(api_client, api_login, make_member, town, engine,
                                                             count_statements):
    from models.points import PointEntry

    viewer = api_login(make_member("王志强", "13900000003", org=BRANCH))

    def earn(org: str, n: int, base: int) -> None:
        with Session(engine) as s:
            s.add_all(PointEntry(member_id=m, amount=base + i, reason="志愿服务", source="activity", source_id=str(m))
                      for i, m in enumerate(town.members(org, n)))
            s.commit()

    earn(BRANCH, 2, 1)
    path = f"/api/v1/points/ranking?period=all&org={town.org(COMMUNITY)}"
    few, many, before, after = _same_cost(api_client, viewer, path, count_statements,
                                          lambda: (earn(GROUP, 5, 10), earn(SECOND_BRANCH, 5, 20),
                                                   earn(OTHER_BRANCH, 3, 100)))  # another community: not ranked
    points = [r["points"] for r in after.get_json()["ranks"]]
    assert len(before.get_json()["ranks"]) == 2 and points == [24, 23, 22, 21, 20, 14, 13, 12, 11, 10]
    assert many.count == few.count, many.statements


def test_the_reminders_list_costs_the_same_for_6_and_for_18_activities(session, town, engine, count_statements):
    from models.reminders import upcoming_reminders

    me = town.members(COMMUNITY, 1, role="书记")[0]
    now = when(3, 1)

    def coming(day: int) -> set[int]:
        """An activity of each kind the secretary lists: those they will be reminded of, returned."""
        start = when(3, day)
        invited = {town.activity(COMMUNITY, start=start), town.activity(STREET, audience="subtree", start=start),
                   town.activity(BRANCH, audience="open", start=start)}
        town.activity(BRANCH, start=start)  # listed because they manage it, but not for them
        registered = town.activity(COMMUNITY, audience="open", registration=True, start=start)
        town.register(registered, [me])
        town.activity(COMMUNITY, audience="open", registration=True, start=start)  # not registered
        return invited | {registered}

    def listed() -> tuple[set[int], int]:
        with Session(engine) as s, count_statements() as counted:
            enabled, rows = upcoming_reminders(s, s.get(Member, me), now)
        assert enabled
        return {a.id for a, _ in rows}, counted.count

    first = coming(2)
    few, few_count = listed()
    later = coming(3) | coming(4)
    many, many_count = listed()
    assert len(first) == 4 and few == first and many == first | later
    assert many_count == few_count


def test_the_chats_reports_cost_the_same_for_few_and_many_rows(session, say, town, count_statements):
    """出勤, 完成情况, 积分榜 and 提醒 in the chat: the same domain reports, worded; no query per line."""
    from models.points import PointEntry

    secretary = town.members(BRANCH, 1, role="书记", openid="o-sec")[0]
    now = when(3, 1)
    today = town.activity(BRANCH, start=when(3, 2))
    registered = town.activity(BRANCH, audience="open", registration=True, start=when(3, 3))
    town.register(registered, [secretary])

    def grow(n: int) -> None:
        crowd = town.members(BRANCH, n) + town.members(GROUP, n)
        town.sign_in(today, crowd[::2] + town.members(OTHER_BRANCH, n))
        town.sign_in(today, town.members(GROUP, 1), proxy_by=town.members(COMMUNITY, 1, role="书记")[0])
        _year_of_branch_life(town, crowd, months=(1, 2))
        session.add_all(PointEntry(member_id=m, amount=1 + i, reason="志愿服务", source="activity", source_id="1")
                        for i, m in enumerate(crowd))
        session.commit()
        for day in (4, 5):
            town.activity(BRANCH, start=when(3, day))
            town.register(town.activity(BRANCH, audience="open", registration=True, start=when(3, day)), [secretary])

    def replies() -> list[tuple[str, int]]:
        answered = []
        for text in (f"出勤 #{today}", "完成情况 2026", "积分榜", "提醒"):
            session.expunge_all()  # nothing loaded by an earlier message
            with count_statements() as counted:
                answered.append((say("o-sec", text, now), counted.count))
        return answered

    grow(2)
    few = replies()
    grow(8)
    many = replies()
    assert [n for _, n in many] == [n for _, n in few], many
    attendance, quota, board, reminders = (reply for reply, _ in many)
    assert "出勤：应到 23，实到 12" in attendance and "范围外签到" in attendance and "其中代签" in attendance
    assert "完成情况：0/23人已达标" in quota and quota.count("（在职党员）") == 23
    assert board.count("1. 成员") == 2 and board.endswith(" 7")  # both boards: ten lines each
    assert f"#{today}「" in reminders and f"#{registered}「" in reminders and reminders.count("提醒时间") >= 6


def test_the_chats_wish_lists_and_my_wishes_cost_the_same_for_few_and_many_wishes(session, say, api_client, api_login,
                                                                                  make_member, town, engine,
                                                                                  count_statements):
    """心愿 (each line names its organization), 待办 (the poster to review, the claimer to confirm),
    我的心愿, and the API's /me/wishes (organization, grid, poster, claimer, photos)."""
    from models.org import ensure_grid
    from models.wishes import FULFILLED, OPEN, PENDING, Wish

    secretary = make_member("刘书记", "13900000001", org=COMMUNITY, role="书记", openid="o-sec")
    headers = api_login(secretary)
    orgs = (BRANCH, GROUP, SECOND_BRANCH, COMMUNITY, GROUP2)

    def wishes(n: int) -> None:
        people = [town.members(orgs[i % len(orgs)], 1) + town.members(OTHER_BRANCH, 1) for i in range(n)]
        with Session(engine) as s:
            for i, (poster, claimer) in enumerate(people):
                org = ensure_org_path(s, orgs[i % len(orgs)])
                grid = ensure_grid(s, org, f"网格{next(town.phones)}")
                for status in (OPEN, PENDING, FULFILLED):
                    s.add(Wish(title=f"修水龙头{next(town.phones)}", org_id=org.id, grid_id=grid.id, points=5,
                               status=status, poster_id=poster, claimer_id=claimer if status == FULFILLED else None,
                               fulfilled_at=when(3)))
                s.add(Wish(title=f"陪老人看病{next(town.phones)}", org_id=org.id, grid_id=grid.id, points=5,
                           status=FULFILLED, poster_id=secretary.id, claimer_id=claimer, fulfilled_at=when(3)))
            s.commit()

    def measure() -> list[tuple[str, int]]:
        done = []
        for text in ("心愿", "待办", "我的心愿"):
            session.expunge_all()
            with count_statements() as counted:
                done.append((say("o-sec", text, when(3, 5)), counted.count, counted.statements))
        api_client.get("/api/v1/me/wishes?limit=50", headers=headers)
        with count_statements() as counted:
            response = api_client.get("/api/v1/me/wishes?limit=50", headers=headers)
        done.append((response.get_json(), counted.count, counted.statements))
        return done

    wishes(11)  # more than 待办 lists: it counts them then (see models.wishes._first)
    few = measure()
    wishes(5)
    many = measure()
    assert [n for _, n, _ in many] == [n for _, n, _ in few], (few[3][2], many[3][2])
    listing, todo, mine, api = (reply for reply, _, _ in many)
    assert listing.count("积分）") == 5 and all(name.split("/")[-1] in listing for name in orgs)
    assert "待审核的心愿（16 个）" in todo and "待确认的心愿（32 个）" in todo
    assert mine.count("（提交·") == 16 and len(api["items"]) == 16
    assert len({w["grid"] for w in api["items"]}) == 16 and len({w["claimer"]["name"] for w in api["items"]}) == 16
