"""The console's background jobs: a roster import or an export too large for a request (more than
JOB_INLINE_ROWS rows) runs as a job of models/jobs.py. Its page shows a progress bar that follows the
job (static/jobs.js asks its status every 2 seconds; without JavaScript the page reloads itself), then
the download link, or the import's report. A roster too large to preview in the request is first
checked by a trial import (dry run) in the background; its report's page offers the real import.

Only the manager who asked sees a job: job_kinds.visible_job asks models/authz.py.
"""

from flask import current_app, flash, jsonify, redirect, render_template, url_for

from app.api.files import xlsx_response
from app.console import bp
from app.console.auth import current_manager, login_required
from app.extensions import current_settings, db, get_redis
from models import clock, job_kinds, jobs

STARTED = "数据量较大，已转入后台处理。本页会显示进度，完成后可在此下载或查看结果。"
POLL_SECONDS = 2


def started(job: jobs.Job):
    """The answer of console work that left the request: to the job's page."""
    flash(STARTED, "info")
    return redirect(url_for("console.job", job_id=job.id))


def _visible(job_id: int) -> jobs.Job:
    """The job, if it is the manager's (a refusal is the console's Chinese error page, app.console.errors)."""
    return job_kinds.visible_job(db.session, current_manager(), job_id)


# A trial import's file, kept for the real import its page offers ------------------------------------
def _file_key(manager_id: int, job_id: int) -> str:
    return f"console:import-job:{manager_id}:{job_id}"


def keep_upload_token(job: jobs.Job, token: str) -> None:
    """Remember which kept upload (app.console.members) the trial import `job` checked."""
    get_redis(current_app).set(_file_key(job.requested_by_id, job.id), token,
                               ex=current_settings().console_import_ttl)


def upload_token(job: jobs.Job) -> str | None:
    token = get_redis(current_app).get(_file_key(job.requested_by_id, job.id))
    return token.decode() if isinstance(token, bytes) else token


# Pages -----------------------------------------------------------------------------------------------
def _status(job: jobs.Job) -> dict:
    rows = (f"已处理 {job.done:,} 行，共 {job.total:,} 行" if job.total else
            f"已处理 {job.done:,} 行" if job.done else "")  # an export counts no rows as it goes
    return {"status": job.status, "status_text": jobs.STATUS_TEXT.get(job.status, job.status),
            "percent": job.percent, "done": job.done, "total": job.total, "rows_text": rows,
            "final": job.status in (jobs.DONE, jobs.FAILED), "error": job.error}


@bp.get("/jobs")
@login_required
def jobs_list():
    return render_template("console/jobs.html", manager=current_manager(),
                           items=jobs.recent_jobs(db.session, current_manager(), limit=30),
                           kinds=job_kinds.KINDS, status_text=jobs.STATUS_TEXT, clock=clock,
                           tz=current_settings().tz)


@bp.get("/jobs/<int:job_id>")
@login_required
def job(job_id: int):
    found = _visible(job_id)
    report = job_kinds.import_report(db.session, found)
    blocking = report.blocking_errors if report else []
    typos = report.typo_errors if report else []
    token = upload_token(found) if report is not None and report.dry_run and not blocking else None
    return render_template("console/job.html", manager=current_manager(), job=found, state=_status(found),
                           label=job_kinds.KINDS[found.kind].label if found.kind in job_kinds.KINDS else found.kind,
                           report=report, blocking=blocking, typos=typos, token=token, poll=POLL_SECONDS,
                           clock=clock, tz=current_settings().tz)


@bp.get("/jobs/<int:job_id>/status")
@login_required
def job_status(job_id: int):
    return jsonify(_status(_visible(job_id)))


@bp.get("/jobs/<int:job_id>/file")
@login_required
def job_file(job_id: int):
    found = _visible(job_id)
    return xlsx_response(jobs.result_of(db.session, found), f"job-{found.id}.xlsx", found.result_name)
