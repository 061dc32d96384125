"""Write docs/console-dashboard.png, the README's picture of the console's dashboard: the demo data
(`flask demo load`, models/demo.py) with a year of activity added (bench/dashboard_data.py), signed
in as the demo's street admin 张建国, in headless Chromium at 1280 px.

    .venv/bin/python docs/screenshot.py                 # → docs/console-dashboard.png
    .venv/bin/python docs/screenshot.py --width 360 --out /tmp/phone.png

Needs Debian's chromium and fonts-noto-cjk (`apt-get install -y chromium fonts-noto-cjk`).
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from bench.dashboard_data import add_year_of_activity, now_utc  # noqa: E402
from models import Base, Member  # noqa: E402
from models.demo import load_demo  # noqa: E402
from tests.cdp import Browser, find_chromium  # noqa: E402
from tests.console_pages_support import go, screenshot, sign_in  # noqa: E402
from tests.local_servers import serve_in_thread  # noqa: E402

ADMIN = "张建国"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "console-dashboard.png"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("chromium not found: apt-get install -y chromium fonts-noto-cjk")
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATABASE_URL": f"sqlite:///{folder}/demo.db", "SECRET_KEY": "screenshot",
                          "REDIS_URL": ""})
        with app.app_context():
            Base.metadata.create_all(db.engine)
            load_demo(db.session)
            for member in db.session.scalars(select(Member).order_by(Member.id)).all()[:6]:
                member.openid = f"o-demo-{member.id}"  # as if they had bound (the demo data has no WeChat)
            db.session.commit()
            add_year_of_activity(db.session, now_utc())
            admin_id = db.session.scalar(select(Member.id).where(Member.name == ADMIN))
            db.session.remove()
        client = app.test_client()
        with client.session_transaction(path="/console/") as session:
            session["member_id"] = admin_id  # signed in as a finished login leaves it
        assert client.get("/console/").status_code == 200
        cookies = [(cookie.key, cookie.value) for cookie in client._cookies.values()]
        browser = Browser(binary)
        try:
            with serve_in_thread(app) as base:
                tab = sign_in(browser, base, cookies)
                go(browser, tab, f"{base}/console/")
                screenshot(browser, tab, args.out, args.width)
        finally:
            browser.close()
        with app.app_context():
            db.engine.dispose()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
