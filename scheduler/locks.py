"""Redis locks without Lua (the in-process stand-in has no scripting): SET NX PX to take one,
WATCH/MULTI to renew or release it only while we still hold it."""

import time
import uuid

import redis


class RedisLock:
    """A lock held under `key` for `ttl` seconds unless renewed; `owner` says who holds it."""

    def __init__(self, store: redis.Redis, key: str, ttl: float, owner: str | None = None) -> None:
        self.store, self.key, self.ttl = store, key, ttl
        self.owner = owner or uuid.uuid4().hex

    def acquire(self, wait: float = 0.0, poll: float = 0.02) -> bool:
        """Take the lock (or confirm we hold it, extending it); wait up to `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            if self.store.set(self.key, self.owner, nx=True, px=int(self.ttl * 1000)):
                return True
            if self.renew():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def _if_mine(self, action) -> bool:
        with self.store.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                if pipe.get(self.key) != self.owner:
                    pipe.unwatch()
                    return False
                pipe.multi()
                action(pipe)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def renew(self) -> bool:
        """Extend the lock if we hold it."""
        return self._if_mine(lambda pipe: pipe.pexpire(self.key, int(self.ttl * 1000)))

    def release(self) -> bool:
        """Give the lock up if we hold it."""
        return self._if_mine(lambda pipe: pipe.delete(self.key))

    def __enter__(self) -> "RedisLock":
        if not self.acquire(wait=self.ttl):
            raise TimeoutError(f"could not take the lock {self.key}")
        return self

    def __exit__(self, *exc) -> None:
        self.release()
