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
from pathlib import Path

import requests
import xmltodict
from wechatpy.crypto import WeChatCrypto

from scheduler.wechat_api import OFFICIAL_BASE

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

    def image(self, openid: str, media_id: str, pic_url: str) -> Reply:
        """A photo, as WeChat sends it: the picture's URL and its media id."""
        return self.send(self._message(openid, "image", PicUrl=pic_url, MediaId=media_id))

    def location(self, openid: str, latitude: float, longitude: float, *, label: str = "",
                 scale: int = 15) -> Reply:
        """A location *message* (the user sends a place from the chat), not the LOCATION event."""
        return self.send(self._message(openid, "location", Location_X=latitude, Location_Y=longitude,
                                       Scale=scale, Label=label))

    def voice(self, openid: str, recognition: str, *, media_id: str = "VOICE-MEDIA") -> Reply:
        """A voice message whose speech WeChat recognised as `recognition`."""
        return self.send(self._message(openid, "voice", MediaId=media_id, Format="amr",
                                       Recognition=recognition))

    def _message(self, openid: str, msg_type: str, **fields) -> dict:
        return {"ToUserName": self.account, "FromUserName": openid, "CreateTime": int(time.time()),
                "MsgType": msg_type, **fields, "MsgId": next(self._msg_ids)}

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


# With the local WeChat stand-in (app/fake_wechat.py) ------------------------------------------
def upload_media(api_base: str, path: Path, kind: str = "image", timeout: float = 10) -> tuple[str, str]:
    """Upload a file to WeChat's media API (the stand-in's, on a laptop); return (media id, URL).

    Without a stand-in (WeChat's own host, which needs a real token) the file gets a local media id
    and a file: URL, which is all a message carries."""
    if api_base == OFFICIAL_BASE:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:24]
        return f"LOCAL-{digest}", path.resolve().as_uri()
    with path.open("rb") as file:
        answer = requests.post(f"{api_base}/cgi-bin/media/upload", params={"access_token": "local", "type": kind},
                               files={"media": (path.name, file)}, timeout=timeout).json()
    if "media_id" not in answer:
        raise ValueError(f"media upload refused: {answer}")
    media_id = answer["media_id"]
    return media_id, f"{api_base}/cgi-bin/media/get?media_id={media_id}"


def resolve_scene(api_base: str, value: str, timeout: float = 10) -> str:
    """The scene of a QR code: `value` itself, or, for a QR code's URL or ticket handed out by the
    stand-in, the scene it was made for (as WeChat knows the scene of the code a user scans)."""
    url = value if value.startswith(("http://", "https://")) else (
        f"{api_base}/q/{value}" if value.startswith("TICKET-") else None)
    if url is None:
        return value
    answer = requests.get(url, timeout=timeout)
    if answer.status_code != 200:
        raise ValueError(f"unknown QR code {value}")
    return str(answer.json()["scene"])
