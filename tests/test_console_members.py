"""The console's member pages: search and filters, edit, freeing a binding, the import's preview and
its near-duplicate organizations, export, the template workbook, and the refusals."""

import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Member, Organization
from models.bindings import BindingRelease
from models.outbox import OutboxMessage
from models.roster import COLUMNS
from tests.conftest import BRANCH, COMMUNITY, Person

TYPO = f"{COMMUNITY}/东湖社区第一党支布"  # one character off 东湖社区第一党支部


@pytest.fixture
def people(cast):
    return cast(
        boss=Person("陈书记", "13800000010", org=COMMUNITY, role="书记", wechat="o-boss"),
        sec=cast.sec.bound(),
        wang=cast.wang.bound().but(kind="在职党员", grid="一网格"),
        zhao=cast.zhao,
        liu=cast.liu,
        sun=cast.sun.bound(),
    )


def token_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html)[1]


def signed_in(client, console_login, member) -> str:
    """Sign `client` in as `member`; the CSRF token of their console session."""
    console_login(client, member)
    response = client.get("/console/members")
    assert response.status_code == 200
    return token_of(response.get_data(as_text=True))


def names_in(html: str) -> list[str]:
    table = html.split('id="members"')[1].split("</table>")[0]
    return re.findall(r'/console/members/\d+">([^<]+)</a>', table)


def xlsx(rows, header=COLUMNS[:4]) -> bytes:
    book = Workbook()
    book.active.append(list(header))
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_search_and_filters(client, console_login, people, engine):
    signed_in(client, console_login, people["boss"])
    every = names_in(client.get("/console/members").get_data(as_text=True))
    assert set(every) >= {"王志强", "赵秀英", "刘洋", "李红梅"} and "孙立" not in every  # another community
    assert names_in(client.get("/console/members?q=志强").get_data(as_text=True)) == ["王志强"]
    assert names_in(client.get("/console/members?q=13800000004").get_data(as_text=True)) == ["赵秀英"]
    assert names_in(client.get("/console/members?kind=群众").get_data(as_text=True)) == ["刘洋"]
    unbound = names_in(client.get("/console/members?bound=no").get_data(as_text=True))
    assert "赵秀英" in unbound and "王志强" not in unbound and "李红梅" not in unbound
    bound = names_in(client.get("/console/members?bound=yes").get_data(as_text=True))
    assert "王志强" in bound and "赵秀英" not in bound
    with Session(engine) as s:
        grid_id = s.get(Member, people["wang"].id).grid_id
        branch_id = s.scalars(select(Organization.id).where(Organization.full_name == BRANCH)).one()
        community_id = s.scalars(select(Organization.id).where(Organization.full_name == COMMUNITY)).one()
    assert names_in(client.get(f"/console/members?grid={grid_id}").get_data(as_text=True)) == ["王志强"]
    in_branch = names_in(client.get(f"/console/members?org={branch_id}").get_data(as_text=True))
    assert "陈书记" not in in_branch and "王志强" in in_branch
    assert "陈书记" in names_in(client.get(f"/console/members?org={community_id}").get_data(as_text=True))


def test_edit_a_member(client, console_login, people, engine):
    token = signed_in(client, console_login, people["sec"])
    wang = people["wang"]
    page = client.get(f"/console/members/{wang.id}").get_data(as_text=True)
    assert "王志强" in page and "13800000003" in page
    response = client.post(f"/console/members/{wang.id}", data={
        "csrf_token": token, "name": "王志刚", "phone": "13800000003", "kind": "离退休党员", "role": "党员",
        "org_id": "", "join_date": "2001-07-01", "full_member_date": "", "grid": "二网格", "active": "1"})
    assert response.status_code == 302
    assert "已保存" in client.get(response.headers["Location"]).get_data(as_text=True)
    with Session(engine) as s:
        member = s.get(Member, wang.id)
        assert (member.name, member.kind, member.grid.name) == ("王志刚", "离退休党员", "二网格")
    # A refusal of the domain is shown on the page, not a 500.
    response = client.post(f"/console/members/{wang.id}", data={
        "csrf_token": token, "name": "王志刚", "phone": "13800000004", "kind": "离退休党员", "role": "党员",
        "active": "1"})
    assert response.status_code == 409 and "该手机号已登记为其他成员" in response.get_data(as_text=True)


def test_free_a_binding_with_a_reason(client, console_login, people, engine):
    token = signed_in(client, console_login, people["sec"])
    wang = people["wang"]
    refused = client.post(f"/console/members/{wang.id}/unbind", data={"csrf_token": token, "reason": ""})
    assert "请填写解除绑定的原因" in client.get(refused.headers["Location"]).get_data(as_text=True)
    response = client.post(f"/console/members/{wang.id}/unbind", data={"csrf_token": token, "reason": "手机丢失"})
    assert "已解除「王志强」的微信绑定" in client.get(response.headers["Location"]).get_data(as_text=True)
    with Session(engine) as s:
        assert s.get(Member, wang.id).openid is None
        release = s.scalars(select(BindingRelease)).one()
        assert (release.member_id, release.released_by_id, release.reason, release.openid) == (
            wang.id, people["sec"].id, "手机丢失", "o-wang")
        told = s.scalars(select(OutboxMessage).where(OutboxMessage.member_id == wang.id)).one()
        assert told.title == "您的微信绑定已解除" and "手机丢失" in told.body and "李红梅" in told.body


def test_import_preview_flags_a_near_duplicate_and_needs_the_tick(client, console_login, people, engine):
    token = signed_in(client, console_login, people["boss"])
    data = xlsx([
        ("新党员", "13900000101", TYPO, "直管党员"),
        ("王志强", "13800000003", BRANCH, "离退休党员"),
    ])
    response = client.post("/console/members/import", data={
        "csrf_token": token, "file": (io.BytesIO(data), "名册.xlsx")}, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "东湖社区第一党支布 — 是否为 东湖社区第一党支部？" in page
    assert 'name="create_orgs"' in page
    assert "新党员" in page.split('id="created"')[1].split("</table>")[0]
    updated = page.split('id="updated"')[1].split("</table>")[0]
    assert "王志强" in updated and "在职党员" in updated and "离退休党员" in updated  # old → new
    upload = re.search(r'name="token" value="([^"]+)"', page)[1]
    with Session(engine) as s:
        assert s.scalars(select(Member).where(Member.phone == "13900000101")).first() is None  # nothing written

    refused = client.post("/console/members/import/apply", data={"csrf_token": token, "token": upload})
    assert refused.status_code == 422 and "未导入任何数据" in refused.get_data(as_text=True)
    with Session(engine) as s:
        assert s.scalars(select(Organization).where(Organization.full_name == TYPO)).first() is None
        assert s.get(Member, people["wang"].id).kind == "在职党员"

    applied = client.post("/console/members/import/apply", data={"csrf_token": token, "token": upload,
                                                                 "create_orgs": "1"})
    assert applied.status_code == 302
    with Session(engine) as s:
        assert s.scalars(select(Organization).where(Organization.full_name == TYPO)).one()
        assert s.scalars(select(Member).where(Member.phone == "13900000101")).one().org.full_name == TYPO
        assert s.get(Member, people["wang"].id).kind == "离退休党员"
    # The kept file is gone once applied.
    again = client.post("/console/members/import/apply", data={"csrf_token": token, "token": upload})
    assert "已过期" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_import_of_another_community_is_refused_row_by_row(client, console_login, people, engine):
    token = signed_in(client, console_login, people["sec"])
    data = xlsx([("外人", "13900000102", "滨江街道党工委/西湖社区党总支/西湖社区党支部", "直管党员")])
    page = client.post("/console/members/import", data={
        "csrf_token": token, "file": (io.BytesIO(data), "名册.xlsx")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert "第 2 行" in page and 'name="token"' not in page  # nothing to apply


def test_export_and_template(client, console_login, people):
    signed_in(client, console_login, people["sec"])
    response = client.get("/console/members/export")
    assert response.status_code == 200
    rows = list(load_workbook(io.BytesIO(response.data)).active.values)
    assert rows[0] == COLUMNS
    assert "王志强" in [row[0] for row in rows[1:]] and "孙立" not in [row[0] for row in rows[1:]]
    template = list(load_workbook(io.BytesIO(client.get("/console/members/template").data)).active.values)
    assert template[0] == COLUMNS and len(template) == 2 and template[1][0] == "张三"


def test_another_communitys_member_is_not_shown(client, console_login, people):
    token = signed_in(client, console_login, people["sec"])
    sun = people["sun"]
    assert client.get(f"/console/members/{sun.id}").status_code in (403, 404)
    assert client.post(f"/console/members/{sun.id}/unbind",
                       data={"csrf_token": token, "reason": "x"}).status_code in (403, 404)
    assert client.get("/console/members/999999").status_code == 404


def test_a_post_without_the_csrf_token_is_refused(client, console_login, people, engine):
    signed_in(client, console_login, people["sec"])
    wang = people["wang"]
    assert client.post(f"/console/members/{wang.id}/unbind", data={"reason": "手机丢失"}).status_code == 400
    assert client.post(f"/console/members/{wang.id}", data={"name": "改名"}).status_code == 400
    with Session(engine) as s:
        assert s.get(Member, wang.id).openid == "o-wang" and s.get(Member, wang.id).name == "王志强"
