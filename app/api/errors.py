"""One error shape for the whole API: {"code": "<machine_code>", "message": "<中文>", "details": {...}}.

A domain error is rendered from its code and data: the message in the API's words
(app/api/presenter.py), its `data` as the details."""

import logging
import re

import redis
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from app.api.presenter import error_message
from models import DomainError
from models.roster import RosterFileError

log = logging.getLogger(__name__)

PREFIX = "/api/"

# HTTP status → (machine code, Chinese message) for errors raised by Flask, webargs or the limiter.
HTTP_ERRORS = {
    400: ("bad_request", "请求格式有误。"),
    401: ("unauthorized", "请先登录。"),
    403: ("forbidden", "无权执行该操作。"),
    404: ("not_found", "请求的地址不存在。"),
    405: ("method_not_allowed", "不支持该请求方法。"),
    406: ("not_acceptable", "无法提供所请求的格式。"),
    409: ("conflict", "数据冲突，请刷新后重试。"),
    413: ("too_large", "上传的内容过大。"),
    415: ("unsupported_media_type", "不支持该内容类型。"),
    422: ("invalid", "请求参数有误。"),
    429: ("rate_limited", "操作过于频繁，请稍后再试。"),
    500: ("internal_error", "服务器内部错误，请稍后再试。"),
    502: ("upstream_error", "微信服务暂时不可用，请稍后再试。"),
    503: ("unavailable", "服务暂时不可用，请稍后再试。"),
}

# marshmallow's messages → Chinese, for the field errors shown in `details`.
FIELD_MESSAGES = {
    "Missing data for required field.": "必填",
    "Field may not be null.": "不能为空",
    "Unknown field.": "未知字段",
    "Not a valid string.": "应为文本",
    "Not a valid integer.": "应为整数",
    "Not a valid boolean.": "应为布尔值",
    "Not a valid date.": "应为日期，如 2001-07-01",
    "Invalid input type.": "类型有误",
    "Invalid value.": "取值有误",
}
# marshmallow's range and length messages, with their numbers.
FIELD_PATTERNS = [
    (re.compile(r"^Length must be between (\S+) and (\S+)\.$"), "长度应在{0}到{1}之间"),
    (re.compile(r"^Shorter than minimum length (\S+)\.$"), "长度至少为{0}"),
    (re.compile(r"^Longer than maximum length (\S+)\.$"), "长度最多为{0}"),
    (re.compile(r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$"), "应在{0}到{1}之间"),
    (re.compile(r"^Must be greater than or equal to (\S+)\.$"), "应不小于{0}"),
    (re.compile(r"^Must be less than or equal to (\S+)\.$"), "应不大于{0}"),
    (re.compile(r"^Must be one of: (.*)\.$"), "取值应为：{0}"),
]


class ApiError(Exception):
    """An error of the API layer itself (authentication, WeChat's answers, uploads)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: dict | None = None, headers=None):
    response = jsonify(code=code, message=message, details=details or {})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _translate(messages):
    """Translate marshmallow's field messages (nested dicts and lists of strings) to Chinese."""
    if isinstance(messages, dict):
        return {str(key): _translate(value) for key, value in messages.items()}
    if isinstance(messages, list | tuple):
        return [_translate(m) for m in messages]
    if isinstance(messages, str):
        if messages in FIELD_MESSAGES:
            return FIELD_MESSAGES[messages]
        for pattern, chinese in FIELD_PATTERNS:
            match = pattern.match(messages)
            if match:
                return chinese.format(*match.groups())
    return messages


def _field_names(messages) -> list[str]:
    """Return the names of the invalid fields, whatever the location (json, query, files …)."""
    names = []
    for errors in messages.values() if isinstance(messages, dict) else []:
        if isinstance(errors, dict):
            names += [str(name) for name in errors]
    return names


def _http_error(error: HTTPException):
    status = error.code or 500
    code, message = HTTP_ERRORS.get(status, ("error", "请求失败。"))
    details: dict = {}
    headers = {}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        # webargs: {"json": {"phone": ["Missing data for required field."]}}
        names = _field_names(messages)
        details = {"fields": _translate(messages)}
        if names:
            message = f"请求参数有误：{'、'.join(names)}。"
    headers.update(data.get("headers") or {})
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, code, message, details, headers)


PLAIN = (str, int, float, bool, type(None))


def _plain(data: dict) -> dict:
    """The JSON-plain part of a domain error's data (a door-neutral detail such as a number)."""

    def plain(value) -> bool:
        if isinstance(value, list | tuple):
            return all(isinstance(item, PLAIN) for item in value)
        return isinstance(value, PLAIN)

    return {str(key): value for key, value in data.items() if plain(value)}


def register(app: Flask) -> None:
    """Answer every error under /api/ in the one shape; leave the other doors' errors alone."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not request.path.startswith(PREFIX):
            return error
        return _http_error(error)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        fallback = HTTP_ERRORS.get(error.status, ("error", "请求失败。"))[1]
        return error_response(error.status, error.code, error_message(error.code, error.message, fallback),
                              _plain(error.data))

    @app.errorhandler(RosterFileError)
    def roster_file_error(error: RosterFileError):
        return error_response(400, "bad_file", str(error))

    @app.errorhandler(redis.RedisError)
    def redis_unavailable(error: redis.RedisError):
        # Sessions, rate limits and logins live in Redis: without it the API cannot answer.
        if not request.path.startswith(PREFIX):
            raise error
        log.warning("Redis unreachable on %s %s: %r", request.method, request.path, error)
        code, message = HTTP_ERRORS[503]
        return error_response(503, code, message)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if not request.path.startswith(PREFIX):
            raise error
        log.exception("Unhandled error on %s %s", request.method, request.path)
        code, message = HTTP_ERRORS[500]
        return error_response(500, code, message)
