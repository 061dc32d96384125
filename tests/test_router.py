"""The chatbot through the router directly: no Flask, no HTTP."""

import pytest

from handlers import Incoming, Router, build_router, normalize_text
from handlers.router import fold
from models import now_utc


def say(router, session, openid, text):
    return router.dispatch(Incoming(openid=openid, msg_type="text", content=text), session, now_utc())


def event(router, session, openid, name, key=""):
    return router.dispatch(Incoming(openid=openid, msg_type="event", event=name, key=key), session, now_utc())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("认领 12", "认领 12"), ("认领#12", "认领#12"), ("认领　１２", "认领 12"), ("  认领＃１２  ", "认领#12"),
     ("绑定  张三\t 138", "绑定 张三 138")],
)
def test_normalize_folds_full_width_and_spaces(raw, expected):
    assert normalize_text(raw) == expected


def test_arguments_typed_every_way_reach_the_handler_alike(session):
    router = Router()
    seen = []

    @router.command("认领", pattern=r"#?(\d+)", usage="认领 #编号")
    def claim(message, ctx):
        seen.append(int(ctx.match[1]))
        return "ok"

    for text in ("认领 12", "认领#12", "认领　１２", "认领 #12", "认领＃１２", " 认领   12 "):
        assert say(router, session, "o1", text) == "ok"
    assert seen == [12] * 6
    assert "用法：认领 #编号" in say(router, session, "o1", "认领 十二")


def test_longest_keyword_wins(session):
    router = Router()
    router.command("我的")(lambda m, c: "me")
    router.command("我的心愿")(lambda m, c: "my wishes")
    assert say(router, session, "o1", "我的心愿") == "my wishes"
    assert say(router, session, "o1", "我的") == "me"


def test_latin_alias_must_end_at_a_word_boundary(session):
    router = build_router()
    assert "可用指令" in say(router, session, "o1", "help")
    assert "可用指令" not in say(router, session, "o1", "helpme")


def test_registering_a_word_twice_or_with_spaces_is_refused():
    router = Router()
    router.command("帮助")(lambda m, c: "")
    with pytest.raises(ValueError):
        router.command("帮助")(lambda m, c: "")
    with pytest.raises(ValueError):
        router.command("两 个")(lambda m, c: "")


def test_unknown_command_suggests_the_closest(session):
    router = build_router()
    assert say(router, session, "o1", "帮主") == "没有「帮主」这个指令，您是不是想发送「帮助」？"
    reply = say(router, session, "o1", "今天天气怎么样")
    assert "没看懂" in reply and "帮助" in reply


def test_help_shows_more_to_a_secretary(session, make_member):
    router = Router()
    router.command("帮助", summary="帮助 — 查看")(
        lambda m, c: "\n".join(x.summary for x in c.router.visible_commands(c.role)))
    router.command("通知", summary="通知 内容 — 发通知", managers_only=True)(lambda m, c: "sent")
    make_member("书记甲", role="书记", openid="o-sec")
    make_member("管理员丙", role="管理员", openid="o-admin")
    make_member("党员乙", openid="o-mem")
    assert "通知" in say(router, session, "o-sec", "帮助")
    assert "通知" not in say(router, session, "o-mem", "帮助")
    assert say(router, session, "o-mem", "通知 开会") == "「通知」仅限书记、管理员使用。"
    assert "请先绑定" in say(router, session, "o-nobody", "通知 开会")
    assert say(router, session, "o-sec", "通知 开会") == "sent"
    assert say(router, session, "o-admin", "通知 开会") == "sent"


def test_menu_click_runs_the_mapped_command(session):
    router = build_router()
    assert "可用指令" in event(router, session, "o1", "click", "MENU_HELP")
    assert "请先绑定" in event(router, session, "o1", "click", "MENU_ME")
    # A menu key the bot does not know gets a hint, not silence.
    assert event(router, session, "o1", "click", "NO_SUCH_KEY") == "这个菜单按钮暂未开通。发送「帮助」查看可用指令。"


def test_scan_of_an_unknown_scene_gets_a_hint_and_a_known_one_its_handler(session):
    router = build_router()
    assert "二维码已失效" in event(router, session, "o1", "scan", "nothing:1")

    @router.scene("test:")
    def scene(message, ctx):
        return f"scene {ctx.rest}"

    assert event(router, session, "o1", "scan", "test:42") == "scene 42"
    both = event(router, session, "o1", "subscribe_scan", "test:7")
    assert both.startswith("欢迎关注连心") and both.endswith("scene 7")


def test_other_message_types_get_a_hint(session):
    router = build_router()
    reply = router.dispatch(Incoming(openid="o1", msg_type="voice"), session, now_utc())
    assert "文字指令" in reply


def test_fold_maps_each_folded_character_back_to_the_typed_text():
    typed = "  通知　＃１２ 说明：已修好，\n谢谢！"
    folded, where = fold(typed)
    assert folded == "通知 #12 说明:已修好, 谢谢!"
    assert [typed[i] for i in where[:6]] == ["通", "知", "＃", "＃", "１", "２"]
    assert typed[where[folded.index("说")]:] == "说明：已修好，\n谢谢！"


def test_free_text_reaches_the_handler_as_typed(session):
    router = Router()
    seen = {}

    @router.command("留言", pattern=r"#?(\d+) ?(.*)")
    def note(message, ctx):
        seen.update(number=ctx.match[1], text=ctx.text(2), rest=ctx.rest)
        return "好"

    assert say(router, session, "o1", "留言＃１２　今天（周一）下雨，\n活动改期。") == "好"
    assert seen == {"number": "12", "text": "今天（周一）下雨，\n活动改期。", "rest": "#12 今天(周一)下雨, 活动改期。"}


def test_no_handler_module_imports_another():
    """Command modules import only the router, the presenter (shared chat words), paging (layout) and
    when (date and time words)."""
    import ast
    from pathlib import Path

    shared = {"handlers.router", "handlers.presenter", "handlers.paging", "handlers.when"}
    folder = Path(__file__).resolve().parent.parent / "handlers"
    found = {}
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        others = {name for name in imported if name.startswith("handlers") and name not in shared}
        if f"handlers.{path.stem}" in shared:
            others -= shared  # the shared modules may use each other (router → presenter)
        if others:
            found[path.name] = sorted(others)
    assert found == {}


MANAGER_COMMANDS = {"新活动", "代签", "出勤", "签到页", "轮换码", "活动位置", "完成情况", "审核", "撤回", "通知",
                    "批假", "会议记录", "取消活动", "修改活动"}


def test_manager_commands_are_refused_to_members_in_the_same_words(session, make_member):
    router = build_router()
    assert {c.keyword for c in router.commands if c.managers_only} == MANAGER_COMMANDS
    make_member("党员乙", openid="o-mem")
    for keyword in sorted(MANAGER_COMMANDS):
        assert say(router, session, "o-mem", f"{keyword} 1") == f"「{keyword}」仅限书记、管理员使用。"
        assert say(router, session, "o-nobody", f"{keyword} 1").startswith("请先绑定党员身份：")
    help_text = say(router, session, "o-mem", "帮助 活动")
    assert "新活动" not in help_text and "报名" in help_text
