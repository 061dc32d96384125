"""Each door words a refusal for its own users: the chatbot says what to send next, the API never
tells a mini-program user to type a chatbot command or call an endpoint."""

import ast
from pathlib import Path

import pytest

from tests.test_api_wishes import call, people, posted  # noqa: F401 (fixtures and a helper)

ROOT = Path(__file__).resolve().parent.parent
CHAT_WORDS = ("发送「", "请发送", "/api/v1")


def _refusal_texts() -> list[tuple[str, int, str]]:
    """Every string literal (f-strings too) passed to a domain error raised or returned in models/."""
    found = []
    for path in sorted((ROOT / "models").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                    "DomainError", "NotFound", "Forbidden", "InvalidText"):
                for part in ast.walk(node.args[0]) if node.args else ():
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        found.append((path.name, node.lineno, part.value))
    return found


def test_no_domain_refusal_names_a_chatbot_command_or_an_endpoint():
    texts = _refusal_texts()
    assert len(texts) > 100  # the scan sees the domain's refusals
    offending = [t for t in texts if any(word in t[2] for word in CHAT_WORDS)]
    assert offending == []


def test_a_taken_wish_is_worded_for_each_door(api_client, as_, call, wx):  # noqa: F811
    wish = posted(api_client, as_)["id"]
    assert call("wang", "claim", wish).status_code == 200
    api = call("zhao", "claim", wish)
    assert api.status_code == 409
    assert api.get_json()["message"] == f"心愿 #{wish} 已被认领，谢谢您的热心！"
    chat = wx.text("o-zhao", f"认领 #{wish}").content
    assert chat == f"心愿 #{wish} 已被认领，谢谢您的热心！发送「心愿」看看其他心愿。"


@pytest.mark.parametrize("path", ["/api/v1/wishes/999", "/api/v1/wishes/999/claim"])
def test_an_unknown_wish_is_worded_for_each_door(api_client, as_, people, wx, path):  # noqa: F811
    response = (api_client.get if path.endswith("999") else api_client.post)(path, headers=as_("wang"), json={})
    assert response.status_code == 404
    message = response.get_json()["message"]
    assert message == "未找到心愿 #999。" and not any(word in message for word in CHAT_WORDS)
    assert wx.text("o-wang", "心愿 #999").content == "未找到心愿 #999。请发送「心愿」查看可认领的心愿。"
