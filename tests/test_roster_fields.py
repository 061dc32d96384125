"""One table of field rules (models.member.FIELDS) for an edit through the API and a roster row,
and the import's permission rule (models.authz.import_row_problem)."""

import re
from datetime import date, timedelta

import pytest

from models import Member
from models import authz as az
from models.base import DomainError
from models.directory import update_member
from models.member import FIELDS, dates_in_order
from models.roster import import_members
from tests.conftest import BRANCH, OTHER_BRANCH

STREET = "滨江街道党工委"
TODAY = date(2026, 12, 1)
FUTURE = TODAY + timedelta(days=400)  # later than today wherever the test runs for a year


@pytest.fixture
def people(make_member, session):
    made = {
        "admin": make_member("张建国", org=STREET, role="管理员"),
        "sec": make_member("李红梅", org=BRANCH, role="书记"),
        "co_sec": make_member("钱副书记", org=BRANCH, role="书记"),
        "member": make_member("王志强", org=BRANCH),
        "other_member": make_member("孙立", org=OTHER_BRANCH, kind="在职党员"),
    }
    return {key: session.get(Member, m.id) for key, m in made.items()}


def test_every_wording_of_every_rule_formats():
    for rule in FIELDS.values():
        for words in (rule.edit, rule.row):
            for problem in words:
                text = (rule.edit_error(problem, "x").message if words is rule.edit
                        else rule.row_reason(problem, "x"))
                assert text and "{" not in text, (rule.key, problem)
                assert not re.search("发送|/api/", text)  # the domain names no command or endpoint


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("name", "", "empty"), ("name", "张" * 51, "long"), ("name", "张三", None),
    ("phone", "", "empty"), ("phone", "1" * 31, "long"), ("phone", "12345", "invalid"),
    ("phone", "+86 138-0000-0001", None),
    ("kind", "党员", "invalid"), ("kind", "直管党员", None), ("kind", None, "invalid"),
    ("role", "主任", "invalid"), ("role", "书记", None),
    ("join_date", FUTURE, "future"), ("join_date", TODAY, None), ("join_date", None, None),
    ("full_member_date", FUTURE, "future"),
    ("grid", "网" * 101, "long"), ("grid", "", None),
    ("grid_head", (True, False), "no_grid"), ("grid_head", (True, True), None), ("grid_head", (False, False), None),
    ("org", "", "empty"), ("org", "组" * 101, "long"), ("org", BRANCH, None),
])
def test_rules(key, value, problem):
    assert FIELDS[key].check(value, TODAY) == problem


def test_dates_in_order():
    assert dates_in_order(date(2001, 7, 1), date(2002, 7, 1))
    assert not dates_in_order(date(2002, 7, 1), date(2001, 7, 1))
    assert dates_in_order(None, date(2001, 7, 1)) and dates_in_order(date(2001, 7, 1), None)


ROW = {"姓名": "新党员", "手机号": "13700000001", "所属组织": BRANCH, "党员类别": "直管党员"}


@pytest.mark.parametrize(("change", "column", "edit_words", "row_words"), [
    ({"name": "张" * 51}, {"姓名": "张" * 51}, "姓名太长了", "姓名过长"),
    ({"phone": "12345"}, {"手机号": "12345"}, "手机号应为11位手机号。", "手机号「12345」不是11位手机号"),
    ({"kind": "党员"}, {"党员类别": "党"}, "党员类别应为", "党员类别应为"),
    ({"role": "主任"}, {"角色": "主任"}, "角色应为", "角色应为"),
    ({"join_date": FUTURE}, {"入党日期": FUTURE.isoformat()}, "入党日期不能晚于今天。", "入党日期晚于今天"),
    ({"full_member_date": date(1990, 1, 1)}, {"入党日期": "2001-07-01", "转正日期": "1990-01-01"},
     "转正日期不能早于入党日期。", "转正日期早于入党日期"),
    ({"grid_head": True}, {"网格长": "是"}, "请先设置该成员所在的网格", "网格长须填写所在网格"),
])
def test_an_edit_and_a_roster_row_refuse_the_same_values(session, people, change, column, edit_words, row_words):
    with pytest.raises(DomainError) as refused:
        update_member(session, people["sec"], people["member"].id, change)
    assert edit_words in refused.value.message
    session.rollback()
    report = import_members(session, [{**ROW, **column}], today=date.today())
    assert not report.ok and row_words in report.errors[0].reason


# The import's permission rule: (actor, the row's organization, role, the existing member) → refusal.
@pytest.mark.parametrize(("actor", "org", "role", "existing", "refusal"), [
    ("sec", BRANCH, "党员", None, None),  # a new member of their own node
    ("sec", BRANCH, "党员", "member", None),  # an ordinary member of their node
    ("sec", BRANCH, "党员", "sec", "不能通过导入修改您自己的信息"),
    ("sec", BRANCH, "书记", "co_sec", "不能修改与您同级的书记或管理员"),
    ("sec", OTHER_BRANCH, "在职党员", "other_member", "该手机号已登记为您管理范围之外的成员，不能修改"),
    ("sec", OTHER_BRANCH, "党员", None, f"组织「{OTHER_BRANCH}」不在您的管理范围内"),
    ("sec", BRANCH, "管理员", None, "只有管理员可以设置管理员角色"),
    ("sec", BRANCH, "书记", None, "不能设置与您同级的书记或管理员"),
    ("admin", OTHER_BRANCH, "书记", "other_member", None),
])
def test_import_row_problem(people, actor, org, role, existing, refusal):
    target = people[existing] if existing else None
    assert az.import_row_problem(people[actor], org, role, target) == refusal
