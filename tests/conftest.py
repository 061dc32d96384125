"""Fixtures: a real database (SQLite file, or PostgreSQL via TEST_DATABASE_URL), Redis (in-process
stand-in, or a real server via TEST_REDIS_URL), the fake WeChat API server, the app, senders and
schedulers on a plain session, and the builders of test people.

CI runs the suite once on the defaults and once with
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test TEST_REDIS_URL=redis://127.0.0.1:6379/15
"""

import os
import uuid
from dataclasses import dataclass, replace
from datetime import date

import fakeredis
import pytest
import redis
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import create_app
from app.api import limiter
from app.extensions import db
from app.simulator import Simulator
from config import FIELDS, load_config
from handlers import Incoming, build_router
from models import Base, Member
from models.org import (
    PATH_SEPARATOR,
    ensure_grid,
    ensure_org_paths,
    get_org_by_full_name,
    split_org_path,
)
from scheduler.sender import Sender
from scheduler.service import SchedulerService
from tests.fake_wechat import FakeWeChat

TOKEN = "testtoken"
APP_ID = "wx2c2769f8efd9abc2"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
# The organizations the test people are in.
STREET = "滨江街道党工委"
COMMUNITY = f"{STREET}/东湖社区党委"
BRANCH = f"{COMMUNITY}/东湖社区第一党支部"
GROUP = f"{BRANCH}/第一党小组"
SECOND_BRANCH = f"{COMMUNITY}/东湖社区第二党支部"
# How long a race's threads wait for each other at the start line (threading.Barrier): one that
# never arrives (no database connection left) breaks the barrier and fails the test, never hangs it.
RACE_START_TIMEOUT = 60
OTHER_BRANCH = f"{STREET}/西湖社区党总支/西湖社区党支部"


def pytest_report_header(config):
    db_url = os.environ.get("TEST_DATABASE_URL") or "SQLite file (default)"
    redis_url = os.environ.get("TEST_REDIS_URL") or "in-process stand-in (default)"
    return [f"lianxin database: {db_url}", f"lianxin redis: {redis_url}"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", "")


@pytest.fixture(scope="session")
def is_postgres(database_url) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture(scope="session")
def engine(database_url):
    """A plain SQLAlchemy engine with a fresh schema for the whole run."""
    engine = create_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _clear(engine) -> None:
    tables = Base.metadata.sorted_tables
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # DELETE, children first, and the id sequences back to 1: for the few rows a test leaves
            # this is several times faster than one TRUNCATE of every table (measured 20 vs 128 ms).
            for table in reversed(tables):
                conn.execute(table.delete())
            for sequence in _sequences(conn, tables):
                conn.execute(text("SELECT setval(:sequence, 1, false)"), {"sequence": sequence})
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for table in reversed(tables):
                conn.execute(table.delete())
            conn.execute(text("PRAGMA foreign_keys=ON"))


_SEQUENCES: list[str] = []


def _sequences(conn, tables) -> list[str]:
    """The id sequences of the tables (looked up once per run)."""
    if not _SEQUENCES:
        for table in tables:
            for column in table.primary_key.columns:
                found = conn.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                     {"table": table.name, "column": column.name}).scalar()
                if found:
                    _SEQUENCES.append(found)
    return _SEQUENCES


@pytest.fixture(autouse=True)
def _clean_state(request, engine, redis_url):
    """Every test starts with empty tables and an empty Redis database."""
    _clear(engine)
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()
    yield


@pytest.fixture
def race_engine(database_url, engine):
    """An engine for tests that race many threads: its pool lets them all hold a connection (or wait
    their turn) instead of failing, and SQLite waits for the writer before it."""
    options = {"pool_size": 50, "max_overflow": 0, "pool_timeout": 120}
    if database_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 120}
    race = create_engine(database_url, **options)
    yield race
    race.dispose()


@pytest.fixture
def session(engine):
    """A plain SQLAlchemy session: the domain and the chatbot need no Flask."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def redis_process():
    """A redis-server of the test's own (tests/redis_process.py), killed after the test."""
    from tests.redis_process import RedisProcess

    server = RedisProcess().start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def fake_wechat():
    with FakeWeChat() as fake:
        yield fake


@pytest.fixture
def wechat_api(fake_wechat):
    """The fake WeChat API server, its records and scripted failures cleared."""
    fake_wechat.reset()
    return fake_wechat


def make_app(database_url, redis_url, fake_wechat, **overrides):
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret",
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": "test-app-secret",
        "WECHAT_AES_KEY": "",
        "WECHAT_API_BASE": fake_wechat.base_url,
        "MINIAPP_APP_ID": "wxminiapp0000001",
        "MINIAPP_APP_SECRET": "test-miniapp-secret",
    }
    config.update(overrides)
    return create_app(config)


class SharedApp:
    """An app of the default settings, made once for the run (making one costs about 0.1 s, mostly
    werkzeug compiling its routes, and most tests want just that app) and handed to each test as
    new: its extensions (settings, Redis …) and config as made, its in-process Redis stand-in
    emptied (a real Redis is emptied by _clean_state), a router of its own, the rate limiter's
    counts cleared. A test that changed the settings' environment variables gets an app of its own."""

    def __init__(self) -> None:
        self.app = None

    def get(self, database_url, redis_url, fake_wechat):
        environment = _settings_environment()
        if self.app is not None and environment != self.environment:
            return None
        if self.app is None:
            self.app = make_app(database_url, redis_url, fake_wechat)
            self.environment = environment
            self.extensions, self.config = dict(self.app.extensions), dict(self.app.config)
            self.limiter = dict(vars(limiter))
        app = self.app
        app.extensions.clear()  # a test may have put other settings or a dead Redis there
        app.extensions.update(self.extensions, router=build_router())  # or a command on its router
        app.config.clear()
        app.config.update(self.config)
        if not redis_url:
            app.extensions["redis"].flushall()
        # The one rate limiter of the process takes the storage of the app made last (another
        # test's): back to this app's, emptied.
        vars(limiter).update(self.limiter)
        limiter.reset()
        return app

    def close(self) -> None:
        if self.app is not None:
            with self.app.app_context():
                db.engine.dispose()
            self.app.extensions["redis"].close()


def _settings_environment() -> tuple:
    return tuple(sorted((key, value) for key, value in os.environ.items() if key.lower() in FIELDS))


# Two: `app` keeps an app context pushed for its test, and a request of an app whose context is
# pushed runs in it (its g, its session); the API's tests' app (`api_app`) must be another one.
_SHARED = {"app": SharedApp(), "api": SharedApp()}


@pytest.fixture(scope="session", autouse=True)
def _shared_apps_closed():
    yield
    for shared in _SHARED.values():
        shared.close()


@pytest.fixture
def app_factory(engine, database_url, redis_url, fake_wechat):
    """Make apps with extra settings; each one's pools are closed after the test. `shared(name)`:
    the run's shared app of that name (SharedApp), as new."""
    made, used = [], []

    def factory(**overrides):
        app = make_app(database_url, redis_url, fake_wechat, **overrides)
        made.append(app)
        return app

    def shared(name: str):
        app = _SHARED[name].get(database_url, redis_url, fake_wechat)
        if app is None:
            return factory()
        used.append(app)
        return app

    factory.shared = shared
    yield factory
    for app in used:
        with app.app_context():
            db.session.remove()
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        app.extensions["redis"].close()


@pytest.fixture
def app(app_factory):
    app = app_factory.shared("app")
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def flask_poster(client):
    def post(url, params, body):
        response = client.post(url, query_string=params, data=body, content_type="text/xml")
        return response.status_code, response.get_data(as_text=True)

    return post


@pytest.fixture
def wx(client):
    """WeChat talking to the app's webhook through the Flask test client (plain mode)."""
    return Simulator("/wechat", TOKEN, APP_ID, post=flask_poster(client))



# Schema fuzzing (schemathesis): operations whose generated cases may end the caller's login (log
# out, unbind, deactivate) get a fresh login for each case; the others' cases share one.
SESSION_CHANGING = ("/auth/", "/me/bind", "/admin/members/{member_id}")


def steady_headers(operation, headers):
    """The login the cases of `operation` share, or None: a fresh one (`headers()`) for each case."""
    return None if any(part in operation.path for part in SESSION_CHANGING) else headers()

# Builders ------------------------------------------------------------------------------------
MEMBER_DEFAULTS = {"kind": "直管党员", "role": "党员", "join_date": date(2001, 7, 1)}


class MemberMaker:
    """`make_member(name, phone, org=…, grid=…, **fields)` creates a member (committed) in a branch and
    returns it detached with its id; `make_member.many([(name, phone, {org, grid, fields…}), …])`
    creates several in that order in one transaction (a test's cast: one commit, not one a person).
    `fields` are the member's other columns (kind, role, openid, miniapp_openid, join_date,
    full_member_date …); MEMBER_DEFAULTS fill the ones not given."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.counter = iter(range(1, 100000))

    def __call__(self, name=None, phone=None, *, org=BRANCH, grid=None, **fields) -> Member:
        return self.many([(name, phone, dict(fields, org=org, grid=grid))])[0]

    def many(self, people) -> list[Member]:
        made = []
        with Session(self.engine, expire_on_commit=False) as s:
            nodes = ensure_org_paths(s, [fields.get("org", BRANCH) for _, _, fields in people])
            for name, phone, fields in people:
                n = next(self.counter)
                fields = dict(fields)
                org, grid = fields.pop("org", BRANCH), fields.pop("grid", None)
                node = nodes[PATH_SEPARATOR.join(split_org_path(org))]
                made.append(Member(name=name or f"党员{n}", phone=phone or f"139{n:08d}", org_id=node.id,
                                   grid_id=ensure_grid(s, node, grid).id if grid else None,
                                   **(MEMBER_DEFAULTS | fields)))
                s.add(made[-1])
                s.flush()  # ids in the order given
            s.commit()
        return made


@pytest.fixture
def make_member(engine) -> MemberMaker:
    return MemberMaker(engine)


@dataclass(frozen=True)
class Person:
    """Someone of the shared cast of test people: the same name, phone and place in every module."""

    name: str
    phone: str
    org: str = BRANCH
    role: str = "党员"
    kind: str = "直管党员"
    grid: str | None = None
    wechat: str | None = None  # their Official Account openid, once bound
    openid: str | None = None  # set by bound(): the module has them bound to the Official Account

    def but(self, **changes) -> "Person":
        return replace(self, **changes)

    def bound(self, openid: str | None = None) -> "Person":
        return replace(self, openid=openid or self.wechat)


@dataclass(frozen=True)
class Cast:
    """The people the tests share. A module makes the ones it needs, under its own keys and with its own
    changes: `cast(sec=cast.sec.bound(), member=cast.wang.but(kind="在职党员"))` → {"sec": …, "member": …},
    made (committed) in that order; people of its own are `Person(…)`s given the same way."""

    make_member: MemberMaker
    admin: Person = Person("张建国", "13800000001", org=STREET, role="管理员", wechat="o-admin")
    sec: Person = Person("李红梅", "13800000002", role="书记", wechat="o-sec")
    wang: Person = Person("王志强", "13800000003", wechat="o-wang")
    zhao: Person = Person("赵秀英", "13800000004", wechat="o-zhao")
    liu: Person = Person("刘洋", "13800000006", kind="群众", role="志愿者", wechat="o-liu")
    zhou: Person = Person("周敏", "13800000007", org=OTHER_BRANCH, role="书记", wechat="o-zhou")
    sun: Person = Person("孙立", "13800000008", org=OTHER_BRANCH, wechat="o-sun")
    peer: Person = Person("钱副书记", "13800000009", role="书记", wechat="o-peer")

    def __call__(self, **people: Person) -> dict[str, Member]:
        made = self.make_member.many([(p.name, p.phone, {"org": p.org, "role": p.role, "kind": p.kind,
                                                         "grid": p.grid, "openid": p.openid})
                                      for p in people.values()])
        return dict(zip(people, made, strict=True))

    def branch(self, size: int) -> tuple[Member, list[Member]]:
        """A notice's audience: a secretary (王书记, o-sec) and `size` members (党员0…, o-m0…) of BRANCH."""
        made = self.make_member.many([("王书记", None, {"role": "书记", "openid": "o-sec"})] +
                                     [(f"党员{n}", None, {"openid": f"o-m{n}"}) for n in range(size)])
        return made[0], made[1:]


@pytest.fixture
def cast(make_member) -> Cast:
    return Cast(make_member)


@pytest.fixture
def api_app(app_factory):
    """An app for /api/v1 tests, without a pushed app context: each request gets its own, as live."""
    return app_factory.shared("api")


@pytest.fixture
def api_client(api_app):
    return api_app.test_client()


@pytest.fixture
def api_login(api_client, wechat_api, engine):
    """Log in to /api/v1 as a mini-program user; returns the request headers with the token.

    `api_login(member)` logs in as that member (their miniapp_openid is set on first use);
    `api_login(openid="o-x")` as a user bound to no one.
    """
    counter = iter(range(1, 100000))

    def login(member=None, *, openid=None, unionid=None, client=None) -> dict:
        n = next(counter)
        if member is not None and member.miniapp_openid is None:
            member.miniapp_openid = f"mp-{member.id}"
            with Session(engine) as s:
                s.get(Member, member.id).miniapp_openid = member.miniapp_openid
                s.commit()
        openid = member.miniapp_openid if member is not None else openid or f"mp-anon-{n}"
        code = f"code-{openid}-{n}-{uuid.uuid4().hex}"  # the fake server remembers used codes
        wechat_api.add_code(code, openid, unionid)
        response = (client or api_client).post("/api/v1/auth/login", json={"code": code})
        assert response.status_code == 200, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['token']}"}

    return login


@pytest.fixture
def as_(api_login, people):
    """Authorization headers of a logged-in person, by their key in the test module's `people`."""
    cache = {}

    def headers(key):
        if key not in cache:
            cache[key] = api_login(people[key])
        return cache[key]

    return headers


# Senders, schedulers and the chatbot on a plain session ----------------------------------------
@pytest.fixture
def store(redis_url):
    """The Redis the test's senders and schedulers share (a real one with TEST_REDIS_URL)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True) if redis_url else \
        fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def settings(wechat_api):
    return load_config({
        "WECHAT_API_BASE": wechat_api.base_url, "WECHAT_APP_ID": "wxoa", "WECHAT_APP_SECRET": "s",
        "MINIAPP_APP_ID": "wxmini", "MINIAPP_APP_SECRET": "s2",
        "WECHAT_TEMPLATE_NOTICE": "TPL-NOTICE", "WECHAT_TEMPLATE_REMINDER": "TPL-REMINDER",
        "WECHAT_TEMPLATE_GREETING": "TPL-GREETING", "MINIAPP_TEMPLATE_NOTICE": "SUB-NOTICE",
        "SEND_RATE_LIMIT": 0, "OUTBOX_WORKERS": 4, "OUTBOX_RETRY_BASE": 60, "OUTBOX_MAX_ATTEMPTS": 3,
    })


@pytest.fixture
def make_sender(engine, store, settings):
    factory = sessionmaker(engine, expire_on_commit=False)

    def build(**overrides):
        return Sender(factory, store, settings.replace(**overrides))

    return build


@pytest.fixture
def make_scheduler(engine, store, settings):
    factory = sessionmaker(engine, expire_on_commit=False)
    made = []

    def build(name=None, **overrides):
        service = SchedulerService(factory, store, settings.replace(**overrides), name=name)
        made.append(service)
        return service

    yield build
    for service in made:
        service.shutdown()


@pytest.fixture
def say(session, settings):
    """Send a text to the chatbot as `openid` at `now`; return the reply."""
    router = build_router()

    def send(openid, text, now):
        return router.dispatch(Incoming(openid=openid, msg_type="text", content=text), session, now, settings)

    return send


def org_id(engine, name: str) -> int:
    """The id of the organization named by a path of names."""
    with Session(engine) as s:
        return get_org_by_full_name(s, name).id


class StatementCount:
    """The SQL statements run while it is open, on any engine (the app's and the test's)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)

    def __enter__(self) -> "StatementCount":
        event.listen(Engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "before_cursor_execute", self._record)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_statements():
    """`with count_statements() as counted: …`, then `counted.count`: the statements a request ran,
    so a test can assert that a list's cost does not grow with the rows it returns (no N+1)."""
    return StatementCount


@pytest.fixture
def console_login():
    """`console_login(client, member)`: `client` (a Flask test client) is signed in to the console
    as `member`, as a finished login would leave it. The flows of signing in have their own tests."""

    def login(test_client, member: Member) -> None:
        with test_client.session_transaction(path="/console/") as console_session:
            console_session["member_id"] = member.id

    return login


@pytest.fixture
def browser():
    """A headless Chromium (Debian's package) driven over CDP (tests/cdp.py), closed after the test."""
    from tests.cdp import Browser, find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("NO CHROMIUM BINARY FOUND: the console was NOT checked in a real browser "
                    "(install it with `apt-get install -y chromium fonts-noto-cjk`)")
    chromium = Browser(binary)
    yield chromium
    chromium.close()
