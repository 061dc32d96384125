"""Privacy: masks that hold (search, export), exports without formulas, photos never sniffed.

Through the real doors: the chatbot via `wx`, the API via the test client, exports opened with openpyxl.
"""

import io
import zipfile
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from models import Member
from models.activity import NewActivity, create_activity

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
START = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
PAYLOAD = '=HYPERLINK("http://evil.example/x","点我领取")'
# OWASP's triggers: a cell beginning with any of them is a formula to Excel, WPS or LibreOffice.
RISKY = [PAYLOAD, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1"]


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec.bound(), wang=cast.wang.but(kind="在职党员", grid="东湖一网格").bound(),
                peer=cast.peer)


def _cells_and_xml(data: bytes):
    """Every cell of the first sheet, and the sheet's XML (to prove no <f> element is written)."""
    sheet = load_workbook(io.BytesIO(data)).active
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    return cells, xml


def _assert_text(data: bytes, expected: list[str]) -> None:
    """Each expected text begins a cell of the sheet, as a text cell; the sheet holds no formula."""
    cells, xml = _cells_and_xml(data)
    assert "<f>" not in xml and "<f " not in xml
    texts = [cell for cell in cells if isinstance(cell.value, str)]
    for text in expected:
        matching = [cell for cell in texts if cell.value.startswith(text[:20])]
        assert matching, (text, [c.value for c in texts])
        assert all(cell.data_type == "s" for cell in matching), text


def _formula_sheet(text: str) -> str:
    """The sheet XML openpyxl writes for `text` through a plain append (no safe writer)."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.append([text])
    buffer = io.BytesIO()
    book.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return archive.read("xl/worksheets/sheet1.xml").decode()


# Masks that hold --------------------------------------------------------------------------------
def _listing(api_client, headers, **query):
    response = api_client.get("/api/v1/admin/members", query_string={"per_page": 100, **query}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_a_masked_phone_cannot_be_recovered_by_searching_digit_prefixes(api_client, as_, people):
    seen = {m["name"]: m for m in _listing(api_client, as_("sec"))}
    assert seen["钱副书记"]["phone"] == "138****0009" and seen["钱副书记"]["masked"] is True
    # The attack: extend a prefix digit by digit while the peer still matches. Nothing ever matches.
    for length in range(3, 12):
        prefix = "13800000009"[:length]
        names = {m["name"] for m in _listing(api_client, as_("sec"), q=prefix)}
        assert "钱副书记" not in names, prefix
    for probe in ("0009", "00000009", "13800000009"):
        assert "钱副书记" not in {m["name"] for m in _listing(api_client, as_("sec"), q=probe)}
    # Names are searched as before; phones the secretary sees in full are found by their digits.
    assert [m["phone"] for m in _listing(api_client, as_("sec"), q="钱副")] == ["138****0009"]
    assert [m["name"] for m in _listing(api_client, as_("sec"), q="13800000003")] == ["王志强"]
    assert [m["name"] for m in _listing(api_client, as_("sec"), q="138 0000 0002")] == ["李红梅"]  # themself
    # The street admin is responsible for the branch secretaries and finds them by phone.
    assert [m["name"] for m in _listing(api_client, as_("admin"), q="13800000009")] == ["钱副书记"]


def test_the_members_export_holds_exactly_what_the_viewers_listing_shows(api_client, as_, people):
    for viewer in ("sec", "admin"):
        listing = {m["name"]: m for m in _listing(api_client, as_(viewer))}
        response = api_client.get("/api/v1/admin/members/export", headers=as_(viewer))
        assert response.status_code == 200
        rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
        assert rows[0][:6] == ("姓名", "手机号", "所属组织", "党员类别", "入党日期", "转正日期")
        exported = {r[0]: r for r in rows[1:]}
        assert set(exported) == set(listing)
        for name, member in listing.items():
            row = exported[name]
            assert row[1] == member["phone"], (viewer, name)
            assert (row[4] or None) == member["join_date"], (viewer, name)
            assert (row[5] or None) == member["full_member_date"], (viewer, name)
    sec_rows = {r[0]: r for r in load_workbook(io.BytesIO(api_client.get(
        "/api/v1/admin/members/export", headers=as_("sec")).data)).active.iter_rows(values_only=True)}
    assert sec_rows["钱副书记"][1] == "138****0009" and sec_rows["钱副书记"][4] is None
    assert sec_rows["王志强"][1] == "13800000003" and sec_rows["王志强"][4] == "2001-07-01"


# Formula injection ---------------------------------------------------------------------------
def test_a_wish_typed_as_a_formula_is_text_in_the_secretarys_export(wx, api_client, as_, people):
    assert "已提交心愿 #1" in wx.text("o-wang", f"许愿 {PAYLOAD}").content
    assert "已提交心愿 #2" in wx.text("o-wang", f"许愿 {RISKY[3]}").content
    response = api_client.get("/api/v1/admin/wishes/export", headers=as_("sec"))
    assert response.status_code == 200
    _assert_text(response.data, [PAYLOAD, RISKY[3]])
    assert "<f>" in _formula_sheet(PAYLOAD)  # what the sheet would hold without the writer


def test_names_are_text_in_the_member_attendance_and_quota_exports(engine, api_client, as_, people, make_member):
    names = RISKY[:4]  # tab and CR cannot start a name in a real roster; they are tested below
    for i, name in enumerate(names):
        make_member(name, f"1370000000{i}", kind="在职党员")
    members = api_client.get("/api/v1/admin/members/export", headers=as_("sec"))
    assert members.status_code == 200
    _assert_text(members.data, names)

    with Session(engine, expire_on_commit=False) as s:
        activity = create_activity(s, s.get(Member, people["sec"].id), NewActivity(kind="主题党日", title="=1+2",
                                   starts_at=START), now=NOW)
    attendance = api_client.get(f"/api/v1/admin/activities/{activity.id}/attendance.xlsx", headers=as_("sec"))
    assert attendance.status_code == 200
    _assert_text(attendance.data, names)
    quota = api_client.get("/api/v1/admin/reports/quota.xlsx?year=2026", headers=as_("sec"))
    assert quota.status_code == 200
    _assert_text(quota.data, names)
    summary = api_client.get("/api/v1/admin/reports/attendance.xlsx?from=2026-12-01&to=2026-12-31",
                             headers=as_("sec"))
    assert summary.status_code == 200
    _assert_text(summary.data, ["=1+2"])


def test_the_one_writer_keeps_every_trigger_as_text():
    from models.sheets import append_row, new_sheet, to_bytes

    book, sheet = new_sheet("测试", ["值"])
    for text in RISKY:
        append_row(sheet, [text, 7, "普通文字"])
    data = to_bytes(book)
    cells, xml = _cells_and_xml(data)
    assert "<f>" not in xml
    values = [c.value for c in cells if c.column == 1][1:]
    assert [v.replace("\n", "\r") if v.startswith("\n") else v for v in values] == RISKY  # CR reads back as LF
    assert all(c.data_type == "s" for c in cells if c.column == 1)
    assert all(c.value == 7 and c.data_type == "n" for c in cells if c.column == 2)  # numbers stay numbers



def test_the_writer_drops_exactly_what_openpyxl_refuses():
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    from models.sheets import ILLEGAL_CHARACTERS_RE as ours
    from models.sheets import clean_text

    assert ours.pattern == ILLEGAL_CHARACTERS_RE.pattern
    every = "".join(map(chr, range(0x20)))
    assert clean_text(every + "文字") == "\t\n\r文字"

# Photos ----------------------------------------------------------------------------------------
def test_photos_are_served_with_nosniff_and_their_real_type(api_client, as_, people, tmp_path, api_app):
    api_app.extensions["settings"] = api_app.extensions["settings"].replace(WISH_PHOTO_DIR=str(tmp_path))
    posted = api_client.post("/api/v1/wishes", json={"title": "修水龙头", "details": "漏水"}, headers=as_("sec"))
    wish = posted.get_json()["id"]
    assert api_client.post(f"/api/v1/wishes/{wish}/claim", json={}, headers=as_("wang")).status_code == 200
    png = b"\x89PNG\r\n\x1a\n" + b"<html><script>alert(1)</script></html>"
    uploaded = api_client.post(f"/api/v1/wishes/{wish}/photos", headers=as_("wang"),
                               data={"file": (io.BytesIO(png), "x.html")}, content_type="multipart/form-data")
    assert uploaded.status_code == 200, uploaded.get_json()
    photo = uploaded.get_json()["photos"][0]["id"]
    response = api_client.get(f"/api/v1/wishes/{wish}/photos/{photo}", headers=as_("sec"))
    assert response.status_code == 200 and response.data == png
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
