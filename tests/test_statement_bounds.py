"""Lists cost what a page is, not what it holds: the statements a request runs do not grow with the
rows it returns (no query per row for an organization, a grid, a poster or a claimer)."""

from datetime import timedelta

from sqlalchemy.orm import Session

from models import Member, now_utc
from models.activity import NewActivity, create_activity
from models.org import get_org_by_full_name
from tests.conftest import BRANCH, COMMUNITY, OTHER_BRANCH, SECOND_BRANCH, STREET

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
