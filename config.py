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
    # PostgreSQL: connect and statement timeouts (seconds).
    "DB_CONNECT_TIMEOUT": 3,
    "DB_STATEMENT_TIMEOUT": 10,
    # Binding: failed attempts before an openid is locked out, and for how long (seconds).
    "BIND_MAX_FAILURES": 5,
    "BIND_LOCKOUT_SECONDS": 3600,
    # Outbox sender: messages per second across all processes (0: no limit; urgent ones ignore it),
    # sending threads per process, rows claimed at a time, tries before a transient failure is
    # final, first retry delay (doubled each time, seconds), and how long a claimed row may stay
    # untouched before it counts as abandoned by a dead sender (seconds).
    "SEND_RATE_LIMIT": 20.0,
    "OUTBOX_WORKERS": 16,
    "OUTBOX_BATCH": 20,
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
    # Which date is the political birthday: join_date (入党日期) or a member attribute such as
    # full_member_date (转正日期) once the roster has one.
    "BIRTHDAY_DATE_FIELD": "join_date",
}


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
    return config
