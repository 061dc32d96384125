"""The console's background jobs: a roster too large for a request is checked by a trial import in
the background, whose page offers the real import (with the tick for near-duplicate names); a large
export leaves the request and its page gives the file; only the manager who asked sees the job."""

import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Member, Organization
from models.jobs import Job
from models.roster import COLUMNS
from models.wishes import propose_wish
from scheduler.background import BackgroundWorkers
from tests.conftest import BRANCH, COMMUNITY, Person

TYPO = f"{COMMUNITY}/东湖社区第一党支布"  # one character off 东湖社区第一党支部


@pytest.fixture
def people(cast):
    return cast(boss=Person("陈书记", "13800000010", org=COMMUNITY, role="书记", wechat="o-boss"),
                sec=cast.sec.bound(), wang=cast.wang.but(kind="在职党员"), zhao=cast.zhao)


@pytest.fixture
def big_app(app_factory):
    """Requests carry at most 2 rows: every file and export of these tests leaves the request."""
    return app_factory(JOB_INLINE_ROWS=2)


def run_jobs(engine, app) -> int:
    return BackgroundWorkers(sessionmaker(engine, expire_on_commit=False), app.extensions["settings"],
                             name="test-console-jobs").run_all()


def signed_in(app, console_login, member):
    client = app.test_client()
    console_login(client, member)
    page = client.get("/console/members")
    assert page.status_code == 200
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))[1]


def xlsx(rows) -> bytes:
    book = Workbook()
    book.active.append(list(COLUMNS[:4]))
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def job_id_of(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(re.fullmatch(r"/console/jobs/(\d+)", response.headers["Location"])[1])


def test_a_large_roster_is_checked_then_imported_in_the_background(big_app, console_login, people, engine):
    client, token = signed_in(big_app, console_login, people["boss"])
    data = xlsx([("新党员一", "13900000101", TYPO, "直管党员"),
                 ("新党员二", "13900000102", BRANCH, "直管党员"),
                 ("王志强", "13800000003", BRANCH, "离退休党员")])
    check = job_id_of(client.post("/console/members/import", data={
        "csrf_token": token, "file": (io.BytesIO(data), "名册.xlsx")}, content_type="multipart/form-data"))
    queued = client.get(f"/console/jobs/{check}").get_data(as_text=True)
    assert "数据量较大，已转入后台处理" in queued and "导入名册（检查）" not in queued  # not known as a trial yet
    assert 'id="job-bar" style="width: 0%"' in queued and "排队中" in queued and 'data-final="0"' in queued
    status = client.get(f"/console/jobs/{check}/status").get_json()
    assert (status["status"], status["percent"], status["final"]) == ("queued", 0, False)

    assert run_jobs(engine, big_app) == 1
    with Session(engine) as s:
        assert s.scalar(select(func.count(Member.id)).where(Member.phone.startswith("139"))) == 0  # a trial
    checked = client.get(f"/console/jobs/{check}").get_data(as_text=True)
    assert "导入名册（检查）" in checked and 'data-final="1"' in checked
    assert "东湖社区第一党支布" in checked.split('id="typos"')[1]
    assert 'name="create_orgs"' in checked and "确认导入" in checked
    kept = re.search(r'name="token" value="([^"]+)"', checked)[1]
    assert client.get(f"/console/jobs/{check}/status").get_json()["percent"] == 100

    real = job_id_of(client.post("/console/members/import/apply", data={
        "csrf_token": token, "token": kept, "create_orgs": "1"}))
    assert real != check
    assert run_jobs(engine, big_app) == 1
    done = client.get(f"/console/jobs/{real}").get_data(as_text=True)
    assert "新增 2 人，更新 1 人" in done and 'name="token"' not in done  # the real import: nothing to apply
    with Session(engine) as s:
        assert s.scalars(select(Member).where(Member.phone == "13900000101")).one().org.full_name == TYPO
        assert s.get(Member, people["wang"].id).kind == "离退休党员"
        assert s.scalars(select(Organization).where(Organization.full_name == TYPO)).one()
    listing = client.get("/console/jobs").get_data(as_text=True)
    assert listing.count("导入名册") == 2 and "已完成" in listing
    # The kept file was used up by the import.
    again = client.post("/console/members/import/apply", data={"csrf_token": token, "token": kept})
    assert "已过期" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_a_trial_with_errors_offers_no_import(big_app, console_login, people, engine):
    client, token = signed_in(big_app, console_login, people["sec"])
    data = xlsx([("外人", "13900000103", "滨江街道党工委/西湖社区党总支/西湖社区党支部", "直管党员"),
                 ("新党员", "13900000104", BRANCH, "直管党员"), ("新党员三", "13900000105", BRANCH, "直管党员")])
    check = job_id_of(client.post("/console/members/import", data={
        "csrf_token": token, "file": (io.BytesIO(data), "名册.xlsx")}, content_type="multipart/form-data"))
    run_jobs(engine, big_app)
    page = client.get(f"/console/jobs/{check}").get_data(as_text=True)
    assert "第 2 行" in page.split('id="row-errors"')[1] and "重新上传" in page and 'name="token"' not in page


def test_a_large_export_is_downloaded_from_its_job_page_by_its_asker_only(big_app, console_login, people,
                                                                          engine):
    client, _ = signed_in(big_app, console_login, people["sec"])
    export = job_id_of(client.get("/console/members/export"))
    assert client.get(f"/console/jobs/{export}/file").status_code == 404  # not done yet
    run_jobs(engine, big_app)
    page = client.get(f"/console/jobs/{export}").get_data(as_text=True)
    assert f'href="/console/jobs/{export}/file"' in page and "保留到" in page
    response = client.get(f"/console/jobs/{export}/file")
    assert response.status_code == 200 and "filename*=UTF-8''" in response.headers["Content-Disposition"]
    names = [row[0] for row in list(load_workbook(io.BytesIO(response.data)).active.values)[1:]]
    assert "王志强" in names

    other, _ = signed_in(big_app, console_login, people["boss"])  # another manager, even a higher one
    for url in (f"/console/jobs/{export}", f"/console/jobs/{export}/status", f"/console/jobs/{export}/file"):
        refused = other.get(url)
        assert refused.status_code == 404 and "未找到该任务" in refused.get_data(as_text=True)
    assert "还没有后台任务" in other.get("/console/jobs").get_data(as_text=True)


def test_a_large_quota_export_leaves_the_request(big_app, console_login, people, engine):
    client, _ = signed_in(big_app, console_login, people["sec"])
    job = job_id_of(client.get("/console/quota.xlsx"))
    run_jobs(engine, big_app)
    with Session(engine) as s:
        assert s.get(Job, job).status == "done"
    rows = list(load_workbook(io.BytesIO(client.get(f"/console/jobs/{job}/file").data)).active.values)
    assert "王志强" in [cell for row in rows for cell in row]


def test_a_large_wishes_export_leaves_the_request(big_app, console_login, people, engine):
    with Session(engine) as s:
        for n in range(3):
            propose_wish(s, s.get(Member, people["wang"].id), f"家里水龙头漏水{n}")
    client, _ = signed_in(big_app, console_login, people["sec"])
    job = job_id_of(client.get("/console/wishes/export?status=待审核"))
    run_jobs(engine, big_app)
    rows = list(load_workbook(io.BytesIO(client.get(f"/console/jobs/{job}/file").data)).active.values)
    assert len(rows) == 4 and rows[1][3] == "待审核"

def test_small_work_stays_in_the_request(client, console_login, people, engine):
    console_login(client, people["sec"])
    response = client.get("/console/members/export")
    assert response.status_code == 200 and response.data[:2] == b"PK"
    with Session(engine) as s:
        assert s.scalar(select(func.count(Job.id))) == 0
