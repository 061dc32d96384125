"""Keep a copy of every photo sent in chat (a wish's proof, a meeting record's photo) before WeChat
drops its temporary media after 3 days (models/photos.py says how a photo row records where it is).

Each run fetches the photos not fetched yet with `media/get`, no transaction open during a call:
an image is written to the photo folder and the row points at it; media WeChat no longer has (or
that is no image) is marked gone, never asked for again; a call that fails on the way (WeChat
unreachable, a busy answer) leaves the row for the next run, until the media is past its 3 days.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import requests
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from models.photos import discard_photo, expired, gone_id, photos_to_fetch, save_photo, settle_photo
from scheduler.wechat_api import SharedTokenClient

log = logging.getLogger(__name__)

# WeChat's answers that mean the media is not there (any other error is tried again next run).
MEDIA_GONE = {40007}  # invalid media_id: expired, or never one


@dataclass
class PhotoRun:
    kept: int = 0
    gone: int = 0
    later: int = 0

    def __str__(self) -> str:
        return f"{self.kept} photos kept, {self.gone} gone, {self.later} left for the next run"


def keep_chat_photos(session_factory: Callable[[], Session], client: SharedTokenClient, folder: str,
                     now: datetime, *, limit: int = 100) -> PhotoRun:
    """Fetch and keep the photos sent in chat that are not kept yet (at most `limit` of each kind)."""
    run = PhotoRun()
    with session_factory() as session:
        photos = photos_to_fetch(session, limit)
        session.rollback()  # no transaction held during the calls to WeChat
        for photo in photos:
            if expired(photo, now):
                run.gone += settle_photo(session, photo, gone_id(photo.media_id))
                continue
            data = _download(client, photo.media_id)
            if data is None:
                run.later += 1
                continue
            media_id = save_photo(folder, data) if data else None
            if media_id is None:
                log.info("photo %s (%s): WeChat no longer has it, or it is no image", photo.id, photo.media_id)
                run.gone += settle_photo(session, photo, gone_id(photo.media_id))
            elif settle_photo(session, photo, media_id):
                run.kept += 1
            else:
                discard_photo(folder, media_id)  # another run kept it first
    return run


def _download(client: SharedTokenClient, media_id: str) -> bytes | None:
    """The media's bytes; b"" when WeChat says it has no such media; None when the call failed."""
    try:
        answer = client.call(lambda: client.media.download(media_id))
    except WeChatClientException as exc:
        if exc.errcode in MEDIA_GONE:
            return b""
        log.warning("photo %s: WeChat answered %s; trying again next run", media_id, exc)
        return None
    except requests.RequestException as exc:
        log.warning("photo %s: WeChat unreachable (%s); trying again next run", media_id, exc)
        return None
    return answer.content if isinstance(answer, requests.Response) else b""
