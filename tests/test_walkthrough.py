"""The README is true: its `sh` blocks run as written against a real server and the local
WeChat stand-in (real processes on spare ports, a temporary SQLite database), and its endpoint
table names every route of the app."""

import re
import subprocess
from pathlib import Path

import pytest

from tests import local_servers

WALKTHROUGH = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
MARK = "::walkthrough-block::"


def sh_blocks() -> list[str]:
    return BLOCK.findall(WALKTHROUGH.read_text(encoding="utf-8"))


def expectations(block: str) -> list[str]:
    return [line.split("# →", 1)[1].strip() for line in block.splitlines() if line.strip().startswith("# →")]


@pytest.fixture
def servers(tmp_path):
    started = local_servers.start(tmp_path)
    yield started
    started.stop()


def test_the_walkthrough_runs_as_written(servers):
    blocks = sh_blocks()
    assert len(blocks) >= 8
    script = "set -e\n" + "".join(f"echo '{MARK}{n}'\n{block}\n" for n, block in enumerate(blocks))
    result = subprocess.run(["bash", "-c", script], cwd=local_servers.ROOT, env=servers.env,
                            capture_output=True, text=True, timeout=600)
    outputs = result.stdout.split(MARK)[1:]
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert len(outputs) == len(blocks)
    for n, (block, output) in enumerate(zip(blocks, outputs, strict=True)):
        assert output.startswith(str(n))
        assert "[HTTP " not in output, (block, output)  # the webhook answered every message
        for expected in expectations(block):
            assert expected in output, f"block {n} lacks {expected!r}:\n{block}\n--- output:\n{output}"
    # The stand-in printed what the outbox delivered (its log is what `make run` shows).
    assert "[模板消息] → o-member：" in servers.log("fake")


def test_every_route_of_the_app_is_in_the_table(app):
    text = WALKTHROUGH.read_text(encoding="utf-8")
    table = {line for line in text.splitlines() if line.startswith("| ")}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        rows = [row for row in table if f"| `{rule.rule}` |" in row]
        assert rows, f"{rule.rule} is missing from the README"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert any(method in row.split("|")[1] for row in rows), f"{method} {rule.rule} is missing"


def test_every_menu_key_is_in_the_walkthrough():
    from handlers.events import MENU

    text = WALKTHROUGH.read_text(encoding="utf-8")
    for key, command in MENU.items():
        assert f"| `{key}` | `{command}` |" in text
