"""Settings: one typed, frozen object built once by `load_config` from the defaults below, the
environment (and a `.env` file) and any overrides. Every door, domain function and job takes this
object; no default of a setting is written anywhere else."""

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Flask's instance folder of the app (app/ sits beside this file): the SQLite file, kept photos.
INSTANCE_DIR = Path(__file__).resolve().parent / "instance"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting, named as its environment variable in lower case (WISH_MAX_POINTS →
    `wish_max_points`); an environment value is converted to the type of its default."""

    # Reject webhook requests whose timestamp is further than this from now (seconds).
    wechat_timestamp_tolerance: int = 300
    # Largest webhook body accepted (bytes).
    wechat_max_body: int = 64 * 1024
    # A reply not ready this many seconds after the request arrived is sent later through the
    # outbox as a customer-service message; WeChat gives up after 5 s.
    wechat_reply_deadline: float = 4.0
    # How long a handled message's reply is kept for WeChat's retries (seconds).
    wechat_dedup_ttl: int = 300
    # How long a retry waits for the first delivery of the same message to finish (seconds).
    wechat_retry_wait: float = 4.0
    # Timeout of every WeChat API call (seconds); wechatpy has none by default.
    wechat_http_timeout: float = 5.0
    # Redis socket timeouts on the reply path (seconds); redis-py's defaults wait for seconds.
    redis_timeout: float = 0.5
    # PostgreSQL: connect and statement timeouts (seconds); short, for the 5-second reply promise.
    db_connect_timeout: int = 3
    db_statement_timeout: int = 3
    # Binding: failed attempts before an openid is locked out, and for how long (seconds).
    bind_max_failures: int = 5
    bind_lockout_seconds: int = 3600
    # 微心愿: points a wish is worth unless set, claims one person may hold at once, days a
    # claimer has to fulfil, days before that deadline the claimer is reminded, minutes after
    # 完成 during which an image is attached as a photo, and wishes per page of 心愿.
    wish_default_points: int = 10
    wish_max_open_claims: int = 3
    wish_fulfil_days: int = 14
    wish_remind_days: int = 2
    wish_photo_minutes: int = 10
    # Photos sent within this many minutes of writing a meeting record (会议记录) are attached to it.
    record_photo_minutes: int = 10
    # A sign-in later than this many minutes after the start is marked 迟到 in attendance.
    late_grace_minutes: int = 5
    # After an occasion, a note to each member absent without leave: for organizational life (1: on)
    # and for volunteer services (0: off).
    absence_note_orglife: int = 1
    absence_note_volunteer: int = 0
    wish_page_size: int = 5
    # Largest photo the API accepts for a wish (bytes); photos are kept in WISH_PHOTO_DIR
    # (default: wish_photos/ in the instance folder).
    wish_photo_max_bytes: int = 5 * 1024 * 1024
    # Mini-program API: session token lifetime, extended on every use (seconds).
    api_token_ttl: int = 7 * 24 * 3600
    # Largest roster file accepted by the import endpoint (bytes).
    api_max_upload: int = 5 * 1024 * 1024
    # Console: how long an uploaded roster is kept between its preview and its import (seconds).
    console_import_ttl: int = 1800
    # Reverse proxies (nginx) in front of the app whose X-Forwarded-For is trusted; 0: none. The
    # per-address rate limits need the client's address, not the proxy's.
    trusted_proxies: int = 0
    # Activities: sign-in opens this many minutes before the start (and closes at the end).
    checkin_opens_minutes: int = 30
    # A LOCATION report older than this (seconds) is not used for the venue distance check.
    checkin_location_max_age: int = 1800
    # 签退 is accepted until this many minutes after a volunteer service ends.
    checkout_grace_minutes: int = 120
    # A volunteer service shorter than this (from the later of start and sign-in to the earlier of end
    # and sign-out) earns neither hours nor points.
    service_min_minutes: int = 15
    # Length of an activity created without an end time (minutes).
    activity_default_minutes: int = 120
    # Points of a volunteer service when its creator gives none.
    volunteer_default_points: int = 10
    # Sign-in radius around a venue position (metres).
    activity_default_radius: int = 300
    # 1: with a venue position set, refuse sign-ins whose position is unknown (0: accept them).
    checkin_require_position: int = 0
    # Yearly quotas of 在职党员: organizational-life and volunteer-service counts.
    quota_org_life: int = 4
    quota_volunteer: int = 2
    # How often the meeting-room sign-in page polls the live count (seconds).
    checkin_page_poll_seconds: int = 3
    # Outbox sender: messages per second across all processes (0: no limit; urgent ones ignore it),
    # sending threads per process, rows claimed at a time, tries before a transient failure is
    # final, first retry delay (doubled each time, seconds), and how long a claimed row may stay
    # untouched before it counts as abandoned by a dead sender (seconds).
    send_rate_limit: float = 20.0
    outbox_workers: int = 16
    outbox_batch: int = 100
    outbox_max_attempts: int = 5
    outbox_retry_base: float = 60.0
    outbox_lease_seconds: int = 600
    # Scheduler: how often the outbox is drained (seconds), how late a missed run may still run
    # (hours), and the leader lock's time to live (seconds; a dead leader is replaced within it).
    scheduler_drain_interval: int = 30
    scheduler_grace_hours: int = 6
    scheduler_leader_ttl: int = 30
    # Organizational life: the notice goes this many days before, at ORGLIFE_NOTICE_TIME; the
    # reminder this many hours before the start.
    orglife_notice_days: int = 3
    orglife_reminder_hours: int = 2
    # 1: run the scheduler inside this process (the dev server of `make run`; never gunicorn).
    scheduler_embedded: int = 0
    # Outbox delivery (nothing lost, nothing twice): after a failure before a call was made (Redis
    # down: rate limiter, windows, pauses, the token lock) the sender waits this long before claiming
    # again (seconds), and gives the drain up after failing like that for this long (seconds; the rows
    # stay pending for the next drain).
    outbox_outage_pause: float = 1.0
    outbox_outage_give_up: float = 60.0
    # The most points a wish may be worth; only secretaries and admins set a wish's points (a grid
    # head's wish is worth WISH_DEFAULT_POINTS).
    wish_max_points: int = 50
    # 签到: wrong codes one member may type for one activity (or codes matching no activity) before
    # being locked out of typed sign-in there, and for how long (seconds).
    checkin_max_failures: int = 5
    checkin_lockout_seconds: int = 900
    # Roster files read for an import: at most this many data rows and header columns; a sheet
    # holding more is refused with the reason (only the header's columns are kept).
    roster_max_rows: int = 100_000
    roster_max_columns: int = 50
    # An .xlsx is read in a process of its own (python-calamine) with at most this much address
    # space and this many seconds of CPU and of wall time: a hostile workbook ends that process only.
    roster_read_memory_mb: int = 2048
    roster_read_seconds: int = 8
    # Notices and the inbox: a notice's 再提醒 (chatbot or API) goes out at most once per this many
    # hours (0: no limit); the refusal says when the next one is allowed.
    notice_remind_hours: int = 12
    # Each branch's required rhythm of 三会一课 and 主题党日 (activity kind=月 or 季度), checked on
    # RHYTHM_CHECK_DAY of each month (a note to the branch secretary about what is neither held nor
    # scheduled), and the weights of the quarterly ranking of branches (季排名).
    orglife_rhythm: str = "支部党员大会=季度,支委会=月,党小组会=月,党课=季度,主题党日=月"
    rhythm_check_day: int = 20
    ranking_weights: str = "held=40,attendance=25,records=15,wishes=10,notices=10"
    # Background jobs: an API import of more rows than this, or an export of a subtree with more
    # members (or rows) than this, runs as a job (202 with the job to poll) instead of in the request.
    job_inline_rows: int = 2000
    # Hours a finished job's result (the file, the report) is kept before it is deleted.
    job_result_hours: int = 24
    # A running job's lease (seconds): its worker renews it while it works; a job whose lease ran
    # out (the worker died) is taken up again by another worker.
    job_lease_seconds: int = 300
    # Tries of one job (each take-up after a crash or an error counts) before it is marked failed.
    job_max_attempts: int = 3
    # The scheduler process looks for queued jobs this often (seconds) and runs that many at once.
    job_poll_interval: int = 5
    job_workers: int = 2
    # PostgreSQL: how long one statement of a job's work may run (seconds); the requests keep
    # DB_STATEMENT_TIMEOUT, short for the reply path.
    job_statement_timeout: int = 600
    # The console (/console): a session ends after this many hours without a request (each request
    # renews it); a login QR code is valid this many seconds; the login page asks this often
    # whether its QR code was scanned (seconds).
    console_session_hours: float = 8.0
    console_login_seconds: int = 300
    console_login_poll_seconds: float = 1.0

    database_url: str = "sqlite:///lianxin.db"  # relative SQLite paths live in instance/
    redis_url: str = ""  # empty: an in-process stand-in (one process only)
    secret_key: str = ""
    wechat_token: str = "lianxin"
    wechat_app_id: str = "wx0000000000000000"
    wechat_app_secret: str = ""
    wechat_aes_key: str = ""  # EncodingAESKey; set means safe mode
    wechat_aes_key_previous: str = ""  # the key being rotated out, still accepted for decryption
    wechat_api_base: str = "https://api.weixin.qq.com"
    # WeChat's web authorization (OAuth 2, the console inside WeChat's browser): the host of its
    # authorize page (the local stand-in's address on a laptop).
    wechat_open_base: str = "https://open.weixin.qq.com"
    miniapp_app_id: str = ""
    miniapp_app_secret: str = ""
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    # Mini-program API rate limits (Flask-Limiter syntax), kept in Redis when REDIS_URL is set.
    api_login_rate_limit: str = "20 per minute"  # per client address
    api_bind_rate_limit: str = "20 per minute"  # per client address
    api_bind_rate_limit_per_token: str = "10 per minute"
    # Where the API docs page loads Swagger UI from (empty: this server, from the installed
    # swagger-ui-bundle package, so the page works offline).
    api_docs_assets_url: str = ""
    # Activity reminders: hours before the start, comma-separated.
    activity_reminder_hours: str = "24,1"
    # Quotas of other member kinds as JSON, e.g. {"直管党员": [12, 2]} (organizational life, volunteer).
    quotas: str = ""
    # The public address of this server, for links sent in WeChat (the meeting-room page).
    public_base_url: str = ""
    # Where photos are kept (wish uploads, and the photos sent in chat once fetched from WeChat);
    # empty: wish_photos/ in the instance folder.
    wish_photo_dir: str = ""
    # Template ids per kind of message: Official Account template messages, mini-program
    # subscribe messages. An empty id means that channel is not used for that kind.
    wechat_template_notice: str = ""
    wechat_template_reminder: str = ""
    wechat_template_greeting: str = ""
    wechat_template_wish: str = ""
    wechat_template_activity: str = ""
    miniapp_template_notice: str = ""
    miniapp_template_reminder: str = ""
    miniapp_template_greeting: str = ""
    miniapp_template_wish: str = ""
    miniapp_template_activity: str = ""
    # Non-urgent messages wait out these hours (local time, may wrap midnight; empty: none).
    quiet_hours: str = "22:00-07:00"
    orglife_notice_time: str = "09:00"
    birthday_time: str = "09:00"
    # Which date is the political birthday: one of BIRTHDAY_DATE_FIELDS.
    birthday_date_field: str = "join_date"
    # Template fields per template: "keyword=source,…" (e.g. "thing1=title,time2=starts_at,thing3=body"),
    # the keyword's type read from its name (TEMPLATE_FIELD_TYPES), the source one of
    # TEMPLATE_FIELD_SOURCES. Empty: the built-in thing1/thing2/content payload. Official Account
    # template messages, then mini-program subscribe messages.
    wechat_template_notice_fields: str = ""
    wechat_template_reminder_fields: str = ""
    wechat_template_greeting_fields: str = ""
    wechat_template_wish_fields: str = ""
    wechat_template_activity_fields: str = ""
    miniapp_template_notice_fields: str = ""
    miniapp_template_reminder_fields: str = ""
    miniapp_template_greeting_fields: str = ""
    miniapp_template_wish_fields: str = ""
    miniapp_template_activity_fields: str = ""
    # Where a mapped template message links to: this path under PUBLIC_BASE_URL ({id}: the message;
    # empty: no web link — this server has no message page of its own, a front end may), and, when a
    # mini-program is configured, this mini-program page (also a subscribe message's page).
    message_link_path: str = ""
    miniapp_message_page: str = "pages/messages/detail?id={id}"

    # Derived when loaded (not read from the environment).
    secret_key_generated: bool = False
    template_field_maps: Mapping[str, tuple[tuple[str, str, str], ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    rhythm: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # kind → month/quarter
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # of RANKING_WEIGHTS

    @property
    def photo_dir(self) -> str:
        """Where photos are kept (WISH_PHOTO_DIR, else wish_photos/ in the instance folder)."""
        return self.wish_photo_dir or str(INSTANCE_DIR / "wish_photos")

    @property
    def tz(self) -> ZoneInfo:
        """The local time zone (TIMEZONE); zoneinfo caches one object per key."""
        return ZoneInfo(self.timezone)

    def replace(self, **changes) -> "Settings":
        """A copy with some settings changed (by field or environment name: wish_max_points or
        WISH_MAX_POINTS), checked like the loaded ones."""
        unknown = [name for name in changes if name.lower() not in FIELDS]
        if unknown:
            raise ConfigError(f"not a setting: {', '.join(unknown)}")
        return _checked(dataclasses.replace(self, **{name.lower(): value for name, value in changes.items()}))


# What the environment may set: every field but the derived ones.
_DERIVED = ("secret_key_generated", "template_field_maps", "rhythm", "weights")
FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in _DERIVED}


# The member dates a political birthday may be counted from: 入党日期 or 转正日期.
BIRTHDAY_DATE_FIELDS = {"join_date": "入党日期", "full_member_date": "转正日期"}

# Template field mappings: the value types WeChat knows (a keyword is its type plus a number, e.g.
# thing1, character_string3), what a field may draw on, and which sources are moments.
TEMPLATE_FIELD_TYPES = ("thing", "phrase", "character_string", "number", "time", "date", "name")
TEMPLATE_FIELD_SOURCES = {"title": "标题", "body": "正文", "starts_at": "开始时间", "place": "地点",
                          "created_at": "发出时间", "name": "收件人姓名"}
TEMPLATE_MOMENT_SOURCES = ("starts_at", "created_at")
TEMPLATE_KINDS = ("notice", "reminder", "greeting", "wish", "activity")


class ConfigError(ValueError):
    """A setting has a value the app cannot work with; raised when the settings are loaded."""


def load_config(overrides: Mapping | None = None) -> Settings:
    """Return the settings: defaults, overridden by the environment, then by `overrides` (keyed by
    environment name, WISH_MAX_POINTS, or field name); an unknown override is a ConfigError."""
    values = {}
    for name, spec in FIELDS.items():
        raw = os.environ.get(name.upper())
        if raw not in (None, ""):
            values[name] = _convert(name, spec, raw)
    for key, value in (overrides or {}).items():
        name = key.lower()
        if name not in FIELDS:
            raise ConfigError(f"{key} is not a setting")
        values[name] = _convert(name, FIELDS[name], value) if isinstance(value, str) else value
    if not values.get("secret_key"):
        # A random key still works for one process; production must set one (see README).
        values["secret_key"] = secrets.token_hex(32)
        values["secret_key_generated"] = True
    return _checked(Settings(**values))


def _convert(name: str, spec: dataclasses.Field, raw: str):
    kind = type(spec.default)
    try:
        return raw if kind is str else kind(raw)
    except ValueError:
        raise ConfigError(f"{name.upper()}={raw!r} is not a number") from None


def _checked(settings: Settings) -> Settings:
    """Refuse settings that would only fail later, in a job, with a message that names them;
    normalise the ones read in several places; derive the template field maps."""
    field_name = settings.birthday_date_field.strip()
    if field_name not in BIRTHDAY_DATE_FIELDS:
        choices = ", ".join(f"{name} ({label})" for name, label in BIRTHDAY_DATE_FIELDS.items())
        raise ConfigError(f"BIRTHDAY_DATE_FIELD={settings.birthday_date_field!r} is not supported; "
                          f"use one of: {choices}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"TIMEZONE={settings.timezone!r} is not a known time zone") from None
    maps = MappingProxyType({
        name: parse_template_fields(name, getattr(settings, name.lower()))
        for prefix in ("WECHAT_TEMPLATE", "MINIAPP_TEMPLATE") for kind in TEMPLATE_KINDS
        for name in (f"{prefix}_{kind.upper()}_FIELDS",)
    })
    if not 1 <= settings.rhythm_check_day <= 28:
        raise ConfigError(f"RHYTHM_CHECK_DAY={settings.rhythm_check_day} must be a day from 1 to 28")
    if settings.roster_read_memory_mb < 256 or settings.roster_read_seconds < 1:
        raise ConfigError("ROSTER_READ_MEMORY_MB must be at least 256 and ROSTER_READ_SECONDS at least 1 "
                          "(the .xlsx reader's process needs that much to start)")
    return dataclasses.replace(
        settings, birthday_date_field=field_name, wechat_api_base=settings.wechat_api_base.rstrip("/"),
        wechat_open_base=settings.wechat_open_base.rstrip("/"), template_field_maps=maps,
        rhythm=_pairs("ORGLIFE_RHYTHM", settings.orglife_rhythm, RHYTHM_PERIODS),
        weights=_pairs("RANKING_WEIGHTS", settings.ranking_weights, None))


RHYTHM_PERIODS = {"月": "month", "季度": "quarter"}
RANKING_PARTS = ("held", "attendance", "records", "wishes", "notices")


def _pairs(name: str, raw: str, periods: Mapping[str, str] | None) -> Mapping[str, str | float]:
    """Parse "a=x,b=y" into a read-only mapping: ORGLIFE_RHYTHM's periods (月/季度) or, without
    `periods`, RANKING_WEIGHTS' numbers (of the parts in RANKING_PARTS); raise ConfigError."""
    pairs: dict = {}
    for part in filter(None, (p.strip() for p in raw.replace("，", ",").split(","))):
        key, _, value = (x.strip() for x in part.partition("="))
        if periods is not None:
            if not key or value not in periods:
                raise ConfigError(f"{name}: {part!r} is not kind=月 or kind=季度")
            pairs[key] = periods[value]
            continue
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if key not in RANKING_PARTS or weight < 0:
            raise ConfigError(f"{name}: {part!r} is not part=weight with a part of {', '.join(RANKING_PARTS)}")
        pairs[key] = weight
    return MappingProxyType(pairs)


def parse_template_fields(name: str, raw: str) -> tuple[tuple[str, str, str], ...]:
    """Parse "thing1=title,time2=starts_at" into ((keyword, type, source), …); raise ConfigError
    naming the setting on a keyword of no known type, an unknown source, or a moment field fed by
    text."""
    fields = []
    for part in (p.strip() for p in raw.replace("，", ",").split(",")):
        if not part:
            continue
        keyword, sep, source = (x.strip() for x in part.partition("="))
        kind = keyword.rstrip("0123456789")
        if not sep or not keyword or not keyword[len(kind):] or kind not in TEMPLATE_FIELD_TYPES:
            raise ConfigError(f"{name}: {part!r} is not keyword=source with a keyword of a known type "
                              f"followed by its number ({', '.join(t + '1' for t in TEMPLATE_FIELD_TYPES)})")
        if source not in TEMPLATE_FIELD_SOURCES:
            raise ConfigError(f"{name}: unknown source {source!r} in {part!r}; use one of: "
                              f"{', '.join(TEMPLATE_FIELD_SOURCES)}")
        if kind in ("time", "date") and source not in TEMPLATE_MOMENT_SOURCES:
            raise ConfigError(f"{name}: {keyword} is a {kind} field; its source must be one of: "
                              f"{', '.join(TEMPLATE_MOMENT_SOURCES)}")
        if any(keyword == f[0] for f in fields):
            raise ConfigError(f"{name}: {keyword} appears twice")
        fields.append((keyword, kind, source))
    return tuple(fields)


# The defaults alone (no environment): what a domain function uses when a caller passes no settings.
DEFAULTS = _checked(Settings())
