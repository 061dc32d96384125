"""Throughput and latency of `帮助` through the full webhook, beside a bare Flask app.

Both run under the same gunicorn settings; wrk (Debian package `wrk`) drives them with pre-signed
requests, each with its own MsgId, so every request runs the whole path: signature, timestamp,
XML checks, parse, Redis de-duplication, the router (one member lookup), reply rendering.

    .venv/bin/python bench/webhook.py [--seconds 10] [--rounds 3] [--connections 32] [--workers 2]
                                      [--without direct,resp,skip,roles,limiter]

`--without` runs the webhook without some of its speed tricks (app/fastpath.py; bench/variants.py).

Uses REDIS_URL (default redis://127.0.0.1:6379/14; the webhook's de-duplication must be shared by
the workers) and a fresh SQLite file, or DATABASE_URL if set.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.simulator import Simulator, requests_poster  # noqa: E402

TOKEN = "benchtoken"
OPENID = "o-bench-secretary"

BARE_APP = textwrap.dedent('''
    from flask import Flask, Response

    REPLY = ("<xml><ToUserName><![CDATA[o]]></ToUserName><FromUserName><![CDATA[gh]]></FromUserName>"
             "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
             "<Content><![CDATA[您可以发送以下指令]]></Content></xml>")
    app = Flask(__name__)

    @app.post("/wechat")
    def wechat():
        return Response(REPLY, mimetype="application/xml")
''')

WRK_SCRIPT = textwrap.dedent('''
    local counter = 0
    local threads = {}
    function setup(thread)
      thread:set("tid", counter)
      counter = counter + 1
      table.insert(threads, thread)
    end
    function init(args)
      reqs = {}
      local n = 0
      for line in io.lines(args[1]) do
        if n % tonumber(args[2]) == tid then
          local path, body = line:match("^([^\\t]*)\\t(.*)$")
          reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
        end
        n = n + 1
      end
      i = 0
    end
    function request()
      i = i % #reqs + 1
      return reqs[i]
    end
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def gunicorn(app_spec: str, port: int, workers: int, threads: int, env: dict, cwd: str) -> subprocess.Popen:
    worker_class = ["-k", "gthread", "--threads", str(threads)] if threads > 1 else ["-k", "sync"]
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), *worker_class, "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", app_spec]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    wait_for(port, proc)
    return proc


def run_wrk(port: int, requests_file: str, seconds: int, connections: int, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script.name,
         f"http://127.0.0.1:{port}", "--", requests_file, str(threads)],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"), "p99": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }


def signed_requests(path: str, count: int) -> None:
    sim = Simulator("/wechat", TOKEN)
    with open(path, "w", encoding="utf-8") as f:
        for n in range(count):
            params, body = sim.signed_request(sim.text_fields(OPENID, "帮助", msg_id=10**12 + n))
            query = "&".join(f"{k}={v}" for k, v in params.items())
            f.write(f"/wechat?{query}\t{body.decode('utf-8')}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements of each app")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=1,
                        help="threads per gunicorn worker (more than 1: the gthread worker class)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--without", default="", metavar="TRICK,…",
                        help="run the webhook without these speed tricks of app/fastpath.py: "
                             "direct, resp, skip, roles, limiter (see bench/variants.py)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    work = tempfile.mkdtemp(prefix="lianxin-bench-")
    env = dict(os.environ)
    env.update(
        DATABASE_URL=os.environ.get("DATABASE_URL", f"sqlite:///{work}/bench.db"),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        WECHAT_TOKEN=TOKEN, SECRET_KEY="bench", LOG_LEVEL="WARNING",
    )
    import redis

    store = redis.Redis.from_url(env["REDIS_URL"])
    store.flushdb()
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*flask, "demo", "load"], env=env, cwd=ROOT, check=True, capture_output=True)

    # Enough distinct messages that no MsgId repeats within the run.
    requests_file = f"{work}/requests.tsv"
    signed_requests(requests_file, 6000 * args.seconds)
    Path(work, "bare_app.py").write_text(BARE_APP, encoding="utf-8")

    servers, ports = [], {}
    try:
        webhook = f'bench.variants:create_app("{args.without}")' if args.without else "app:create_app()"
        for name, spec, cwd in (("bare Flask, fixed XML", "bare_app:app", work),
                                ("Lianxin webhook, 帮助", webhook, str(ROOT))):
            ports[name] = free_port()
            servers.append(gunicorn(spec, ports[name], args.workers, args.gunicorn_threads, env, cwd))
        # The sender is a bound secretary, so 帮助 looks up a role and lists more commands.
        sim = Simulator(f"http://127.0.0.1:{ports['Lianxin webhook, 帮助']}/wechat", TOKEN, post=requests_poster())
        reply = sim.text(OPENID, "绑定 李红梅 13800000002").content
        assert "成功" in reply, reply
        assert "可用指令" in sim.text(OPENID, "帮助").content
        for port in ports.values():
            run_wrk(port, requests_file, 2, args.connections, args.threads)  # warm-up
        # Measured in alternation, so that a slower spell of the machine hits both alike; the
        # median round of each is reported.
        rounds = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                store.delete(*store.keys("lx:wx:*"), "lx:none")  # every message is handled anew
                rounds[name].append(run_wrk(port, requests_file, args.seconds, args.connections,
                                            args.threads))
        results = {name: sorted(runs, key=lambda r: r["rps"])[len(runs) // 2] for name, runs in rounds.items()}
    finally:
        for server in servers:
            server.terminate()
            server.wait()

    kind = f"gthread x{args.workers}x{args.gunicorn_threads}" if args.gunicorn_threads > 1 else f"sync x{args.workers}"
    print(f"\ngunicorn {kind}, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s "
          f"(median of {args.rounds} alternating rounds), "
          f"{os.cpu_count()} cores; Redis {env['REDIS_URL']}; database {env['DATABASE_URL'].split(':')[0]}"
          + (f"; without {args.without}" if args.without else ""))
    print(f"{'':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(f"{name:28} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['non2xx']:8d} {r['errors']}")
    for name, runs in rounds.items():
        each = ", ".join(f"{r['rps']:.0f}" for r in runs)
        print(f"  {name} rounds, req/s: {each}")
    bare, full = results["bare Flask, fixed XML"], results["Lianxin webhook, 帮助"]
    print(f"\nthroughput ratio webhook/bare: {full['rps'] / bare['rps']:.2f} (target >= 0.50); "
          f"webhook p99 {full['p99']:.1f} ms (target < 50 ms)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
