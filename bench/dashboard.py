"""The console's dashboard of a community with thousands of members and a year of activity: the
SQL statements one rendering runs (they must not grow with the members) and its time.

    .venv/bin/python bench/dashboard.py                       # 500 and 2,000 members, SQLite
    .venv/bin/python bench/dashboard.py --members 2000 5000
    .venv/bin/python bench/dashboard.py --database-url postgresql://postgres@127.0.0.1:5432/bench

Each size gets a fresh database: a community (10 branches) of N members and a neighbour of N/10,
twelve months of 主题党日 per branch and volunteer services, sign-ins, wishes and monthly notices
with their deliveries (bench/dashboard_data.py). The page is rendered by the Flask test client as
the community's secretary, as a browser would ask for it.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, func, select  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from bench.dashboard_data import add_year_of_activity, build_community, now_utc  # noqa: E402
from models import Base  # noqa: E402
from models.activity.tables import Activity, CheckIn  # noqa: E402
from models.outbox import OutboxMessage  # noqa: E402
from models.wishes import Wish  # noqa: E402


def run(database_url: str, members: int, repeat: int) -> tuple[int, float, dict]:
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "bench", "REDIS_URL": "", "TESTING": True})
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        secretary = build_community(db.session, members)
        add_year_of_activity(db.session, now_utc())
        sizes = {name: db.session.scalar(select(func.count()).select_from(table)) for name, table in
                 (("activities", Activity), ("sign-ins", CheckIn), ("wishes", Wish), ("deliveries", OutboxMessage))}
        secretary_id = secretary.id
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:  # statistics, as a database in use has them
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    client = app.test_client()
    with client.session_transaction(path="/console/") as session:
        session["member_id"] = secretary_id  # signed in, as tests/conftest.py's console_login does
    assert client.get("/console/").status_code == 200  # warm: templates compiled, pools open
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    times = []
    for _ in range(repeat):
        statements.clear()
        event.listen(Engine, "before_cursor_execute", record)
        started = time.perf_counter()
        response = client.get("/console/")
        times.append(time.perf_counter() - started)
        event.remove(Engine, "before_cursor_execute", record)
        assert response.status_code == 200, response.status_code
    with app.app_context():
        db.engine.dispose()
    return len(statements), statistics.median(times), sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for members in args.members:
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite:///{folder}/bench.db"
            count, seconds, sizes = run(url, members, args.repeat)
        made = ", ".join(f"{n:,} {name}" for name, n in sizes.items())
        print(f"{members:>6,} members ({made}): {count} SQL statements, {seconds * 1000:.0f} ms per dashboard "
              f"(median of {args.repeat})")


if __name__ == "__main__":
    main()
