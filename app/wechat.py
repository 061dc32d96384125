"""The Official Account webhook: signature, decryption, de-duplication, then the chatbot.

Only protocol lives here; what a message means is decided in handlers/.
"""

import logging
import time
from xml.etree import ElementTree
from xml.parsers.expat import ExpatError

import redis
from flask import Blueprint, Response, current_app, request
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import TextMessage
from wechatpy.utils import check_signature

from app.extensions import ReplyPathRedis, db, get_redis
from app.roles import RoleCache
from handlers import Incoming
from models import now_utc
from models.member import role_for_openid
from models.outbox import enqueue
from scheduler.sender import custom_window_commands

bp = Blueprint("wechat", __name__)
log = logging.getLogger(__name__)

PENDING = "\x00pending"  # the reply cache's value while the first delivery is being handled
SUCCESS = "success"  # what WeChat expects when there is nothing to say
# Events after which WeChat allows a few customer-service messages (a menu click, a follow, a scan).
WINDOW_EVENTS = ("click", "subscribe", "scan", "scancode_push", "scancode_waitmsg")


class BadRequest(Exception):
    """The body is not a message we can read (400)."""


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _signature_ok(args) -> bool:
    try:
        check_signature(current_app.config["WECHAT_TOKEN"], args.get("signature", ""),
                        args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        return False
    return True


def _fresh(timestamp: str) -> bool:
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    return abs(time.time() - sent) <= current_app.config["WECHAT_TIMESTAMP_TOLERANCE"]


def _cryptos() -> list[WeChatCrypto]:
    """The current EncodingAESKey first, then the one being rotated out (if any)."""
    cfg = current_app.config
    keys = [k for k in (cfg["WECHAT_AES_KEY"], cfg["WECHAT_AES_KEY_PREVIOUS"]) if k]
    return [WeChatCrypto(cfg["WECHAT_TOKEN"], key, cfg["WECHAT_APP_ID"]) for key in keys]


def _check_xml(data: bytes) -> None:
    """Refuse a DOCTYPE (and with it every entity declaration, XXE and entity expansion).

    A DOCTYPE can only stand before the root element, so looking at the prolog is enough; the one
    parse that follows (xmltodict, inside wechatpy) also refuses entity declarations by itself.
    """
    prolog = data.split(b"<xml", 1)[0]
    if b"<!" in prolog:
        raise BadRequest("DOCTYPE or markup declaration before the root element")


def _decrypt(body: bytes, args) -> str:
    last_error: Exception | None = None
    for crypto in _cryptos():
        try:
            return crypto.decrypt_message(body, args.get("msg_signature", ""),
                                          args.get("timestamp", ""), args.get("nonce", ""))
        except InvalidSignatureException:
            raise
        except InvalidAppIdException as exc:
            last_error = exc
        except Exception as exc:  # bad base64 or padding: try the previous key, then give up
            last_error = exc
    raise BadRequest(f"cannot decrypt: {last_error!r}")


def _parse(xml: str):
    """Return wechatpy's message object. Text messages, most of the traffic and flat by protocol,
    are read with the standard library's C parser into wechatpy's TextMessage, exactly as
    `parse_message` (xmltodict, three times slower) would; everything else goes to `parse_message`.
    Called after `_check_xml`, so there is no DOCTYPE and no entity to expand."""
    root = ElementTree.fromstring(xml)
    fields = {child.tag: (child.text or "").strip() or None for child in root}
    if root.tag == "xml" and fields.get("MsgType") == "text" and all(len(child) == 0 for child in root):
        return TextMessage(fields)
    return parse_message(xml)


def _to_incoming(msg) -> Incoming:
    msg_type = msg.type
    if msg_type == "text":  # most of the traffic: read only the fields a text message has
        return Incoming(openid=msg.source, msg_type=msg_type, content=msg.content or "",
                        msg_id=str(msg.id or ""), create_time=msg.time or 0)
    event = getattr(msg, "event", "") or ""
    key = getattr(msg, "key", "") or getattr(msg, "scene_id", "") or ""
    latitude = getattr(msg, "latitude", None)
    longitude = getattr(msg, "longitude", None)
    if msg_type == "location":  # a location *message* (not the LOCATION event)
        latitude, longitude = getattr(msg, "location_x", None), getattr(msg, "location_y", None)
    return Incoming(
        openid=msg.source, msg_type=msg_type, content=getattr(msg, "content", "") or "",
        event=event.lower(), key=str(key), latitude=_float(latitude), longitude=_float(longitude),
        media_id=getattr(msg, "media_id", "") or "", msg_id=str(msg.id or ""),
        create_time=msg.time or 0,
        fields={k: v for k, v in getattr(msg, "_data", {}).items() if isinstance(v, str)},
    )


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _dedup_key(message: Incoming) -> str:
    # Messages by sender + MsgId (MsgIds of different senders have collided); events by sender +
    # CreateTime + event, as WeChat gives events no MsgId.
    if message.msg_type == "event" or not message.msg_id:
        return f"lx:wx:{message.openid}:e{message.create_time}:{message.event}:{message.key}"
    return f"lx:wx:{message.openid}:m{message.msg_id}"


class ReplyCache:
    """Remembers each message's reply in Redis so that WeChat's retries get the same answer."""

    def __init__(self, client: redis.Redis, ttl: int, fast: ReplyPathRedis) -> None:
        self.client = client
        self.ttl = ttl
        self.fast = fast

    def claim(self, key: str, *also: tuple) -> tuple[bool | None, list]:
        """(True: handle it; False: a retry of a message seen before; None: Redis is unreachable;
        and the answers to the commands `also`, sent in the same round trip)."""
        try:
            answers = self.fast.call(("SET", key, PENDING, "NX", "EX", self.ttl), *also)
            return bool(answers[0]), answers[1:]
        except redis.RedisError:
            log.exception("reply cache unreachable; handling %s without de-duplication", key)
            return None, []

    def store(self, key: str, reply: str, *also: tuple) -> None:
        """Store the reply (and run the commands `also`) without waiting for Redis to answer."""
        try:
            self.fast.send(("SET", key, reply, "EX", self.ttl), *also)
        except redis.RedisError:
            log.exception("could not store the reply of %s", key)

    def release(self, key: str) -> None:
        try:
            self.client.delete(key)
        except redis.RedisError:
            log.exception("could not release %s", key)

    def wait(self, key: str, seconds: float) -> str | None:
        """Return the reply of the first delivery once ready; None if not ready in time or if the
        first delivery failed and released the key."""
        deadline = time.monotonic() + seconds
        delay = 0.02
        while True:
            try:
                value = self.client.get(key)
            except redis.RedisError:
                return None
            if value is None:
                return None  # the first delivery failed and released the key
            if value != PENDING:
                return value
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


@bp.get("/wechat")
def verify():
    """Answer WeChat's URL check: echo `echostr` if the signature is right."""
    if not _signature_ok(request.args):
        return _plain("invalid signature", 403)
    return _plain(request.args.get("echostr", ""))


@bp.post("/wechat")
def receive():
    """Handle one message or event and answer within WeChat's 5 seconds."""
    started = time.monotonic()
    cfg = current_app.config
    args = request.args
    limit = cfg["WECHAT_MAX_BODY"]
    if request.content_length is not None and request.content_length > limit:
        return _plain("body too large", 413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _plain("body too large", 413)
    if not _signature_ok(args):
        return _plain("invalid signature", 403)
    if not _fresh(args.get("timestamp", "")):
        return _plain("stale timestamp", 403)
    encrypted = args.get("encrypt_type", "raw").lower() == "aes"
    try:
        _check_xml(body)
        if encrypted:
            if not cfg["WECHAT_AES_KEY"]:
                raise BadRequest("encrypted message but no WECHAT_AES_KEY set")
            xml = _decrypt(body, args)
            _check_xml(xml.encode("utf-8"))
        elif cfg["WECHAT_AES_KEY"]:
            raise BadRequest("safe mode: plain messages are not accepted")
        else:
            xml = body.decode("utf-8")
        msg = _parse(xml)
        if msg is None or not getattr(msg, "source", None):
            raise BadRequest("no sender")
        message = _to_incoming(msg)
    except InvalidSignatureException:
        return _plain("invalid signature", 403)
    except BadRequest as exc:
        log.info("bad webhook body: %s", exc)
        return _plain("bad request", 400)
    except (ExpatError, ElementTree.ParseError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        log.info("unreadable webhook message: %r", exc)
        return _plain("bad request", 400)

    reply = _reply_once(message, started)
    return _render(reply, msg, encrypted, args)


def _reply_once(message: Incoming, started: float) -> str:
    cfg = current_app.config
    cache = ReplyCache(get_redis(current_app), cfg["WECHAT_DEDUP_TTL"],
                       current_app.extensions["redis_reply_path"])
    roles: RoleCache | None = current_app.extensions["roles"]
    key = _dedup_key(message)
    # One round trip before handling, the only one the hot path affords: the claim; the user wrote
    # (a 48-hour customer-service window opens) or clicked a menu, followed or scanned (a one-minute
    # window), read by the sender; and the caller's cached role, last.
    also = []
    if message.msg_type != "event" or message.event in WINDOW_EVENTS:
        also += custom_window_commands(message.openid, time.time(), event=message.msg_type == "event")
    if roles is not None:
        also.append(RoleCache.fetch(message.openid))

    claimed, answers = cache.claim(key, *also)
    if claimed is False:
        # A retry: answer as the first delivery did (waiting for it if it is still running).
        reply = cache.wait(key, cfg["WECHAT_RETRY_WAIT"])
        if reply is not None:
            return reply
        # Still running elsewhere (say nothing), or it failed and let go: then handle it here.
        claimed, answers = cache.claim(key, *also)
        if claimed is False:
            return ""
    cached_role = answers[-1] if roles is not None and answers else None  # [generation, entry]
    found, known = RoleCache.read(cached_role)
    looked_up: list[str | None] = []

    def role_of(openid: str) -> str | None:
        if found:
            return known
        looked_up.append(role_for_openid(db.session, openid))
        return looked_up[-1]

    try:
        reply = current_app.extensions["router"].dispatch(message, db.session, now_utc(), cfg,
                                                          role_of=role_of) or ""
    except Exception:
        log.exception("handler failed for %s", key)
        db.session.rollback()
        if claimed:
            cache.release(key)  # let WeChat's retry try again
        return "系统繁忙，请稍后再试。"
    if reply and time.monotonic() - started > cfg["WECHAT_REPLY_DEADLINE"]:
        # WeChat has given up on this request: send the answer later as a customer-service
        # message, and give the retries "success" so the user does not get it twice.
        enqueue(db.session, source=f"late-reply:{key}", openid=message.openid, body=reply, kind="reply")
        db.session.commit()
        log.warning("reply to %s missed the deadline; queued as a customer-service message", key)
        reply = ""
    if claimed:
        also = [RoleCache.entry(message.openid, cached_role[0], looked_up[0])] if cached_role and looked_up else []
        cache.store(key, reply, *also)
    return reply


def _render(reply: str, msg, encrypted: bool, args) -> Response:
    if not reply:
        return _plain(SUCCESS)
    xml = create_reply(reply, msg).render()
    if encrypted:
        xml = _cryptos()[0].encrypt_message(xml, args.get("nonce", ""), args.get("timestamp"))
    return Response(xml, mimetype="application/xml")
