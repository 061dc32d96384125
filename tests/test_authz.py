"""The one authorization rule set (models.authz): roles × actions × targets, cross-branch included."""

import pytest

from models import Member, Organization
from models import authz as az
from models.base import Forbidden
from models.org import get_org_by_full_name
from tests.conftest import BRANCH, GROUP, OTHER_BRANCH, STREET

EAST = f"{STREET}/东湖社区党委"


@pytest.fixture
def people(cast, session):
    made = cast(admin=cast.admin, sec=cast.sec, co_sec=cast.peer, member=cast.wang,
                group_member=cast.zhao.but(org=GROUP, kind="离退休党员"), volunteer=cast.liu, other_sec=cast.zhou,
                other_member=cast.sun.but(kind="在职党员"))
    loaded = {key: session.get(Member, m.id) for key, m in made.items()}
    loaded["none"] = None
    return loaded


@pytest.fixture
def orgs(people, session):
    return {key: get_org_by_full_name(session, name) for key, name in
            {"street": STREET, "east": EAST, "branch": BRANCH, "group": GROUP, "other": OTHER_BRANCH}.items()}


V, P, U = az.VIEW_MEMBER, az.VIEW_PRIVATE, az.UPDATE_MEMBER

# actor → {target: the member actions allowed}
MEMBER_MATRIX = {
    "admin": {"admin": {V, P}, "sec": {V, P, U}, "co_sec": {V, P, U}, "member": {V, P, U},
              "group_member": {V, P, U}, "volunteer": {V, P, U}, "other_sec": {V, P, U},
              "other_member": {V, P, U}},
    "sec": {"admin": set(), "sec": {V, P}, "co_sec": {V}, "member": {V, P, U},
            "group_member": {V, P, U}, "volunteer": {V, P, U}, "other_sec": set(), "other_member": set()},
    "other_sec": {"admin": set(), "sec": set(), "co_sec": set(), "member": set(), "group_member": set(),
                  "volunteer": set(), "other_sec": {V, P}, "other_member": {V, P, U}},
    "member": {"admin": set(), "sec": set(), "co_sec": set(), "member": {V, P}, "group_member": set(),
               "volunteer": set(), "other_sec": set(), "other_member": set()},
    "volunteer": {"admin": set(), "sec": set(), "co_sec": set(), "member": set(), "group_member": set(),
                  "volunteer": {V, P}, "other_sec": set(), "other_member": set()},
    "none": {target: set() for target in ("admin", "sec", "co_sec", "member", "group_member", "volunteer",
                                          "other_sec", "other_member")},
}

# actor → the organizations whose subtree they may list, import into, export and view
ORG_MATRIX = {
    "admin": {"street", "east", "branch", "group", "other"},
    "sec": {"branch", "group"},
    "co_sec": {"branch", "group"},
    "other_sec": {"other"},
    "member": set(),
    "group_member": set(),
    "volunteer": set(),
    "none": set(),
}


@pytest.mark.parametrize("actor", list(MEMBER_MATRIX))
def test_member_actions_matrix(people, actor):
    for target, allowed in MEMBER_MATRIX[actor].items():
        for action in az.MEMBER_ACTIONS:
            expected = action in allowed
            assert az.can(people[actor], action, people[target]) is expected, (actor, action, target)
            if expected:
                az.authorize(people[actor], action, people[target])
            else:
                with pytest.raises(Forbidden) as raised:
                    az.authorize(people[actor], action, people[target])
                assert raised.value.status == 403 and not raised.value.message.isascii()


@pytest.mark.parametrize("actor", list(ORG_MATRIX))
def test_org_actions_matrix(people, orgs, actor):
    for key, org in orgs.items():
        for action in az.ORG_ACTIONS:
            assert az.can(people[actor], action, org) is (key in ORG_MATRIX[actor]), (actor, action, key)


def test_org_actions_default_to_the_actors_own_node(people):
    assert az.can(people["sec"], az.LIST_MEMBERS)
    assert not az.can(people["member"], az.EXPORT_MEMBERS)
    with pytest.raises(Forbidden, match="仅限书记或管理员"):
        az.authorize(people["member"], az.IMPORT_MEMBERS)
    with pytest.raises(Forbidden, match="请先绑定"):
        az.authorize(None, az.VIEW_ORGS)


def test_an_inactive_manager_may_do_nothing(people, orgs, session):
    people["sec"].active = False
    session.flush()
    assert not az.can(people["sec"], az.LIST_MEMBERS, orgs["branch"])
    assert not az.can(people["sec"], az.UPDATE_MEMBER, people["member"])
    assert not az.can(people["sec"], az.VIEW_PRIVATE, people["sec"])


def test_phones_are_masked_unless_own_or_responsible(people):
    assert az.visible_phone(people["sec"], people["member"]) == people["member"].phone
    assert az.visible_phone(people["sec"], people["co_sec"]) == people["co_sec"].phone[:3] + "****" + \
        people["co_sec"].phone[-4:]
    assert "****" in az.visible_phone(people["member"], people["volunteer"])
    assert az.visible_phone(people["member"], people["member"]) == people["member"].phone


@pytest.mark.parametrize(
    ("actor", "org", "role", "target", "allowed"),
    [
        ("sec", GROUP, "党员", "member", True),  # move down within the subtree
        ("sec", GROUP, "书记", "member", True),  # a secretary of a node below
        ("sec", BRANCH, "书记", "member", False),  # a peer of their own node
        ("sec", BRANCH, "管理员", "member", False),  # only admins make admins
        ("sec", OTHER_BRANCH, "党员", "member", False),  # cross-branch
        ("sec", EAST, "党员", "member", False),  # above their node
        ("sec", BRANCH, "党员", "sec", False),  # themself
        ("admin", f"{EAST}/东湖社区第一党支部", "管理员", "member", True),
        ("admin", STREET, "书记", "member", False),  # a peer at the street
        ("none", BRANCH, "党员", "member", False),
    ],
)
def test_assignable_org_and_role(people, actor, org, role, target, allowed):
    person = people[actor]
    if person is None:
        assert az.can(None, az.UPDATE_MEMBER, people[target]) is False
        return
    problem = az.assignable(person, org, role, people[target].id)
    assert (problem is None) is allowed, problem


def test_unknown_action_or_wrong_target_is_a_programming_error(people, orgs):
    with pytest.raises(ValueError):
        az.can(people["admin"], "member.delete", people["member"])
    with pytest.raises(TypeError):
        az.can(people["admin"], az.UPDATE_MEMBER, orgs["branch"])
    with pytest.raises(TypeError):
        az.can(people["admin"], az.LIST_MEMBERS, people["member"])
    assert isinstance(orgs["branch"], Organization)


# Activities ------------------------------------------------------------------------------------
# actor → the organizations whose activities they manage (publish, 代签, code, page, attendance)
ACTIVITY_MATRIX = {
    "admin": {"street", "east", "branch", "group", "other"},
    "sec": {"branch", "group"},
    "co_sec": {"branch", "group"},
    "other_sec": {"other"},
    "member": set(),
    "group_member": set(),
    "volunteer": set(),
    "none": set(),
}


@pytest.mark.parametrize("actor", list(ACTIVITY_MATRIX))
def test_activity_actions_matrix(people, orgs, actor, session):
    from sqlalchemy import select

    managed = set(session.scalars(select(Organization.id).where(az.activity_manager_clause(people[actor]))))
    for key, org in orgs.items():
        expected = key in ACTIVITY_MATRIX[actor]
        assert az.can(people[actor], az.MANAGE_ACTIVITY, org) is expected, (actor, key)
        assert (org.id in managed) is expected, (actor, key)  # the SQL form says the same
        if expected:
            az.authorize(people[actor], az.MANAGE_ACTIVITY, org)
        elif people[actor] is not None:
            with pytest.raises(Forbidden, match="只有本组织的书记或管理员可以发布活动"):
                az.authorize(people[actor], az.MANAGE_ACTIVITY, org)


def test_an_inactive_manager_manages_no_activity(people, orgs, session):
    people["sec"].active = False
    session.flush()
    assert not az.can(people["sec"], az.MANAGE_ACTIVITY, orgs["branch"])
    from sqlalchemy import select

    assert session.scalars(select(Organization.id).where(az.activity_manager_clause(people["sec"]))).all() == []


def test_an_activity_is_managed_through_its_organization(people):
    with pytest.raises(TypeError):
        az.can(people["admin"], az.MANAGE_ACTIVITY, people["member"])
    with pytest.raises(TypeError):
        az.can(people["admin"], az.MANAGE_ACTIVITY)
