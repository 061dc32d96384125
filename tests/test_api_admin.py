"""/api/v1/admin: members listed, viewed, edited, imported and exported within the caller's subtree."""

import io

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Member
from tests.conftest import BRANCH, GROUP, OTHER_BRANCH, STREET, org_id
from tests.test_api_auth import assert_error

EAST = f"{STREET}/东湖社区党委"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec.but(grid="东湖一网格"), co_sec=cast.peer,
                member=cast.wang.but(kind="在职党员"), group_member=cast.zhao.but(org=GROUP, kind="离退休党员"),
                other_sec=cast.zhou, other_member=cast.sun.but(kind="在职党员"))




# Listing -----------------------------------------------------------------------------------------
def test_secretary_lists_their_subtree_paged(api_client, as_, people):
    response = api_client.get("/api/v1/admin/members?per_page=2", headers=as_("sec"))
    body = response.get_json()
    assert response.status_code == 200
    assert body["total"] == 4 and body["pages"] == 2 and body["page"] == 1 and len(body["items"]) == 2
    second = api_client.get("/api/v1/admin/members?per_page=2&page=2", headers=as_("sec")).get_json()
    names = {m["name"] for m in body["items"] + second["items"]}
    assert names == {"李红梅", "钱副书记", "王志强", "赵秀英"}
    by_name = {m["name"]: m for m in body["items"] + second["items"]}
    # Full phones for those they are responsible for; their peer secretary's is masked.
    assert by_name["王志强"]["phone"] == "13800000003" and by_name["王志强"]["masked"] is False
    assert by_name["赵秀英"]["join_date"] == "2001-07-01"
    assert by_name["钱副书记"]["phone"] == "138****0009" and by_name["钱副书记"]["masked"] is True
    assert by_name["钱副书记"]["join_date"] is None
    assert by_name["李红梅"]["phone"] == "13800000002"  # themself
    assert by_name["李红梅"]["grid"] == "东湖一网格"


def test_listing_filters(api_client, as_, engine):
    headers = as_("admin")
    assert api_client.get("/api/v1/admin/members", headers=headers).get_json()["total"] == 7
    body = api_client.get(f"/api/v1/admin/members?org={org_id(engine, OTHER_BRANCH)}", headers=headers).get_json()
    assert {m["name"] for m in body["items"]} == {"周敏", "孙立"}
    body = api_client.get("/api/v1/admin/members?kind=在职党员", headers=headers).get_json()
    assert {m["name"] for m in body["items"]} == {"王志强", "孙立"}
    body = api_client.get("/api/v1/admin/members?q=赵", headers=headers).get_json()
    assert [m["name"] for m in body["items"]] == ["赵秀英"]
    body = api_client.get("/api/v1/admin/members?q=0008", headers=headers).get_json()
    assert [m["name"] for m in body["items"]] == ["孙立"]
    body = api_client.get("/api/v1/admin/members?q=%25", headers=headers).get_json()  # a literal %
    assert body["total"] == 0
    body = api_client.get("/api/v1/admin/members?org=&kind=&q=&page=", headers=headers).get_json()
    assert body["total"] == 7 and body["page"] == 1  # blank filters are no filters


def test_listing_outside_the_subtree_is_403(api_client, as_, engine):
    for org in (STREET, EAST, OTHER_BRANCH):
        response = api_client.get(f"/api/v1/admin/members?org={org_id(engine, org)}", headers=as_("sec"))
        assert_error(response, 403, "forbidden")
    response = api_client.get(f"/api/v1/admin/members?org={org_id(engine, GROUP)}", headers=as_("sec"))
    assert [m["name"] for m in response.get_json()["items"]] == ["赵秀英"]
    assert_error(api_client.get("/api/v1/admin/members?org=999999", headers=as_("sec")), 404, "not_found")


def test_plain_members_and_unbound_users_may_not_administer(api_client, as_, api_login):
    unbound = api_login(openid="mp-nobody")
    for headers, code in ((as_("member"), "forbidden"), (unbound, "not_bound")):
        for path in ("/api/v1/admin/members", "/api/v1/admin/orgs", "/api/v1/admin/members/export"):
            assert_error(api_client.get(path, headers=headers), 403, code)


def test_listing_validation(api_client, as_):
    body = assert_error(api_client.get("/api/v1/admin/members?page=0&per_page=1000&kind=x", headers=as_("sec")),
                        422, "invalid")
    fields = body["details"]["fields"]["query"]
    assert set(fields) == {"page", "per_page", "kind"}
    assert fields["per_page"] == ["应在1到100之间"] and fields["kind"][0].startswith("取值应为：直管党员")


# One member --------------------------------------------------------------------------------------
def test_get_member_within_and_across_branches(api_client, as_, people):
    response = api_client.get(f"/api/v1/admin/members/{people['member'].id}", headers=as_("sec"))
    assert response.status_code == 200 and response.get_json()["phone"] == "13800000003"
    assert response.get_json()["org"]["full_name"] == BRANCH
    assert_error(api_client.get(f"/api/v1/admin/members/{people['other_member'].id}", headers=as_("sec")),
                 403, "forbidden")
    assert_error(api_client.get("/api/v1/admin/members/99999", headers=as_("sec")), 404, "not_found")
    assert_error(api_client.get(f"/api/v1/admin/members/{2**70}", headers=as_("sec")), 404, "not_found")
    # A member may see their own record this way too, not others'.
    assert api_client.get(f"/api/v1/admin/members/{people['member'].id}", headers=as_("member")).status_code == 200
    assert_error(api_client.get(f"/api/v1/admin/members/{people['sec'].id}", headers=as_("member")),
                 403, "forbidden")


def test_patch_member(api_client, as_, people, engine):
    target = people["member"]
    response = api_client.patch(f"/api/v1/admin/members/{target.id}", headers=as_("sec"), json={
        "name": "王志强", "phone": "139 0000 1111", "kind": "直管党员", "join_date": "2011-07-01",
        "org_id": org_id(engine, GROUP), "grid": "东湖二网格",
    })
    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["phone"], body["kind"], body["join_date"], body["org"]["full_name"], body["grid"]) == (
        "13900001111", "直管党员", "2011-07-01", GROUP, "东湖二网格")
    with Session(engine) as s:
        assert s.get(Member, target.id).phone == "13900001111"
    response = api_client.patch(f"/api/v1/admin/members/{target.id}", headers=as_("sec"), json={"grid": None})
    assert response.get_json()["grid"] is None


def test_patch_refusals(api_client, as_, people, engine):
    target = f"/api/v1/admin/members/{people['member'].id}"
    sec = as_("sec")
    # Cross-branch: neither their member, nor a move of ours into another branch.
    assert_error(api_client.patch(f"/api/v1/admin/members/{people['other_member'].id}", headers=sec,
                                  json={"name": "改名"}), 403, "forbidden")
    body = assert_error(api_client.patch(target, headers=sec, json={"org_id": org_id(engine, OTHER_BRANCH)}),
                        403, "forbidden")
    assert "管理范围" in body["message"]
    assert_error(api_client.patch(target, headers=sec, json={"role": "管理员"}), 403, "forbidden")
    assert_error(api_client.patch(target, headers=sec, json={"role": "书记"}), 403, "forbidden")  # a peer
    assert_error(api_client.patch(f"/api/v1/admin/members/{people['sec'].id}", headers=sec,
                                  json={"role": "党员"}), 403, "forbidden")  # themself
    assert_error(api_client.patch(f"/api/v1/admin/members/{people['co_sec'].id}", headers=sec,
                                  json={"name": "x"}), 403, "forbidden")  # a peer
    assert_error(api_client.patch(target, headers=as_("member"), json={"name": "x"}), 403, "forbidden")
    # Input errors.
    assert_error(api_client.patch(target, headers=sec, json={"phone": "13800000002"}), 409, "conflict")
    assert_error(api_client.patch(target, headers=sec, json={"phone": "123"}), 422, "invalid")
    assert_error(api_client.patch(target, headers=sec, json={"name": "  "}), 422, "invalid")
    assert_error(api_client.patch(target, headers=sec, json={"org_id": 999999}), 422, "org_not_found")
    body = assert_error(api_client.patch(target, headers=sec, json={"kind": "外星人", "id": 3}), 422, "invalid")
    assert set(body["details"]["fields"]["json"]) == {"kind", "id"}
    with Session(engine) as s:
        unchanged = s.get(Member, people["member"].id)
        assert (unchanged.name, unchanged.phone, unchanged.role) == ("王志强", "13800000003", "党员")


def test_full_member_date_shown_to_those_responsible_and_patched(api_client, as_, people, engine):
    target = f"/api/v1/admin/members/{people['member'].id}"
    sec = as_("sec")
    assert api_client.get(target, headers=sec).get_json()["full_member_date"] is None
    response = api_client.patch(target, headers=sec, json={"full_member_date": "2002-07-01"})
    assert response.status_code == 200 and response.get_json()["full_member_date"] == "2002-07-01"
    with Session(engine) as s:
        assert s.get(Member, people["member"].id).full_member_date.isoformat() == "2002-07-01"
    # Private like the join date: masked for a peer secretary's record, shown to the member themself.
    listing = api_client.get("/api/v1/admin/members?q=王志强", headers=sec).get_json()["items"]
    assert listing[0]["full_member_date"] == "2002-07-01"
    assert api_client.get(target, headers=as_("member")).get_json()["full_member_date"] == "2002-07-01"
    api_client.patch(f"/api/v1/admin/members/{people['co_sec'].id}", headers=as_("admin"),
                     json={"full_member_date": "2003-01-01"})
    peer = api_client.get("/api/v1/admin/members?q=钱副书记", headers=sec).get_json()["items"][0]
    assert peer["masked"] is True and peer["full_member_date"] is None
    # Not in the future, not before joining (2001-07-01); null clears it.
    body = assert_error(api_client.patch(target, headers=sec, json={"full_member_date": "2999-01-01"}),
                        422, "invalid")
    assert body["message"] == "转正日期不能晚于今天。"
    body = assert_error(api_client.patch(target, headers=sec, json={"full_member_date": "2000-07-01"}),
                        422, "invalid")
    assert body["message"] == "转正日期不能早于入党日期。"
    assert_error(api_client.patch(target, headers=sec, json={"join_date": "2003-07-01"}), 422, "invalid")
    assert_error(api_client.patch(target, headers=sec, json={"full_member_date": "七月一日"}), 422, "invalid")
    response = api_client.patch(target, headers=sec, json={"full_member_date": None})
    assert response.status_code == 200 and response.get_json()["full_member_date"] is None
    assert response.get_json()["join_date"] == "2001-07-01"  # the refused change left nothing behind


def test_admin_may_promote_a_secretary_below(api_client, as_, people):
    response = api_client.patch(f"/api/v1/admin/members/{people['member'].id}", headers=as_("admin"),
                                json={"role": "书记"})
    assert response.status_code == 200 and response.get_json()["role"] == "书记"


# Import and export -------------------------------------------------------------------------------
def xlsx(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["姓名", "手机号", "所属组织", "党员类别", "入党日期", "角色", "网格"])
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def upload(client, headers, data: bytes, filename: str, dry_run=False):
    url = "/api/v1/admin/members/import" + ("?dry_run=1" if dry_run else "")
    return client.post(url, headers=headers, data={"file": (io.BytesIO(data), filename)},
                        content_type="multipart/form-data")


def count(engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count(Member.id)))


def test_import_dry_run_then_real(api_client, as_, engine):
    data = xlsx([("新党员", "13700000001", GROUP, "直管", "2020-07-01", "", ""),
                 ("王志强", "13800000003", BRANCH, "在职党员", "2001-07-01", "党员", "")])
    before = count(engine)
    body = upload(api_client, as_("sec"), data, "名册.xlsx", dry_run=True).get_json()
    assert body["ok"] and body["dry_run"] and (body["created"], body["updated"], body["unchanged"]) == (1, 0, 1)
    assert "试运行" in body["summary"] and count(engine) == before
    response = upload(api_client, as_("sec"), data, "名册.xlsx")
    body = response.get_json()
    assert response.status_code == 200 and body["ok"] and not body["dry_run"] and body["created"] == 1
    assert count(engine) == before + 1


def test_import_rows_outside_the_subtree_are_refused_all_or_nothing(api_client, as_, engine):
    csv_data = "\n".join([
        "姓名,手机号,所属组织,党员类别,入党日期,角色,网格",
        f"新人,13700000002,{GROUP},直管党员,2020-07-01,党员",
        f"越界,13700000003,{OTHER_BRANCH},直管党员,2020-07-01,党员",
        f"孙立,13800000008,{BRANCH},在职党员,2001-07-01,党员",  # another branch's member
        f"钱副书记,13800000009,{BRANCH},直管党员,2001-07-01,党员",  # a peer demoted
        f"王志强,13800000003,{BRANCH},在职党员,2001-07-01,管理员",
        f"李红梅,13800000002,{BRANCH},直管党员,2001-07-01,书记,东湖一网格",  # themself, unchanged: fine
        "坏行,123,,外星人,明天,",
    ]).encode("utf-8")
    before = count(engine)
    body = upload(api_client, as_("sec"), csv_data, "members.csv").get_json()
    assert not body["ok"]
    reasons = {e["row"]: e["reason"] for e in body["errors"]}
    assert set(reasons) == {3, 4, 5, 6, 8}
    assert "管理范围" in reasons[3] and "管理范围之外" in reasons[4]
    assert "同级" in reasons[5] and "管理员" in reasons[6] and "手机号" in reasons[8]
    assert count(engine) == before


def test_import_bad_files(api_client, as_, people):
    headers = as_("sec")
    assert_error(upload(api_client, headers, b"PK\x03\x04 broken", "x.xlsx"), 400, "bad_file")
    assert_error(upload(api_client, headers, b"a,b\n1,2\n", "x.csv"), 400, "bad_file")
    assert_error(upload(api_client, headers, b"hello", "x.txt"), 400, "bad_file")
    body = assert_error(api_client.post("/api/v1/admin/members/import", headers=headers, data={},
                                        content_type="multipart/form-data"), 422, "invalid")
    assert "file" in body["details"]["fields"]["files"]
    assert_error(upload(api_client, as_("member"), b"x", "x.csv"), 403, "forbidden")


def test_import_size_limit(app_factory, api_login, people):
    client = app_factory(API_MAX_UPLOAD=100).test_client()
    headers = api_login(people["sec"], client=client)
    assert_error(upload(client, headers, b"x" * 101, "big.csv"), 413, "too_large")
    # Far too large: refused while reading the body, before anything is parsed.
    body = assert_error(upload(client, headers, b"x" * 200_000, "huge.csv"), 413, "too_large")
    assert body["message"] == "上传的内容过大。"


def test_export_is_the_callers_subtree_and_reimports_unchanged(api_client, as_):
    response = api_client.get("/api/v1/admin/members/export", headers=as_("sec"))
    assert response.status_code == 200 and response.content_type == XLSX
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("姓名", "手机号", "所属组织")
    assert {r[0] for r in rows[1:]} == {"李红梅", "钱副书记", "王志强", "赵秀英"}
    phones = {r[0]: r[1] for r in rows[1:]}
    # What the caller's listing shows: a peer secretary's phone masked, those responsible for in full.
    assert phones["钱副书记"] == "138****0009" and phones["王志强"] == "13800000003"
    body = upload(api_client, as_("sec"), response.data, "members.xlsx").get_json()
    assert body["ok"] and body["unchanged"] == 4 and body["created"] == body["updated"] == 0


# The org tree ------------------------------------------------------------------------------------
def test_org_tree_with_member_counts(api_client, as_):
    tree = api_client.get("/api/v1/admin/orgs", headers=as_("admin")).get_json()
    assert (tree["full_name"], tree["members"], tree["total_members"]) == (STREET, 1, 7)
    east = next(c for c in tree["children"] if c["name"] == "东湖社区党委")
    (branch,) = east["children"]
    assert (branch["members"], branch["total_members"], branch["level_name"]) == (3, 4, "党支部")
    assert branch["children"][0]["name"] == "第一党小组" and branch["children"][0]["total_members"] == 1
    mine = api_client.get("/api/v1/admin/orgs", headers=as_("sec")).get_json()
    assert mine["full_name"] == BRANCH and mine["total_members"] == 4
