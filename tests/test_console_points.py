"""The console's points page: a manual award filed by one manager and approved (or rejected) by a
second, the requester refused their own approval in the domain's words, the ranking, the pending
queue loaded without a query per award, and refusals (another branch, a plain member, a form
without its CSRF token)."""

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Member
from models.points import (
    AWARD_APPROVED,
    AWARD_PENDING,
    AWARD_REFUSED,
    ManualAward,
    PointEntry,
    balance,
    pending_awards,
    request_award,
)
from tests.console_activity_support import csrf_token, post_form


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), peer=cast.peer.bound(), wang=cast.wang.bound(), zhao=cast.zhao.bound(),
                zhou=cast.zhou.bound(), sun=cast.sun.bound())


def award_of(engine, award_id: int) -> ManualAward:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(ManualAward, award_id)


def requested(client, member: Member, amount="10", reason="参加社区义务巡逻") -> int:
    response = post_form(client, "/console/points/awards", {"member_id": str(member.id), "amount": amount,
                                                             "reason": reason})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    award_id = int(re.search(r"已提交积分申请 #(\d+)", page)[1])
    assert f"已提交积分申请 #{award_id}：{member.name} {int(amount):+d} 分，须由另一位书记或管理员批准后计入。" in page
    return award_id


def test_an_award_requested_by_one_manager_is_approved_by_another(client, engine, people, console_login):
    console_login(client, people["sec"])
    page = client.get("/console/points").get_data(as_text=True)
    options = re.findall(r'<option value="(\d+)" >([^<]+)</option>', page)
    names = {name.split("（")[0] for _, name in options}
    assert {"王志强", "赵秀英"} <= names and not names & {"李红梅", "钱副书记", "孙立", "周敏"}  # whom she may award
    award_id = requested(client, people["wang"])
    page = client.get("/console/points").get_data(as_text=True)
    assert f'id="award-{award_id}"' not in page and f'id="mine-{award_id}"' in page  # hers wait for someone else
    with Session(engine) as s:
        assert balance(s, people["wang"].id) == 0 and s.get(ManualAward, award_id).status == AWARD_PENDING

    own = post_form(client, f"/console/points/awards/{award_id}/approve", {})  # a crafted or stale form
    assert own.status_code == 403
    assert "录入人不能审批自己录入的积分，请由另一位书记或管理员审批。" in own.get_data(as_text=True)
    with Session(engine) as s:
        assert balance(s, people["wang"].id) == 0 and s.get(ManualAward, award_id).status == AWARD_PENDING

    console_login(client, people["peer"])
    page = client.get("/console/points").get_data(as_text=True)
    pending = page.split('id="pending"')[1].split('id="award-form"')[0]
    assert f'id="award-{award_id}"' in pending and "王志强" in pending and "李红梅 录入于" in pending
    assert "参加社区义务巡逻" in pending and 'id="pending-total">1<' in pending
    approved = post_form(client, f"/console/points/awards/{award_id}/approve", {"note": "属实"})
    assert approved.status_code == 302
    page = client.get("/console/points").get_data(as_text=True)
    assert f"积分申请 #{award_id}（王志强 +10 分）已批准，积分已计入。" in page
    award = award_of(engine, award_id)
    assert award.status == AWARD_APPROVED and award.decided_by_id == people["peer"].id and award.decision_note == "属实"
    with Session(engine) as s:
        entry = s.scalars(select(PointEntry).where(PointEntry.member_id == people["wang"].id)).one()
        assert (entry.amount, entry.source, entry.source_id, entry.recorded_by_id) == (
            10, "manual", str(award_id), people["sec"].id)
    ranking = page.split('id="ranking-table"')[1]
    assert re.search(r"<td>1</td><td>王志强</td><td>10</td>", ranking)
    again = post_form(client, f"/console/points/awards/{award_id}/approve", {})
    assert again.status_code == 409 and f"积分申请 #{award_id} 已处理过。" in again.get_data(as_text=True)
    with Session(engine) as s:
        assert balance(s, people["wang"].id) == 10


def test_a_rejected_award_never_reaches_the_ledger(client, engine, people, console_login):
    console_login(client, people["sec"])
    award_id = requested(client, people["zhao"], "-5", "重复记录，予以更正")
    console_login(client, people["peer"])
    rejected = post_form(client, f"/console/points/awards/{award_id}/reject", {"note": "核实无误，不需更正"})
    assert rejected.status_code == 302
    assert f"积分申请 #{award_id}（赵秀英 -5 分）已驳回。" in client.get("/console/points").get_data(as_text=True)
    assert award_of(engine, award_id).status == AWARD_REFUSED
    with Session(engine) as s:
        assert s.scalar(select(PointEntry.id)) is None
    console_login(client, people["sec"])
    mine = client.get("/console/points").get_data(as_text=True).split(f'id="mine-{award_id}"')[1].split("</tr>")[0]
    assert AWARD_REFUSED in mine and "审批意见：核实无误，不需更正" in mine


def test_a_wrong_award_form_is_shown_again_in_chinese(client, engine, people, console_login):
    console_login(client, people["sec"])
    for data, words in (({"amount": "十分", "reason": "巡逻"}, "积分数应为整数（扣减请写负数，例如 -5）。"),
                        ({"amount": "0", "reason": "巡逻"}, "积分数不能为0。"),
                        ({"amount": "10", "reason": "  "}, "手动录入积分必须填写原因。"),
                        ({"amount": "100000", "reason": "巡逻"}, "积分数")):
        response = post_form(client, "/console/points/awards", {"member_id": str(people["wang"].id), **data})
        page = response.get_data(as_text=True)
        assert response.status_code in (400, 422) and words in page.split('id="action-error"')[1].split("</div>")[0]
        assert 'id="request-button"' in page  # the form is there to try again
    peer = post_form(client, "/console/points/awards", {"member_id": str(people["peer"].id), "amount": "5",
                                                        "reason": "值班"})
    assert peer.status_code == 403
    assert "不能为自己或同级的书记、管理员录入积分，请由上级录入。" in peer.get_data(as_text=True)
    with Session(engine) as s:
        assert s.scalar(select(ManualAward.id)) is None


def test_another_branch_neither_awards_nor_approves(client, engine, people, console_login):
    console_login(client, people["sec"])
    award_id = requested(client, people["wang"])
    console_login(client, people["zhou"])
    page = client.get("/console/points").get_data(as_text=True)
    assert "王志强" not in page and f'id="award-{award_id}"' not in page and "孙立" in page
    outside = post_form(client, "/console/points/awards", {"member_id": str(people["wang"].id), "amount": "5",
                                                           "reason": "越权"})
    assert outside.status_code == 403 and "只能为本组织及下级组织的成员录入积分。" in outside.get_data(as_text=True)
    approve = post_form(client, f"/console/points/awards/{award_id}/approve", {})
    assert approve.status_code == 403 and "只有负责该成员的上级书记或管理员可以审批" in approve.get_data(as_text=True)
    unknown = post_form(client, "/console/points/awards/999999/approve", {})
    assert unknown.status_code == 404 and "未找到积分申请 #999999。" in unknown.get_data(as_text=True)
    assert award_of(engine, award_id).status == AWARD_PENDING
    with Session(engine) as s:
        assert s.scalar(select(ManualAward.id).where(ManualAward.reason == "越权")) is None


def test_a_plain_member_and_a_form_without_csrf_are_refused(client, engine, people, console_login):
    console_login(client, people["sec"])
    award_id = requested(client, people["wang"])
    console_login(client, people["wang"])
    response = client.get("/console/points")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    console_login(client, people["peer"])
    csrf_token(client, "/console/points")
    for path, data in ((f"/console/points/awards/{award_id}/approve", {}),
                       ("/console/points/awards", {"member_id": str(people["zhao"].id), "amount": "5", "reason": "x"})):
        refused = client.post(path, data=data)
        assert refused.status_code == 400 and "页面已过期" in refused.get_data(as_text=True)
    assert award_of(engine, award_id).status == AWARD_PENDING
    with Session(engine) as s:
        assert s.scalar(select(ManualAward.id).where(ManualAward.member_id == people["zhao"].id)) is None


def test_the_points_page_costs_the_same_for_2_and_for_12_pending_awards(client, engine, people, console_login,
                                                                       make_member, count_statements):
    def file(count: int, start: int) -> None:
        with Session(engine) as s:
            for n in range(start, start + count):
                # Each award for a member of their own group, filed by a secretary of their own.
                group = f"滨江街道党工委/东湖社区党委/东湖社区第一党支部/第{n}党小组"
                member = make_member(f"党员{n}", f"1350000{n:04d}", org=group)
                filer = make_member(f"组长{n}", f"1340000{n:04d}", org="滨江街道党工委/东湖社区党委/东湖社区第一党支部",
                                    role="书记")
                request_award(s, s.get(Member, filer.id), member.id, n + 1, f"志愿服务{n}")

    console_login(client, people["sec"])
    file(2, 0)
    client.get("/console/points")
    with count_statements() as few:
        assert client.get("/console/points").status_code == 200
    file(10, 2)
    with count_statements() as many:
        page = client.get("/console/points").get_data(as_text=True)
    assert 'id="pending-total">12<' in page and "组长11 录入于" in page and "第11党小组" in page
    assert many.count == few.count, many.statements


def test_pending_awards_load_their_members_and_requesters_at_once(engine, people, make_member, count_statements):
    def file(count: int, start: int) -> None:
        with Session(engine) as s:
            for n in range(start, start + count):
                group = f"滨江街道党工委/东湖社区党委/东湖社区第一党支部/第{n}党小组"
                member = make_member(f"党员{n}", f"1350000{n:04d}", org=group)
                filer = make_member(f"组长{n}", f"1340000{n:04d}", org=group.rsplit("/", 1)[0], role="书记")
                request_award(s, s.get(Member, filer.id), member.id, n + 1, f"志愿服务{n}")

    def shown() -> tuple[int, list[str]]:
        with Session(engine) as s, count_statements() as counted:
            approver = s.get(Member, people["sec"].id)
            lines = [f"{a.member.name} {a.member.org.name} {a.requested_by.name}" for a in pending_awards(s, approver)]
        return counted.count, lines

    file(2, 0)
    few, _ = shown()
    file(10, 2)
    many, lines = shown()
    assert len(lines) == 12 and lines[-1] == "党员11 第11党小组 组长11"
    assert many == few
