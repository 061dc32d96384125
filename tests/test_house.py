"""The house's rules that a grep can check: one settings object, one clock, one place for permissions."""

import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = sorted(p for top in ("app", "handlers", "models", "scheduler") for p in (ROOT / top).rglob("*.py"))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_time_zone_is_named_only_in_config():
    named = [str(p.relative_to(ROOT)) for p in CODE if "Asia/Shanghai" in _text(p)]
    assert named == []


def test_no_setting_is_read_with_a_default_below_config():
    # settings.get("NAME", default), config["NAME"], current_app.config["NAME"] …: the one object has attributes.
    reads = re.compile(r"""(?:config|settings|cfg)(?:\.get\(|\[)\s*["'][A-Z][A-Z0-9_]+["']""")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in CODE for n, line in enumerate(_text(p).splitlines(), 1)
             if reads.search(line)]
    assert found == []


def test_every_setting_a_module_reads_exists():
    # `settings.x`, `ctx.settings.x`, `self.settings.x`, `current_settings().x`: x is a field of Settings.
    from config import Settings

    known = {f.name for f in dataclasses.fields(Settings)} | {name for name in dir(Settings) if name[0] != "_"}
    reads = re.compile(r"(?:\bsettings|current_settings\(\))\.([a-z_][a-z0-9_]*)")
    unknown = sorted({f"{p.relative_to(ROOT)}: {name}" for p in CODE for name in reads.findall(_text(p))} - {
        f"{p.relative_to(ROOT)}: {name}" for p in CODE for name in known})
    assert unknown == []


@pytest.mark.parametrize("pattern", [r"(?<!authz)\.is_manager\b", r"role in MANAGER_ROLES", r"MANAGER_ROLES\)"])
def test_permission_rules_live_in_authz(pattern):
    allowed = {"models/authz.py", "models/member.py"}
    found = [f"{p.relative_to(ROOT)}:{n}" for p in CODE if str(p.relative_to(ROOT)) not in allowed
             for n, line in enumerate(_text(p).splitlines(), 1) if re.search(pattern, line)]
    assert found == []
