"""Sign-in (签到) and sign-out (签退): codes, rotating codes, the venue distance, the WeChat QR scene,
attempt counting, proxy sign-in, and the service time of volunteers."""

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from models import authz, clock
from models.activity.audience import audience_query, in_audience
from models.activity.manage import get_activity
from models.activity.registration import registration_of
from models.activity.tables import (
    AUDIENCES,
    METHODS,
    NO_ACTIVITY,
    REGISTERED,
    SCENE_PREFIX,
    Activity,
    CheckIn,
    CheckInAttempt,
)
from models.base import DomainError, Forbidden, NotFound, insert_ignore
from models.member import Member, WechatUser
from models.points import credit
from models.text import MAX_CODE, MAX_NAME, clean_text


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Return the great-circle distance between two positions in metres (haversine)."""
    rlat1, rlat2 = math.radians(lat1), math.radians(lat2)
    dlat, dlng = rlat2 - rlat1, math.radians(lng2 - lng1)
    a = math.sin(dlat / 2) ** 2 + math.cos(rlat1) * math.cos(rlat2) * math.sin(dlng / 2) ** 2
    return 2 * 6371000 * math.asin(math.sqrt(a))


def minute_index(now: datetime) -> int:
    return int(now.timestamp() // 60)


def rotating_code(activity: Activity, minute: int) -> str:
    """Return the 6-digit code of `activity` for a given minute (HMAC of its secret)."""
    digest = hmac.new(activity.secret.encode(), f"{activity.id}:{minute}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


def current_code(activity: Activity, now: datetime) -> str:
    """Return the code in force at `now`."""
    return rotating_code(activity, minute_index(now)) if activity.rotating else activity.code


def code_is_valid(activity: Activity, code: str, now: datetime) -> bool:
    """Fixed code, or the rotating code of this minute or the one before."""
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (e.g. "١٢٣٤", which \d matches).
    given = code.encode()
    if not activity.rotating:
        return hmac.compare_digest(given, activity.code.encode())
    minute = minute_index(now)
    return any(hmac.compare_digest(given, rotating_code(activity, m).encode()) for m in (minute, minute - 1))


def scene_for(activity: Activity, now: datetime) -> str:
    """Return the QR scene string in force: "checkin:<id>:<code>" (at most 64 characters)."""
    return f"{SCENE_PREFIX}{activity.id}:{current_code(activity, now)}"



def remember_qr(session: Session, activity: Activity, scene: str, url: str) -> None:
    """Keep the WeChat QR code made for a scene, so that every screen shows the same one; commit."""
    activity.qr_scene, activity.qr_url = scene, url
    session.commit()


def qr_expire_seconds(activity: Activity, now: datetime) -> int:
    """How long a temporary QR code should live: until the end of sign-in, at most WeChat's 30 days;
    a rotating code's QR only a few minutes (it is replaced every minute anyway)."""
    if activity.rotating:
        return 300
    return max(60, min(30 * 86400, int((activity.ends_at - now).total_seconds()) + 600))


def checked_in_count(session: Session, activity_id: int) -> int:
    return session.scalar(select(func.count(CheckIn.id)).where(CheckIn.activity_id == activity_id)) or 0



# Sign-in -----------------------------------------------------------------------------------------
@dataclass
class CheckInResult:
    checkin: CheckIn
    created: bool  # False: the member had signed in before
    activity: Activity
    count: int  # members signed in so far


@dataclass(frozen=True)
class SignIn:
    """How a member signs in: the method, and the code, the position or the proxy that prove it."""

    method: str  # one of METHODS
    code: str | None = None
    position: tuple[float, float] | None = None
    proxy_by: Member | None = None  # 代签: the secretary who records it


def check_in(session: Session, activity: Activity, member: Member, how: SignIn, *, now: datetime,
             settings: Settings = DEFAULTS) -> CheckInResult:
    """Sign `member` in to `activity` — the one function behind QR scans, typed codes, the
    mini-program and proxy sign-in (代签). Enforces the window, the audience, the code and the
    venue radius; a repeat answers with the first sign-in. Commits."""
    if how.method not in METHODS:
        raise ValueError(f"unknown sign-in method {how.method!r}")
    proxy = how.method == "proxy"
    _check_window(session, activity, member, now, settings, proxy)
    if proxy:
        if how.proxy_by is None or not authz.can(how.proxy_by, authz.MANAGE_ACTIVITY, activity.org):
            raise Forbidden("只有本组织的书记或管理员可以代签。")
    else:
        _check_code(session, activity, member, how.code, now, settings)
    if not in_audience(session, activity, member):
        raise Forbidden(f"活动 {activity.number} 仅限{AUDIENCES[activity.audience]}签到。")
    if activity.registration and not _is_registered(session, activity.id, member.id):
        if proxy:  # 代签 follows the rules of signing in oneself
            raise Forbidden(f"活动 {activity.number} 需报名参加，{member.name}尚未报名或仍在候补名单上，不能代签。")
        raise Forbidden(f"活动 {activity.number} 需报名参加，您尚未报名或仍在候补名单上。")
    distance = None if proxy else _venue_distance(session, activity, member, how.position, now, settings)
    # The unique (activity, member) constraint decides: of any number of simultaneous sign-ins,
    # exactly one inserts; the others find it.
    inserted = insert_ignore(
        session, CheckIn.__table__, activity_id=activity.id, member_id=member.id, checked_in_at=now,
        method=how.method, proxy_by_id=how.proxy_by.id if how.proxy_by is not None and proxy else None,
        distance_m=distance,
    )
    session.commit()
    checkin = existing_checkin(session, activity.id, member.id)
    if not inserted:
        # The same member signed in from another request a moment ago (two taps, a scan and a code).
        raise _already(checkin, settings, member.name if proxy else None)
    return CheckInResult(checkin, True, activity, checked_in_count(session, activity.id))


def _check_window(session: Session, activity: Activity, member: Member, now: datetime, settings: Settings,
                  proxy: bool = False) -> None:
    """Sign-in is open: the activity stands, the member has not signed in, it is the right time."""
    if activity.cancelled:
        raise DomainError(f"活动 {activity.number} 已取消。", code="cancelled")
    earlier = existing_checkin(session, activity.id, member.id)
    if earlier is not None:
        raise _already(earlier, settings, member.name if proxy else None)
    opens = activity.starts_at - timedelta(minutes=settings.checkin_opens_minutes)
    if now < opens:
        raise DomainError(f"活动 {activity.number}「{activity.title}」尚未开始签到，签到时间为"
                          f"{clock.day_time(opens, settings.tz)}起。", code="too_early")
    if now > activity.ends_at:
        raise DomainError(f"活动 {activity.number}「{activity.title}」已结束，签到已关闭。", code="too_late")


def _check_code(session: Session, activity: Activity, member: Member, code: str | None, now: datetime,
                settings: Settings) -> None:
    # Counted before it is checked: however many codes arrive at once, at most
    # CHECKIN_MAX_FAILURES per lock-out are ever compared.
    reserve_attempt(session, member.id, activity.id, now, settings)
    if code is None or not code_is_valid(activity, code, now):
        raise DomainError("签到码无效或已过期，请扫描现场二维码或输入现场显示的最新签到码。",
                          code="bad_code")
    release_attempts(session, member.id, activity.id)


def _venue_distance(session: Session, activity: Activity, member: Member, position: tuple[float, float] | None,
                    now: datetime, settings: Settings) -> float | None:
    """The member's distance from a venue that has a position (None: no venue, or no position known
    and none required); raise if they are too far."""
    if activity.latitude is None or activity.longitude is None:
        return None
    position = position or _last_position(session, member, now, settings)
    if position is None and settings.checkin_require_position:
        raise DomainError("本活动需要核对位置才能签到：请在公众号右上角允许「提供位置信息」，"
                          "重新进入公众号后再签到。", code="no_position")
    if position is None:
        return None
    distance = distance_m(activity.latitude, activity.longitude, *position)
    radius = activity.radius_m or settings.activity_default_radius
    if distance > radius:
        raise DomainError(f"您距离活动地点约 {_metres(distance)}，超出签到范围（{radius}米），"
                          "请到达现场后再签到。", code="too_far")
    return distance


def existing_checkin(session: Session, activity_id: int, member_id: int) -> CheckIn | None:
    return session.scalars(select(CheckIn).where(
        CheckIn.activity_id == activity_id, CheckIn.member_id == member_id)).first()


def _already(checkin: CheckIn, settings, name: str | None = None) -> DomainError:
    """The answer to a second sign-in; a proxy sign-in of someone already signed in names them."""
    who = f"{name}已签到" if name else "您已签到"
    return DomainError(f"{who}（{clock.day_time(checkin.checked_in_at, settings.tz)}），无需重复签到。",
                       code="already_checked_in", status=409)


def _is_registered(session: Session, activity_id: int, member_id: int) -> bool:
    reg = registration_of(session, activity_id, member_id)
    return reg is not None and reg.status == REGISTERED


def _last_position(session, member, now, settings) -> tuple[float, float] | None:
    if not member.openid:
        return None
    user = session.get(WechatUser, member.openid)
    if user is None or user.latitude is None or user.located_at is None:
        return None
    if (now - user.located_at).total_seconds() > settings.checkin_location_max_age:
        return None
    return user.latitude, user.longitude


def _metres(distance: float) -> str:
    return f"{distance / 1000:.1f}公里" if distance >= 1000 else f"{round(distance)}米"


def reserve_attempt(session: Session, member_id: int, activity_id: int, now: datetime,
                    settings: Settings = DEFAULTS) -> None:
    """Count one sign-in code of `member_id` for `activity_id` before it is checked; commit.

    Raise DomainError (locked, 429) when the member has no try left there. The conditional UPDATE
    decides: concurrent codes queue on the row (or SQLite's lock) and each sees the others' count.
    """
    limit = settings.checkin_max_failures
    lockout = timedelta(seconds=settings.checkin_lockout_seconds)
    insert_ignore(session, CheckInAttempt.__table__, member_id=member_id, activity_id=activity_id, failures=0)
    key = (CheckInAttempt.member_id == member_id, CheckInAttempt.activity_id == activity_id)
    session.execute(update(CheckInAttempt).where(*key, CheckInAttempt.locked_until <= now)
                    .values(failures=0, locked_until=None))
    reserved = session.execute(
        update(CheckInAttempt)
        .where(*key, CheckInAttempt.failures < limit,
               or_(CheckInAttempt.locked_until.is_(None), CheckInAttempt.locked_until <= now))
        .values(failures=CheckInAttempt.failures + 1,
                locked_until=case((CheckInAttempt.failures + 1 >= limit, now + lockout), else_=None))
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if reserved != 1:
        until = session.scalar(select(CheckInAttempt.locked_until).where(*key))
        minutes = max(1, math.ceil(((until or now + lockout) - now).total_seconds() / 60))
        raise DomainError(f"签到码错误次数过多，请{minutes}分钟后再试，或请书记代签。", code="locked",
                          status=429)


def release_attempts(session: Session, member_id: int, activity_id: int) -> None:
    """A right code: the member's count there starts again; commit."""
    session.execute(update(CheckInAttempt)
                    .where(CheckInAttempt.member_id == member_id, CheckInAttempt.activity_id == activity_id,
                           CheckInAttempt.failures > 0)
                    .values(failures=0, locked_until=None))
    session.commit()


def find_by_code(session: Session, code: str, now: datetime, settings: Settings = DEFAULTS,
                 member: Member | None = None) -> Activity:
    """Return the activity a typed code belongs to: a rotating code in force, else a fixed code.

    With `member`, the code is counted against them first (the "no activity" bucket), so typing
    codes at random is limited like wrong codes for one activity."""
    code = code.strip()
    if not re.fullmatch(r"\d{4,8}", code):
        raise DomainError("签到码是数字，请输入现场显示的签到码，例如：签到 123456", code="bad_code")
    if member is not None:
        reserve_attempt(session, member.id, NO_ACTIVITY, now, settings)
    activity = _activity_for_code(session, code, now, settings)
    if member is not None:
        release_attempts(session, member.id, NO_ACTIVITY)
    return activity


def _activity_for_code(session: Session, code: str, now: datetime, settings: Settings) -> Activity:
    opens = timedelta(minutes=settings.checkin_opens_minutes)
    live = session.scalars(select(Activity).where(
        Activity.rotating.is_(True), Activity.cancelled.is_(False),
        Activity.starts_at <= now + opens, Activity.ends_at >= now)).all()
    for activity in live:
        if code_is_valid(activity, code, now):
            return activity
    fixed = session.scalars(
        select(Activity).where(Activity.code == code, Activity.rotating.is_(False), Activity.cancelled.is_(False))
        .order_by((Activity.ends_at >= now).desc(), Activity.starts_at)
    ).first()
    if fixed is None:
        raise DomainError("签到码无效或已过期，请扫描现场二维码或输入现场显示的最新签到码。", code="bad_code")
    return fixed


def check_in_by_code(session: Session, member: Member, code: str, *, now: datetime, method: str = "code",
                     activity_id: int | None = None, position: tuple[float, float] | None = None,
                     settings: Settings = DEFAULTS) -> CheckInResult:
    """Sign in with a typed code (the chatbot) or, with `activity_id`, from the mini-program."""
    code = clean_text(code, "签到码", MAX_CODE)
    if activity_id is not None:
        activity = get_activity(session, activity_id)
    else:
        activity = find_by_code(session, code, now, settings, member=member)
    return check_in(session, activity, member, SignIn(method, code=code.strip(), position=position), now=now,
                    settings=settings)


def check_in_by_scene(session: Session, member: Member, scene: str, *, now: datetime,
                      settings: Settings = DEFAULTS) -> CheckInResult:
    """Sign in from a scanned QR code whose scene (after "checkin:") is "<activity id>:<code>"."""
    found = re.fullmatch(r"(\d+):(\d+)", scene or "")
    if found is None:
        raise DomainError("该签到二维码无法识别，请重新扫描现场二维码。", code="bad_scene")
    activity = get_activity(session, int(found[1]))
    return check_in(session, activity, member, SignIn("qr", code=found[2]), now=now, settings=settings)


def proxy_check_in(session: Session, activity: Activity, secretary: Member, name: str, *, now: datetime,
                   settings: Settings = DEFAULTS) -> CheckInResult:
    """代签: the secretary signs in an audience member by name; recorded as a proxy sign-in."""
    if not authz.can(secretary, authz.MANAGE_ACTIVITY, activity.org):
        raise Forbidden("只有本组织的书记或管理员可以代签。")
    name = clean_text(name, "姓名", MAX_NAME)
    matches = [m for m in session.scalars(audience_query(activity).where(Member.name == name.strip()))]
    if not matches:
        raise NotFound(f"活动 {activity.number} 的参加范围内没有名为「{name}」的成员。")
    if len(matches) > 1:
        raise DomainError(f"参加范围内有 {len(matches)} 位名为「{name}」的成员，请在后台按手机号代签。",
                          code="ambiguous")
    return check_in(session, activity, matches[0], SignIn("proxy", proxy_by=secretary), now=now, settings=settings)


# Sign-out ----------------------------------------------------------------------------------------
def check_out(session: Session, activity: Activity, member: Member, *, now: datetime,
              settings: Settings = DEFAULTS) -> CheckIn:
    """签退 of a volunteer service: record the service time (`served_minutes`), and credit the
    activity's points once — neither when the time is below SERVICE_MIN_MINUTES. Commits."""
    if not activity.is_volunteer:
        raise DomainError(f"活动 {activity.number} 不是志愿服务，无需签退。", code="not_volunteer")
    checkin = existing_checkin(session, activity.id, member.id)
    if checkin is None:
        raise DomainError(f"您还没有签到活动 {activity.number}，请先签到。", code="not_checked_in")
    if checkin.checked_out_at is not None:
        raise DomainError(f"您已于 {clock.day_time(checkin.checked_out_at, settings.tz)} 签退，"
                          f"服务时长 {hours_text(checkin.service_minutes)}。", code="already_checked_out")
    grace = timedelta(minutes=settings.checkout_grace_minutes)
    if now > activity.ends_at + grace:
        raise DomainError(f"活动 {activity.number} 已结束较久，无法签退，请联系书记补录。", code="too_late")
    served = served_minutes(activity, checkin.checked_in_at, now)
    counted = served >= settings.service_min_minutes
    minutes = served if counted else 0
    done = session.execute(
        update(CheckIn).where(CheckIn.id == checkin.id, CheckIn.checked_out_at.is_(None))
        .values(checked_out_at=now, service_minutes=minutes).execution_options(synchronize_session=False)
    ).rowcount
    if done and counted and activity.points > 0:
        # Through the ledger, in this transaction: the ledger's unique key credits a source once.
        credit(session, member_id=member.id, amount=activity.points,
               reason=f"志愿服务 {activity.number} {activity.title}", source="activity",
               source_id=str(activity.id), now=now)
    session.commit()
    session.refresh(checkin)
    if not done:
        raise DomainError(f"您已签退，服务时长 {hours_text(checkin.service_minutes)}。", code="already_checked_out")
    return checkin


def served_minutes(activity: Activity, checked_in_at: datetime, checked_out_at: datetime) -> int:
    """A volunteer's service time: from the later of the start and the sign-in to the earlier of
    the end and the sign-out, in whole minutes. Below SERVICE_MIN_MINUTES it earns neither hours nor
    points (recorded as 0)."""
    start = max(checked_in_at, activity.starts_at)
    end = min(checked_out_at, activity.ends_at)
    return max(0, int((end - start).total_seconds() // 60))


def hours_text(minutes: int | None) -> str:
    """Format a service time: 2小时5分钟, or 45分钟."""
    minutes = minutes or 0
    return f"{minutes // 60}小时{minutes % 60}分钟" if minutes >= 60 else f"{minutes}分钟"



def proxy_check_in_member(session: Session, activity: Activity, secretary: Member, member_id: int, *,
                          now: datetime, settings: Settings = DEFAULTS) -> CheckInResult:
    """代签 of one audience member chosen by id (the back office), recorded as a proxy sign-in."""
    if not authz.can(secretary, authz.MANAGE_ACTIVITY, activity.org):
        raise Forbidden("只有本组织的书记或管理员可以代签。")
    member = session.scalars(audience_query(activity).where(Member.id == member_id)).first()
    if member is None:
        raise NotFound(f"活动 {activity.number} 的参加范围内没有该成员。")
    return check_in(session, activity, member, SignIn("proxy", proxy_by=secretary), now=now, settings=settings)
