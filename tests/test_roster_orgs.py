"""Roster import plans the organization tree: it lists what it would create, and refuses a new name
that differs from an existing one by a character or two unless told to create it (CLI and API)."""

import io

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Grid, Member, Organization
from tests.conftest import BRANCH, GROUP, OTHER_BRANCH, STREET

EAST = f"{STREET}/东湖社区党委"
HEADER = "姓名,手机号,所属组织,党员类别,入党日期,角色,网格"


def roster(*rows) -> bytes:
    return "\n".join([HEADER, *(",".join(row) for row in rows)]).encode("utf-8")


def row(name, phone, org, grid=""):
    return (name, phone, org, "直管党员", "2001-07-01", "党员", grid)


def counts(engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return tuple(s.scalar(select(func.count()).select_from(model)) for model in (Organization, Grid, Member))


def org_names(engine) -> set[str]:
    with Session(engine) as s:
        return set(s.scalars(select(Organization.full_name)))


@pytest.fixture
def people(cast):
    return cast(admin=cast.admin, sec=cast.sec.but(grid="东湖一网格"), group_member=cast.zhao.but(org=GROUP),
                other_sec=cast.zhou)


# The CLI -------------------------------------------------------------------------------------------
@pytest.fixture
def cli(app, tmp_path):
    runner = app.test_cli_runner()

    def run(data: bytes, *options):
        source = tmp_path / "名册.csv"
        source.write_bytes(data)
        return runner.invoke(args=["members", "import", str(source), *options])

    return run


def test_dry_run_lists_every_organization_and_grid_it_would_create(cli, people, engine):
    data = roster(row("新人甲", "13700000001", f"{EAST}/东湖社区第二党支部/第一党小组", "东湖二网格"),
                  row("新人乙", "13700000002", f"{STREET}/南湖社区党委", "南湖一网格"),
                  row("新人丙", "13700000003", BRANCH, "东湖一网格"))
    before = counts(engine)
    result = cli(data, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    created = lines[lines.index("将新建组织（3 个）："):lines.index("将新建网格（2 个）：")]
    assert created[1:] == [f"  {EAST}/东湖社区第二党支部", f"  {EAST}/东湖社区第二党支部/第一党小组",
                           f"  {STREET}/南湖社区党委"]
    assert f"  东湖二网格（{EAST}）" in lines and f"  南湖一网格（{STREET}/南湖社区党委）" in lines
    assert "东湖一网格（" not in result.output  # it exists
    assert "将新增 3 人" in result.output and "将新建组织 3 个、网格 2 个" in result.output
    assert counts(engine) == before

    result = cli(data)
    assert result.exit_code == 0 and "新建组织（3 个）：" in result.output and "新建网格（2 个）：" in result.output
    assert counts(engine) == (before[0] + 3, before[1] + 2, before[2] + 3)
    assert "新建组织" not in cli(data).output  # nothing left to create


def test_a_path_one_character_off_is_refused_naming_the_likely_one(cli, people, engine):
    typo = f"{EAST}/东湖社区第一党支布"
    data = roster(row("新人甲", "13700000001", BRANCH), row("新人乙", "13700000002", typo),
                  row("新人丙", "13700000003", f"{typo}/第一党小组"))
    before = counts(engine)
    result = cli(data, "--dry-run")
    assert result.exit_code == 1
    assert f"第 3 行：组织「{typo}」不存在，与「{BRANCH}」只差一两个字，是否写错了？" in result.output
    assert f"第 4 行：组织「{typo}」不存在，与「{BRANCH}」只差一两个字" in result.output
    assert "第 2 行" not in result.output
    assert f"将新建组织（2 个）：\n  {typo}\n  {typo}/第一党小组" in result.output
    assert "请加 --create-orgs 重新导入" in result.output and "未导入任何数据" in result.output
    assert cli(data).exit_code == 1 and counts(engine) == before

    result = cli(data, "--create-orgs")
    assert result.exit_code == 0, result.output
    assert f"新建组织（2 个）：\n  {typo}\n  {typo}/第一党小组" in result.output and "新增 3 人" in result.output
    assert {typo, f"{typo}/第一党小组"} <= org_names(engine)


def test_a_typo_higher_up_names_the_whole_corrected_path(cli, people, engine):
    result = cli(roster(row("新人", "13700000001", f"{STREET}/东胡社区党委/东湖社区第一党支部")), "--dry-run")
    assert result.exit_code == 1
    assert f"组织「{STREET}/东胡社区党委」不存在，与「{EAST}」只差一两个字" in result.output


@pytest.mark.parametrize("path", [
    f"{EAST}/东湖社区第二党支部",  # 第一/第二: numbered siblings
    f"{EAST}/东湖社区第十一党支部",
    f"{STREET}/南湖社区党委",  # 东湖/南湖
    f"{EAST}/东湖社区第一党支部/第二党小组",
    f"{STREET}/东湖花园社区党委",  # two characters more: another name
    f"{EAST}/东湖社区第三党支布",  # 第三 is no 第一, whatever else differs
])
def test_names_told_apart_on_purpose_are_no_typo(cli, people, engine, path):
    result = cli(roster(row("新人", "13700000001", path)))
    assert result.exit_code == 0, result.output
    assert path in org_names(engine)


def test_a_grid_one_character_off_is_refused_too(cli, people, engine):
    data = roster(row("新人", "13700000001", BRANCH, "东湖一网络"), row("新人乙", "13700000002", BRANCH, "东湖三网格"))
    result = cli(data)
    assert result.exit_code == 1
    assert "第 2 行：网格「东湖一网络」不存在，与东湖社区党委的「东湖一网格」只差一两个字，是否写错了？" \
        in result.output
    assert "第 3 行" not in result.output  # 三/一: another grid
    assert f"将新建网格（2 个）：\n  东湖一网络（{EAST}）\n  东湖三网格（{EAST}）" in result.output
    result = cli(data, "--create-orgs")
    assert result.exit_code == 0 and "新建网格（2 个）" in result.output
    with Session(engine) as s:
        assert {"东湖一网络", "东湖三网格"} <= set(s.scalars(select(Grid.name)))


def test_within_one_file_the_rarer_of_two_near_new_names_is_the_typo(cli, people, engine):
    good, typo = f"{EAST}/东湖社区第三党支部", f"{EAST}/东湖社区第三党支布"
    data = roster(row("甲", "13700000001", good), row("乙", "13700000002", typo), row("丙", "13700000003", good))
    result = cli(data)
    assert result.exit_code == 1
    assert f"第 3 行：组织「{typo}」不存在，与「{good}」只差一两个字" in result.output
    assert "第 2 行" not in result.output and "第 4 行" not in result.output
    assert good not in org_names(engine)
    # As many rows each: the one seen first is taken as meant.
    result = cli(roster(row("甲", "13700000001", good), row("乙", "13700000002", typo)))
    assert f"第 3 行：组织「{typo}」不存在，与「{good}」只差一两个字" in result.output
    assert "第 2 行" not in result.output


def test_a_typo_in_the_root_is_caught(cli, people):
    result = cli(roster(row("新人", "13700000001", "滨江街到党工委/东湖社区党委")))
    assert result.exit_code == 1
    assert f"组织「滨江街到党工委」不存在，与「{STREET}」只差一两个字" in result.output


def test_bad_input_loses_nothing(cli, people, engine):
    before = counts(engine)
    bad = ("坏行", "123", "", "外星人", "", "", "")
    result = cli(roster(row("新人", "13700000001", f"{EAST}/东湖社区第一党支布"), bad))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "第 2 行：组织" in result.output and "第 3 行：手机号" in result.output
    assert counts(engine) == before


# The API -------------------------------------------------------------------------------------------
def upload(client, headers, data: bytes, **query):
    url = "/api/v1/admin/members/import" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    return client.post(url, headers=headers, data={"file": (io.BytesIO(data), "名册.csv")},
                       content_type="multipart/form-data")


def test_api_reports_new_orgs_and_refuses_a_typo_unless_create_orgs(api_client, as_, engine):
    typo = f"{EAST}/东湖社区第一党支布"
    data = roster(row("新人甲", "13700000001", f"{BRANCH}/第二党小组", "东湖二网格"),
                  row("新人乙", "13700000002", typo))
    before = counts(engine)
    response = upload(api_client, as_("admin"), data, dry_run=1)
    body = response.get_json()
    assert response.status_code == 200 and not body["ok"]
    assert body["errors"] == [{"row": 3, "code": "org_typo",
                               "reason": f"组织「{typo}」不存在，与「{BRANCH}」只差一两个字，是否写错了？"}]
    assert body["new_orgs"] == sorted([f"{BRANCH}/第二党小组", typo])  # by path: each parent first
    assert body["new_grids"] == [{"org": EAST, "name": "东湖二网格"}]
    assert upload(api_client, as_("admin"), data).get_json()["ok"] is False and counts(engine) == before

    body = upload(api_client, as_("admin"), data, dry_run=1, create_orgs=1).get_json()
    assert body["ok"] and body["dry_run"] and body["created"] == 2 and "将新建组织 2 个、网格 1 个" in body["summary"]
    assert counts(engine) == before
    body = upload(api_client, as_("admin"), data, create_orgs=1).get_json()
    assert body["ok"] and body["new_orgs"] == sorted([f"{BRANCH}/第二党小组", typo]) and body["errors"] == []
    assert counts(engine) == (before[0] + 2, before[1] + 1, before[2] + 2)


def test_api_create_orgs_must_be_a_boolean(api_client, as_):
    response = upload(api_client, as_("admin"), roster(row("新人", "13700000001", BRANCH)), create_orgs="很多")
    assert response.status_code == 422 and "create_orgs" in str(response.get_json())


def test_api_typo_within_the_subtree_is_named(api_client, as_):
    body = upload(api_client, as_("sec"), roster(row("新人", "13700000001", f"{BRANCH}/第一党小祖"))).get_json()
    assert body["errors"] == [{"row": 2, "code": "org_typo",
                               "reason": f"组织「{BRANCH}/第一党小祖」不存在，与「{GROUP}」只差一两个字，是否写错了？"}]


def test_api_names_nothing_outside_the_importers_subtree(api_client, as_, engine):
    near_other = f"{STREET}/西湖社区党总支/西湖社区党支布"  # one character off another community's branch
    data = roster(row("新人", "13700000001", near_other, "西湖一网格"), row("新人乙", "13700000002", GROUP))
    body = upload(api_client, as_("sec"), data, dry_run=1).get_json()
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(2, "")]
    assert "管理范围" in body["errors"][0]["reason"] and OTHER_BRANCH not in str(body)
    assert body["new_orgs"] == [] and body["new_grids"] == []
