"""The one authorization rule set (models.authz): action × actor × target → allowed, one matrix for every
action (a new action fails the coverage test until it has its row), cross-branch included."""

import pytest

from models import Member, Organization
from models import authz as az
from models.base import Forbidden
from models.jobs import Job
from models.notices import Notice
from models.org import get_org_by_full_name
from models.orglife import MONTHLY_DAY, OrgLifeRule
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


# The targets, by kind: the people above, the organizations, and things of an organization.
MEMBERS = ("admin", "sec", "co_sec", "member", "group_member", "volunteer", "other_sec", "other_member")
ORGS = ("street", "east", "branch", "group", "other", "own")  # own: no target, the actor's own node
NOTICES = ("notice_east", "notice_branch", "notice_group", "notice_other")
RULES = ("rule_branch", "rule_other")
# Background jobs: asked by the secretary for their branch, by the admin for the street, by the
# secretary for a branch not theirs (moved since), and by the operator's CLI (nobody, no subtree).
JOBS = ("job_sec", "job_admin", "job_sec_other", "job_cli")
ACTORS = (*MEMBERS, "none")


@pytest.fixture
def targets(people, orgs, session):
    made = dict(orgs, own=None)
    for key, org in (("east", "east"), ("branch", "branch"), ("group", "group"), ("other", "other")):
        made[f"notice_{key}"] = Notice(org_id=orgs[org].id, title=f"{key}的通知", body="内容")
    for key in ("branch", "other"):
        made[f"rule_{key}"] = OrgLifeRule(org_id=orgs[key].id, spec="每月15日", kind=MONTHLY_DAY, day=15,
                                          start_time="09:30", title="组织生活日", notice_days=3)
    for key, asker, org in (("job_sec", "sec", "branch"), ("job_admin", "admin", "street"),
                            ("job_sec_other", "sec", "other")):
        made[key] = Job(kind="members.export", requested_by_id=people[asker].id, org_id=orgs[org].id)
    made["job_cli"] = Job(kind="members.export")
    session.add_all(made[key] for key in NOTICES + RULES + JOBS)
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
    # Activities (also asked as SQL: test_activity_actions_matrix)
    az.MANAGE_ACTIVITY: (ORGS, SUBTREE),
    az.LIST_LEAVES: (ORGS, SUBTREE),
    az.USE_CONSOLE: (ORGS, SUBTREE),
    # Background jobs: started by the managers of a subtree, seen only by who asked, within it.
    az.START_JOB: (ORGS, SUBTREE),
    az.VIEW_JOB: (JOBS, {"sec": {"job_sec"}, "admin": {"job_admin"}}),
}


def test_the_matrix_covers_every_action():
    # A wish's rules tell apart people and wishes this matrix has not: their own matrices below
    # (test_every_wish_and_points_action_has_rows checks those).
    assert set(MATRIX) | set(az.WISH_POINT_ACTIONS) == set(az.ACTIONS), "every action needs a row in MATRIX"


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
    assert az.can(people["sec"], az.MANAGE_ACTIVITY)  # no target: the actor's own node, like every org action


# Wishes and points ------------------------------------------------------------------------------
GRID = "东湖一网格"


@pytest.fixture
def wish_cast(make_member, session):
    """Everyone a wish rule tells apart, and three wishes of the branch's grid: a proposal by the
    beneficiary, an open wish and a fulfilment waiting for confirmation, both posted by the secretary
    for the same bound beneficiary."""
    from models.wishes import FULFILLED, OPEN, PENDING, Wish

    made = {
        "member": make_member("王志强", org=BRANCH, grid=GRID),
        "grid_head": make_member("陈网格", org=BRANCH, grid=GRID),
        "sec": make_member("李红梅", org=BRANCH, role="书记"),
        "above": make_member("吴社区", org=EAST, role="书记"),
        "elsewhere": make_member("周敏", org=OTHER_BRANCH, role="书记"),
        "admin": make_member("张建国", org=STREET, role="管理员"),
        "inactive": make_member("钱离任", org=BRANCH, role="书记"),
        "beneficiary": make_member("王奶奶", org=BRANCH, grid=GRID, kind="群众", role="志愿者"),
        "claimer": make_member("刘洋", org=BRANCH, kind="群众", role="志愿者"),
        "no_grid": make_member("赵秀英", org=BRANCH),
        "other_member": make_member("孙立", org=OTHER_BRANCH),
        "group_member": make_member("赵小组", org=GROUP),
    }
    cast = {key: session.get(Member, m.id) for key, m in made.items()}
    cast["grid_head"].grid_head = True
    cast["inactive"].active = False
    cast["none"] = None
    branch = get_org_by_full_name(session, BRANCH)
    grid_id = cast["member"].grid_id
    bene = cast["beneficiary"]

    def wish(status, poster, claimer=None):
        row = Wish(title="修水龙头", org_id=branch.id, grid_id=grid_id, points=10, status=status,
                   poster_id=poster.id, beneficiary_member_id=bene.id, beneficiary_name=bene.name,
                   claimer_id=claimer.id if claimer else None)
        session.add(row)
        session.flush()
        return row

    cast["wishes"] = {"pending": wish(PENDING, bene), "open": wish(OPEN, cast["sec"]),
                      "fulfilled": wish(FULFILLED, cast["sec"], cast["claimer"])}
    cast["orgs"] = {key: get_org_by_full_name(session, name) for key, name in
                    {"street": STREET, "east": EAST, "branch": BRANCH, "group": GROUP,
                     "other": OTHER_BRANCH}.items()}
    return cast


VW, VB, VP = az.VIEW_WISH, az.VIEW_BENEFICIARY, az.VIEW_WISH_PHOTO
RV, WD, CF, RT = az.REVIEW_WISH, az.WITHDRAW_WISH, az.CONFIRM_WISH, az.RETURN_WISH
ALL_WISH = set(az.WISH_ACTIONS)
# The head of the wish's grid and the bound beneficiary see the beneficiary and confirm (or send back).
CONFIRMERS = {VB, VP, CF, RT}
# wish → actor → the wish actions allowed
WISH_MATRIX = {
    "pending": {"member": set(), "grid_head": CONFIRMERS, "sec": ALL_WISH, "above": ALL_WISH,
                "elsewhere": set(), "admin": ALL_WISH, "inactive": set(), "none": set(),
                "beneficiary": CONFIRMERS | {VW}, "claimer": set()},
    "open": {"member": {VW}, "grid_head": CONFIRMERS | {VW}, "sec": ALL_WISH, "above": ALL_WISH,
             "elsewhere": {VW}, "admin": ALL_WISH, "inactive": {VW}, "none": {VW},
             "beneficiary": CONFIRMERS | {VW}, "claimer": {VW}},
    "fulfilled": {"member": {VW}, "grid_head": CONFIRMERS | {VW}, "sec": ALL_WISH, "above": ALL_WISH,
                  "elsewhere": {VW}, "admin": ALL_WISH, "inactive": {VW}, "none": {VW},
                  "beneficiary": CONFIRMERS | {VW}, "claimer": {VW, VB, VP}},  # never their own
}

# actor → the organizations whose wishes they manage (see all, review, set points, export) and
# whose manual awards they file and list
WISH_ORG_MATRIX = {
    "member": set(), "grid_head": set(), "sec": {"branch", "group"}, "above": {"east", "branch", "group"},
    "elsewhere": {"other"}, "admin": {"street", "east", "branch", "group", "other"}, "inactive": set(),
    "none": set(), "beneficiary": set(), "claimer": set(),
}
MANAGER_ORG_ACTIONS = (az.MANAGE_WISHES, az.SET_WISH_POINTS, az.EXPORT_WISHES, az.REQUEST_AWARD, az.LIST_AWARDS)
# actor → where they publish a wish directly (a grid head: their own node only)
PUBLISH_MATRIX = WISH_ORG_MATRIX | {"grid_head": {"branch"}}
# actor → whose points ranking they see: their community's nodes, and the managers' subtrees
COMMUNITY = {"east", "branch", "group"}
RANKING_MATRIX = {
    "member": COMMUNITY, "grid_head": COMMUNITY, "sec": COMMUNITY, "above": COMMUNITY,
    "elsewhere": {"other"}, "admin": {"street", "east", "branch", "group", "other"}, "inactive": set(),
    "none": set(), "beneficiary": COMMUNITY, "claimer": COMMUNITY,
}
# actor → the beneficiaries they publish a wish for (a grid head: of their own grid)
PUBLISH_FOR_MATRIX = {
    "member": set(), "grid_head": {"member"}, "sec": {"member", "no_grid"}, "above": {"member", "no_grid"},
    "elsewhere": {"other_member"}, "admin": {"member", "no_grid", "other_member"}, "inactive": set(),
    "none": set(), "beneficiary": set(), "claimer": set(),
}


def _check(actor, action, target, expected, where):
    assert az.can(actor, action, target) is expected, where
    if expected:
        az.authorize(actor, action, target)
    else:
        with pytest.raises(Forbidden) as raised:
            az.authorize(actor, action, target)
        assert raised.value.status == 403 and not raised.value.message.isascii(), where


@pytest.mark.parametrize("wish", list(WISH_MATRIX))
def test_wish_actions_matrix(wish_cast, wish):
    target = wish_cast["wishes"][wish]
    for actor, allowed in WISH_MATRIX[wish].items():
        for action in az.WISH_ACTIONS:
            _check(wish_cast[actor], action, target, action in allowed, (wish, actor, action))


@pytest.mark.parametrize("actor", list(WISH_ORG_MATRIX))
def test_wish_and_points_subtree_actions_matrix(wish_cast, actor):
    person, orgs = wish_cast[actor], wish_cast["orgs"]
    for key, org in orgs.items():
        for action in MANAGER_ORG_ACTIONS:
            _check(person, action, org, key in WISH_ORG_MATRIX[actor], (actor, action, key))
        _check(person, az.PUBLISH_WISH, org, key in PUBLISH_MATRIX[actor], (actor, "publish", key))
        _check(person, az.VIEW_RANKING, org, key in RANKING_MATRIX[actor], (actor, "ranking", key))
    for key in ("member", "no_grid", "other_member"):
        _check(person, az.PUBLISH_WISH, wish_cast[key], key in PUBLISH_FOR_MATRIX[actor], (actor, "for", key))
    # No target: their own node (publishing: anywhere at all).
    manager = actor in ("sec", "above", "elsewhere", "admin")
    for action in MANAGER_ORG_ACTIONS:
        _check(person, action, None, manager, (actor, action, None))
    _check(person, az.PUBLISH_WISH, None, manager or actor == "grid_head", (actor, "publish", None))
    _check(person, az.VIEW_RANKING, None, person is not None and person.active, (actor, "ranking", None))


def test_every_wish_and_points_action_has_rows():
    covered = set(az.WISH_ACTIONS) | set(MANAGER_ORG_ACTIONS) | {az.PUBLISH_WISH, az.VIEW_RANKING}
    assert covered == set(az.WISH_POINT_ACTIONS)
    assert set(az.WISH_POINT_ACTIONS) <= set(az.ACTIONS)


def test_wish_refusals_keep_their_words(wish_cast, session):
    orgs = wish_cast["orgs"]
    fulfilled, pending = wish_cast["wishes"]["fulfilled"], wish_cast["wishes"]["pending"]
    number = f"#{fulfilled.id}"
    confirmers = "所在组织的书记、管理员、网格长或受助人本人"
    cases = [
        ("member", az.CONFIRM_WISH, fulfilled, f"只有心愿 {number} {confirmers}可以确认。"),
        ("member", az.RETURN_WISH, fulfilled, f"只有心愿 {number} {confirmers}可以驳回。"),
        ("elsewhere", az.REVIEW_WISH, pending, f"只有心愿 #{pending.id} 所在组织的书记或管理员可以审核。"),
        ("grid_head", az.WITHDRAW_WISH, fulfilled, f"只有心愿 {number} 所在组织的书记或管理员可以撤回。"),
        ("none", az.VIEW_WISH_PHOTO, fulfilled, f"只有心愿 {number} 的认领人、发布人、受助人和上级书记可以查看照片。"),
        ("member", az.EXPORT_WISHES, None, "只有书记或管理员可以导出心愿。"),
        ("sec", az.EXPORT_WISHES, orgs["east"], "只能导出本组织及下级组织的心愿。"),
        ("sec", az.PUBLISH_WISH, orgs["other"], "只能在本组织及下级组织发布心愿。"),
        ("grid_head", az.PUBLISH_WISH, orgs["group"], "网格长只能在本网格发布心愿。"),
        ("grid_head", az.PUBLISH_WISH, wish_cast["no_grid"], "受助人不在您的管理范围内。"),
        ("member", az.REQUEST_AWARD, None, "只有书记或管理员可以录入积分。"),
        ("member", az.LIST_AWARDS, None, "只有书记或管理员可以审批积分。"),
        ("member", az.VIEW_RANKING, orgs["other"], "只能查看本社区或管理范围内的积分榜。"),
    ]
    for actor, action, target, text in cases:
        with pytest.raises(Forbidden) as raised:
            az.authorize(wish_cast[actor], action, target)
        assert raised.value.message == text, (actor, action)
    with pytest.raises(Forbidden) as raised:
        az.authorize(wish_cast["member"], az.PUBLISH_WISH)
    assert raised.value.code == "may_not_publish" and raised.value.message == az.MAY_NOT_PUBLISH
    # The claimer of a fulfilment never decides on it, even when they could otherwise.
    fulfilled.claimer_id = wish_cast["grid_head"].id
    session.flush()
    for action, text in ((az.CONFIRM_WISH, "不能确认自己完成的心愿，请由书记或受助人确认。"),
                         (az.RETURN_WISH, "不能驳回自己完成的心愿。")):
        assert not az.can(wish_cast["grid_head"], action, fulfilled)
        with pytest.raises(Forbidden, match=text):
            az.authorize(wish_cast["grid_head"], action, fulfilled)


def test_wish_actions_need_a_wish_and_subtree_actions_an_organization(wish_cast):
    orgs = wish_cast["orgs"]
    wish = wish_cast["wishes"]["open"]
    with pytest.raises(TypeError):
        az.can(wish_cast["sec"], az.VIEW_WISH, orgs["branch"])
    with pytest.raises(TypeError):
        az.can(wish_cast["sec"], az.CONFIRM_WISH)
    with pytest.raises(TypeError):
        az.can(wish_cast["sec"], az.EXPORT_WISHES, wish)
    with pytest.raises(TypeError):
        az.can(wish_cast["sec"], az.VIEW_RANKING, wish_cast["member"])
