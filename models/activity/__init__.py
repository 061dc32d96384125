"""Activities (组织生活, 志愿服务), registration, sign-in and sign-out.

Every operation is one transaction; the rules that could race (sign-in, a seat, a promotion from
the waiting list, the points of a sign-out) are conditional statements whose row count decides.

The rooms: `tables` (the tables and constants), `manage` (creating and changing an activity),
`audience` (who it is for), `registration` (seats and the waiting list), `checkin` (codes, the
venue, sign-in, sign-out), `listing` (what a member sees), `reports` (attendance).
"""

from models.activity.audience import (
    audience_filter,
    audience_query,
    expected_count,
    expected_counts,
    expected_members,
    in_audience,
    seen_by_clause,
)
from models.activity.checkin import (
    CheckInResult,
    SignIn,
    check_in,
    check_in_by_code,
    check_in_by_scene,
    check_out,
    checked_in_count,
    code_is_valid,
    current_code,
    distance_m,
    existing_checkin,
    find_by_code,
    hours_text,
    minute_index,
    proxy_check_in,
    proxy_check_in_member,
    qr_expire_seconds,
    release_attempts,
    remember_qr,
    reserve_attempt,
    rotating_code,
    scene_for,
    served_minutes,
)
from models.activity.leave import (
    LeaveRequest,
    approved_member_ids,
    decide_leave,
    find_requester,
    leave_of,
    leaves_of,
    pending_leaves,
    pending_leaves_for,
    request_leave,
)
from models.activity.listing import (
    ActivityStatus,
    activities_for,
    activity_status,
    get_visible_activity,
    may_see,
    upcoming_for,
)
from models.activity.manage import (
    ActivityChanges,
    Cancelled,
    NewActivity,
    activity_by_token,
    cancel_activity,
    cancel_activity_report,
    counting_on,
    create_activity,
    edit_activity,
    get_activity,
    get_managed_activity,
    normalize_kind,
    reschedule_activity,
    set_rotating,
    set_venue,
)
from models.activity.registration import (
    cancel_registration,
    register,
    registration_of,
    registration_text,
    waiting_ahead,
)
from models.activity.reports import Attendance, attendance, period_attendance, period_bounds
from models.activity.tables import (
    AUDIENCES,
    CANCELLED,
    KIND_ALIASES,
    KINDS,
    METHODS,
    NO_ACTIVITY,
    REGISTERED,
    SCENE_PREFIX,
    VOLUNTEER,
    WAITING,
    Activity,
    CheckIn,
    CheckInAttempt,
    Registration,
    ReminderSetting,
)

__all__ = [
    "AUDIENCES", "CANCELLED", "KINDS", "KIND_ALIASES", "METHODS", "NO_ACTIVITY", "REGISTERED", "SCENE_PREFIX",
    "VOLUNTEER", "WAITING",
    "Activity", "ActivityChanges", "ActivityStatus", "Attendance", "Cancelled", "CheckIn", "CheckInAttempt",
    "CheckInResult", "LeaveRequest", "NewActivity", "Registration", "ReminderSetting", "SignIn",
    "activities_for", "activity_by_token", "activity_status", "approved_member_ids", "attendance",
    "audience_filter", "audience_query", "cancel_activity", "cancel_activity_report", "cancel_registration",
    "check_in", "check_in_by_code", "check_in_by_scene", "check_out", "checked_in_count", "code_is_valid",
    "counting_on", "create_activity", "current_code", "decide_leave", "distance_m", "edit_activity",
    "existing_checkin", "find_requester", "leave_of", "leaves_of", "pending_leaves", "pending_leaves_for",
    "request_leave",
    "expected_count", "expected_counts", "expected_members", "find_by_code", "get_activity", "get_managed_activity",
    "get_visible_activity", "hours_text", "in_audience", "may_see", "minute_index", "normalize_kind",
    "period_attendance", "period_bounds", "proxy_check_in", "proxy_check_in_member", "qr_expire_seconds",
    "register", "registration_of", "registration_text", "release_attempts", "remember_qr", "reschedule_activity",
    "reserve_attempt", "rotating_code", "scene_for", "seen_by_clause", "served_minutes", "set_rotating",
    "set_venue", "upcoming_for",
    "waiting_ahead",
]
