"""A stand-in for WeChat's servers: signs (and in safe mode encrypts) messages as WeChat does.

Used by `flask wechat simulate`, the tests and the benchmarks.
"""

import hashlib
import itertools
import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import xmltodict
from wechatpy.crypto import WeChatCrypto

_SYSTEM_RANDOM = random.SystemRandom()

# post(url, params, body) -> (HTTP status, response text)
Poster = Callable[[str, dict, bytes], tuple[int, str]]


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted, joined parts."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def _cdata(value: str) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: dict) -> str:
    """Render a message the way WeChat does: strings in CDATA, numbers bare."""
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        body = str(value) if isinstance(value, int | float) else _cdata(value)
        parts.append(f"<{name}>{body}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def requests_poster(session: requests.Session | None = None, timeout: float = 10) -> Poster:
    http = session or requests.Session()

    def post(url: str, params: dict, body: bytes) -> tuple[int, str]:
        response = http.post(url, params=params, data=body, timeout=timeout,
                             headers={"Content-Type": "text/xml"})
        return response.status_code, response.content.decode("utf-8", "replace")

    return post


@dataclass
class Reply:
    status: int
    raw: str
    content: str  # the text of a text reply; "" for "success" or an empty answer
    xml: dict | None = None


class Simulator:
    def __init__(self, url: str, token: str, app_id: str = "", aes_key: str = "",
                 account: str = "gh_lianxin", post: Poster | None = None, compatible: bool = False) -> None:
        self.url = url
        self.compatible = compatible  # with a key: the plain fields beside Encrypt (兼容模式)
        self.token = token
        self.account = account
        self.crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None
        self.post = post or requests_poster()
        self._msg_ids = itertools.count(int(time.time() * 1000) * 1000 + random.randrange(1000))

    # What a user does -------------------------------------------------------------------------
    def text(self, openid: str, content: str, *, msg_id: int | None = None,
             create_time: int | None = None) -> Reply:
        return self.send(self.text_fields(openid, content, msg_id=msg_id, create_time=create_time))

    def event(self, openid: str, event: str, key: str | None = None, *,
              create_time: int | None = None, **extra) -> Reply:
        return self.send(self.event_fields(openid, event, key, create_time=create_time, **extra))

    def text_fields(self, openid, content, *, msg_id=None, create_time=None) -> dict:
        return {
            "ToUserName": self.account, "FromUserName": openid,
            "CreateTime": create_time or int(time.time()), "MsgType": "text", "Content": content,
            "MsgId": msg_id if msg_id is not None else next(self._msg_ids),
        }

    def event_fields(self, openid, event, key=None, *, create_time=None, **extra) -> dict:
        fields = {
            "ToUserName": self.account, "FromUserName": openid,
            "CreateTime": create_time or int(time.time()), "MsgType": "event", "Event": event,
        }
        if event == "subscribe" and key:
            fields["EventKey"] = f"qrscene_{key}"
            fields["Ticket"] = "TICKET"
        elif key is not None:
            fields["EventKey"] = key
        fields.update(extra)  # e.g. Latitude=…, Longitude=…, Precision=…
        return fields

    # The wire ---------------------------------------------------------------------------------
    def signed_request(self, fields: dict, *, timestamp: str | None = None,
                       nonce: str | None = None) -> tuple[dict, bytes]:
        """Return the query and body WeChat would POST for a message."""
        timestamp = timestamp or str(int(time.time()))
        # From the system's randomness: a test framework that seeds `random` (hypothesis does) must not
        # make two pushes share a nonce, which the webhook refuses as a replay.
        nonce = nonce or "".join(_SYSTEM_RANDOM.choices(string.digits, k=10))
        params = {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                  "openid": fields.get("FromUserName", "")}
        xml = build_xml(fields)
        if self.crypto is None:
            return params, xml.encode("utf-8")
        encrypted = xmltodict.parse(self.crypto.encrypt_message(xml, nonce, timestamp))["xml"]
        params.update(encrypt_type="aes", msg_signature=encrypted["MsgSignature"])
        outer = dict(fields) if self.compatible else {"ToUserName": self.account}
        body = build_xml({**outer, "Encrypt": encrypted["Encrypt"]})
        return params, body.encode("utf-8")

    def send(self, fields: dict) -> Reply:
        params, body = self.signed_request(fields)
        status, raw = self.post(self.url, params, body)
        return self.read_reply(status, raw)

    def read_reply(self, status: int, raw: str) -> Reply:
        if status != 200 or not raw.lstrip().startswith("<"):
            return Reply(status, raw, "")
        doc = xmltodict.parse(raw)["xml"]
        if self.crypto is not None and "Encrypt" in doc:
            plain = self.crypto.decrypt_message(raw, doc["MsgSignature"], doc["TimeStamp"], doc["Nonce"])
            doc = xmltodict.parse(plain)["xml"]
        return Reply(status, raw, doc.get("Content") or "", doc)
