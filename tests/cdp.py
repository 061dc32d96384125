"""A tiny Chrome DevTools Protocol client over --remote-debugging-pipe (no websocket library needed).

Chromium reads commands from its file descriptor 3 and writes answers and events to descriptor 4,
each message a JSON object followed by a NUL byte.
"""

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _high(fd: int) -> int:
    """Move a descriptor above 10, so that wiring descriptors 3 and 4 cannot overwrite it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Browser:
    def __init__(self, binary: str) -> None:
        self._to_child_r, self._to_child_w = (_high(fd) for fd in os.pipe())
        self._from_child_r, self._from_child_w = (_high(fd) for fd in os.pipe())
        self._profile = tempfile.mkdtemp(prefix="lx-chromium-")
        self._log = open(os.path.join(self._profile, "stderr.log"), "w+b")  # noqa: SIM115
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"]
        # bash puts the pipes on descriptors 3 and 4 (no preexec_fn: not safe with threads; dash
        # refuses descriptors above 9).
        wiring = f'exec "$0" "$@" 3<&{self._to_child_r} 4>&{self._from_child_w}'
        self.process = subprocess.Popen(
            ["bash", "-c", wiring, *args], stdout=subprocess.DEVNULL, stderr=self._log,
            pass_fds=(self._to_child_r, self._from_child_w),
        )
        os.close(self._to_child_r)
        os.close(self._from_child_w)
        self._buffer = b""
        self._next_id = 0

    def send(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float = 20) -> dict:
        """Send a command and return its result (events in between are ignored)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._to_child_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method}")
            ready, _, _ = select.select([self._from_child_r], [], [], left)
            if ready:
                chunk = os.read(self._from_child_r, 65536)
                if not chunk:
                    self._log.seek(0)
                    raise RuntimeError("chromium closed the pipe: " + self._log.read()[-2000:].decode(errors="replace"))
                self._buffer += chunk

    def open(self, url: str) -> str:
        """Open a page; return the session id to talk to it."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def evaluate(self, session_id: str, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session_id)
        return result.get("result", {}).get("value")

    def wait_for(self, session_id: str, expression: str, timeout: float = 20):
        """Evaluate `expression` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(session_id, expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{expression!r} still {value!r} after {timeout} s")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child_w)
        os.close(self._from_child_r)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)
