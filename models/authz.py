"""Who may do what to whom: the one authorization rule set, used by every door.

A secretary (书记) or an admin (管理员) manages the subtree of their organization node. They are
*responsible* for a member below their node, and for the ordinary members (not the other
secretaries or admins) of their own node. Personal data (the phone, the political birthday) is
shown in full only to the member themself and to those responsible for them.

The rules are written on the organizations' name paths ("滨江街道党工委/东湖社区党委"), so they also
judge a roster row whose organization does not exist yet.

Every action is one `_rule(...)` below: its name, the kinds of target it is done to, who may (a
function of an active actor and the target), and the words of a refusal. `can` asks, `authorize`
raises the refusal; a new block of actions adds rules and nothing else.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, false, or_
from sqlalchemy.orm import Session

from models.base import Forbidden
from models.member import MANAGER_ROLES, Member, mask_phone
from models.org import PATH_SEPARATOR, Organization, community_of
from models.text import fits_id

if TYPE_CHECKING:
    from models.wishes import Wish

NOT_MANAGER = "该功能仅限书记或管理员使用。"
NOT_BOUND = "请先绑定党员身份。"

# The kinds of target, by class name (the classes of the domain modules that import this one
# cannot be imported here).
MEMBER, ORG = "Member", "Organization"


@dataclass(frozen=True)
class Rule:
    """One action: what it is done to, who may (`allows`, asked only for an active actor), and
    the refusals — `not_manager` to anyone who is not a secretary or admin (None: `denied` to
    everyone), `denied` to the others. `anyone`: targets open to everybody, signed in or not (a
    public wish); `refuse`: a refusal whose words depend on the actor and the target."""

    targets: tuple[str, ...]
    allows: Callable[[Member, object], bool]
    denied: str
    not_manager: str | None = NOT_MANAGER
    anyone: Callable[[object], bool] | None = None
    refuse: Callable[[Member | None, str, object], Forbidden] | None = None


RULES: dict[str, Rule] = {}
# Every action, in the order the rules are written (a live view: blocks below add to it).
ACTIONS = RULES.keys()


def _rule(action: str, targets: tuple[str, ...], allows: Callable[[Member, object], bool], denied: str,
          not_manager: str | None = NOT_MANAGER, **options) -> str:
    if action in RULES:
        raise ValueError(f"action {action!r} is written twice")
    RULES[action] = Rule(targets, allows, denied, not_manager, **options)
    return action


def within(org_name: str, ancestor_name: str) -> bool:
    """Return whether the node named `org_name` is the node `ancestor_name` or below it."""
    return org_name == ancestor_name or org_name.startswith(ancestor_name + PATH_SEPARATOR)


def is_manager_role(role: str | None) -> bool:
    """Whether a role is a manager's (书记, 管理员): what an active member with it may manage."""
    return role in MANAGER_ROLES


def is_manager(actor: Member | None) -> bool:
    return actor is not None and actor.active and is_manager_role(actor.role)


def responsible(actor: Member | None, org_name: str, role: str, member_id: int | None = None) -> bool:
    """Return whether `actor` is responsible for a member (existing or not) of `org_name` with `role`."""
    if not is_manager(actor) or member_id == actor.id:
        return False
    home = actor.org.full_name
    if org_name == home:
        # Their own node: its ordinary members, not the other secretaries and admins.
        return role not in MANAGER_ROLES
    return within(org_name, home)


def org_of(target) -> Organization:
    """The organization a target belongs to: itself, or its `org` (a member, a notice, a rule …)."""
    return target if isinstance(target, Organization) else target.org


# The predicates the rules are made of (the actor is active).
def manages(actor: Member, target) -> bool:
    """The actor is a secretary or admin of the target's organization or of a node above it."""
    return is_manager(actor) and within(org_of(target).full_name, actor.org.full_name)


def responsible_for(actor: Member, member: Member) -> bool:
    return responsible(actor, member.org.full_name, member.role, member.id)


def _sees(actor: Member, member: Member) -> bool:
    return member.id == actor.id or manages(actor, member)


def _sees_private(actor: Member, member: Member) -> bool:
    return member.id == actor.id or responsible_for(actor, member)


# Members ------------------------------------------------------------------------------------------
# Actions on a member (target: a Member).
VIEW_MEMBER = _rule("member.view", (MEMBER,), _sees,  # see them in a listing, personal data masked
                    "您无权查看该成员。", not_manager=None)
VIEW_PRIVATE = _rule("member.view_private", (MEMBER,), _sees_private,  # the phone, the political birthday
                     "您无权查看该成员的个人信息。", not_manager=None)
UPDATE_MEMBER = _rule("member.update", (MEMBER,), responsible_for, "您无权修改该成员的信息。")
# Free the WeChat binding of a member (解绑 姓名; target: the member): only those responsible for
# the member — never their own binding (plain 解绑 does that), never a peer at the same node.
RELEASE_BINDING = _rule("member.release_binding", (MEMBER,), responsible_for,
                        "只能解除您负责的成员的绑定（不能解除您自己或同级书记、管理员的绑定）。")
# Actions on an organization's subtree (target: an Organization; None means the actor's own).
LIST_MEMBERS = _rule("member.list", (ORG,), manages, "您无权查看该组织的成员。")
IMPORT_MEMBERS = _rule("member.import", (ORG,), manages, "您无权向该组织导入成员。")
EXPORT_MEMBERS = _rule("member.export", (ORG,), manages, "您无权导出该组织的成员。")
VIEW_ORGS = _rule("org.view", (ORG,), manages, "您无权查看该组织。")

# Points ---------------------------------------------------------------------------------------------
# Manual points (积分): file an award for the member, approve or refuse one (target: the recipient).
# Only those responsible for the recipient — never the recipient, never a peer at the same node.
AWARD_POINTS = _rule("points.award", (MEMBER,), responsible_for,
                     "只能为您负责的成员录入积分（不能为自己或同级的书记、管理员录入）。")
DECIDE_AWARD = _rule("points.decide", (MEMBER,), responsible_for,
                     "只有负责该成员的上级书记或管理员可以审批（不能审批为自己录入的积分）。")

# Notices and org life -------------------------------------------------------------------------------
# Notices (通知): publish to an organization's subtree, list a subtree's notices (target: an
# Organization, None: the actor's own), see a notice's receipt and remind its unread (target: a
# Notice). Org life (组织生活): set, list, move and stop the rules of a subtree (target: an
# Organization or an OrgLifeRule). Secretaries and admins, within their subtree.
NOTICE, ORGLIFE_RULE = "Notice", "OrgLifeRule"
NOTICES_NOT_MANAGER = "只有书记或管理员可以发布和查看通知。"
ORGLIFE_NOT_MANAGER = "只有书记或管理员可以设置组织生活。"
PUBLISH_NOTICE = _rule("notice.publish", (ORG,), manages, "只能向本组织及下级组织发布通知。",
                       NOTICES_NOT_MANAGER)
LIST_NOTICES = _rule("notice.list", (ORG,), manages, "您无权查看该组织的通知。", NOTICES_NOT_MANAGER)
VIEW_RECEIPT = _rule("notice.view_receipt", (NOTICE,), manages, "您无权查看该通知的回执。",
                     NOTICES_NOT_MANAGER)
REMIND_NOTICE = _rule("notice.remind", (NOTICE,), manages, "您无权再提醒该通知的未读成员。",
                      NOTICES_NOT_MANAGER)
MANAGE_ORGLIFE = _rule("orglife.manage", (ORG, ORGLIFE_RULE), manages, "只能为本组织及下级组织设置组织生活。",
                       ORGLIFE_NOT_MANAGER)

# Activities -----------------------------------------------------------------------------------------
# Manage an activity — publish it, change it, sign members in by proxy (代签), see its code, its
# page and its attendance (target: the activity's Organization): a secretary or admin of that
# organization or of a node above it.
MANAGE_ACTIVITY = _rule("activity.manage", (ORG,), manages, "只有本组织的书记或管理员可以发布活动。",
                        not_manager=None)
# The leave queue (请假): the requests waiting on the activities of a subtree (target: an
# Organization; None: the actor's own). Each decision asks MANAGE_ACTIVITY of its activity too.
LIST_LEAVES = _rule("leave.list", (ORG,), manages, "只能处理本组织及下级组织的请假。",
                    "只有书记或管理员可以审批请假。")
ACTIVITY_ACTIONS = (MANAGE_ACTIVITY, LIST_LEAVES)

# The console -----------------------------------------------------------------------------------------
# Use the secretary's console (target: the actor's own node): a secretary or admin; each page then
# asks the action it shows.
USE_CONSOLE = _rule("console.use", (ORG,), manages, "您没有连心管理后台的权限。",
                    not_manager="连心管理后台仅限书记和管理员使用，您没有访问权限。")


def activity_manager_clause(actor: Member | None):
    """A SQL condition on Organization true exactly for the organizations whose activities `actor`
    manages — `can(actor, MANAGE_ACTIVITY, org)` as a WHERE clause, for listings paged in SQL."""
    return subtree_clause(actor.org) if is_manager(actor) else false()


# Wishes and points ----------------------------------------------------------------------------------
# Actions on one wish (target: a Wish). Its managers are the secretaries and admins of its
# organization or above; the head of its grid (网格长) and its bound beneficiary confirm it too.
WISH = "Wish"


def _heads_own_grid(actor: Member) -> bool:
    return actor.heads_grid(actor.grid_id)


def _involved(actor: Member, wish: "Wish") -> bool:
    """The poster or the bound beneficiary."""
    return actor.id in (wish.poster_id, wish.beneficiary_member_id)


def _may_decide_fulfilment(actor: Member, wish: "Wish") -> bool:
    """The managers above, the head of the wish's grid, or the bound beneficiary (claimer or not)."""
    return (manages(actor, wish) or actor.heads_grid(wish.grid_id)
            or (wish.beneficiary_member_id is not None and actor.id == wish.beneficiary_member_id))


def _sees_wish(actor: Member, wish: "Wish") -> bool:
    return manages(actor, wish) or _involved(actor, wish)


def _sees_beneficiary(actor: Member, wish: "Wish") -> bool:
    # The claimer after claiming, the poster, the beneficiary, the grid head and the managers.
    return (manages(actor, wish) or _involved(actor, wish) or actor.heads_grid(wish.grid_id)
            or (actor.id == wish.claimer_id and wish.is_taken))


def _decides_fulfilment(actor: Member, wish: "Wish") -> bool:
    return _may_decide_fulfilment(actor, wish) and actor.id != wish.claimer_id


def _may_publish(actor: Member, target: Member | Organization) -> bool:
    if isinstance(target, Member):
        # A beneficiary within the subtree; for a grid head, of their own grid.
        return target.org.is_within(actor.org) and (
            is_manager(actor) or (_heads_own_grid(actor) and target.grid_id == actor.grid_id))
    return manages(actor, target) or (_heads_own_grid(actor) and target.id == actor.org_id)


def _sees_ranking(actor: Member, org: Organization) -> bool:
    return org.is_within(community_of(actor.org)) or manages(actor, org)


# The claimer of a fulfilment asks to decide on it.
_OWN_FULFILMENT = {
    "wish.confirm": "不能确认自己完成的心愿，请由书记或受助人确认。",
    "wish.return": "不能驳回自己完成的心愿。",
}
MAY_NOT_PUBLISH = "只有书记、网格长或管理员可以直接发布心愿；您可以提交心愿，等待书记审核。"


def _wish_refusal(actor: Member | None, action: str, wish: "Wish") -> Forbidden:
    """A refusal naming the wish; the claimer of a fulfilment is told they may not judge their own."""
    if action in _OWN_FULFILMENT and actor is not None and wish is not None and actor.id == wish.claimer_id \
            and _may_decide_fulfilment(actor, wish):
        return Forbidden(_OWN_FULFILMENT[action])
    return Forbidden(RULES[action].denied.format(number=f"#{wish.id}" if wish is not None else ""))


def _subtree_refusal(actor: Member | None, action: str, target) -> Forbidden:
    """To a non-manager the rule's `not_manager` words, to a manager outside the subtree `denied`
    (the unbound included: these refusals never asked for a binding)."""
    rule = RULES[action]
    return Forbidden(rule.denied if is_manager(actor) or rule.not_manager is None else rule.not_manager)


def _publish_refusal(actor: Member | None, action: str, target: Member | Organization | None) -> Forbidden:
    if target is None or actor is None or not (is_manager(actor) or _heads_own_grid(actor)):
        return Forbidden(MAY_NOT_PUBLISH, code="may_not_publish")
    if isinstance(target, Member):
        return Forbidden("受助人不在您的管理范围内。")
    if not is_manager(actor):
        return Forbidden("网格长只能在本网格发布心愿。")
    return Forbidden("只能在本组织及下级组织发布心愿。")


def _is_public(wish: "Wish") -> bool:
    return wish.is_public


VIEW_WISH = _rule("wish.view", (WISH,), _sees_wish, "您无权查看心愿 {number}。",  # open and taken: anyone
                  anyone=_is_public, refuse=_wish_refusal)
VIEW_BENEFICIARY = _rule("wish.view_beneficiary", (WISH,), _sees_beneficiary,  # name, address, phone unmasked
                         "您无权查看心愿 {number} 的受助人信息。", refuse=_wish_refusal)
VIEW_WISH_PHOTO = _rule("wish.view_photo", (WISH,), _sees_beneficiary,  # a photo may show the beneficiary
                        "只有心愿 {number} 的认领人、发布人、受助人和上级书记可以查看照片。", refuse=_wish_refusal)
REVIEW_WISH = _rule("wish.review", (WISH,), manages, "只有心愿 {number} 所在组织的书记或管理员可以审核。",
                    refuse=_wish_refusal)
WITHDRAW_WISH = _rule("wish.withdraw", (WISH,), manages, "只有心愿 {number} 所在组织的书记或管理员可以撤回。",
                      refuse=_wish_refusal)
CONFIRM_WISH = _rule("wish.confirm", (WISH,), _decides_fulfilment,  # never the claimer
                     "只有心愿 {number} 所在组织的书记、管理员、网格长或受助人本人可以确认。", refuse=_wish_refusal)
RETURN_WISH = _rule("wish.return", (WISH,), _decides_fulfilment,  # 驳回: the same people
                    "只有心愿 {number} 所在组织的书记、管理员、网格长或受助人本人可以驳回。", refuse=_wish_refusal)
# Actions on the wishes of a subtree (target: an Organization; None: the actor's own node).
MANAGE_WISHES = _rule("wish.manage", (ORG,), manages, "只能管理本组织及下级组织的心愿。",
                      refuse=_subtree_refusal)
SET_WISH_POINTS = _rule("wish.set_points", (ORG,), manages, "只能设置本组织及下级组织的心愿积分。",
                        "只有书记或管理员可以设置心愿积分。", refuse=_subtree_refusal)
EXPORT_WISHES = _rule("wish.export", (ORG,), manages, "只能导出本组织及下级组织的心愿。",
                      "只有书记或管理员可以导出心愿。", refuse=_subtree_refusal)
# Publish a wish directly, open at once (target: the Organization, the beneficiary Member, or None:
# the actor's own node): secretaries and admins in their subtree, a grid head in their node for their grid.
PUBLISH_WISH = _rule("wish.publish", (ORG, MEMBER), _may_publish, MAY_NOT_PUBLISH, refuse=_publish_refusal)
# Manual point awards: file one, see those waiting for approval (target: an Organization; None: own).
REQUEST_AWARD = _rule("points.request", (ORG,), manages, "只能为本组织及下级组织的成员录入积分。",
                      "只有书记或管理员可以录入积分。", refuse=_subtree_refusal)
LIST_AWARDS = _rule("points.pending", (ORG,), manages, "只能审批本组织及下级组织的积分。",
                    "只有书记或管理员可以审批积分。", refuse=_subtree_refusal)
# The points ranking of a subtree (target: an Organization; None: the actor's own node): the members
# of the community it lies in, and the managers above it.
VIEW_RANKING = _rule("points.view_ranking", (ORG,), _sees_ranking, "只能查看本社区或管理范围内的积分榜。",
                     not_manager=None, refuse=_subtree_refusal)

WISH_ACTIONS = (VIEW_WISH, VIEW_BENEFICIARY, VIEW_WISH_PHOTO, REVIEW_WISH, WITHDRAW_WISH, CONFIRM_WISH,
                RETURN_WISH)
WISH_SUBTREE_ACTIONS = (MANAGE_WISHES, SET_WISH_POINTS, EXPORT_WISHES, PUBLISH_WISH, REQUEST_AWARD,
                        LIST_AWARDS, VIEW_RANKING)
WISH_POINT_ACTIONS = WISH_ACTIONS + WISH_SUBTREE_ACTIONS

# The actions by kind of target (an action is in one group or more).
MEMBER_ACTIONS = (VIEW_MEMBER, VIEW_PRIVATE, UPDATE_MEMBER)
POINT_ACTIONS = (AWARD_POINTS, DECIDE_AWARD)
BINDING_ACTIONS = (RELEASE_BINDING,)
ORG_ACTIONS = (LIST_MEMBERS, IMPORT_MEMBERS, EXPORT_MEMBERS, VIEW_ORGS)
NOTICE_ACTIONS = (PUBLISH_NOTICE, LIST_NOTICES, VIEW_RECEIPT, REMIND_NOTICE)
ORGLIFE_ACTIONS = (MANAGE_ORGLIFE,)


# Background jobs ------------------------------------------------------------------------------------
# Start a job on a subtree (a large import, an export; target: an Organization, None: the actor's
# own): its secretaries and admins — the job's own action (member.import, wish.export …) is asked
# too. See a job's progress and download its result (target: a Job): the member who asked, while
# the job's subtree is still theirs; nobody else (a result holds what its asker may see).
JOB = "Job"


def _own_job(actor: Member, job) -> bool:
    return job.requested_by_id == actor.id and job.org is not None and manages(actor, job)


START_JOB = _rule("job.start", (ORG,), manages, "只能为本组织及下级组织发起后台任务。",
                  "只有书记或管理员可以发起后台任务。")
VIEW_JOB = _rule("job.view", (JOB,), _own_job, "您无权查看该任务。", not_manager=None)
JOB_ACTIONS = (START_JOB, VIEW_JOB)


# Asking ---------------------------------------------------------------------------------------------
def _rule_of(action: str) -> Rule:
    try:
        return RULES[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}") from None


def can(actor: Member | None, action: str, target=None) -> bool:
    """Return whether `actor` may do `action` to `target` (a member, an organization's subtree — None
    for the actor's own —, or a thing of an organization: a notice, a rule …)."""
    rule = _rule_of(action)
    if target is None and ORG in rule.targets and actor is not None:
        target = actor.org
    if target is not None and type(target).__name__ not in rule.targets:
        raise TypeError(f"{action} needs a target of kind {' or '.join(rule.targets)}")
    if rule.anyone is not None and target is not None and rule.anyone(target):
        return True
    if actor is None or not actor.active:
        return False
    if target is None:
        raise TypeError(f"{action} needs a target of kind {' or '.join(rule.targets)}")
    return rule.allows(actor, target)


def refusal(actor: Member | None, action: str, target=None) -> Forbidden:
    """The Forbidden (403, with a Chinese message) that refuses `actor` the `action` (to `target`)."""
    rule = _rule_of(action)
    if rule.refuse is not None:
        return rule.refuse(actor, action, target)
    if actor is None:
        return Forbidden(NOT_BOUND, code="not_bound")
    if rule.not_manager is not None and not is_manager(actor):
        return Forbidden(rule.not_manager)
    return Forbidden(rule.denied)


def authorize(actor: Member | None, action: str, target=None) -> None:
    """Raise Forbidden (403, with a Chinese message) unless `actor` may do `action` to `target`."""
    if not can(actor, action, target):
        raise refusal(actor, action, target)


def authorized_org(session: Session, actor: Member | None, action: str, org_id: int | None) -> Organization:
    """The organization `org_id` names (None: the actor's own), if `actor` may do `action` to it; an
    unknown id is refused like one outside the actor's subtree."""
    authorize(actor, action)
    if org_id is None or org_id == actor.org.id:
        return actor.org
    org = session.get(Organization, org_id) if fits_id(org_id) else None
    if org is None:
        raise refusal(actor, action)
    authorize(actor, action, org)
    return org


def award_decision_problem(actor: Member | None, requested_by_id: int, recipient: Member) -> str | None:
    """Why `actor` may not approve or refuse a manual award for `recipient` filed by `requested_by_id`
    (None: they may). Two different people, both responsible for the recipient: the approver is
    neither the requester nor the recipient."""
    if actor is not None and actor.id == requested_by_id:
        return "录入人不能审批自己录入的积分，请由另一位书记或管理员审批。"
    if not can(actor, DECIDE_AWARD, recipient):
        return RULES[DECIDE_AWARD].denied if is_manager(actor) else NOT_MANAGER
    return None


def assignable(actor: Member, org_name: str, role: str, member_id: int | None = None) -> str | None:
    """Return why `actor` may not give a member this organization and role, or None if they may."""
    if not within(org_name, actor.org.full_name):
        return f"组织「{org_name}」不在您的管理范围内"
    if role == "管理员" and actor.role != "管理员":
        return "只有管理员可以设置管理员角色"
    if not responsible(actor, org_name, role, member_id):
        if member_id == actor.id:
            return "不能修改您自己的组织或角色"
        return "不能设置与您同级的书记或管理员"
    return None


def subtree_clause(org: Organization):
    """A SQL condition on Organization true for `org` and the nodes below it — `within` as a WHERE
    clause."""
    home = org.full_name
    return or_(Organization.full_name == home,
               Organization.full_name.startswith(home + PATH_SEPARATOR, autoescape=True))


def private_clause(actor: Member | None):
    """A SQL condition on Member (joined with its Organization) true exactly for the members whose
    personal data `actor` may see — `can(actor, VIEW_PRIVATE, member)` as a WHERE clause, so that a
    search never matches what the searcher would see masked (phone digits, dates)."""
    if actor is None or not actor.active:
        return false()
    itself = Member.id == actor.id
    if not is_manager(actor):
        return itself
    home = actor.org.full_name
    below = Organization.full_name.startswith(home + PATH_SEPARATOR, autoescape=True)
    own_node = and_(Organization.full_name == home, Member.role.not_in(MANAGER_ROLES), Member.id != actor.id)
    return or_(itself, below, own_node)


def visible_phone(actor: Member | None, member: Member) -> str:
    """Return the member's phone as `actor` may see it: in full, or masked like 138****5678."""
    return member.phone if can(actor, VIEW_PRIVATE, member) else mask_phone(member.phone)


# Roster ---------------------------------------------------------------------------------------------
def import_row_problem(actor: Member, org_name: str, role: str, existing: Member | None) -> str | None:
    """Why `actor` may not create or change, by importing a roster row, the member `existing` (None:
    a new member) with this organization and role; None if they may."""
    if existing is not None and not responsible(actor, existing.org.full_name, existing.role, existing.id):
        if existing.id == actor.id:
            return "不能通过导入修改您自己的信息"
        if within(existing.org.full_name, actor.org.full_name):
            return "不能修改与您同级的书记或管理员"
        return "该手机号已登记为您管理范围之外的成员，不能修改"
    return assignable(actor, org_name, role, existing.id if existing else None)
