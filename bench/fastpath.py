"""CPU time per `帮助` through the whole webhook, in-process, with and without each speed trick of
app/fastpath.py: what each trick buys, measured where wrk's req/s is too noisy (a busy machine).

Each variant runs in a fresh process (bench/variants.py undoes the tricks named); every message goes
through Flask's test client (signature, XML, Redis de-duplication, router, reply), signed by the
simulator, each with its own MsgId. CPU time is this process's (time.process_time): the webhook's
own cost per message, which bounds a worker's throughput; Redis's and SQLite's server work in
other processes is not in it, the wall time is.

    .venv/bin/python bench/fastpath.py [--messages 3000] [--repeat 3]

Uses REDIS_URL (default redis://127.0.0.1:6379/14; flushed) and a fresh SQLite file.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("", "direct", "resp", "skip", "roles", "limiter")
TOKEN = "benchtoken"
OPENID = "o-bench-secretary"


def measure(without: str, messages: int, repeat: int) -> dict:
    """(In the child process.) CPU and wall µs per message, the best of `repeat` runs."""
    import redis

    from app.simulator import Simulator
    from bench.variants import create_app
    from models.demo import load_demo

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    app = create_app(without)
    from app.extensions import db

    with app.app_context():
        db.create_all()
        load_demo(db.session)
    client = app.test_client()

    def post(url, params, body):
        response = client.post(url, query_string=params, data=body, content_type="text/xml")
        return response.status_code, response.get_data(as_text=True)

    sim = Simulator("/wechat", TOKEN, post=post)
    assert "成功" in sim.text(OPENID, "绑定 李红梅 13800000002").content
    msg_ids = iter(range(10**12, 10**13))
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        requests = [sim.signed_request(sim.text_fields(OPENID, "帮助", msg_id=next(msg_ids)))
                    for _ in range(messages)]
        cpu, wall = time.process_time(), time.perf_counter()
        for params, body in requests:
            status, raw = post("/wechat", params, body)
            assert status == 200 and "可用指令" in raw, raw
        best_cpu = min(best_cpu, (time.process_time() - cpu) / messages * 1e6)
        best_wall = min(best_wall, (time.perf_counter() - wall) / messages * 1e6)
    return {"cpu_us": best_cpu, "wall_us": best_wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child.strip(), args.messages, args.repeat)))
        return
    work = tempfile.mkdtemp(prefix="lianxin-fastpath-")
    results = {}
    for without in VARIANTS:
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{work}/{without or 'all'}.db",
                   REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
                   WECHAT_TOKEN=TOKEN, SECRET_KEY="bench", LOG_LEVEL="WARNING")
        out = subprocess.run([sys.executable, __file__, "--child", f" {without}", "--messages",
                              str(args.messages), "--repeat", str(args.repeat)],
                             env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        results[without] = json.loads(out.strip().splitlines()[-1])
    base = results[""]
    print(f"webhook in-process, {args.messages} messages x best of {args.repeat}, µs per message")
    print(f"{'':22} {'CPU':>8} {'wall':>8} {'CPU saved by the trick':>24}")
    for without, r in results.items():
        name = f"without {without}" if without else "all tricks"
        saved = f"{r['cpu_us'] - base['cpu_us']:+.0f} µs ({(r['cpu_us'] / base['cpu_us'] - 1) * 100:+.0f}%)" \
            if without else ""
        print(f"{name:22} {r['cpu_us']:8.0f} {r['wall_us']:8.0f} {saved:>24}")


if __name__ == "__main__":
    main()
