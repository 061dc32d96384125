"""Real processes for the laptop doors: the `wechat fake-api` stand-in and the dev server, on spare
ports, with a temporary SQLite database — as `make run` starts them."""

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
FLASK = [sys.executable, "-m", "flask", "--app", "app"]


def ROOT_ENV() -> dict:  # noqa: N802 - reads like a constant
    """The environment without the settings of the test run (nor of a developer's shell)."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("WECHAT_", "MINIAPP_", "REDIS_", "DATABASE_", "TEST_", "PUBLIC_", "SECRET_"))}


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spare_port_pair() -> tuple[int, int]:
    """Two free ports in a row: the server's and, as `make run` has it, the stand-in's next to it."""
    for _ in range(100):
        port = spare_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port, port + 1
    raise RuntimeError("no two free ports in a row")


@dataclass
class LocalServers:
    port: int
    fake_port: int
    env: dict
    processes: list
    logs: dict

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fake_base(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}"

    def flask(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*FLASK, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=120)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def log(self, name: str) -> str:
        return self.logs[name].read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll until the process answers (a readiness wait, not an assertion on time)."""
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text(errors='replace')}")


def start(tmp_path: Path) -> LocalServers:
    """The stand-in, then a migrated database with the demo organization, then the server —
    the settings `make run` gives them when no WECHAT_APP_ID is set."""
    port, fake_port = spare_port_pair()
    env = ROOT_ENV()
    env.update({
        "PYTHONUNBUFFERED": "1", "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'walk.db'}",
        "REDIS_URL": "", "SECRET_KEY": "walkthrough", "WISH_PHOTO_DIR": str(tmp_path / "photos"),
        "WECHAT_API_BASE": f"http://127.0.0.1:{fake_port}", "WECHAT_APP_SECRET": "local-stand-in",
        "MINIAPP_APP_ID": "wx-local-miniapp", "MINIAPP_APP_SECRET": "local-stand-in",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "SCHEDULER_EMBEDDED": "0",
        "WECHAT_TEMPLATE_NOTICE": "local-notice", "WECHAT_TEMPLATE_REMINDER": "local-reminder",
    })
    servers = LocalServers(port, fake_port, env, [], {})
    try:
        fake_log = servers.logs["fake"] = tmp_path / "fake.log"
        with fake_log.open("w") as out:
            fake = subprocess.Popen([*FLASK, "wechat", "fake-api", "--port", str(fake_port)], cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        servers.processes.append(fake)
        _wait_until_up(servers.fake_base + "/", fake, fake_log)
        servers.flask("db", "upgrade")
        servers.flask("demo", "load")
        server_log = servers.logs["server"] = tmp_path / "server.log"
        with server_log.open("w") as out:
            server = subprocess.Popen([*FLASK, "run", "--port", str(port)], cwd=ROOT, env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
        servers.processes.append(server)
        _wait_until_up(servers.base + "/healthz", server, server_log)
    except BaseException:
        servers.stop()
        raise
    return servers


@contextmanager
def serve_in_thread(app):
    """Serve `app` on a free port of 127.0.0.1 in a thread of this process; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
