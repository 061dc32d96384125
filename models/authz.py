"""Who may do what to whom: the one authorization rule set, used by the API and the chatbot.

A secretary (书记) or an admin (管理员) manages the subtree of their organization node. They are
*responsible* for a member below their node, and for the ordinary members (not the other
secretaries or admins) of their own node. Personal data (the phone, the political birthday) is
shown in full only to the member themself and to those responsible for them.

The rules are written on the organizations' name paths ("滨江街道党工委/东湖社区党委"), so they also
judge a roster row whose organization does not exist yet.
"""

from typing import TYPE_CHECKING

from sqlalchemy import and_, false, or_

from models.base import Forbidden
from models.member import MANAGER_ROLES, Member, mask_phone
from models.org import PATH_SEPARATOR, Organization, community_of

if TYPE_CHECKING:
    from models.wishes import Wish

# Actions on a member (target: a Member).
VIEW_MEMBER = "member.view"  # see the member in a listing, personal data masked
VIEW_PRIVATE = "member.view_private"  # see the phone and the political birthday
UPDATE_MEMBER = "member.update"  # change the member's record
# Manual points (积分): file an award for the member, approve or refuse one (target: the recipient).
# Only those responsible for the recipient — never the recipient, never a peer at the same node.
AWARD_POINTS = "points.award"
DECIDE_AWARD = "points.decide"
# Free the WeChat binding of a member (解绑 姓名; target: the member): only those responsible for
# the member — never their own binding (plain 解绑 does that), never a peer at the same node.
RELEASE_BINDING = "member.release_binding"
# Actions on an organization's subtree (target: an Organization; None means the actor's own).
LIST_MEMBERS = "member.list"
IMPORT_MEMBERS = "member.import"
EXPORT_MEMBERS = "member.export"
VIEW_ORGS = "org.view"

# Activities ------------------------------------------------------------------------------------
# Manage an activity — publish it, change it, sign members in by proxy (代签), see its code, its
# page and its attendance (target: the activity's Organization): a secretary or admin of that
# organization or of a node above it.
MANAGE_ACTIVITY = "activity.manage"
ACTIVITY_ACTIONS = (MANAGE_ACTIVITY,)
# -----------------------------------------------------------------------------------------------

MEMBER_ACTIONS = (VIEW_MEMBER, VIEW_PRIVATE, UPDATE_MEMBER)
POINT_ACTIONS = (AWARD_POINTS, DECIDE_AWARD)
BINDING_ACTIONS = (RELEASE_BINDING,)
ORG_ACTIONS = (LIST_MEMBERS, IMPORT_MEMBERS, EXPORT_MEMBERS, VIEW_ORGS)

# Wishes and points ------------------------------------------------------------------------------
# Actions on one wish (target: a Wish). Its managers are the secretaries and admins of its
# organization or above; the head of its grid (网格长) and its bound beneficiary confirm it too.
VIEW_WISH = "wish.view"  # open and taken wishes: anyone; proposals, refused, withdrawn: those involved
VIEW_BENEFICIARY = "wish.view_beneficiary"  # the beneficiary's name, address and phone unmasked
VIEW_WISH_PHOTO = "wish.view_photo"  # a photo may show the beneficiary: the same people
REVIEW_WISH = "wish.review"  # approve or turn down a proposal: its managers
WITHDRAW_WISH = "wish.withdraw"  # its managers
CONFIRM_WISH = "wish.confirm"  # confirm a fulfilment: managers, grid head, beneficiary — never the claimer
RETURN_WISH = "wish.return"  # send a fulfilment back (驳回): the same people
# Actions on the wishes of a subtree (target: an Organization; None: the actor's own node).
MANAGE_WISHES = "wish.manage"  # see every wish there and decide on them: secretaries and admins
SET_WISH_POINTS = "wish.set_points"  # choose a published wish's points (others get the default)
EXPORT_WISHES = "wish.export"
# Publish a wish directly, open at once (target: the Organization, the beneficiary Member, or None:
# anywhere at all): secretaries and admins in their subtree, a grid head in their node for their grid.
PUBLISH_WISH = "wish.publish"
# Manual point awards: file one, see those waiting for approval (target: an Organization; None: own).
REQUEST_AWARD = "points.request"
LIST_AWARDS = "points.pending"
# The points ranking of a subtree (target: an Organization; None: the actor's own node): the members
# of the community it lies in, and the managers above it.
VIEW_RANKING = "points.view_ranking"

WISH_ACTIONS = (VIEW_WISH, VIEW_BENEFICIARY, VIEW_WISH_PHOTO, REVIEW_WISH, WITHDRAW_WISH, CONFIRM_WISH,
                RETURN_WISH)
WISH_SUBTREE_ACTIONS = (MANAGE_WISHES, SET_WISH_POINTS, EXPORT_WISHES, PUBLISH_WISH, REQUEST_AWARD,
                        LIST_AWARDS, VIEW_RANKING)
WISH_POINT_ACTIONS = WISH_ACTIONS + WISH_SUBTREE_ACTIONS
# End of wishes and points -----------------------------------------------------------------------

ACTIONS = (MEMBER_ACTIONS + ORG_ACTIONS + POINT_ACTIONS + BINDING_ACTIONS + ACTIVITY_ACTIONS
           + WISH_POINT_ACTIONS)

_DENIED = {
    VIEW_MEMBER: "您无权查看该成员。",
    VIEW_PRIVATE: "您无权查看该成员的个人信息。",
    UPDATE_MEMBER: "您无权修改该成员的信息。",
    AWARD_POINTS: "只能为您负责的成员录入积分（不能为自己或同级的书记、管理员录入）。",
    DECIDE_AWARD: "只有负责该成员的上级书记或管理员可以审批（不能审批为自己录入的积分）。",
    LIST_MEMBERS: "您无权查看该组织的成员。",
    IMPORT_MEMBERS: "您无权向该组织导入成员。",
    EXPORT_MEMBERS: "您无权导出该组织的成员。",
    VIEW_ORGS: "您无权查看该组织。",
    RELEASE_BINDING: "只能解除您负责的成员的绑定（不能解除您自己或同级书记、管理员的绑定）。",
    # Activities
    MANAGE_ACTIVITY: "只有本组织的书记或管理员可以发布活动。",
}
NOT_MANAGER = "该功能仅限书记或管理员使用。"


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


def can(actor: Member | None, action: str, target: "Member | Organization | Wish | None" = None) -> bool:
    """Return whether `actor` may do `action` to `target` (a member, an organization's subtree, or a wish)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if action in WISH_POINT_ACTIONS:
        return _can_wishes_points(actor, action, target)
    if actor is None or not actor.active:
        return False
    if action in POINT_ACTIONS or action in BINDING_ACTIONS:
        if not isinstance(target, Member):
            raise TypeError(f"{action} needs a member")
        return responsible(actor, target.org.full_name, target.role, target.id)
    if action in MEMBER_ACTIONS:
        if not isinstance(target, Member):
            raise TypeError(f"{action} needs a member")
        if action in (VIEW_MEMBER, VIEW_PRIVATE) and target.id == actor.id:
            return True
        if action == VIEW_MEMBER:
            return is_manager(actor) and within(target.org.full_name, actor.org.full_name)
        return responsible(actor, target.org.full_name, target.role, target.id)
    if action in ACTIVITY_ACTIONS:
        if not isinstance(target, Organization):
            raise TypeError(f"{action} needs the activity's organization")
        return is_manager(actor) and within(target.full_name, actor.org.full_name)
    if target is not None and not isinstance(target, Organization):
        raise TypeError(f"{action} needs an organization")
    org = target if target is not None else actor.org
    return is_manager(actor) and within(org.full_name, actor.org.full_name)


def authorize(actor: Member | None, action: str, target: "Member | Organization | Wish | None" = None) -> None:
    """Raise Forbidden (403, with a Chinese message) unless `actor` may do `action` to `target`."""
    if can(actor, action, target):
        return
    if action in WISH_POINT_ACTIONS:
        raise _wishes_points_denial(actor, action, target)
    if actor is None:
        raise Forbidden("请先绑定党员身份。", code="not_bound")
    if not is_manager(actor) and (action in ORG_ACTIONS or (action == UPDATE_MEMBER or action in POINT_ACTIONS
                                                         or action in BINDING_ACTIONS)):
        raise Forbidden(NOT_MANAGER)
    raise Forbidden(_DENIED[action])


def award_decision_problem(actor: Member | None, requested_by_id: int, recipient: Member) -> str | None:
    """Why `actor` may not approve or refuse a manual award for `recipient` filed by `requested_by_id`
    (None: they may). Two different people, both responsible for the recipient: the approver is
    neither the requester nor the recipient."""
    if actor is not None and actor.id == requested_by_id:
        return "录入人不能审批自己录入的积分，请由另一位书记或管理员审批。"
    if not can(actor, DECIDE_AWARD, recipient):
        return _DENIED[DECIDE_AWARD] if is_manager(actor) else NOT_MANAGER
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


# Activities ------------------------------------------------------------------------------------
def activity_manager_clause(actor: Member | None):
    """A SQL condition on Organization true exactly for the organizations whose activities `actor`
    manages — `can(actor, MANAGE_ACTIVITY, org)` as a WHERE clause, for listings paged in SQL."""
    if not is_manager(actor):
        return false()
    home = actor.org.full_name
    return or_(Organization.full_name == home,
               Organization.full_name.startswith(home + PATH_SEPARATOR, autoescape=True))


# Roster ---------------------------------------------------------------------------------------
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


# Wishes and points ------------------------------------------------------------------------------
def _manages(actor: Member | None, org: Organization) -> bool:
    """A secretary or admin of `org` or above."""
    return is_manager(actor) and org.is_within(actor.org)


def _heads_own_grid(actor: Member) -> bool:
    return actor.heads_grid(actor.grid_id)


def _involved(actor: Member, wish: "Wish") -> bool:
    """The poster or the bound beneficiary."""
    return actor.id in (wish.poster_id, wish.beneficiary_member_id)


def _may_decide_fulfilment(actor: Member, wish: "Wish") -> bool:
    """The managers above, the head of the wish's grid, or the bound beneficiary (claimer or not)."""
    return (_manages(actor, wish.org) or actor.heads_grid(wish.grid_id)
            or (wish.beneficiary_member_id is not None and actor.id == wish.beneficiary_member_id))


def _can_wish(actor: Member | None, action: str, wish: "Wish") -> bool:
    if action == VIEW_WISH and wish.is_public:
        return True
    if actor is None or not actor.active:
        return False
    if action == VIEW_WISH:
        return _manages(actor, wish.org) or _involved(actor, wish)
    if action in (VIEW_BENEFICIARY, VIEW_WISH_PHOTO):
        # The claimer after claiming, the poster, the beneficiary, the grid head and the managers.
        return (_manages(actor, wish.org) or _involved(actor, wish) or actor.heads_grid(wish.grid_id)
                or (actor.id == wish.claimer_id and wish.is_taken))
    if action in (CONFIRM_WISH, RETURN_WISH):
        return _may_decide_fulfilment(actor, wish) and actor.id != wish.claimer_id
    return _manages(actor, wish.org)  # REVIEW_WISH, WITHDRAW_WISH


def _may_publish(actor: Member, target: Member | Organization | None) -> bool:
    if isinstance(target, Member):
        # A beneficiary within the subtree; for a grid head, of their own grid.
        return target.org.is_within(actor.org) and (
            is_manager(actor) or (_heads_own_grid(actor) and target.grid_id == actor.grid_id))
    if target is None:
        return is_manager(actor) or _heads_own_grid(actor)
    return _manages(actor, target) or (_heads_own_grid(actor) and target.id == actor.org_id)


def _can_wishes_points(actor: Member | None, action: str, target) -> bool:
    if action in WISH_ACTIONS:
        if target is None or isinstance(target, (Member, Organization)):
            raise TypeError(f"{action} needs a wish")
        return _can_wish(actor, action, target)
    if target is not None and not isinstance(target, Organization) and not (
            action == PUBLISH_WISH and isinstance(target, Member)):
        raise TypeError(f"{action} needs an organization")
    if actor is None or not actor.active:
        return False
    if action == PUBLISH_WISH:
        return _may_publish(actor, target)
    org = target if target is not None else actor.org
    if action == VIEW_RANKING:
        return org.is_within(community_of(actor.org)) or _manages(actor, org)
    return _manages(actor, org)


# action → the refusal; a pair: (to a non-manager, to a manager outside the subtree).
_WISH_DENIED = {
    VIEW_WISH: "您无权查看心愿 {number}。",
    VIEW_BENEFICIARY: "您无权查看心愿 {number} 的受助人信息。",
    VIEW_WISH_PHOTO: "只有心愿 {number} 的认领人、发布人、受助人和上级书记可以查看照片。",
    REVIEW_WISH: "只有心愿 {number} 所在组织的书记或管理员可以审核。",
    WITHDRAW_WISH: "只有心愿 {number} 所在组织的书记或管理员可以撤回。",
    CONFIRM_WISH: "只有心愿 {number} 所在组织的书记、管理员、网格长或受助人本人可以确认。",
    RETURN_WISH: "只有心愿 {number} 所在组织的书记、管理员、网格长或受助人本人可以驳回。",
    MANAGE_WISHES: (NOT_MANAGER, "只能管理本组织及下级组织的心愿。"),
    SET_WISH_POINTS: ("只有书记或管理员可以设置心愿积分。", "只能设置本组织及下级组织的心愿积分。"),
    EXPORT_WISHES: ("只有书记或管理员可以导出心愿。", "只能导出本组织及下级组织的心愿。"),
    REQUEST_AWARD: ("只有书记或管理员可以录入积分。", "只能为本组织及下级组织的成员录入积分。"),
    LIST_AWARDS: ("只有书记或管理员可以审批积分。", "只能审批本组织及下级组织的积分。"),
    VIEW_RANKING: "只能查看本社区或管理范围内的积分榜。",
}
# The claimer of a fulfilment asks to decide on it.
_OWN_FULFILMENT = {
    CONFIRM_WISH: "不能确认自己完成的心愿，请由书记或受助人确认。",
    RETURN_WISH: "不能驳回自己完成的心愿。",
}
MAY_NOT_PUBLISH = "只有书记、网格长或管理员可以直接发布心愿；您可以提交心愿，等待书记审核。"


def _publish_denial(actor: Member | None, target: Member | Organization | None) -> Forbidden:
    if target is None or actor is None or not (is_manager(actor) or _heads_own_grid(actor)):
        return Forbidden(MAY_NOT_PUBLISH, code="may_not_publish")
    if isinstance(target, Member):
        return Forbidden("受助人不在您的管理范围内。")
    if not is_manager(actor):
        return Forbidden("网格长只能在本网格发布心愿。")
    return Forbidden("只能在本组织及下级组织发布心愿。")


def _wishes_points_denial(actor: Member | None, action: str, target) -> Forbidden:
    """Why `actor` may not do a wish or points action to `target`, in the words users see."""
    if action == PUBLISH_WISH:
        return _publish_denial(actor, target)
    if action in _OWN_FULFILMENT and actor is not None and actor.id == target.claimer_id \
            and _may_decide_fulfilment(actor, target):
        return Forbidden(_OWN_FULFILMENT[action])
    denied = _WISH_DENIED[action]
    if isinstance(denied, tuple):
        return Forbidden(denied[1] if is_manager(actor) else denied[0])
    return Forbidden(denied.format(number=f"#{target.id}" if action in WISH_ACTIONS else ""))
# End of wishes and points -----------------------------------------------------------------------
