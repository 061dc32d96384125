"""Photos kept on disk: those uploaded through the API, and those sent in chat once fetched from WeChat.

A photo sent to the Official Account arrives as a WeChat media id, and WeChat keeps temporary
media 3 days: a wish's proof or a meeting record's photo would be lost with it. The scheduler's
`photos` job (scheduler/photo_jobs.py) fetches each such photo soon after it arrives and keeps a
copy here. A photo row's `media_id` says where its picture is:

    upload:<name>        a file of ours in PHOTO_DIR (WISH_PHOTO_DIR), named at random by its type
    gone:<media id>      WeChat no longer had it (or it was no image) when it was fetched
    anything else        a WeChat media id not fetched yet
"""

import os
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.records import RecordPhoto
from models.wishes import WishPhoto

UPLOAD, GONE = "upload:", "gone:"
WECHAT_MEDIA_DAYS = 3  # how long WeChat keeps temporary media
# Image types kept, recognised by their first bytes (never by a name or a claimed type).
IMAGE_SIGNATURES = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"),
                    (b"GIF89a", "gif"))
IMAGE_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
PHOTO_GONE = "这张照片已无法从微信取回（微信只保存临时素材 3 天）。"
NAME = re.compile(r"[0-9a-f]{32}\.(?:jpg|png|gif)")  # the names save_photo gives
PHOTO_TABLES = (WishPhoto, RecordPhoto)
Photo = WishPhoto | RecordPhoto


def image_kind(data: bytes) -> str | None:
    """The image type of these bytes (jpg, png, gif) by their first bytes, or None."""
    return next((ext for magic, ext in IMAGE_SIGNATURES if data.startswith(magic)), None)


def save_photo(folder: str, data: bytes) -> str | None:
    """Write an image to `folder` under a random name of ours (nothing of a client's name reaches
    the disk); return the photo's `media_id` (upload:<name>), or None when the bytes are no image."""
    kind = image_kind(data)
    if kind is None:
        return None
    name = f"{secrets.token_hex(16)}.{kind}"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "xb") as out:
        out.write(data)
    return UPLOAD + name


def discard_photo(folder: str, media_id: str) -> None:
    """Remove the file of a photo not kept after all (its row was refused)."""
    name = media_id.removeprefix(UPLOAD)
    if name != media_id and NAME.fullmatch(name):
        os.remove(os.path.join(folder, name))


def kept(media_id: str) -> bool:
    return media_id.startswith(UPLOAD)


def gone(media_id: str) -> bool:
    return media_id.startswith(GONE)


def read_photo(folder: str, media_id: str) -> tuple[bytes, str] | None:
    """The bytes and the MIME type of a kept photo, or None (not kept here, or its file is gone)."""
    name = media_id.removeprefix(UPLOAD)
    if name == media_id or not NAME.fullmatch(name):
        return None
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as photo_file:  # small (capped at upload, one chat image): read whole
        return photo_file.read(), IMAGE_TYPES[name.rsplit(".", 1)[1]]


def photos_to_fetch(session: Session, limit: int) -> list[Photo]:
    """Photos sent in chat and not fetched yet, the oldest first, at most `limit` of each kind."""
    found: list[Photo] = []
    for table in PHOTO_TABLES:
        found += session.scalars(
            select(table).where(table.media_id.not_like(f"{UPLOAD}%"), table.media_id.not_like(f"{GONE}%"))
            .order_by(table.id).limit(limit)).all()
    return found


def expired(photo: Photo, now: datetime) -> bool:
    """Whether WeChat has already dropped the photo's media (older than WECHAT_MEDIA_DAYS)."""
    return photo.at < now - timedelta(days=WECHAT_MEDIA_DAYS)


def settle_photo(session: Session, photo: Photo, media_id: str) -> bool:
    """Record where the photo now is (upload:… or gone:…) if its row still names the WeChat media
    it was fetched from; commit. False: another run settled it first."""
    table = type(photo)
    done = session.execute(update(table).where(table.id == photo.id, table.media_id == photo.media_id)
                           .values(media_id=media_id)).rowcount
    session.commit()
    return bool(done)


def gone_id(media_id: str) -> str:
    return (GONE + media_id)[:200]  # the column's width
