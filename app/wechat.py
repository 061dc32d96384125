"""The Official Account webhook: signature, decryption, de-duplication, then the chatbot.

Only protocol lives here; what a message means is decided in handlers/.
"""

import hashlib
import logging
import time
from xml.parsers.expat import ExpatError

import redis
from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser
from flask import Blueprint, Response, current_app, request
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import EVENT_TYPES
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import MESSAGE_TYPES, UnknownMessage
from wechatpy.utils import check_signature

from app.extensions import current_settings, db, get_redis
from app.fastpath import ReplyPathRedis, RoleCache
from app.reply import text_reply
from handlers import Incoming
from models import now_utc
from models.handled import store_reply
from models.member import role_for_openid
from models.outbox import enqueue
from scheduler.sender import custom_window_commands

bp = Blueprint("wechat", __name__)
log = logging.getLogger(__name__)

PENDING = "\x00pending"  # the reply cache's value while the first delivery is being handled
SUCCESS = "success"  # what WeChat expects when there is nothing to say
# Events after which WeChat allows a few customer-service messages (a menu click, a follow, a scan).
WINDOW_EVENTS = ("click", "subscribe", "scan", "scancode_push", "scancode_waitmsg")
NONCE_PREFIX = "lx:wx:nonce:"  # + timestamp:nonce -> a hash of the first body seen with them

# Fields WeChat sends as text (at any depth): an element inside one of them is not WeChat's.
SCALAR_FIELDS = frozenset({
    "ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "MsgID", "MsgDataId", "Idx",
    "Content", "PicUrl", "MediaId", "Format", "Recognition", "ThumbMediaId", "Location_X",
    "Location_Y", "Scale", "Label", "Poiname", "Title", "Description", "Url", "Event", "EventKey",
    "Ticket", "Latitude", "Longitude", "Precision", "Status", "MenuId", "ScanType", "ScanResult",
    "Count", "PicMd5Sum", "TotalCount", "FilterCount", "SentCount", "ErrorCount", "Encrypt",
    "AppId", "PagePath", "ThumbUrl", "SessionFrom", "TemplateId", "SubscribeStatusString",
    "PopupScene", "ErrorCode", "ErrorStatus",
})
# Containers (ScanCodeInfo, SendLocationInfo, SendPicsInfo/PicList/item, SubscribeMsgPopupEvent/List
# …) nest at most this deep, the root <xml> counting as 1.
MAX_DEPTH = 8


class BadRequest(Exception):
    """The body is not a message we can read (400)."""


class Replayed(Exception):
    """A (timestamp, nonce) seen before with another body (403)."""


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _signature_ok(args) -> bool:
    try:
        check_signature(current_settings().wechat_token, args.get("signature", ""),
                        args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        return False
    return True


def _fresh(timestamp: str) -> bool:
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    return abs(time.time() - sent) <= current_settings().wechat_timestamp_tolerance


def _cryptos() -> list[WeChatCrypto]:
    """The current EncodingAESKey first, then the one being rotated out (if any)."""
    cfg = current_settings()
    keys = [k for k in (cfg.wechat_aes_key, cfg.wechat_aes_key_previous) if k]
    return [WeChatCrypto(cfg.wechat_token, key, cfg.wechat_app_id) for key in keys]


class _Reader:
    """What defusedxml's expat parser builds from a pushed document, in one pass: `top`, the root's
    children (text, or for a container a dict of its text children), and the checks of the shape
    WeChat sends: root <xml>, no field twice, nothing inside a text field, bounded depth."""

    __slots__ = ("top", "stack", "text", "inner")

    def __init__(self) -> None:
        self.top: dict[str, str | dict] = {}
        self.stack: list[list] = []  # [tag, has children] of the open elements
        self.text: list[str] = []
        self.inner: dict[str, str] = {}  # the text children of the open top-level container

    def xml(self, encoding, standalone) -> None:
        pass

    def start(self, tag: str, attrs) -> None:
        stack = self.stack
        if stack:
            parent = stack[-1]
            if parent[0] in SCALAR_FIELDS:
                raise BadRequest(f"an element inside {parent[0]}")
            parent[1] = True
            if len(stack) >= MAX_DEPTH:
                raise BadRequest("nested too deep")
            if len(stack) == 1:
                self.inner = {}
        elif tag != "xml":
            raise BadRequest(f"root <{tag[:40]}>")
        stack.append([tag, False])
        self.text = []

    def data(self, text: str) -> None:
        self.text.append(text)

    def end(self, tag: str) -> None:
        depth = len(self.stack)
        has_children = self.stack.pop()[1]
        if depth == 2:
            if tag in self.top:
                raise BadRequest(f"{tag[:40]} twice")
            self.top[tag] = self.inner if has_children else "".join(self.text).strip()
        elif depth == 3 and not has_children:
            self.inner.setdefault(tag, "".join(self.text).strip())


def _read(data: bytes) -> dict[str, str | dict]:
    """Read a pushed XML document (outer body or decrypted message) into its top-level fields.

    Any DTD, entity declaration or external reference is refused wherever it stands (defusedxml),
    and so is every shape WeChat never sends (BadRequest)."""
    reader = _Reader()
    parser = DefusedExpatParser(reader, forbid_dtd=True)
    parser.feed(data)
    parser.close()
    return reader.top


def _flatten(top: dict[str, str | dict]) -> dict[str, str]:
    """Every field as text: the top-level ones, then those of containers (one level) not already there."""
    fields = {name: value for name, value in top.items() if isinstance(value, str)}
    for value in top.values():
        if isinstance(value, dict):
            for name, text in value.items():
                fields.setdefault(name, text)
    return fields


def _decrypt(encrypt: str, args, cryptos: list[WeChatCrypto]) -> tuple[str, WeChatCrypto]:
    """Return the decrypted message and the crypto (key) that decrypted it, which encrypts the reply."""
    last_error: Exception | None = None
    for crypto in cryptos:
        try:
            xml = crypto.decrypt_message({"Encrypt": encrypt}, args.get("msg_signature", ""),
                                         args.get("timestamp", ""), args.get("nonce", ""))
            return xml, crypto
        except InvalidSignatureException:
            raise
        except InvalidAppIdException as exc:
            last_error = exc
        except Exception as exc:  # bad base64 or padding: try the previous key, then give up
            last_error = exc
    raise BadRequest(f"cannot decrypt: {last_error!r}")


def _open(body: bytes, args) -> tuple[dict[str, str | dict], WeChatCrypto | None]:
    """The message's top-level fields and the crypto that must encrypt the reply (None: plain).

    Safe mode (only Encrypt) and compatible mode (plain fields and Encrypt) with a key: verified
    by msg_signature and decrypted, the reply encrypted; compatible mode without a key: the plain
    fields, the reply plain. With a key a plain push is refused."""
    outer = _read(body)
    encrypted = args.get("encrypt_type", "raw").lower() == "aes"
    cryptos = _cryptos()
    if cryptos:
        if not encrypted:
            raise BadRequest("safe mode: plain messages are not accepted")
        encrypt = outer.get("Encrypt")
        if not encrypt:
            raise BadRequest("encrypt_type=aes but no Encrypt")
        xml, crypto = _decrypt(encrypt, args, cryptos)
        return _read(xml.encode("utf-8")), crypto
    if "Encrypt" in outer and "MsgType" not in outer:
        raise BadRequest("encrypted message but no WECHAT_AES_KEY set")
    return outer, None


def _to_incoming(top: dict[str, str | dict]) -> Incoming:
    """The message as the handlers see it, from the raw fields (whatever wechatpy knows)."""
    openid = top.get("FromUserName")
    msg_type = top.get("MsgType", "").lower()
    if not openid:
        raise BadRequest("no sender")
    if not msg_type:
        raise BadRequest("no MsgType")
    fields = _flatten(top)
    create_time = int(top.get("CreateTime") or 0)
    msg_id = top.get("MsgId") or top.get("MsgID") or ""
    if msg_type == "text":  # most of the traffic
        return Incoming(openid=openid, msg_type=msg_type, content=top.get("Content", ""),
                        msg_id=msg_id, create_time=create_time, fields=fields)
    event = top.get("Event", "").lower()
    key = top.get("EventKey", "")
    if event == "subscribe" and key.startswith("qrscene_"):
        key = key[len("qrscene_"):]
    return Incoming(
        openid=openid, msg_type=msg_type, content=top.get("Content", ""), event=event, key=key,
        latitude=_float(fields.get("Latitude") or fields.get("Location_X")),
        longitude=_float(fields.get("Longitude") or fields.get("Location_Y")),
        media_id=top.get("MediaId", ""), msg_id=msg_id, create_time=create_time, fields=fields,
    )


def _message(top: dict, message: Incoming):
    """wechatpy's object for the message, built from the fields read (for the reply), as
    `wechatpy.parse_message` would pick it (an empty field is absent: None, as xmltodict has it)."""
    top = {name: value for name, value in top.items() if value != ""}
    if message.msg_type != "event":
        return MESSAGE_TYPES.get(message.msg_type, UnknownMessage)(top)
    event = message.event
    if event == "subscribe" and top.get("EventKey", "").startswith("qrscene_"):
        event = "subscribe_scan"
        top["Event"], top["EventKey"] = event, message.key
    elif event == "subscribe" and top.get("EventKey", "").startswith(("scanbarcode|", "scanimage|")):
        event = top["Event"] = "subscribe_scan_product"
    return EVENT_TYPES.get(event, UnknownMessage)(top)


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _nonce_guard(args, body: bytes) -> tuple[str, str, int]:
    """(Redis key, body hash, seconds to keep): binds the request's timestamp and nonce to its body
    for as long as the timestamp is accepted, since the plain signature does not cover the body."""
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    keep = int(timestamp) + current_settings().wechat_timestamp_tolerance - int(time.time()) + 1
    return (f"{NONCE_PREFIX}{timestamp}:{nonce}", hashlib.blake2b(body, digest_size=16).hexdigest(),
            max(1, keep))


def _dedup_key(message: Incoming) -> str:
    # Messages by sender + MsgId (MsgIds of different senders have collided); events by sender +
    # CreateTime + event, as WeChat gives most events no MsgId — with what tells two events of one
    # second apart: a delivery report's MsgID, a scanned code's text.
    if message.msg_type == "event" or not message.msg_id:
        told_apart = f"{message.msg_id}:{message.fields.get('ScanResult', '')}"
        return f"lx:wx:{message.openid}:e{message.create_time}:{message.event}:{message.key}:{told_apart}"
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
    cfg = current_settings()
    args = request.args
    limit = cfg.wechat_max_body
    if request.content_length is not None and request.content_length > limit:
        return _plain("body too large", 413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _plain("body too large", 413)
    if not _signature_ok(args):
        return _plain("invalid signature", 403)
    if not _fresh(args.get("timestamp", "")):
        return _plain("stale timestamp", 403)
    try:
        top, crypto = _open(body, args)
        message = _to_incoming(top)
        msg = _message(top, message)
    except InvalidSignatureException:
        return _plain("invalid signature", 403)
    except BadRequest as exc:
        log.info("bad webhook body: %s", exc)
        return _plain("bad request", 400)
    except (ExpatError, DefusedXmlException, ValueError) as exc:
        log.info("unreadable webhook message: %r", exc)
        return _plain("bad request", 400)

    try:
        reply = _reply_once(message, started, _nonce_guard(args, body))
    except Replayed:
        log.warning("timestamp %s and nonce %s came back with another body; refused",
                    args.get("timestamp"), args.get("nonce"))
        return _plain("replayed request", 403)
    return _render(reply, msg, crypto, args)


BUSY = "系统繁忙，请稍后再试。"  # the reply when a handler failed (WeChat's retry tries again)


def _reply_once(message: Incoming, started: float, guard: tuple[str, str, int]) -> str:
    cfg = current_settings()
    cache = ReplyCache(get_redis(current_app), cfg.wechat_dedup_ttl,
                       current_app.extensions["redis_reply_path"])
    with_roles = current_app.extensions["roles"] is not None
    key = _dedup_key(message)
    also = _claim_commands(message, guard, with_roles)
    claimed, answers = _claim(cache, key, guard[1], also)
    if claimed is False:
        # A retry: answer as the first delivery did (waiting for it if it is still running).
        reply = cache.wait(key, cfg.wechat_retry_wait)
        if reply is not None:
            return reply
        # Still running elsewhere (say nothing), or it failed and let go: then handle it here.
        claimed, answers = _claim(cache, key, guard[1], also)
        if claimed is False:
            return ""
    roles = _Roles(answers[-1] if with_roles and answers else None)  # [generation, entry]
    reply = _dispatch(message, key, roles)
    if reply is None:
        if claimed:
            cache.release(key)  # let WeChat's retry try again
        return BUSY
    if reply and time.monotonic() - started > cfg.wechat_reply_deadline:
        reply = _queue_late(message, key, reply)
    if claimed:
        cache.store(key, reply, *roles.entries(message.openid))
    return reply


def _claim_commands(message: Incoming, guard: tuple[str, str, int], with_roles: bool) -> list[tuple]:
    """The commands sent with the claim, in its round trip, the only one the hot path affords: the
    request's timestamp and nonce bound to its body (first come) and read back; the user wrote (a
    48-hour customer-service window opens) or clicked a menu, followed or scanned (a one-minute
    window), read by the sender; and the caller's cached role, last."""
    nonce_key, digest, keep = guard
    also = [("SET", nonce_key, digest, "NX", "EX", keep), ("GET", nonce_key)]
    if message.msg_type != "event" or message.event in WINDOW_EVENTS:
        also += custom_window_commands(message.openid, time.time(), event=message.msg_type == "event")
    if with_roles:
        also.append(RoleCache.fetch(message.openid))
    return also


def _claim(cache: "ReplyCache", key: str, digest: str, also: list[tuple]) -> tuple[bool | None, list]:
    claimed, answers = cache.claim(key, *also)
    # Another body seen with this timestamp and nonce: a replayed query string (in plain mode
    # the signature does not cover the body). The same body again is WeChat's retry.
    if answers and answers[1] not in (None, digest):
        if claimed:
            cache.release(key)
        raise Replayed
    return claimed, answers


class _Roles:
    """The router's `role_of`: the caller's cached role if the claim found one, else the database's
    (looked up once; `entries` then caches it with the reply)."""

    def __init__(self, cached: list | None) -> None:
        self.cached = cached
        self.found, self.known = RoleCache.read(cached)
        self.looked_up: list[str | None] = []

    def __call__(self, openid: str) -> str | None:
        if self.found:
            return self.known
        self.looked_up.append(role_for_openid(db.session, openid))
        return self.looked_up[-1]

    def entries(self, openid: str) -> list[tuple]:
        if self.cached and self.looked_up:
            return [RoleCache.entry(openid, self.cached[0], self.looked_up[0])]
        return []


def _dispatch(message: Incoming, key: str, role_of: _Roles) -> str | None:
    """The chatbot's reply ("" for none); None when the handler failed (rolled back, logged)."""
    try:
        return current_app.extensions["router"].dispatch(message, db.session, now_utc(), current_settings(),
                                                          role_of=role_of, dedup_key=key) or ""
    except Exception:
        log.exception("handler failed for %s", key)
        db.session.rollback()
        return None


def _queue_late(message: Incoming, key: str, reply: str) -> str:
    """WeChat has given up on this request: send the answer later as a customer-service message,
    and give the retries "success" (returned: "") so the user does not get it twice."""
    enqueue(db.session, source=f"late-reply:{key}", openid=message.openid, body=reply, kind="reply")
    db.session.commit()
    store_reply(db.session, key, "")  # a retry that reaches the database backstop must not repeat it
    log.warning("reply to %s missed the deadline; queued as a customer-service message", key)
    return ""


def _render(reply: str, msg, encrypted: WeChatCrypto | None, args) -> Response:
    """`encrypted`: the crypto (key) that decrypted the message, which encrypts the reply; None: plain."""
    if not reply:
        return _plain(SUCCESS)
    # Our own renderer, not wechatpy's create_reply: it keeps the XML well-formed whatever the text
    # holds and the Content within WeChat's 2,048 bytes (app/reply.py).
    xml = text_reply(msg.source or "", msg.target or "", reply)
    if encrypted is not None:
        xml = encrypted.encrypt_message(xml, args.get("nonce", ""), args.get("timestamp"))
    return Response(xml, mimetype="application/xml")
