"""The chatbot's presenter: its own words for domain errors — the domain's message (the same for
every door) and, by the error's code, what to send next, a hint only a chat can give — and the chat
lines more than one handler module says (a text used by two modules lives here, not in either)."""

from models import DomainError
from models.orglife import RULE_FORMS
from models.quota import QuotaRow

# 组织生活's examples as the chat writes them: the command, then a rule.
RULE_EXAMPLES = "；".join(f"组织生活 {form}" for form in RULE_FORMS)

# code (or code and what was not found) → what the chatbot adds; formatted with the error's data.
CHAT_HINTS = {
    "not_found:wish": "请发送「心愿」查看可认领的心愿。",
    "may_not_publish": "发送「许愿 内容」提交心愿。",
    "already_claimed": "发送「心愿」看看其他心愿。",
    "registration_changed": "发送「活动 {number}」查看。",
    "domain_error:wish_text": "，例如：许愿 家里水龙头漏水，希望有人帮忙修一下",
    "domain_error:review_reason": "，例如：审核 {number} 不通过 内容不属于微心愿范围",
    "domain_error:return_reason": "，例如：驳回 {number} 水龙头仍在漏水",
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


# Lines more than one handler module says -------------------------------------------------------
HELP_HINT = "发送「帮助」查看可用指令。"
BIND_EXAMPLE = "绑定 张三 13800000000"
BIND_HOW = f"发送「绑定 姓名 手机号」，例如：{BIND_EXAMPLE}"  # after 「请先绑定身份：」 and the like
MANAGERS_ONLY = "「{keyword}」仅限书记、管理员使用。"  # a command only managers may run (authz.is_manager)


def progress_line(year: int, row: QuotaRow) -> str:
    """我的's line: this year's counts against the member's quota."""
    return (f"{year}年组织生活：{row.org_life}/{row.org_life_quota}次；"
            f"志愿服务：{row.volunteer}/{row.volunteer_quota}次")
