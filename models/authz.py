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

from sqlalchemy import and_, false, or_
from sqlalchemy.orm import Session

from models.base import Forbidden
from models.member import MANAGER_ROLES, Member, mask_phone
from models.org import PATH_SEPARATOR, Organization
from models.text import fits_id

NOT_MANAGER = "该功能仅限书记或管理员使用。"
NOT_BOUND = "请先绑定党员身份。"

# The kinds of target, by class name (the classes of the domain modules that import this one
# cannot be imported here).
MEMBER, ORG = "Member", "Organization"


@dataclass(frozen=True)
class Rule:
    """One action: what it is done to, who may (`allows`, asked only for an active actor), and
    the refusals — `not_manager` to anyone who is not a secretary or admin (None: `denied` to
    everyone), `denied` to the others."""

    targets: tuple[str, ...]
    allows: Callable[[Member, object], bool]
    denied: str
    not_manager: str | None = NOT_MANAGER


RULES: dict[str, Rule] = {}
# Every action, in the order the rules are written (a live view: blocks below add to it).
ACTIONS = RULES.keys()


def _rule(action: str, targets: tuple[str, ...], allows: Callable[[Member, object], bool], denied: str,
          not_manager: str | None = NOT_MANAGER) -> str:
    if action in RULES:
        raise ValueError(f"action {action!r} is written twice")
    RULES[action] = Rule(targets, allows, denied, not_manager)
    return action


def within(org_name: str, ancestor_name: str) -> bool:
    """Return whether the node named `org_name` is the node `ancestor_name` or below it."""
    return org_name == ancestor_name or org_name.startswith(ancestor_name + PATH_SEPARATOR)


def is_manager(actor: Member | None) -> bool:
    return actor is not None and actor.active and actor.role in MANAGER_ROLES


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

# The actions by kind of target (an action is in one group or more).
MEMBER_ACTIONS = (VIEW_MEMBER, VIEW_PRIVATE, UPDATE_MEMBER)
POINT_ACTIONS = (AWARD_POINTS, DECIDE_AWARD)
BINDING_ACTIONS = (RELEASE_BINDING,)
ORG_ACTIONS = (LIST_MEMBERS, IMPORT_MEMBERS, EXPORT_MEMBERS, VIEW_ORGS)
NOTICE_ACTIONS = (PUBLISH_NOTICE, LIST_NOTICES, VIEW_RECEIPT, REMIND_NOTICE)
ORGLIFE_ACTIONS = (MANAGE_ORGLIFE,)


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
    if actor is None or not actor.active:
        return False
    if target is None and ORG in rule.targets:
        target = actor.org
    if type(target).__name__ not in rule.targets:
        raise TypeError(f"{action} needs a target of kind {' or '.join(rule.targets)}")
    return rule.allows(actor, target)


def refusal(actor: Member | None, action: str) -> Forbidden:
    """The Forbidden (403, with a Chinese message) that refuses `actor` the `action`."""
    rule = _rule_of(action)
    if actor is None:
        return Forbidden(NOT_BOUND, code="not_bound")
    if rule.not_manager is not None and not is_manager(actor):
        return Forbidden(rule.not_manager)
    return Forbidden(rule.denied)


def authorize(actor: Member | None, action: str, target=None) -> None:
    """Raise Forbidden (403, with a Chinese message) unless `actor` may do `action` to `target`."""
    if not can(actor, action, target):
        raise refusal(actor, action)


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
