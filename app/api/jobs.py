"""Background jobs over the API: an import or export too large for a request answers 202 with its
job (`{"job": {...}, "url": "/api/v1/jobs/<id>"}`); the client polls the job for its progress and
downloads the result when it is done. Only the member who asked sees a job (models/authz.py)."""

import marshmallow as ma
from flask import Response, jsonify
from marshmallow import fields

from app.api import PREFIX
from app.api.auth import Blueprint, current_member
from app.api.docs import errors
from app.api.files import xlsx_doc, xlsx_response
from app.api.schemas import ImportReportSchema, LocalDateTime, Query
from app.extensions import db
from models import job_kinds, jobs

blp = Blueprint("jobs", __name__, url_prefix=f"{PREFIX}/jobs", description="后台任务（大批量导入、导出）")

# The `?background=1` of the exports that may leave the request.
BACKGROUND = {"background": fields.Boolean(load_default=False, metadata={
    "description": "1：在后台生成（返回 202 和任务，完成后下载）；默认超过 JOB_INLINE_ROWS 行时自动转入后台"})}


def job_url(job: jobs.Job) -> str:
    return f"{PREFIX}/jobs/{job.id}"


def file_url(job: jobs.Job) -> str | None:
    return f"{PREFIX}/jobs/{job.id}/file" if job.has_file else None


class JobSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={
        "description": "roster.import / members.export / wishes.export / quota.export / attendance.export"})
    label = fields.Function(lambda job: job_kinds.KINDS[job.kind].label if job.kind in job_kinds.KINDS else job.kind,
                            required=True, metadata={"type": "string", "description": "任务名称"})
    status = fields.String(required=True, metadata={"description": "queued / running / done / failed"})
    status_text = fields.String(required=True, metadata={"description": "排队中 / 进行中 / 已完成 / 失败"})
    percent = fields.Integer(required=True, metadata={"description": "完成百分比（0–100）"})
    done = fields.Integer(required=True, metadata={"description": "已处理行数"})
    total = fields.Integer(required=True, allow_none=True, metadata={"description": "总行数（未知时为空）"})
    error = fields.String(required=True, allow_none=True, metadata={"description": "失败原因"})
    attempts = fields.Integer(required=True, metadata={"description": "已执行次数（中断后会自动重试）"})
    created_at = LocalDateTime(required=True)
    started_at = LocalDateTime(required=True, allow_none=True)
    finished_at = LocalDateTime(required=True, allow_none=True)
    expires_at = LocalDateTime(required=True, allow_none=True, metadata={"description": "结果保留到此时"})
    url = fields.Function(job_url, required=True, metadata={"type": "string", "description": "查询该任务的地址"})
    download_url = fields.Function(file_url, required=True, allow_none=True, metadata={
        "type": "string", "description": "完成后下载结果的地址（导入任务没有文件，见 report）"})


class JobDetailSchema(JobSchema):
    # Set by the view (job_kinds.import_report): the result of a done import.
    report = fields.Nested(ImportReportSchema, required=True, allow_none=True, metadata={
        "description": "导入任务完成后的导入报告（与直接导入的回答相同）；其他任务为空"})


class JobStartedSchema(ma.Schema):
    job = fields.Nested(JobSchema, required=True)
    url = fields.String(required=True, metadata={"description": "查询该任务的地址"})
    message = fields.String(required=True)


class JobListSchema(ma.Schema):
    items = fields.List(fields.Nested(JobSchema), required=True, metadata={"description": "最近的在前"})


class JobListQuerySchema(Query):
    limit = fields.Integer(load_default=20, validate=ma.validate.Range(min=1, max=100))


# The 202 of an endpoint that may answer with a job instead of its file or report.
STARTED = {"description": "任务已转入后台：按 url 查询进度，完成后下载", "schema": JobStartedSchema}


def started(job: jobs.Job) -> Response:
    """The 202 answer of work that left the request."""
    response = jsonify(JobStartedSchema().dump({"job": job, "url": job_url(job),
                                                "message": "数据量较大，已转入后台处理，完成后可查看结果。"}))
    response.status_code = 202
    return response


@blp.route("", methods=["GET"])
@blp.arguments(JobListQuerySchema, location="query")
@blp.response(200, JobListSchema)
@blp.doc(operationId="listJobs", responses=errors(401, 403, 422))
def list_jobs(args):
    """我发起的后台任务，最近的在前。"""
    return {"items": jobs.recent_jobs(db.session, current_member(), limit=args["limit"])}


@blp.route("/<int:job_id>", methods=["GET"])
@blp.response(200, JobDetailSchema)
@blp.doc(operationId="getJob", responses=errors(401, 403, 404))
def get_job(job_id):
    """一个后台任务的状态与进度（百分比、已处理行数）；完成后给出下载地址或导入报告。"""
    job = job_kinds.visible_job(db.session, current_member(), job_id)
    job.report = job_kinds.import_report(db.session, job)
    return job


@blp.route("/<int:job_id>/file", methods=["GET"])
@blp.doc(**xlsx_doc("任务结果（.xlsx）"))
@blp.doc(operationId="downloadJobResult", responses=errors(401, 403, 404))
def download(job_id):
    """下载已完成任务的结果文件。"""
    job = job_kinds.visible_job(db.session, current_member(), job_id)
    data = jobs.result_of(db.session, job)
    return xlsx_response(data, f"job-{job.id}.xlsx", job.result_name)
