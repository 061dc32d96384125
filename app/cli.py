"""`flask --app app …` commands: members import/export, demo data, the WeChat simulator."""

import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import db
from app.simulator import Simulator
from models.demo import load_demo
from models.roster import RosterFileError, export_members, import_members, members_in_subtree, read_roster

members_cli = AppGroup("members", help="Import and export the member roster.")
wechat_cli = AppGroup("wechat", help="Talk to the chatbot as WeChat would.")
demo_cli = AppGroup("demo", help="Demo data.")
scheduler_cli = AppGroup("scheduler", help="Scheduled jobs and the outbox sender.")


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
        records = read_roster(path.read_bytes(), path.name, current_app.config)
    except RosterFileError as exc:
        raise click.ClickException(str(exc)) from None
    with click.progressbar(length=len(records), label="导入", file=sys.stderr) as bar:
        report = import_members(db.session, records, dry_run=dry_run, progress=bar.update,
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


@members_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_command(path: Path) -> None:
    """Export every member to an .xlsx file (the columns the import reads)."""
    members = members_in_subtree(db.session)
    path.write_bytes(export_members(db.session, members))
    click.echo(f"已导出 {len(members)} 人到 {path}")


@demo_cli.command("load")
def demo_load() -> None:
    """Load a small demo organization if the database has no members."""
    if load_demo(db.session):
        click.echo("已载入演示组织：滨江街道党工委（8 名成员，绑定示例：绑定 李红梅 13800000002）")
    else:
        click.echo("数据库中已有成员，未载入演示数据。")


@wechat_cli.command("simulate")
@click.option("--url", default="http://127.0.0.1:5000/wechat", show_default=True)
@click.option("--openid", default="o-simulator-0001", show_default=True)
@click.option("--text", "text", help="Send one text message and exit.")
@click.option("--event", type=click.Choice(["subscribe", "unsubscribe", "SCAN", "CLICK", "LOCATION"]),
              help="Send one event and exit.")
@click.option("--key", help="EventKey: the QR scene or menu key.")
def simulate(url: str, openid: str, text: str | None, event: str | None, key: str | None) -> None:
    """Chat with a running server, signed (and in safe mode encrypted) exactly as WeChat does."""
    cfg = current_app.config
    sim = Simulator(url, cfg["WECHAT_TOKEN"], cfg["WECHAT_APP_ID"], cfg["WECHAT_AES_KEY"])

    def show(reply) -> None:
        if reply.status != 200:
            click.echo(f"[HTTP {reply.status}] {reply.raw}")
        else:
            click.echo(reply.content or "（无回复）")

    try:
        if text is not None:
            show(sim.text(openid, text))
            return
        if event is not None:
            extra = {"Latitude": "30.2741", "Longitude": "120.1551", "Precision": "30"} \
                if event == "LOCATION" else {}
            show(sim.event(openid, event, key, **extra))
            return
        click.echo(f"以 {openid} 的身份与 {url} 对话；输入「帮助」开始，Ctrl-D 退出。")
        while True:
            try:
                line = input("> ")
            except EOFError:
                click.echo()
                return
            if line.strip():
                show(sim.text(openid, line))
    except OSError as exc:
        raise click.ClickException(f"无法连接 {url}：{exc}（服务器启动了吗？make run）") from None


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


def register(app: Flask) -> None:
    for group in (members_cli, wechat_cli, demo_cli, scheduler_cli):
        app.cli.add_command(group)
