"""/healthz and a Redis that dies: a real `redis-server` on a spare port, started and killed here."""



from app.simulator import Simulator
from tests.conftest import TOKEN, flask_poster

UNAVAILABLE = {"code": "unavailable", "message": "服务暂时不可用，请稍后再试。", "details": {}}


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_with_the_database_down_is_503(app_factory, tmp_path, is_postgres):
    # Nothing listens on port 1; a SQLite file in a directory that does not exist cannot open.
    down = "postgresql://postgres@127.0.0.1:1/none" if is_postgres else f"sqlite:///{tmp_path}/no/such/dir/x.db"
    app = app_factory(DATABASE_URL=down)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "error", "redis": "ok"}


def test_redis_dying_makes_the_api_503_and_leaves_the_webhook_answering(
        app_factory, redis_process, api_login, make_member):
    url, kill = redis_process.url, redis_process.kill
    app = app_factory(REDIS_URL=url, REDIS_TIMEOUT=0.2)
    client = app.test_client()
    member = make_member("王芳", "13912345678")
    headers = api_login(member, client=client)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/healthz").json == {"status": "ok", "database": "ok", "redis": "ok"}

    kill()

    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json == {"status": "unavailable", "database": "ok", "redis": "error"}
    for method, path in [("GET", "/api/v1/me"), ("GET", "/api/v1/wishes"), ("GET", "/api/v1/me/points"),
                         ("POST", "/api/v1/auth/logout")]:
        response = client.open(path, method=method, headers=headers)
        assert response.status_code == 503, path
        assert response.get_json() == UNAVAILABLE, path
    login = client.post("/api/v1/auth/login", json={"code": "any"})
    assert login.status_code == 503 and login.get_json() == UNAVAILABLE
    # The webhook still answers.
    wx = Simulator("/wechat", TOKEN, post=flask_poster(client))
    reply = wx.text("o-x", "帮助")
    assert reply.status == 200 and "可用指令" in reply.content
