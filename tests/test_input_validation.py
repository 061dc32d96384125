"""Input at every door: control characters and NUL refused, texts bounded, numbers in range.

A matrix of door × field × hostile value, on whichever database the suite runs against (SQLite by
default, PostgreSQL with TEST_DATABASE_URL): the API answers 422 with a Chinese field message, the
roster import reports the row, the chatbot answers a Chinese hint — and nothing is stored.
"""

import csv
import io
import json
import re
import shutil
import subprocess

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import DEFAULTS
from handlers import Incoming, build_router
from models import Member, now_utc
from models.activity import Activity
from models.notices import Notice
from models.orglife import OrgLifeRule
from models.points import ManualAward
from models.text import FORBIDDEN, MAX_INT, SAFE_PATTERN, InvalidText, clean_text, parse_number
from models.wishes import Wish, WishEvent
from tests.conftest import BRANCH
from tests.test_api_auth import assert_error

# One of each kind of refused character: C0 (NUL, SOH, VT, FF, US), DEL, C1, noncharacters, a lone
# surrogate.
HOSTILE = ["\x00", "\x01", "\x0b", "\x0c", "\x1f", "\x7f", "\x80", "\x9f", "\ufffe", "\uffff", "\ud800"]
# Allowed: tab, line breaks, ordinary Chinese, emoji (an astral character, a surrogate pair in JSON).
FRIENDLY = ["行一\n行二", "甲\t乙", "回车\r\n换行", "点赞👍"]
# What a URL or a UTF-8 file can carry: everything but the lone surrogate.
HOSTILE_BYTES = [c for c in HOSTILE if not 0xD800 <= ord(c) <= 0xDFFF]
# The validator itself is tried with every kind above; each door × field with one of each class
# (NUL, another C0, DEL, C1, a noncharacter), which keeps the matrix inside CI's time.
AT_DOORS = ["\x00", "\x01", "\x7f", "\x9f", "\uffff"]
HUGE_IDS = ["0", "2147483648", "99999999999", "99999999999999999999", "9" * 400]


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec.bound(), member=cast.wang.but(kind="在职党员").bound())


# The validator itself --------------------------------------------------------------------------------
@pytest.mark.parametrize("char", HOSTILE)
def test_clean_text_refuses_every_kind_of_control_character(char):
    with pytest.raises(InvalidText, match=f"心愿详情包含不允许的控制字符（U\\+{ord(char):04X}）"):
        clean_text(f"前{char}后", "心愿详情", 100)


@pytest.mark.parametrize("value", FRIENDLY)
def test_clean_text_keeps_tabs_line_breaks_and_emoji(value):
    assert clean_text(value, "内容", 100) == value


def test_clean_text_names_the_limit():
    with pytest.raises(InvalidText, match="最多10字，现有11字"):
        clean_text("字" * 11, "标题", 10)
    assert clean_text("字" * 10, "标题", 10) == "字" * 10


def test_typed_numbers_beyond_twelve_digits_are_refused_in_chinese():
    assert parse_number("000000000000042") == 42
    with pytest.raises(InvalidText, match="积分太大了"):
        parse_number("9" * 5000, "积分")  # Python alone would refuse past 4300 digits with a ValueError


def test_the_openapi_pattern_is_the_same_rule_in_ecma_262():
    """The document's pattern compiles in JavaScript and refuses what the server refuses."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the ECMA-262 pattern was NOT checked by a JavaScript engine")
    samples = [f"a{c}b" for c in HOSTILE if not 0xD800 <= ord(c) <= 0xDFFF] + FRIENDLY
    script = ("const re = new RegExp(process.argv[1]); const xs = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify(xs.map(x => re.test(x))));")
    result = subprocess.run([node, "-e", script, SAFE_PATTERN, json.dumps(samples)],
                            capture_output=True, text=True, check=True, timeout=60)
    verdicts = json.loads(result.stdout)
    assert verdicts == [FORBIDDEN.search(s) is None for s in samples]
    assert verdicts.count(False) == len(HOSTILE) - 1


# API: text fields ---------------------------------------------------------------------------------------
def _wish(engine, people):
    from models.wishes import NewWish, post_wish

    with Session(engine, expire_on_commit=False) as s:
        return post_wish(s, s.get(Member, people["sec"].id), NewWish("买米", "一袋米")).id


# (who, method, url or a function of the context, the JSON body but the field, the field, the model
# that must stay untouched)
API_TEXT_FIELDS = [
    ("sec", "post", "/api/v1/wishes", {"title": "修水管", "details": "厨房"}, "title", Wish),
    ("sec", "post", "/api/v1/wishes", {"title": "修水管", "details": "厨房"}, "details", Wish),
    ("sec", "post", "/api/v1/wishes", {"title": "修水管"}, "beneficiary_name", Wish),
    ("sec", "post", "/api/v1/wishes", {"title": "修水管"}, "beneficiary_address", Wish),
    ("sec", "post", "/api/v1/wishes", {"title": "修水管"}, "beneficiary_phone", Wish),
    ("member", "post", "/api/v1/wishes", {"title": "修水管", "details": "厨房"}, "details", Wish),
    ("admin", "post", "/wishes/{wish}/reject", {"reason": "不属于微心愿"}, "reason", WishEvent),
    ("admin", "post", "/wishes/{wish}/withdraw", {"note": "重复"}, "note", WishEvent),
    ("sec", "post", "/api/v1/admin/notices", {"body": "明天停水"}, "body", Notice),
    ("sec", "post", "/api/v1/admin/notices", {"body": "明天停水"}, "title", Notice),
    ("sec", "post", "/api/v1/admin/activities",
     {"kind": "主题党日", "title": "学习", "start": "2099-12-04T15:00:00+08:00"}, "title", Activity),
    ("sec", "post", "/api/v1/admin/activities",
     {"kind": "主题党日", "title": "学习", "start": "2099-12-04T15:00:00+08:00"}, "place", Activity),
    ("sec", "post", "/api/v1/admin/activities",
     {"kind": "主题党日", "title": "学习", "start": "2099-12-04T15:00:00+08:00"}, "kind", Activity),
    ("sec", "post", "/api/v1/admin/rules", {"rule": "每月第一个周五 15:00 主题党日"}, "rule", OrgLifeRule),
    ("admin", "post", "/api/v1/admin/points/awards", {"member_id": "{member}", "amount": 5, "reason": "帮忙"},
     "reason", ManualAward),
]


def _field_value(base: str, field: str, char: str) -> str:
    return f"{base}{char}尾" if base else f"前{char}尾"


@pytest.mark.parametrize("char", AT_DOORS)
@pytest.mark.parametrize("who,method,path,body,field,model", API_TEXT_FIELDS,
                         ids=[f"{row[2]}:{row[4]}" for row in API_TEXT_FIELDS])
def test_api_refuses_control_characters_in_every_text_field(  # noqa: PLR0913 — one argument per fixture and column
        api_client, as_, engine, people, who, method, path, body, field, model, char):
    wish = _wish(engine, people) if "{wish}" in path else None
    url = path.replace("{wish}", str(wish)) if wish else path
    url = url if url.startswith("/api/") else "/api/v1" + url
    data = {k: (people["member"].id if v == "{member}" else v) for k, v in body.items()}
    data[field] = _field_value(str(data.get(field, "")), field, char)
    before = count(engine, model)
    response = getattr(api_client, method)(url, headers=as_(who), json=data)
    error = assert_error(response, 422, "invalid")
    assert field in error["message"]
    assert f"控制字符（U+{ord(char):04X}）" in json.dumps(error["details"], ensure_ascii=False)
    assert count(engine, model) == before


@pytest.mark.parametrize("who,method,path,body,field,model", API_TEXT_FIELDS,
                         ids=[f"{row[2]}:{row[4]}" for row in API_TEXT_FIELDS])
def test_api_bounds_every_text_field(  # noqa: PLR0913 — one argument per fixture and column
        api_client, as_, engine, people, who, method, path, body, field, model):
    wish = _wish(engine, people) if "{wish}" in path else None
    url = path.replace("{wish}", str(wish)) if wish else path
    url = url if url.startswith("/api/") else "/api/v1" + url
    data = {k: (people["member"].id if v == "{member}" else v) for k, v in body.items()}
    data[field] = "字" * 700_000
    before = count(engine, model)
    error = assert_error(getattr(api_client, method)(url, headers=as_(who), json=data), 422, "invalid")
    assert re.search(r"长度(最多为|应在1到)\d+", json.dumps(error["details"], ensure_ascii=False))
    assert count(engine, model) == before


@pytest.mark.parametrize("value", FRIENDLY)
def test_api_keeps_line_breaks_tabs_and_emoji(api_client, as_, engine, value):
    response = api_client.post("/api/v1/wishes", headers=as_("sec"), json={"title": "修水管", "details": value})
    assert response.status_code == 200, response.get_json()
    with Session(engine) as s:
        assert s.scalars(select(Wish.details)).one() == value.strip()


@pytest.mark.parametrize("char", AT_DOORS)
@pytest.mark.parametrize("field", ["name", "phone"])
def test_api_binding_refuses_control_characters_and_counts_no_failure(api_client, api_login, engine, people,
                                                                    field, char):
    headers = api_login(openid="o-new")
    data = {"name": "王志强", "phone": "13800000003"}
    data[field] = data[field][:2] + char + data[field][2:]
    error = assert_error(api_client.post("/api/v1/me/bind", headers=headers, json=data), 422, "invalid")
    assert field in error["message"]
    with Session(engine) as s:
        assert s.get(Member, people["member"].id).miniapp_openid is None


@pytest.mark.parametrize("char", AT_DOORS)
def test_api_member_search_and_patch_refuse_control_characters(api_client, as_, engine, people, char):
    if char in HOSTILE_BYTES:
        response = api_client.get("/api/v1/admin/members", headers=as_("sec"), query_string={"q": f"王{char}"})
        assert "q" in assert_error(response, 422, "invalid")["message"]
    member = people["member"].id
    for field, value in [("name", f"王{char}强"), ("phone", f"138{char}00000003"), ("grid", f"东湖{char}网格")]:
        response = api_client.patch(f"/api/v1/admin/members/{member}", headers=as_("sec"), json={field: value})
        assert field in assert_error(response, 422, "invalid")["message"]
    with Session(engine) as s:
        stored = s.get(Member, member)
        assert (stored.name, stored.phone, stored.grid_id) == ("王志强", "13800000003", None)


@pytest.mark.parametrize("char", AT_DOORS)
def test_api_checkin_code_and_login_code_refuse_control_characters(api_client, as_, api_login, people, char):
    response = api_client.post("/api/v1/activities/1/checkin", headers=as_("member"), json={"code": f"12{char}4"})
    assert "code" in assert_error(response, 422, "invalid")["message"]
    response = api_client.post("/api/v1/auth/login", json={"code": f"code{char}"})
    assert "code" in assert_error(response, 422, "invalid")["message"]


def test_openapi_documents_the_pattern_on_every_request_text(api_client):
    spec = api_client.get("/api/v1/openapi.json").get_json()
    assert "\\Z" not in json.dumps(spec)
    unchecked = []
    for name, schema in spec["components"]["schemas"].items():
        if name.endswith(("Create", "CreateSchema", "Schema")) and name in {
                "WishCreate", "Reason", "Note", "NoticeCreate", "RuleCreate", "ActivityCreate", "AwardRequest",
                "AwardDecision", "Bind", "MemberUpdate", "CheckIn", "Login"}:
            for field, prop in schema["properties"].items():
                if prop.get("type") == "string" and "enum" not in prop and prop.get("format") is None:
                    if prop.get("pattern") != SAFE_PATTERN or "maxLength" not in prop:
                        unchecked.append(f"{name}.{field}")
    assert unchecked == []
    q = [p for p in spec["paths"]["/api/v1/admin/members"]["get"]["parameters"] if p["name"] == "q"][0]
    assert q["schema"]["pattern"] == SAFE_PATTERN


# API: ids and numbers ------------------------------------------------------------------------------------
def _int_routes(app):
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or "<int:" not in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule))
    return routes


def test_every_int_route_answers_404_for_ids_no_column_holds(api_app, api_client, as_):
    routes = _int_routes(api_app)
    assert len(routes) >= 25
    headers = as_("admin")
    for method, rule in routes:
        for huge in HUGE_IDS:
            url = re.sub(r"<int:[a-z_]+>", huge, rule)
            response = api_client.open(url, method=method, headers=headers, json={})
            assert response.status_code == 404, (method, url, response.get_json())
            assert response.get_json()["message"] == "请求的地址不存在。"
    spec = api_client.get("/api/v1/openapi.json").get_json()
    path = spec["paths"]["/api/v1/activities/{activity_id}"]
    param = (path.get("parameters") or path["get"]["parameters"])[0]
    assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_INT}


def test_largest_id_is_simply_not_found(api_client, as_):
    for url in ("/api/v1/activities/2147483647", "/api/v1/wishes/2147483647", "/api/v1/admin/members/2147483647",
                "/api/v1/me/messages/2147483647", "/api/v1/admin/notices/2147483647"):
        assert_error(api_client.get(url, headers=as_("admin")), 404, "not_found")


@pytest.mark.parametrize("url,body", [
    ("/api/v1/admin/activities", {"kind": "主题党日", "title": "学习", "start": "2099-12-04T15:00:00+08:00",
                                  "capacity": 99999999999}),
    ("/api/v1/admin/activities", {"kind": "志愿服务", "title": "清扫", "start": "2099-12-04T15:00:00+08:00",
                                  "points": 99999999999999999999}),
    ("/api/v1/admin/points/awards", {"member_id": 99999999999999999999, "amount": 5, "reason": "帮忙"}),
    ("/api/v1/admin/points/awards", {"member_id": 1, "amount": -99999999999, "reason": "帮忙"}),
    ("/api/v1/wishes", {"title": "修水管", "org_id": 99999999999999999999}),
    ("/api/v1/wishes", {"title": "修水管", "points": 2**63}),
])
def test_api_numbers_out_of_range_are_422(api_client, as_, url, body):
    assert_error(api_client.post(url, headers=as_("admin"), json=body), 422, "invalid")


@pytest.mark.parametrize("query", [{"page": "99999999999999999999"}, {"page": "0"}, {"per_page": "99999999999"}])
@pytest.mark.parametrize("url", ["/api/v1/wishes", "/api/v1/admin/members", "/api/v1/activities",
                                 "/api/v1/admin/notices", "/api/v1/me/messages"])
def test_api_page_numbers_out_of_range_are_422(api_client, as_, url, query):
    assert_error(api_client.get(url, headers=as_("admin"), query_string=query), 422, "invalid")


@pytest.mark.parametrize("url", ["/api/v1/wishes", "/api/v1/admin/members", "/api/v1/points/ranking",
                                 "/api/v1/admin/wishes/export", "/api/v1/admin/reports/quota"])
def test_api_org_filters_out_of_range_are_422(api_client, as_, url):
    for org in ("0", "2147483648", "99999999999999999999"):
        assert_error(api_client.get(url, headers=as_("admin"), query_string={"org": org}), 422, "invalid")


@pytest.mark.parametrize("token", ["%00", "abc%00def", "%01", "%7F", "x" * 500])
def test_checkin_page_with_a_hostile_token_is_404(api_client, token):
    assert api_client.get(f"/checkin/{token}").status_code == 404
    assert api_client.get(f"/checkin/{token}/status").status_code == 404


# Roster import ------------------------------------------------------------------------------------------
HEADER = ("姓名", "手机号", "所属组织", "党员类别", "入党日期", "角色", "网格")


def roster_csv(rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


GOOD_ROW = ["张三", "13900000001", BRANCH, "直管党员", "2001-07-01", "党员", "东湖一网格"]


@pytest.mark.parametrize("char", AT_DOORS)
@pytest.mark.parametrize("column", range(7))
def test_roster_import_reports_a_row_with_a_control_character(app, tmp_path, engine, column, char):
    bad = list(GOOD_ROW)
    bad[column] = bad[column][:1] + char + bad[column][1:]
    source = tmp_path / "roster.csv"
    source.write_bytes(roster_csv([["李四", "13900000002", BRANCH, "直管党员", "2001-07-01", "党员", ""], bad]))
    result = app.test_cli_runner().invoke(args=["members", "import", str(source)])
    assert result.exit_code == 1, result.output
    assert "第 3 行" in result.output and f"「{HEADER[column]}」包含不允许的控制字符" in result.output
    assert "未导入任何数据" in result.output
    assert count(engine, Member) == 0


@pytest.mark.parametrize("column,value,words", [
    (0, "张" * 51, "姓名过长"),
    (1, "1" * 100_000, "手机号过长"),
    (2, BRANCH + "/" + "组" * 101, "每一级名称不超过100字"),
    (6, "网" * 101, "网格名称过长"),
])
def test_roster_import_bounds_every_cell(api_client, as_, engine, people, column, value, words):
    row = list(GOOD_ROW)
    row[column] = value
    response = api_client.post("/api/v1/admin/members/import", headers=as_("admin"),
                               data={"file": (io.BytesIO(roster_csv([row])), "roster.csv")},
                               content_type="multipart/form-data")
    report = response.get_json()
    assert report["ok"] is False and words in report["errors"][0]["reason"], report
    assert count(engine, Member) == 3


def test_api_roster_import_with_nul_is_a_row_error_on_both_databases(api_client, as_, engine, people):
    row = list(GOOD_ROW)
    row[0] = "张\x00三"
    response = api_client.post("/api/v1/admin/members/import", headers=as_("admin"),
                               data={"file": (io.BytesIO(roster_csv([row])), "roster.csv")},
                               content_type="multipart/form-data")
    report = response.get_json()
    assert response.status_code in (200, 422) and report["ok"] is False, report
    assert report["errors"] == [{"row": 2, "code": "", "reason": "「姓名」包含不允许的控制字符（U+0000）"}]
    assert count(engine, Member) == 3


# The chatbot ---------------------------------------------------------------------------------------------
def say(session, openid, text):
    return build_router().dispatch(Incoming(openid=openid, msg_type="text", content=text), session, now_utc(),
                                   DEFAULTS.replace(BIND_MAX_FAILURES=5, BIND_LOCKOUT_SECONDS=3600))


CHAT_TEXTS = [
    ("o-wang", "许愿 家里{x}水龙头漏水", "心愿内容", Wish),
    ("o-sec", "发布心愿 修{x}水管 厨房漏水", "心愿标题", Wish),
    ("o-sec", "发布心愿 修水管 厨房{x}漏水", "心愿详情", Wish),
    ("o-sec", "通知 明天{x}停水", "通知内容", Notice),
    ("o-sec", "新活动 主题党日 学{x}习 明天 15:00", "活动标题", Activity),
    ("o-sec", "新活动 主题党日 学习 明天 15:00 会议{x}室", "活动地点", Activity),
    ("o-sec", "组织生活 每月第一个周五 15:00 主题{x}党日", "组织生活规则", OrgLifeRule),
    ("o-new", "绑定 王志{x}强 13800000003", "姓名", None),
    ("o-new", "绑定 王志强 138{x}00000003", "手机号", None),
]


@pytest.mark.parametrize("char", AT_DOORS)
@pytest.mark.parametrize("openid,text,label,model", CHAT_TEXTS, ids=[row[1] for row in CHAT_TEXTS])
def test_chatbot_refuses_control_characters_with_a_chinese_hint(session, engine, people, openid, text, label,
                                                                model, char):
    before = count(engine, model) if model else None
    reply = say(session, openid, text.replace("{x}", char))
    # The chatbot's door refuses the whole message before any command runs (handlers/router.py);
    # the domain refuses the same characters for the other doors (the API tests above).
    assert f"消息包含不允许的控制字符（U+{ord(char):04X}）" in reply
    assert FORBIDDEN.search(reply) is None
    if model is not None:
        assert count(engine, model) == before
    else:
        session.expire_all()
        assert session.get(Member, people["member"].id).openid == "o-wang"
        assert session.scalars(select(Member).where(Member.openid == "o-new")).first() is None


def test_chatbot_notes_and_names_refuse_control_characters(session, engine, people):
    assert "审核" in say(session, "o-wang", "许愿 家里水龙头漏水")
    wish = session.scalars(select(Wish.id)).one()
    reply = say(session, "o-sec", f"审核 #{wish} 不通过 不属于\x7f范围")
    assert "消息包含不允许的控制字符（U+007F）" in reply
    session.expire_all()
    assert session.get(Wish, wish).status == "待审核"
    say(session, "o-sec", "新活动 主题党日 学习 明天 15:00")
    activity = session.scalars(select(Activity.id)).one()
    assert "消息包含不允许的控制字符（U+0000）" in say(session, "o-sec", f"代签 #{activity} 王\x00志强")


def test_webhook_refuses_del_and_c1_and_bounds_the_wish(wx, engine, people):
    """What XML lets through the signed webhook (DEL, C1) is refused by the router; a body under the
    webhook's limit cannot store more than the wish's maximum."""
    reply = wx.text("o-wang", "许愿 家里\x7f水龙头漏水")
    assert reply.status == 200 and "消息包含不允许的控制字符（U+007F）" in reply.content
    reply = wx.text("o-wang", "许愿 家里\x9a水龙头漏水")
    assert "消息包含不允许的控制字符（U+009A）" in reply.content
    reply = wx.text("o-wang", "许愿 " + "漏" * 20_000)
    assert "心愿内容太长了：最多2000字，现有20000字。" in reply.content
    assert count(engine, Wish) == 0


@pytest.mark.parametrize("text", [
    "活动 #{n}", "报名 #{n}", "取消报名 #{n}", "签到 #{n} 123456", "签退 #{n}", "认领 #{n}", "心愿 #{n}",
    "心愿 {n}", "完成 #{n} 修好了", "确认 #{n}", "驳回 #{n} 没修好", "撤回 #{n}", "放弃 #{n}", "消息 {n}",
    "通知 {n} 回执", "通知 #{n} 再提醒", "出勤 #{n}", "签到页 #{n}", "轮换码 #{n}", "活动位置 #{n} 300米",
    "代签 #{n} 王志强", "审核 #{n} 通过", "组织生活 删除 {n}", "组织生活 改期 {n} 2099-10-09 15:00",
    "新活动 主题党日 学习 明天 15:00 积分{n}", "新活动 主题党日 学习 明天 15:00 名额{n}",
])
@pytest.mark.parametrize("n", ["2147483648", "99999999999", "99999999999999999999", "9" * 5000])
def test_chatbot_numbers_out_of_range_get_a_chinese_answer(wx, engine, people, text, n):
    reply = wx.text("o-sec", text.replace("{n}", n))
    assert reply.status == 200
    assert reply.content and "系统繁忙" not in reply.content, reply.content
    assert len(reply.content.encode()) <= 2048
    assert count(engine, Activity) == 0


def test_chatbot_points_and_capacity_are_bounded(session, engine, people):
    assert "积分应在0到10000之间" in say(session, "o-sec", "新活动 志愿服务 清扫 明天 9:00 积分99999999999")
    assert "名额应在1到100000之间" in say(session, "o-sec", "新活动 主题党日 学习 明天 15:00 名额99999999999")
    assert "积分太大了" in say(session, "o-sec", "新活动 志愿服务 清扫 明天 9:00 积分" + "9" * 5000)
    assert count(engine, Activity) == 0
