"""Migrations match the models; the simulator command talks to a live server."""

import threading
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from werkzeug.serving import make_server

from app.extensions import db
from models import Base


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL database."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    name = f"lianxin_migrations_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(database_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migrations_build_exactly_the_models_schema(app_factory, empty_database_url):
    app = app_factory(DATABASE_URL=empty_database_url)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models and migrations differ: run `flask --app app db migrate`"


def test_simulate_one_shot_against_a_running_server(app_factory, make_member):
    make_member("孙悟空", "13711112222")
    server_app = app_factory()
    server = make_server("127.0.0.1", 0, server_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/wechat"
    try:
        runner = server_app.test_cli_runner()
        result = runner.invoke(args=["wechat", "simulate", "--url", url, "--openid", "o-sim",
                                     "--text", "绑定 孙悟空 13711112222"])
        assert result.exit_code == 0 and "绑定成功" in result.output
        result = runner.invoke(args=["wechat", "simulate", "--url", url, "--openid", "o-sim",
                                     "--event", "CLICK", "--key", "MENU_ME"])
        assert "孙悟空" in result.output
        result = runner.invoke(args=["wechat", "simulate", "--url", url, "--openid", "o-sim"],
                               input="我的\n帮助\n")
        assert "孙悟空" in result.output and "可用指令" in result.output
    finally:
        server.shutdown()


def test_simulate_explains_a_server_that_is_not_running(app):
    result = app.test_cli_runner().invoke(args=["wechat", "simulate", "--url", "http://127.0.0.1:1/wechat",
                                                "--text", "帮助"])
    assert result.exit_code != 0 and "无法连接" in result.output
