"""The dashboard's figures on a small district, the comparison of communities, and the statements
of the page: they do not grow with the members."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from app.extensions import db
from models import Member, dashboard
from models.activity import expected_count
from models.activity.tables import REGISTERED, Activity, CheckIn, Registration
from models.notices import publish_notice
from models.org import ensure_grid, ensure_org_path, get_org_by_full_name
from models.outbox import OutboxMessage
from models.wishes import CLAIMED, DONE, FULFILLED, OPEN, PENDING, Wish
from tests.conftest import BRANCH, COMMUNITY, GROUP, OTHER_BRANCH, SECOND_BRANCH, Person, _clear

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
THIS_MONTH = datetime(2026, 11, 5, 7, 0, tzinfo=UTC)
LAST_MONTH = datetime(2026, 10, 9, 7, 0, tzinfo=UTC)


@pytest.fixture
def people(cast):
    return cast(
        admin=cast.admin,
        boss=Person("陈书记", "13800000010", org=COMMUNITY, role="书记", wechat="o-boss").bound(),
        sec=cast.sec.bound(),
        wang=cast.wang.bound().but(kind="在职党员"),
        zhao=cast.zhao.but(kind="在职党员"),
        liu=cast.liu,
        group=Person("组员", "13800000011", org=GROUP),
        second=Person("二支部", "13800000012", org=SECOND_BRANCH, kind="在职党员"),
        sun=cast.sun.bound(),
    )


def activity(s, org, starts_at, *, audience="branch", registration=False, title="主题党日", kind="主题党日"):
    node = get_org_by_full_name(s, org)
    act = Activity(kind=kind, title=title, org_id=node.id, audience=audience, starts_at=starts_at,
                   ends_at=starts_at + timedelta(hours=2), code=f"{starts_at:%d%H}{audience[:2]}",
                   registration=registration)
    s.add(act)
    s.flush()
    return act


def check_in(s, act, *members):
    for m in members:
        s.add(CheckIn(activity_id=act.id, member_id=m.id, checked_in_at=act.starts_at, method="code"))


def wish(s, poster, status, org=BRANCH, **fields):
    s.add(Wish(title=f"心愿{status}", org_id=get_org_by_full_name(s, org).id, points=5, status=status,
               poster_id=poster.id, created_at=fields.pop("created_at", THIS_MONTH), **fields))


@pytest.fixture
def district(engine, people):
    p = people
    with Session(engine, expire_on_commit=False) as s:
        branch = activity(s, BRANCH, THIS_MONTH)
        check_in(s, branch, p["wang"], p["sec"])
        subtree = activity(s, COMMUNITY, THIS_MONTH + timedelta(days=1), audience="subtree", title="党课")
        check_in(s, subtree, p["wang"], p["zhao"], p["second"])
        open_ = activity(s, BRANCH, THIS_MONTH + timedelta(days=2), audience="open", kind="志愿服务",
                         title="清洁家园")
        check_in(s, open_, p["liu"], p["wang"])
        registered = activity(s, SECOND_BRANCH, THIS_MONTH + timedelta(days=3), registration=True, title="参观")
        for m in (p["second"], p["zhao"]):
            s.add(Registration(activity_id=registered.id, member_id=m.id, status=REGISTERED))
        check_in(s, registered, p["second"])
        earlier = activity(s, BRANCH, LAST_MONTH, title="上月党日")
        check_in(s, earlier, p["wang"])
        activity(s, OTHER_BRANCH, THIS_MONTH, title="西湖党日")  # another community's
        cancelled = activity(s, BRANCH, THIS_MONTH, title="取消了")
        cancelled.cancelled = True
        poster = p["sec"]
        wish(s, poster, PENDING)
        wish(s, poster, OPEN)
        wish(s, poster, OPEN, org=SECOND_BRANCH)
        wish(s, poster, CLAIMED, fulfil_by=NOW - timedelta(days=1), claimer_id=p["wang"].id)
        wish(s, poster, CLAIMED, fulfil_by=NOW + timedelta(days=3), claimer_id=p["wang"].id)
        wish(s, poster, FULFILLED)
        wish(s, poster, DONE, completed_at=THIS_MONTH, created_at=LAST_MONTH)
        wish(s, p["sun"], OPEN, org=OTHER_BRANCH)
        s.commit()
        acts = [branch, subtree, open_, registered]
        expected = {a.id: expected_count(s, s.get(Activity, a.id)) for a in acts}
        boss = s.get(Member, p["boss"].id)
        published = publish_notice(s, boss, "周五下午开会", title="开会通知")
        rows = s.query(OutboxMessage).filter(OutboxMessage.source == published.notice.source).all()
        for row in rows[:2]:
            row.read_at = NOW
        s.commit()
        return {"activities": acts, "expected": expected, "notice": published, "read": min(2, len(rows))}


def test_the_figures_of_a_community(engine, people, district):
    with Session(engine) as s:
        boss = s.get(Member, people["boss"].id)
        board = dashboard.dashboard(s, boss, now=NOW)
        titles = [a.title for a in board.activities]
        assert titles == ["主题党日", "党课", "清洁家园", "参观"]  # this month's, not cancelled, not 西湖's
        by_title = {a.title: a for a in board.activities}
        for act in district["activities"]:
            # Expected as models.activity.audience counts it, one activity at a time.
            assert by_title[act.title].expected == district["expected"][act.id], act.title
        assert [by_title[t].present for t in titles] == [2, 3, 2, 1]
        assert by_title["参观"].expected == 2
        november, october = board.months[-1], board.months[-2]
        assert (november.year, november.month, october.month, len(board.months)) == (2026, 11, 10, 12)
        assert november.present == 8 and november.expected == sum(district["expected"].values())
        assert october.present == 1
        assert board.wishes == {PENDING: 1, OPEN: 2, CLAIMED: 2, dashboard.OVERDUE: 1, FULFILLED: 1}
        assert november.wishes_posted == 6 and november.wishes_done == 1 and october.wishes_posted == 1
        [notice] = board.notices
        assert notice.sent == district["notice"].recipients and notice.read == district["read"]
        quota = board.quota
        assert quota.kind == "在职党员" and quota.members == 3  # 王志强, 赵秀英, 二支部
        assert {r.member.name for r in quota.behind} == {"王志强", "赵秀英", "二支部"}  # 4 org-life meetings a year
        # Bound: 陈书记, 李红梅, 王志强 of the community's 7 members.
        assert (board.members, board.bound, board.unbound_total) == (7, 3, 4)
        assert "孙立" not in {m.name for m in board.unbound}


def test_the_comparison_of_communities(engine, people, district):
    with Session(engine) as s:
        admin = s.get(Member, people["admin"].id)
        assert dashboard.compares_units(admin)
        units = dashboard.compare_units(s, admin, now=NOW)
        assert [u.name for u in units] == sorted(u.name for u in units)
        east = next(u for u in units if u.name == "东湖社区党委")
        west = next(u for u in units if u.name == "西湖社区党总支")
        assert (east.members, east.bound, west.members, west.bound) == (7, 3, 1, 1)
        assert east.present == 9 and east.expected == (
            sum(district["expected"].values()) + district["expected"][district["activities"][0].id])  # + October's
        assert (west.present, west.expected) == (0, 1)
        assert (east.wishes, east.wishes_done) == (6, 1)  # 待审核 is not published yet
        assert (east.notices_sent, east.notices_read) == (district["notice"].recipients, district["read"])
        assert west.notices_rate is None and west.wishes == 1
        by_bound = dashboard.compare_units(s, admin, sort="bound", descending=True, now=NOW)
        assert [u.name for u in by_bound][:2] == ["西湖社区党总支", "东湖社区党委"]
        sec = s.get(Member, people["sec"].id)
        assert not dashboard.compares_units(sec)  # a branch has nothing below to compare


def test_the_page_shows_the_figures_and_charts(client, console_login, people, district):
    console_login(client, people["admin"])
    page = client.get("/console/").get_data(as_text=True)
    assert page.count("<svg") == 3 and "近12个月出勤率" in page and "近12个月心愿" in page
    assert "下级组织对比" in page and "东湖社区党委" in page and "西湖社区党总支" in page
    assert "<script" not in page.split("<main")[1].split("</main>")[0]  # the charts need no script
    sorted_page = client.get("/console/communities?sort=bound&dir=desc").get_data(as_text=True)
    assert sorted_page.index("西湖社区党总支") < sorted_page.index("东湖社区党委")
    console_login(client, people["sec"])
    page = client.get("/console/").get_data(as_text=True)
    assert "下级组织对比" not in page and "李红梅" in page


def _members(engine, count: int) -> Member:
    """A community of `count` members in two branches, each with an activity, a sign-in, a wish."""
    with Session(engine, expire_on_commit=False) as s:
        boss_org = ensure_org_path(s, COMMUNITY)
        branches = [ensure_org_path(s, BRANCH), ensure_org_path(s, SECOND_BRANCH)]
        grid = ensure_grid(s, branches[0], "一网格")
        boss = Member(name="陈书记", phone="13700000000", org_id=boss_org.id, role="书记", kind="直管党员")
        s.add(boss)
        members = [Member(name=f"成员{n}", phone=f"137{n + 1:08d}", org_id=branches[n % 2].id, kind="在职党员",
                          grid_id=grid.id if n % 3 == 0 else None, openid=f"o-{n}" if n % 4 == 0 else None)
                   for n in range(count)]
        s.add_all(members)
        s.flush()
        start = datetime.now(UTC).replace(day=1, hour=8) if datetime.now(UTC).day > 1 else datetime.now(UTC)
        for n, member in enumerate(members):
            if n % 5 == 0:
                act = activity(s, BRANCH if n % 2 == 0 else SECOND_BRANCH, start - timedelta(days=n), title=f"活动{n}")
                check_in(s, act, member)
                wish(s, member, OPEN, created_at=start - timedelta(days=n))
        s.commit()
        return boss


def test_the_page_statements_do_not_grow_with_members(client, console_login, engine, count_statements):
    counts = []
    for size in (20, 200):
        db.session.remove()  # the app's session ends its transaction: PostgreSQL's TRUNCATE waits for none
        _clear(engine)
        boss = _members(engine, size)
        console_login(client, boss)
        client.get("/console/")  # the session's first request
        with count_statements() as counted:
            response = client.get("/console/")
        assert response.status_code == 200 and "未绑定微信的成员" in response.get_data(as_text=True)
        counts.append(counted.count)
    print("dashboard statements (20, 200 members):", counts)
    assert counts[0] == counts[1], counts
    assert counts[0] < 30


def test_the_navigation_links_only_the_pages_that_exist(app, client, console_login, people):
    from app.console.layout import SECTIONS

    console_login(client, people["sec"])
    nav = client.get("/console/").get_data(as_text=True).split('id="console-nav"')[1].split("</ul>")[0]
    shown = re.findall(r'<a class="nav-link[^"]*" href="([^"]+)"', nav)
    with app.test_request_context():
        from flask import url_for

        existing = [url_for(endpoint) for endpoint, _ in SECTIONS if endpoint in app.view_functions]
    assert shown == existing and {"/console/", "/console/members"} <= set(shown)
    assert 'aria-current="page"' in nav.split('href="/console/"')[1].split("</a>")[0]  # 首页 is the page shown
