"""A background job's page in a real headless Chromium: it shows the progress bar while the job is
queued, follows the job by itself (static/jobs.js), and shows the download once a worker is done."""

import io
import os
import re

from openpyxl import load_workbook
from sqlalchemy.orm import sessionmaker

from scheduler.background import BackgroundWorkers
from tests.console_pages_support import fetch_bytes, go, screenshot, session_cookies, set_width, sign_in
from tests.local_servers import serve_in_thread

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "/tmp")


def test_the_job_page_follows_the_job_to_its_download(app_factory, browser, cast, console_login, engine):
    app = app_factory(JOB_INLINE_ROWS=1)
    sec = cast(sec=cast.sec.bound(), wang=cast.wang)["sec"]
    cookies = session_cookies(app, sec, console_login)
    client = app.test_client()
    console_login(client, sec)
    job_url = client.get("/console/members/export").headers["Location"]  # too big: a job
    assert re.fullmatch(r"/console/jobs/\d+", job_url)
    with serve_in_thread(app) as base:
        tab = sign_in(browser, base, cookies)
        set_width(browser, tab, 360)
        go(browser, tab, base + job_url)
        assert browser.evaluate(tab, "document.getElementById('job-status').textContent") == "排队中"
        assert browser.evaluate(tab, "document.getElementById('job-bar').textContent") == "0%"
        assert browser.evaluate(tab, "document.documentElement.scrollWidth") <= 360
        screenshot(browser, tab, f"{SHOTS}/console-job-queued-360.png", 360)

        workers = BackgroundWorkers(sessionmaker(engine, expire_on_commit=False), app.extensions["settings"],
                                    name="test-browser-jobs")
        assert workers.run_all() == 1
        # No click: the page notices the job is done and shows the download.
        link = browser.wait_for(tab, "document.querySelector('#job-download a')?.getAttribute('href')", timeout=30)
        assert browser.evaluate(tab, "document.getElementById('job-bar').textContent") == "100%"
        screenshot(browser, tab, f"{SHOTS}/console-job-done-360.png", 360)
        status, kind, data = fetch_bytes(browser, tab, base + link)
    assert status == 200 and kind.startswith("application/vnd.openxmlformats")
    assert "王志强" in [row[0] for row in load_workbook(io.BytesIO(data)).active.values]
