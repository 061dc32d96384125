"""Settings, read from environment variables (and a `.env` file) when the app is created."""

import os
import secrets

# Settings that are numbers, with their defaults. Environment values are converted to the type
# of the default.
_NUMBERS: dict[str, float | int] = {
    # Reject webhook requests whose timestamp is further than this from now (seconds).
    "WECHAT_TIMESTAMP_TOLERANCE": 300,
    # Largest webhook body accepted (bytes).
    "WECHAT_MAX_BODY": 64 * 1024,
    # A reply not ready this many seconds after the request arrived is sent later through the
    # outbox as a customer-service message; WeChat gives up after 5 s.
    "WECHAT_REPLY_DEADLINE": 4.0,
    # How long a handled message's reply is kept for WeChat's retries (seconds).
    "WECHAT_DEDUP_TTL": 300,
    # How long a retry waits for the first delivery of the same message to finish (seconds).
    "WECHAT_RETRY_WAIT": 4.0,
    # Timeout of every WeChat API call (seconds); wechatpy has none by default.
    "WECHAT_HTTP_TIMEOUT": 5.0,
    # Redis socket timeouts on the reply path (seconds); redis-py's defaults wait for seconds.
    "REDIS_TIMEOUT": 0.5,
    # PostgreSQL: connect and statement timeouts (seconds); short, for the 5-second reply promise.
    "DB_CONNECT_TIMEOUT": 3,
    "DB_STATEMENT_TIMEOUT": 3,
    # Binding: failed attempts before an openid is locked out, and for how long (seconds).
    "BIND_MAX_FAILURES": 5,
    "BIND_LOCKOUT_SECONDS": 3600,
    # 微心愿: points a wish is worth unless set, claims one person may hold at once, days a
    # claimer has to fulfil, days before that deadline the claimer is reminded, minutes after
    # 完成 during which an image is attached as a photo, and wishes per page of 心愿.
    "WISH_DEFAULT_POINTS": 10,
    "WISH_MAX_OPEN_CLAIMS": 3,
    "WISH_FULFIL_DAYS": 14,
    "WISH_REMIND_DAYS": 2,
    "WISH_PHOTO_MINUTES": 10,
    "WISH_PAGE_SIZE": 5,
    # Largest photo the API accepts for a wish (bytes); photos are kept in WISH_PHOTO_DIR
    # (default: wish_photos/ in the instance folder).
    "WISH_PHOTO_MAX_BYTES": 5 * 1024 * 1024,
    # Mini-program API: session token lifetime, extended on every use (seconds).
    "API_TOKEN_TTL": 7 * 24 * 3600,
    # Largest roster file accepted by the import endpoint (bytes).
    "API_MAX_UPLOAD": 5 * 1024 * 1024,
    # Reverse proxies (nginx) in front of the app whose X-Forwarded-For is trusted; 0: none. The
    # per-address rate limits need the client's address, not the proxy's.
    "TRUSTED_PROXIES": 0,
    # Activities: sign-in opens this many minutes before the start (and closes at the end).
    "CHECKIN_OPENS_MINUTES": 30,
    # A LOCATION report older than this (seconds) is not used for the venue distance check.
    "CHECKIN_LOCATION_MAX_AGE": 1800,
    # 签退 is accepted until this many minutes after a volunteer service ends.
    "CHECKOUT_GRACE_MINUTES": 120,
    # Length of an activity created without an end time (minutes).
    "ACTIVITY_DEFAULT_MINUTES": 120,
    # Points of a volunteer service when its creator gives none.
    "VOLUNTEER_DEFAULT_POINTS": 10,
    # Sign-in radius around a venue position (metres).
    "ACTIVITY_DEFAULT_RADIUS": 300,
    # 1: with a venue position set, refuse sign-ins whose position is unknown (0: accept them).
    "CHECKIN_REQUIRE_POSITION": 0,
    # Yearly quotas of 在职党员: organizational-life and volunteer-service counts.
    "QUOTA_ORG_LIFE": 4,
    "QUOTA_VOLUNTEER": 2,
    # How often the meeting-room sign-in page polls the live count (seconds).
    "CHECKIN_PAGE_POLL_SECONDS": 3,
    # Outbox sender: messages per second across all processes (0: no limit; urgent ones ignore it),
    # sending threads per process, rows claimed at a time, tries before a transient failure is
    # final, first retry delay (doubled each time, seconds), and how long a claimed row may stay
    # untouched before it counts as abandoned by a dead sender (seconds).
    "SEND_RATE_LIMIT": 20.0,
    "OUTBOX_WORKERS": 16,
    "OUTBOX_BATCH": 100,
    "OUTBOX_MAX_ATTEMPTS": 5,
    "OUTBOX_RETRY_BASE": 60.0,
    "OUTBOX_LEASE_SECONDS": 600,
    # Scheduler: how often the outbox is drained (seconds), how late a missed run may still run
    # (hours), and the leader lock's time to live (seconds; a dead leader is replaced within it).
    "SCHEDULER_DRAIN_INTERVAL": 30,
    "SCHEDULER_GRACE_HOURS": 6,
    "SCHEDULER_LEADER_TTL": 30,
    # Organizational life: the notice goes this many days before, at ORGLIFE_NOTICE_TIME; the
    # reminder this many hours before the start.
    "ORGLIFE_NOTICE_DAYS": 3,
    "ORGLIFE_REMINDER_HOURS": 2,
    # 1: run the scheduler inside this process (the dev server of `make run`; never gunicorn).
    "SCHEDULER_EMBEDDED": 0,
    # Outbox delivery (nothing lost, nothing twice): after a failure before a call was made (Redis
    # down: rate limiter, windows, pauses, the token lock) the sender waits this long before claiming
    # again (seconds), and gives the drain up after failing like that for this long (seconds; the rows
    # stay pending for the next drain).
    "OUTBOX_OUTAGE_PAUSE": 1.0,
    "OUTBOX_OUTAGE_GIVE_UP": 60.0,
    # The most points a wish may be worth; only secretaries and admins set a wish's points (a grid
    # head's wish is worth WISH_DEFAULT_POINTS).
    "WISH_MAX_POINTS": 50,
    # 签到: wrong codes one member may type for one activity (or codes matching no activity) before
    # being locked out of typed sign-in there, and for how long (seconds).
    "CHECKIN_MAX_FAILURES": 5,
    "CHECKIN_LOCKOUT_SECONDS": 900,
    # Roster files read for an import: at most this many data rows and header columns; a sheet
    # claiming more is refused with the reason (read in streaming mode, only the header's columns).
    "ROSTER_MAX_ROWS": 100_000,
    "ROSTER_MAX_COLUMNS": 50,
    # Notices and the inbox: a notice's 再提醒 (chatbot or API) goes out at most once per this many
    # hours (0: no limit); the refusal says when the next one is allowed.
    "NOTICE_REMIND_HOURS": 12,
}

_STRINGS: dict[str, str] = {
    "DATABASE_URL": "sqlite:///lianxin.db",  # relative SQLite paths live in instance/
    "REDIS_URL": "",  # empty: an in-process stand-in (one process only)
    "SECRET_KEY": "",
    "WECHAT_TOKEN": "lianxin",
    "WECHAT_APP_ID": "wx0000000000000000",
    "WECHAT_APP_SECRET": "",
    "WECHAT_AES_KEY": "",  # EncodingAESKey; set means safe mode
    "WECHAT_AES_KEY_PREVIOUS": "",  # the key being rotated out, still accepted for decryption
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "MINIAPP_APP_ID": "",
    "MINIAPP_APP_SECRET": "",
    "TIMEZONE": "Asia/Shanghai",
    "LOG_LEVEL": "INFO",
    # Mini-program API rate limits (Flask-Limiter syntax), kept in Redis when REDIS_URL is set.
    "API_LOGIN_RATE_LIMIT": "20 per minute",  # per client address
    "API_BIND_RATE_LIMIT": "20 per minute",  # per client address
    "API_BIND_RATE_LIMIT_PER_TOKEN": "10 per minute",
    # Where the API docs page loads Swagger UI from (empty: this server, from the installed
    # swagger-ui-bundle package, so the page works offline).
    "API_DOCS_ASSETS_URL": "",
    # Activity reminders: hours before the start, comma-separated.
    "ACTIVITY_REMINDER_HOURS": "24,1",
    # Quotas of other member kinds as JSON, e.g. {"直管党员": [12, 2]} (organizational life, volunteer).
    "QUOTAS": "",
    # The public address of this server, for links sent in WeChat (the meeting-room page).
    "PUBLIC_BASE_URL": "",
    # Where the photos uploaded for wishes are kept; empty: wish_photos/ in the instance folder.
    "WISH_PHOTO_DIR": "",
    # Template ids per kind of message: Official Account template messages, mini-program
    # subscribe messages. An empty id means that channel is not used for that kind.
    "WECHAT_TEMPLATE_NOTICE": "",
    "WECHAT_TEMPLATE_REMINDER": "",
    "WECHAT_TEMPLATE_GREETING": "",
    "WECHAT_TEMPLATE_WISH": "",
    "WECHAT_TEMPLATE_ACTIVITY": "",
    "MINIAPP_TEMPLATE_NOTICE": "",
    "MINIAPP_TEMPLATE_REMINDER": "",
    "MINIAPP_TEMPLATE_GREETING": "",
    "MINIAPP_TEMPLATE_WISH": "",
    "MINIAPP_TEMPLATE_ACTIVITY": "",
    # Non-urgent messages wait out these hours (local time, may wrap midnight; empty: none).
    "QUIET_HOURS": "22:00-07:00",
    "ORGLIFE_NOTICE_TIME": "09:00",
    "BIRTHDAY_TIME": "09:00",
    # Which date is the political birthday: one of BIRTHDAY_DATE_FIELDS.
    "BIRTHDAY_DATE_FIELD": "join_date",
    # Template fields per template: "keyword=source,…" (e.g. "thing1=title,time2=starts_at,thing3=body"),
    # the keyword's type read from its name (TEMPLATE_FIELD_TYPES), the source one of
    # TEMPLATE_FIELD_SOURCES. Empty: the built-in thing1/thing2/content payload. Official Account
    # template messages, then mini-program subscribe messages.
    "WECHAT_TEMPLATE_NOTICE_FIELDS": "",
    "WECHAT_TEMPLATE_REMINDER_FIELDS": "",
    "WECHAT_TEMPLATE_GREETING_FIELDS": "",
    "WECHAT_TEMPLATE_WISH_FIELDS": "",
    "WECHAT_TEMPLATE_ACTIVITY_FIELDS": "",
    "MINIAPP_TEMPLATE_NOTICE_FIELDS": "",
    "MINIAPP_TEMPLATE_REMINDER_FIELDS": "",
    "MINIAPP_TEMPLATE_GREETING_FIELDS": "",
    "MINIAPP_TEMPLATE_WISH_FIELDS": "",
    "MINIAPP_TEMPLATE_ACTIVITY_FIELDS": "",
    # Where a mapped template message links to: this path under PUBLIC_BASE_URL ({id}: the message;
    # empty: no web link — this server has no message page of its own, a front end may), and, when a
    # mini-program is configured, this mini-program page (also a subscribe message's page).
    "MESSAGE_LINK_PATH": "",
    "MINIAPP_MESSAGE_PAGE": "pages/messages/detail?id={id}",
}

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


def load_config(overrides: dict | None = None) -> dict:
    """Return the settings: defaults, overridden by the environment, then by `overrides`."""
    env = os.environ
    config: dict = {}
    for name, default in _STRINGS.items():
        config[name] = env.get(name, default)
    for name, default in _NUMBERS.items():
        raw = env.get(name)
        config[name] = type(default)(raw) if raw not in (None, "") else default
    if overrides:
        config.update(overrides)
    if not config["SECRET_KEY"]:
        # A random key still works for one process; production must set one (see README).
        config["SECRET_KEY"] = secrets.token_hex(32)
        config["SECRET_KEY_GENERATED"] = True
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    config["WECHAT_API_BASE"] = config["WECHAT_API_BASE"].rstrip("/")
    _check(config)
    return config


def _check(config: dict) -> None:
    """Refuse settings that would only fail later, in a job, with a message that names them."""
    field = str(config["BIRTHDAY_DATE_FIELD"]).strip()
    if field not in BIRTHDAY_DATE_FIELDS:
        choices = ", ".join(f"{name} ({label})" for name, label in BIRTHDAY_DATE_FIELDS.items())
        raise ConfigError(f"BIRTHDAY_DATE_FIELD={config['BIRTHDAY_DATE_FIELD']!r} is not supported; "
                          f"use one of: {choices}")
    config["BIRTHDAY_DATE_FIELD"] = field
    config["TEMPLATE_FIELD_MAPS"] = {
        name: parse_template_fields(name, str(config.get(name) or ""))
        for prefix in ("WECHAT_TEMPLATE", "MINIAPP_TEMPLATE") for kind in TEMPLATE_KINDS
        for name in (f"{prefix}_{kind.upper()}_FIELDS",)
    }


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
