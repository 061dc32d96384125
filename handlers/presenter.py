"""The chatbot's own words for domain errors: the domain's message (the same for every door) and,
by the error's code, what to send next — a hint only a chat can give."""

from models import DomainError

# code (or code and what was not found) → what the chatbot adds; formatted with the error's data.
CHAT_HINTS = {
    "not_found:wish": "请发送「心愿」查看可认领的心愿。",
    "may_not_publish": "发送「许愿 内容」提交心愿。",
    "already_claimed": "发送「心愿」看看其他心愿。",
    "registration_changed": "发送「活动 {number}」查看。",
    "domain_error:wish_text": "，例如：许愿 家里水龙头漏水，希望有人帮忙修一下",
    "domain_error:review_reason": "，例如：审核 {number} 不通过 内容不属于微心愿范围",
    "domain_error:return_reason": "，例如：驳回 {number} 水龙头仍在漏水",
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
