"""The chatbot's own words for domain errors: the domain's message (the same for every door) and,
by the error's code, what to send next — a hint only a chat can give."""

from models import DomainError
from models.orglife import RULE_FORMS

# 组织生活's examples as the chat writes them: the command, then a rule.
RULE_EXAMPLES = "；".join(f"组织生活 {form}" for form in RULE_FORMS)

# code (or code and what was not found) → what the chatbot adds; formatted with the error's data.
CHAT_HINTS = {
    "not_found:wish": "请发送「心愿」查看可认领的心愿。",
    "may_not_publish": "发送「许愿 内容」提交心愿。",
    "already_claimed": "发送「心愿」看看其他心愿。",
    "registration_changed": "发送「活动 {number}」查看。",
    "domain_error:orglife_rule": f"例如：{RULE_EXAMPLES}",
}


def chat_text(error: DomainError) -> str:
    """The reply to a refused command."""
    hint = CHAT_HINTS.get(f"{error.code}:{error.data['what']}" if "what" in error.data else error.code)
    if hint is None:
        return error.message
    try:
        return error.message + hint.format(**error.data)
    except (KeyError, IndexError):
        return error.message
