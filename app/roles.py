"""Callers' roles, cached in Redis for the webhook's hot path.

`帮助` and the router's permission check need only the caller's role, and looking it up costs a
database round trip (two on PostgreSQL with pool_pre_ping). The webhook reads the cached role in the
same Redis round trip as its de-duplication claim, and writes a role it had to look up together
with the reply. Every committed transaction that inserted, updated or deleted members moves a
generation counter, which makes every cached role stale at once: roster changes (a binding, an
import, an edited role) are rare, messages are not. Only with a real Redis (`REDIS_URL`): the
in-process stand-in is no faster than the database and is not shared with a CLI import.
"""

import logging
import weakref

import redis
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from models import Member

log = logging.getLogger(__name__)

GEN_KEY = "lx:roles:gen"
TTL = 300  # seconds; a bound on staleness should an invalidation ever fail
UNBOUND = "-"
_CHANGED = "lx_roster_changed"  # a flag in Session.info
_ROLE_FIELDS = ("openid", "role", "active")
_caches: "weakref.WeakSet[RoleCache]" = weakref.WeakSet()


def role_key(openid: str) -> str:
    return f"lx:role:{openid}"


class RoleCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        _caches.add(self)

    @staticmethod
    def fetch(openid: str) -> tuple:
        """The command that reads one openid's cached role (its answer goes to `read`)."""
        return ("MGET", GEN_KEY, role_key(openid))

    @staticmethod
    def read(answer: list | None) -> tuple[bool, str | None]:
        """Return (found, role) from the answer to `fetch`; role None: not bound."""
        generation, value = answer or (None, None)
        if value is None:
            return False, None
        stored, _, role = value.partition("|")
        if stored != (generation or "0"):
            return False, None
        return True, None if role == UNBOUND else role

    @staticmethod
    def entry(openid: str, generation: str | None, role: str | None) -> tuple:
        """The SET command that caches a role looked up while the generation was `generation`."""
        return ("SET", role_key(openid), f"{generation or '0'}|{role or UNBOUND}", "EX", TTL)

    def invalidate(self) -> None:
        try:
            self.client.incr(GEN_KEY)
        except redis.RedisError:
            log.exception("could not invalidate the cached roles; they expire within %d s", TTL)


def _note_member_changes(session: Session, flush_context, instances) -> None:
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, Member):
            session.info[_CHANGED] = True
            return
    for obj in session.dirty:
        if isinstance(obj, Member):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in _ROLE_FIELDS):
                session.info[_CHANGED] = True
                return


def _note_member_statements(state) -> None:
    if (state.is_update or state.is_delete or state.is_insert) \
            and getattr(getattr(state.statement, "table", None), "name", None) == Member.__tablename__:
        state.session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        for cache in list(_caches):
            cache.invalidate()


# On every session (the app's, the scheduler's, a CLI command's, a test's): any of them may change
# the roster, and the caches of this process must hear of it.
event.listen(Session, "before_flush", _note_member_changes)
event.listen(Session, "do_orm_execute", _note_member_statements)
event.listen(Session, "after_commit", _after_commit)
