"""`flask --app app …` commands: members import/export, demo data, the WeChat simulator."""

import os
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import click
import requests
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import current_settings, db
from app.simulator import Reply, Simulator, resolve_scene, upload_media
from models.demo import load_demo
from models.roster import (
    RosterFileError,
    export_members,
    export_members_csv,
    import_members,
    members_in_subtree,
    read_roster,
)

members_cli = AppGroup("members", help="Import and export the member roster.")
wechat_cli = AppGroup("wechat", help="Talk to the chatbot as WeChat would.")
demo_cli = AppGroup("demo", help="Demo data.")
scheduler_cli = AppGroup("scheduler", help="Scheduled jobs and the outbox sender.")
jobs_cli = AppGroup("jobs", help="Background jobs: large imports and exports.")


@members_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report, write nothing.")
@click.option("--create-orgs", is_flag=True,
              help="Create organizations and grids even when a name differs from an existing one by a "
                   "character or two (by default such a row is refused as a likely typo).")
def import_command(path: Path, dry_run: bool, create_orgs: bool) -> None:
    """Import members from an .xlsx or .csv roster (all rows or none); lists the organizations
    and grids it creates."""
    try:
        records = read_roster(path.read_bytes(), path.name, current_settings())
    except RosterFileError as exc:
        raise click.ClickException(str(exc)) from None
    with _progress_bar(len(records), "导入") as progress:
        report = import_members(db.session, records, dry_run=dry_run, progress=progress,
                                create_orgs=create_orgs)
    for error in report.errors:
        click.echo(f"第 {error.row} 行：{error.reason}")
    build = "新建" if report.ok and not dry_run else "将新建"
    if report.new_orgs:
        click.echo(f"{build}组织（{len(report.new_orgs)} 个）：")
        for name in report.new_orgs:
            click.echo(f"  {name}")
    if report.new_grids:
        click.echo(f"{build}网格（{len(report.new_grids)} 个）：")
        for grid in report.new_grids:
            click.echo(f"  {grid.name}（{grid.org}）")
    click.echo(report.summary())
    if report.typos:
        click.echo("如确需新建这些名称的组织或网格，请加 --create-orgs 重新导入。")
    if not report.ok:
        raise SystemExit(1)


@contextmanager
def _progress_bar(length: int, label: str):
    """A progress callback: a bar on the terminal (stderr), nothing when it is not one (a pipe, a log)."""
    if not sys.stderr.isatty():
        yield lambda rows: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


@members_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_command(path: Path) -> None:
    """Export every member to FILE.xlsx or FILE.csv (UTF-8 with BOM), the columns the import reads."""
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise click.ClickException(f"只能导出为 .xlsx 或 .csv 文件，「{path.name}」的扩展名不对。")
    members = members_in_subtree(db.session)
    path.write_bytes(export_members_csv(members) if suffix == ".csv" else export_members(db.session, members))
    click.echo(f"已导出 {len(members)} 人到 {path}（{EXPORT_FORMATS[suffix]}）")


EXPORT_FORMATS = {".xlsx": "Excel 表格", ".csv": "CSV，UTF-8 编码"}


@demo_cli.command("load")
def demo_load() -> None:
    """Load a small demo organization if the database has no members."""
    if load_demo(db.session):
        click.echo("已载入演示组织：滨江街道党工委（8 名成员，绑定示例：绑定 李红梅 13800000002）")
    else:
        click.echo("数据库中已有成员，未载入演示数据。")


def default_webhook_url() -> str:
    """The webhook of the server `make run` starts (its port is PORT, 5000 by default)."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or 5000}/wechat"


def _lat_lng(ctx, param, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lat, lng = (float(part) for part in value.replace("，", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"应为「纬度,经度」，例如 30.2741,120.1551，而不是 {value}") from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise click.BadParameter(f"纬度应在 -90 到 90 之间，经度应在 -180 到 180 之间：{value}")
    return lat, lng


@wechat_cli.command("simulate")
@click.option("--url", default=default_webhook_url, show_default="http://127.0.0.1:$PORT/wechat (PORT: 5000)")
@click.option("--openid", default="o-simulator-0001", show_default=True)
@click.option("--text", "text", help="Send one text message and exit.")
@click.option("--event", type=click.Choice(["subscribe", "unsubscribe", "SCAN", "CLICK", "LOCATION"]),
              help="Send one event and exit.")
@click.option("--key", help="EventKey of --event: the QR scene or menu key.")
@click.option("--scan", "scan", metavar="SCENE",
              help="Scan a QR code as a follower (SCAN): its scene, or the URL/ticket the stand-in gave "
                   "(a meeting room's sign-in code, the console's login code).")
@click.option("--click", "click_key", metavar="KEY", help="Press a menu button (CLICK), e.g. MENU_HELP.")
@click.option("--image", "image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Send a photo (uploaded to the stand-in's media API for its media id).")
@click.option("--location", "location", metavar="LAT,LNG", callback=_lat_lng,
              help="Send a location message, e.g. 30.2741,120.1551.")
@click.option("--voice", "voice", metavar="TEXT", help="Send a voice message WeChat recognised as TEXT.")
def simulate(url: str, openid: str, **choices) -> None:
    """Chat with a running server, signed (and in safe mode encrypted) exactly as WeChat does."""
    cfg = current_settings()
    message = SimulatedMessage(**choices)
    chosen = message.chosen()
    if len(chosen) > 1:
        raise click.UsageError(f"一次只能发送一条：{' 和 '.join(chosen)} 请分开发送。")
    sim = Simulator(url, cfg.wechat_token, cfg.wechat_app_id, cfg.wechat_aes_key)
    try:
        reply = message.send(sim, openid, cfg.wechat_api_base)
        if reply is None:
            chat(sim, openid, url, show)
        else:
            show(reply)
    except (OSError, requests.RequestException) as exc:
        raise click.ClickException(f"无法连接 {url}：{exc}（服务器启动了吗？make run）") from None
    except ValueError as exc:
        raise click.ClickException(f"微信替身不认识：{exc}") from None


@dataclass(frozen=True)
class SimulatedMessage:
    """What `wechat simulate` was asked to send: at most one of these (none: a chat)."""

    text: str | None = None
    event: str | None = None
    key: str | None = None  # the EventKey of `event`
    scan: str | None = None
    click_key: str | None = None
    image: Path | None = None
    location: tuple[float, float] | None = None
    voice: str | None = None

    OPTIONS: ClassVar = (("--text", "text"), ("--event", "event"), ("--scan", "scan"), ("--click", "click_key"),
                         ("--image", "image"), ("--location", "location"), ("--voice", "voice"))

    def chosen(self) -> list[str]:
        """The options given that each send a message."""
        return [option for option, name in self.OPTIONS if getattr(self, name) is not None]

    def send(self, sim: Simulator, openid: str, api_base: str) -> Reply | None:
        """Send the message chosen and return the reply; None: nothing chosen."""
        if self.text is not None:
            return sim.text(openid, self.text)
        if self.event is not None:
            extra = {"Latitude": "30.2741", "Longitude": "120.1551", "Precision": "30"} \
                if self.event == "LOCATION" else {}
            return sim.event(openid, self.event, self.key, **extra)
        if self.scan is not None:
            return sim.event(openid, "SCAN", resolve_scene(api_base, self.scan))
        if self.click_key is not None:
            return sim.event(openid, "CLICK", self.click_key)
        if self.image is not None:
            media_id, pic_url = upload_media(api_base, self.image)
            click.echo(f"（图片 {self.image.name} → MediaId {media_id}）")
            return sim.image(openid, media_id, pic_url)
        if self.location is not None:
            return sim.location(openid, *self.location)
        if self.voice is not None:
            return sim.voice(openid, self.voice)
        return None


def show(reply: Reply) -> None:
    if reply.status != 200:
        click.echo(f"[HTTP {reply.status}] {reply.raw}")
    else:
        click.echo(reply.content or "（无回复）")


def chat(sim: Simulator, openid: str, url: str, show) -> None:
    click.echo(f"以 {openid} 的身份与 {url} 对话；输入「帮助」开始，Ctrl-D 退出。")
    while True:
        try:
            line = input("> ")
        except EOFError:
            click.echo()
            return
        if line.strip():
            show(sim.text(openid, line))


@wechat_cli.command("fake-api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True, type=int)
def fake_api(host: str, port: int) -> None:
    """A local stand-in for WeChat's API (login, messages, QR codes, media), for a laptop."""
    from app.fake_wechat import LOCAL_OPENID_PREFIX, FakeWeChat

    def say(line: str) -> None:
        click.echo(line)

    try:
        fake = FakeWeChat(local=True, host=host, port=port, say=say)
    except OSError as exc:
        raise click.ClickException(f"无法在 {host}:{port} 启动微信替身：{exc}（端口被占用？换一个 --port）") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fake.start()
    click.echo(f"本地微信替身已启动：{fake.base_url}（发出的消息见 {fake.base_url}/ ，Ctrl-C 停止）")
    click.echo(f"  让服务器使用它：WECHAT_API_BASE={fake.base_url}；小程序登录任意 code 均可"
               f"（openid = {LOCAL_OPENID_PREFIX}<code>）")
    stop.wait()
    fake.stop()
    click.echo("本地微信替身已停止。")


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in this process until interrupted (only the leader runs jobs)."""
    from app.scheduling import build_scheduler

    service = build_scheduler(current_app._get_current_object())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    click.echo(f"调度器 {service.name} 已启动（Ctrl-C 停止）。")
    stop.wait()
    service.shutdown()
    click.echo("调度器已停止。")


@scheduler_cli.command("run-due")
@click.option("--now", "now_text", required=True,
              help="ISO 8601 time, e.g. 2026-10-02T09:00+08:00 (no offset: UTC).")
def scheduler_run_due(now_text: str) -> None:
    """Run every job due by NOW that has not run for it, drain the outbox, and return."""
    from app.scheduling import build_scheduler

    try:
        now = datetime.fromisoformat(now_text)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {now_text}", param_hint="--now") from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    service = build_scheduler(current_app._get_current_object())
    for line in service.run_due(now.astimezone(UTC)).lines():
        click.echo(line)


def _background_workers(threads: int | None = None):
    from sqlalchemy.orm import sessionmaker

    from scheduler.background import BackgroundWorkers

    factory = sessionmaker(bind=db.engine, expire_on_commit=False)
    return BackgroundWorkers(factory, current_settings(), name=f"cli-{os.getpid()}", threads=threads)


@jobs_cli.command("work")
@click.option("--once", is_flag=True, help="Run the jobs queued now, one after another, then return.")
@click.option("--threads", type=int, default=None, help="Jobs run at once (default: JOB_WORKERS).")
def jobs_work(once: bool, threads: int | None) -> None:
    """Run background jobs: queued ones, and those whose worker died (after their lease)."""
    workers = _background_workers(threads)
    if once:
        click.echo(f"已完成 {workers.run_all()} 个后台任务。")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"后台任务执行器 {workers.name} 已启动（{workers.threads} 个线程，Ctrl-C 停止）。")
    while not stop.is_set():
        workers.tick()
        stop.wait(float(current_settings().job_poll_interval))
    workers.shutdown()
    click.echo("后台任务执行器已停止。")


@jobs_cli.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
def jobs_list(limit: int) -> None:
    """The latest background jobs: status, progress, who asked."""
    from models import clock
    from models.job_kinds import KINDS
    from models.jobs import all_jobs

    tz = current_settings().tz
    found = all_jobs(db.session, limit=limit)
    for job in found:
        label = KINDS[job.kind].label if job.kind in KINDS else job.kind
        who = job.requested_by.name if job.requested_by is not None else "命令行"
        rows = f"{job.done}/{job.total}" if job.total is not None else str(job.done)
        click.echo(f"#{job.id} {label} {job.status_text} {job.percent}%（{rows} 行，第 {job.attempts} 次）"
                   f" {who} {clock.stamp(job.created_at, tz)}" + (f" {job.error}" if job.error else ""))
    if not found:
        click.echo("没有后台任务。")


def register(app: Flask) -> None:
    for group in (members_cli, wechat_cli, demo_cli, scheduler_cli, jobs_cli):
        app.cli.add_command(group)
