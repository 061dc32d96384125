"""The app's sessions: none for the webhook, the API and the other doors (no request pays for
opening one); the console's, kept server-side in Redis, for /console.

A console session is a random id in a cookie (HttpOnly, SameSite=Lax, Secure when the request came
over HTTPS, path /console) and its data in Redis under the id's digest (a copy of Redis holds no
usable cookie). The data's time to live is CONSOLE_SESSION_HOURS, renewed by every request: a
session idle that long is gone. Signing in gives the session a new id (`rotate_id`: no fixation).
Every session a member is signed in with is listed in a set of theirs, so that signing out ends
them all (`end_sessions_of`); a request already under way cannot bring an ended session back (its
data is written only if it still exists).

The app's Redis is the one of app/extensions.py (the in-process stand-in without REDIS_URL).
Static files under /console/static open no session. When Redis cannot be reached the session is
`unavailable` (empty, never saved) and the console answers its Chinese 503 page.
"""

import hashlib
import logging
import re
import secrets

import redis
from flask import Flask, Request, Response, request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console"
STATIC_PREFIX = CONSOLE_PREFIX + "/static/"
COOKIE_NAME = "lx_console"
MEMBER_FIELD = "member_id"  # the field of a session that names its signed-in member
_DATA = "lx:console:session:"  # + the id's digest: the session's data
_MEMBER = "lx:console:member:"  # + a member id: the digests of that member's sessions
_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def is_console(path: str) -> bool:
    """A request that gets a console session: /console and below, but not its static files."""
    return (path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")) and not path.startswith(STATIC_PREFIX)


def idle_seconds(app: Flask) -> int:
    """How long a console session lives without a request (CONSOLE_SESSION_HOURS)."""
    return max(1, int(app.extensions["settings"].console_session_hours * 3600))


class ConsoleSession(CallbackDict, SessionMixin):
    """A console session: its data, and its id (None until first saved)."""

    def __init__(self, initial: dict | None = None, sid: str | None = None) -> None:
        def changed(session: "ConsoleSession") -> None:
            session.modified = True

        super().__init__(initial, changed)
        self.sid = sid
        self.modified = False
        self.rotate = False
        self.unavailable = False  # Redis could not be reached: nothing is read or saved

    def rotate_id(self) -> None:
        """Save this session under a new id and drop the old one (at sign-in)."""
        self.rotate = True
        self.modified = True


def end_sessions_of(store: redis.Redis, member_id: int) -> int:
    """End every console session of a member (signing out everywhere); return how many were live."""
    members_key = f"{_MEMBER}{member_id}"
    digests = store.smembers(members_key)
    pipe = store.pipeline(transaction=False)
    for digest in digests:
        pipe.delete(_DATA + digest)
    pipe.delete(members_key)
    return sum(pipe.execute()[:-1]) if digests else 0


class Sessions(SessionInterface):
    """A session only under /console (server-side, in Redis); every other request gets a null one."""

    serializer = TaggedJSONSerializer()

    def open_session(self, app: Flask, request: Request):
        if not is_console(request.path):
            return self.make_null_session(app)
        sid = request.cookies.get(COOKIE_NAME, "")
        if _ID.fullmatch(sid):
            try:
                raw = app.extensions["redis"].get(_DATA + _digest(sid))
            except redis.RedisError:
                log.warning("console sessions: Redis is unreachable", exc_info=True)
                unavailable = ConsoleSession()
                unavailable.unavailable = True
                return unavailable
            if raw is not None:
                try:
                    return ConsoleSession(self.serializer.loads(raw), sid)
                except ValueError:
                    pass  # unreadable data: a new session
        return ConsoleSession()

    def save_session(self, app: Flask, session, response: Response) -> None:
        if not isinstance(session, ConsoleSession) or session.unavailable:
            return
        try:
            self._save(app, session, response)
        except redis.RedisError:
            log.warning("console sessions: the session could not be saved", exc_info=True)

    def _save(self, app: Flask, session: "ConsoleSession", response: Response) -> None:
        store = app.extensions["redis"]
        if not session:
            if session.sid is not None:  # emptied (signed out): gone from Redis and the browser
                store.delete(_DATA + _digest(session.sid))
                self._forget(app, response)
            return
        kept = self._store(app, store, session)
        if not kept:  # ended meanwhile (signed out elsewhere): stays ended
            self._forget(app, response)
            return
        response.set_cookie(COOKIE_NAME, session.sid, max_age=idle_seconds(app), path=CONSOLE_PREFIX,
                            httponly=True, samesite="Lax", secure=request.is_secure)
        response.vary.add("Cookie")

    def _store(self, app: Flask, store: redis.Redis, session: ConsoleSession) -> bool:
        """Write or renew the session's data in one round trip; False when it no longer exists."""
        ttl = idle_seconds(app)
        key = None if session.sid is None else _DATA + _digest(session.sid)
        pipe = store.pipeline(transaction=False)
        if key is None or session.rotate:
            if key is not None:
                pipe.delete(key)
            session.sid, session.rotate = secrets.token_urlsafe(32), False
            key = _DATA + _digest(session.sid)
            pipe.set(key, self.serializer.dumps(dict(session)), ex=ttl)
        elif session.modified:
            # Only if it still exists: a sign-out elsewhere is not undone by a request under way.
            pipe.set(key, self.serializer.dumps(dict(session)), ex=ttl, xx=True)
        else:
            pipe.expire(key, ttl)
        written_at = len(pipe) - 1
        member_id = session.get(MEMBER_FIELD)
        if isinstance(member_id, int):
            pipe.sadd(f"{_MEMBER}{member_id}", _digest(session.sid))
            pipe.expire(f"{_MEMBER}{member_id}", ttl)
        return bool(pipe.execute()[written_at])

    @staticmethod
    def _forget(app: Flask, response: Response) -> None:
        response.delete_cookie(COOKIE_NAME, path=CONSOLE_PREFIX, httponly=True, samesite="Lax")
