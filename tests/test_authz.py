"""The one authorization rule set (models.authz): action × actor × target → allowed, one matrix for every
action (a new action fails the coverage test until it has its row), cross-branch included."""

import pytest

from models import Member, Organization
from models import authz as az
from models.base import Forbidden
from models.notices import Notice
from models.org import get_org_by_full_name
from models.orglife import MONTHLY_DAY, OrgLifeRule
from tests.conftest import BRANCH, OTHER_BRANCH

STREET = "滨江街道党工委"
EAST = f"{STREET}/东湖社区党委"
GROUP = f"{BRANCH}/第一党小组"


@pytest.fixture
def people(make_member, session):
    made = {
        "admin": make_member("张建国", org=STREET, role="管理员"),
        "sec": make_member("李红梅", org=BRANCH, role="书记"),
        "co_sec": make_member("钱副书记", org=BRANCH, role="书记"),
        "member": make_member("王志强", org=BRANCH),
        "group_member": make_member("赵秀英", org=GROUP, kind="离退休党员"),
        "volunteer": make_member("刘洋", org=BRANCH, kind="群众", role="志愿者"),
        "other_sec": make_member("周敏", org=OTHER_BRANCH, role="书记"),
        "other_member": make_member("孙立", org=OTHER_BRANCH, kind="在职党员"),
    }
    loaded = {key: session.get(Member, m.id) for key, m in made.items()}
    loaded["none"] = None
    return loaded


@pytest.fixture
def orgs(people, session):
    return {key: get_org_by_full_name(session, name) for key, name in
            {"street": STREET, "east": EAST, "branch": BRANCH, "group": GROUP, "other": OTHER_BRANCH}.items()}


# The targets, by kind: the people above, the organizations, and things of an organization.
MEMBERS = ("admin", "sec", "co_sec", "member", "group_member", "volunteer", "other_sec", "other_member")
ORGS = ("street", "east", "branch", "group", "other", "own")  # own: no target, the actor's own node
NOTICES = ("notice_east", "notice_branch", "notice_group", "notice_other")
RULES = ("rule_branch", "rule_other")
ACTORS = (*MEMBERS, "none")


@pytest.fixture
def targets(people, orgs, session):
    made = dict(orgs, own=None)
    for key, org in (("east", "east"), ("branch", "branch"), ("group", "group"), ("other", "other")):
        made[f"notice_{key}"] = Notice(org_id=orgs[org].id, title=f"{key}的通知", body="内容")
    for key in ("branch", "other"):
        made[f"rule_{key}"] = OrgLifeRule(org_id=orgs[key].id, spec="每月15日", kind=MONTHLY_DAY, day=15,
                                          start_time="09:30", title="组织生活日", notice_days=3)
    session.add_all(made[key] for key in NOTICES + RULES)
    session.flush()
    return dict(made, **{key: people[key] for key in MEMBERS})


# Who is responsible for whom (update, points, binding release): never themself, never a peer.
RESPONSIBLE = {
    "admin": {"sec", "co_sec", "member", "group_member", "volunteer", "other_sec", "other_member"},
    "sec": {"member", "group_member", "volunteer"},
    "co_sec": {"member", "group_member", "volunteer"},
    "other_sec": {"other_member"},
}
SELF = {key: {key} for key in MEMBERS}
# Whose organizations a manager manages: their node and below.
SUBTREE = {
    "admin": {"street", "east", "branch", "group", "other", "own"},
    "sec": {"branch", "group", "own"},
    "co_sec": {"branch", "group", "own"},
    "other_sec": {"other", "own"},
}
NOTICES_OF = {
    "admin": set(NOTICES),
    "sec": {"notice_branch", "notice_group"},
    "co_sec": {"notice_branch", "notice_group"},
    "other_sec": {"notice_other"},
}
ORGLIFE_OF = {"admin": SUBTREE["admin"] | set(RULES), "sec": SUBTREE["sec"] | {"rule_branch"},
              "co_sec": SUBTREE["co_sec"] | {"rule_branch"}, "other_sec": SUBTREE["other_sec"] | {"rule_other"}}


def _union(*tables: dict) -> dict:
    return {actor: set().union(*(table.get(actor, set()) for table in tables)) for actor in ACTORS}


# action → (the targets it is asked of, actor → the targets allowed; an actor not named: none).
MATRIX = {
    az.VIEW_MEMBER: (MEMBERS, _union(SELF, {
        "admin": set(MEMBERS),
        "sec": {"sec", "co_sec", "member", "group_member", "volunteer"},
        "co_sec": {"sec", "co_sec", "member", "group_member", "volunteer"},
        "other_sec": {"other_sec", "other_member"},
    })),
    az.VIEW_PRIVATE: (MEMBERS, _union(SELF, RESPONSIBLE)),
    az.UPDATE_MEMBER: (MEMBERS, RESPONSIBLE),
    az.AWARD_POINTS: (MEMBERS, RESPONSIBLE),
    az.DECIDE_AWARD: (MEMBERS, RESPONSIBLE),
    az.RELEASE_BINDING: (MEMBERS, RESPONSIBLE),
    az.LIST_MEMBERS: (ORGS, SUBTREE),
    az.IMPORT_MEMBERS: (ORGS, SUBTREE),
    az.EXPORT_MEMBERS: (ORGS, SUBTREE),
    az.VIEW_ORGS: (ORGS, SUBTREE),
    # Notices and org life
    az.PUBLISH_NOTICE: (ORGS, SUBTREE),
    az.LIST_NOTICES: (ORGS, SUBTREE),
    az.VIEW_RECEIPT: (NOTICES, NOTICES_OF),
    az.REMIND_NOTICE: (NOTICES, NOTICES_OF),
    az.MANAGE_ORGLIFE: (ORGS + RULES, ORGLIFE_OF),
}


def test_the_matrix_covers_every_action():
    assert set(MATRIX) == set(az.ACTIONS), "every action needs a row in MATRIX"


@pytest.mark.parametrize("action", list(MATRIX))
def test_matrix(people, targets, action):
    asked, allowed = MATRIX[action]
    rule = az.RULES[action]
    for actor in ACTORS:
        for target in asked:
            expected = target in allowed.get(actor, set())
            assert az.can(people[actor], action, targets[target]) is expected, (action, actor, target)
            if expected:
                az.authorize(people[actor], action, targets[target])
                continue
            with pytest.raises(Forbidden) as raised:
                az.authorize(people[actor], action, targets[target])
            refused = raised.value
            assert refused.status == 403 and not refused.message.isascii(), (action, actor, target)
            if actor == "none":
                assert refused.code == "not_bound"
            elif rule.not_manager is not None and actor not in SUBTREE:
                assert refused.message == rule.not_manager, (action, actor, target)
            else:
                assert refused.message == rule.denied, (action, actor, target)


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


def test_authorized_org_resolves_an_id_within_the_actors_subtree(people, orgs, session):
    sec = people["sec"]
    assert az.authorized_org(session, sec, az.PUBLISH_NOTICE, None) is sec.org
    assert az.authorized_org(session, sec, az.PUBLISH_NOTICE, orgs["group"].id) is orgs["group"]
    for org_id in (orgs["other"].id, orgs["east"].id, 2**40, -1):  # outside, above, unknown, nonsense
        with pytest.raises(Forbidden, match="只能向本组织及下级组织发布通知"):
            az.authorized_org(session, sec, az.PUBLISH_NOTICE, org_id)
    with pytest.raises(Forbidden, match="只有书记或管理员可以设置组织生活"):
        az.authorized_org(session, people["member"], az.MANAGE_ORGLIFE, None)
    with pytest.raises(Forbidden) as raised:
        az.authorized_org(session, None, az.MANAGE_ORGLIFE, orgs["branch"].id)
    assert raised.value.code == "not_bound"
