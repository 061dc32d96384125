"""The doors a newcomer tries on a laptop: the local WeChat stand-in (`wechat fake-api`, a real
process) with a real server, the CSV export, the Chinese pages, readable JSON, Swagger UI served
locally, the simulator's kinds of message, and start-up warnings given once."""

import csv
import io
import re
import subprocess
import sys

import pytest
import requests

from app.fake_wechat import FakeWeChat
from app.simulator import Simulator, resolve_scene, upload_media
from models.roster import COLUMNS
from tests import local_servers
from tests.conftest import APP_ID, TOKEN, flask_poster


# The stand-in and a real server, as `make run` starts them -----------------------------------
@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One stand-in and server for the module's tests (starting them is four processes)."""
    started = local_servers.start(tmp_path_factory.mktemp("servers"))
    yield started
    started.stop()


def test_mini_program_login_end_to_end_through_the_stand_in(servers):
    api = servers.base + "/api/v1"
    first = requests.post(api + "/auth/login", json={"code": "laptop"}, timeout=10)
    assert first.status_code == 200, first.text
    token = first.json()["token"]
    me = requests.get(api + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.json() == {"bound": False, "member": None}
    bound = requests.post(api + "/me/bind", json={"name": "王志强", "phone": "13800000003"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert bound.status_code == 200, bound.text
    assert bound.json()["member"]["name"] == "王志强"
    # Any code works, as often as you like, and stands for the same person.
    again = requests.post(api + "/auth/login", json={"code": "laptop"}, timeout=10)
    assert again.status_code == 200
    assert again.json()["member"]["name"] == "王志强"
    other = requests.post(api + "/auth/login", json={"code": "someone-else"}, timeout=10)
    assert other.json()["member"] is None
    page = requests.get(servers.fake_base + "/", timeout=10)
    assert "本地微信替身" in page.text and page.headers["Content-Type"].startswith("text/html")


def test_the_stand_in_command_refuses_a_busy_port_in_chinese(servers):
    result = servers.flask("wechat", "fake-api", "--port", str(servers.fake_port), check=False)
    assert result.returncode != 0
    assert "端口被占用" in result.stderr


# The stand-in, in-process --------------------------------------------------------------------
def test_local_mode_qr_codes_tell_their_scene_and_draw_an_image():
    with FakeWeChat(local=True) as fake:
        body = {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "checkin:7:1"}}}
        made = requests.post(fake.base_url + "/cgi-bin/qrcode/create", params={"access_token": "any"},
                             json=body, timeout=5).json()
        assert made["url"] == f"{fake.base_url}/q/{made['ticket']}"
        assert resolve_scene(fake.base_url, made["url"]) == "checkin:7:1"
        assert resolve_scene(fake.base_url, made["ticket"]) == "checkin:7:1"
        assert resolve_scene(fake.base_url, "checkin:9:9") == "checkin:9:9"
        image = requests.get(fake.base_url + "/cgi-bin/showqrcode", params={"ticket": made["ticket"]}, timeout=5)
        assert image.headers["Content-Type"] == "image/svg+xml" and b"<svg" in image.content
        with pytest.raises(ValueError):
            resolve_scene(fake.base_url, "TICKET-999")


def test_strict_mode_stays_the_tests_default(wechat_api):
    answer = requests.get(wechat_api.base_url + "/sns/jscode2session", params={"js_code": "anything"}, timeout=5)
    assert answer.json()["errcode"] == 40029
    answer = requests.post(wechat_api.base_url + "/cgi-bin/message/custom/send", params={"access_token": "x"},
                           json={}, timeout=5)
    assert answer.json()["errcode"] == 40001


def test_deliveries_are_printed_and_listed():
    lines = []
    with FakeWeChat(local=True, say=lines.append) as fake:
        requests.post(fake.base_url + "/cgi-bin/message/custom/send", params={"access_token": "t"},
                      json={"touser": "o-1", "msgtype": "text", "text": {"content": "明天上午停水"}}, timeout=5)
        listed = requests.get(fake.base_url + "/deliveries", timeout=5)
        page = requests.get(fake.base_url + "/", timeout=5).text
    assert lines == ["[客服消息] → o-1：明天上午停水"]
    assert listed.json()[0]["body"]["text"]["content"] == "明天上午停水"
    assert "明天上午停水" in page and "客服消息" in page


# The simulator's kinds of message ------------------------------------------------------------
def recording(client, sent):
    post = flask_poster(client)

    def record(url, params, body):
        sent.append(body.decode())
        return post(url, params, body)

    return record


def test_simulator_sends_a_photo_a_location_a_voice_a_scan_and_a_click(client, wechat_api, tmp_path, make_member):
    make_member("张三", "13900000001", openid="o-sim")
    sent = []
    sim = Simulator("/wechat", TOKEN, APP_ID, post=recording(client, sent))
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    wechat_api.add_code("unused", "o-unused")
    # The strict fake wants a token it handed out, as WeChat does.
    token = requests.get(wechat_api.base_url + "/cgi-bin/token", timeout=5).json()["access_token"]
    media_id, pic_url = upload_media(wechat_api.base_url, photo)
    assert wechat_api.media[media_id].data == photo.read_bytes() and media_id.startswith("MEDIA-")
    assert requests.get(pic_url, timeout=5).content == photo.read_bytes()
    assert token

    assert sim.image("o-sim", media_id, pic_url).status == 200
    assert "<MsgType><![CDATA[image]]></MsgType>" in sent[-1] and f"<MediaId><![CDATA[{media_id}]]>" in sent[-1]
    assert sim.location("o-sim", 30.2741, 120.1551).status == 200
    assert "<Location_X>30.2741</Location_X>" in sent[-1] and "<Location_Y>120.1551</Location_Y>" in sent[-1]
    assert sim.voice("o-sim", "我的").status == 200
    assert "<MsgType><![CDATA[voice]]></MsgType>" in sent[-1] and "<Recognition><![CDATA[我的]]>" in sent[-1]
    scan = sim.event("o-sim", "SCAN", "checkin:999:1")
    assert "<Event><![CDATA[SCAN]]></Event>" in sent[-1] and scan.content  # an answer, not silence
    click = sim.event("o-sim", "CLICK", "MENU_ME")
    assert "张三" in click.content


def test_a_photo_without_the_stand_in_gets_a_local_media_id(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    media_id, url = upload_media("https://api.weixin.qq.com", photo)
    assert media_id.startswith("LOCAL-") and url.startswith("file://")


@pytest.mark.parametrize("args, message", [
    (["--location", "30.27"], "应为「纬度,经度」"),
    (["--location", "95,120"], "纬度应在 -90 到 90 之间"),
    (["--text", "帮助", "--click", "MENU_HELP"], "一次只能发送一条"),
])
def test_simulator_options_refuse_bad_input_in_chinese(app, args, message):
    result = app.test_cli_runner().invoke(args=["wechat", "simulate", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_simulator_defaults_to_the_port_make_run_used(monkeypatch):
    from app.cli import default_webhook_url

    monkeypatch.setenv("PORT", "5050")
    assert default_webhook_url() == "http://127.0.0.1:5050/wechat"
    monkeypatch.delenv("PORT")
    assert default_webhook_url() == "http://127.0.0.1:5000/wechat"


# members export --------------------------------------------------------------------------------
def test_export_to_csv_writes_csv_in_utf8_with_bom(app, make_member, tmp_path):
    make_member("王芳", "13900000009", grid="东湖一网格")
    out = tmp_path / "out.csv"
    result = app.test_cli_runner().invoke(args=["members", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert "已导出 1 人" in result.output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS
    assert rows[1][:2] == ["王芳", "13900000009"] and rows[1][7] == "东湖一网格"
    # It reads back: the import takes the file it wrote.
    again = app.test_cli_runner().invoke(args=["members", "import", str(out), "--dry-run"])
    assert again.exit_code == 0, again.output


def test_a_csv_export_keeps_formula_text_as_text_and_imports_back_unchanged(app, make_member, tmp_path):
    make_member("=HYPERLINK(\"http://x\",\"点我\")", "13900000008", grid="@东湖网格")
    out = tmp_path / "out.csv"
    assert app.test_cli_runner().invoke(args=["members", "export", str(out)]).exit_code == 0
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert rows[1][0] == "'=HYPERLINK(\"http://x\",\"点我\")" and rows[1][7] == "'@东湖网格"
    again = app.test_cli_runner().invoke(args=["members", "import", str(out)])
    assert again.exit_code == 0 and "无变化 1 人" in again.output, again.output


def test_export_to_xlsx_still_writes_excel(app, make_member, tmp_path):
    make_member()
    out = tmp_path / "out.XLSX"
    assert app.test_cli_runner().invoke(args=["members", "export", str(out)]).exit_code == 0
    assert out.read_bytes()[:2] == b"PK"


def test_export_refuses_another_extension(app, tmp_path):
    out = tmp_path / "out.txt"
    result = app.test_cli_runner().invoke(args=["members", "export", str(out)])
    assert result.exit_code != 0
    assert "只能导出为 .xlsx 或 .csv 文件" in result.output
    assert not out.exists()


# Pages, JSON, the docs ---------------------------------------------------------------------------
def test_root_and_unknown_pages_are_chinese_html(client):
    root = client.get("/")
    assert root.status_code == 200 and root.content_type.startswith("text/html")
    text = root.get_data(as_text=True)
    assert "连心" in text and "/api/v1/docs" in text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and missing.content_type.startswith("text/html")
    body = missing.get_data(as_text=True)
    assert "页面不存在" in body and "/no/such/page" in body and "Not Found" not in body
    assert client.get("/checkin/not-a-token").status_code == 404


def test_api_404_stays_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json() == {"code": "not_found", "message": "请求的地址不存在。", "details": {}}


def test_json_answers_keep_chinese_readable(client):
    raw = client.get("/api/v1/no-such-thing").get_data()
    assert "请求的地址不存在".encode() in raw and b"\\u" not in raw


def test_swagger_ui_is_served_locally(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", page), page
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", page)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js"}
    for asset in assets:
        with client.get(asset) as response:  # a file: closed after reading
            assert response.status_code == 200 and len(response.data) > 1000, asset
    assert client.get("/api/v1/docs/assets/../../config.py").status_code == 404


# Start-up warnings -------------------------------------------------------------------------------
def test_start_up_warnings_are_given_once_per_process(tmp_path):
    code = ("from app import create_app\n"
            f"for _ in range(3): create_app({{'DATABASE_URL': 'sqlite:///{tmp_path}/w.db', 'REDIS_URL': ''}})\n")
    env = {k: v for k, v in local_servers.ROOT_ENV().items()}
    result = subprocess.run([sys.executable, "-c", code], cwd=local_servers.ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("SECRET_KEY is not set") == 1
    assert result.stderr.count("REDIS_URL is not set") == 1
