"""The passive reply renderer: text in, reply XML WeChat can read out, whatever the text holds.

wechatpy's `create_reply` puts text in CDATA without escaping, so a `]]>` in a stored title ends the
section early and the reply is malformed (WeChat then shows "该公众号暂时无法提供服务"); and
characters XML 1.0 does not allow (C0 controls but tab, LF, CR; U+FFFE, U+FFFF; lone surrogates)
make any parser refuse the document. Here every text field is cleaned of those characters and
`]]>` is split across two CDATA sections, and the Content is held to WeChat's 2,048 bytes: the
handlers page long answers (handlers/paging.py); what still comes too long is cut at a character
boundary with a note, and logged, since a handler forgot to page.
"""

import logging
import re
import time

from handlers.paging import REPLY_MAX_BYTES, cut, size

log = logging.getLogger(__name__)

# Everything outside XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
# [#x10000-#x10FFFF]. Lone surrogates (U+D800-U+DFFF) fall outside too.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
CUT_NOTE = "\n……（内容过长，未能全部显示）"


def xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 forbids, line ends as LF (what a parser reads anyway)."""
    return _NOT_XML.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n"))


def cdata(text: str) -> str:
    """`text` in CDATA, `]]>` split across two sections so that it cannot close the first one."""
    return "<![CDATA[" + xml_text(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def fit(content: str, limit: int = REPLY_MAX_BYTES) -> str:
    """The cleaned content, cut to `limit` bytes with a note (and a warning in the log) if longer."""
    content = xml_text(content)
    if size(content) <= limit:
        return content
    log.warning("reply of %d bytes cut to WeChat's %d (a handler should page it): %r…",
                size(content), limit, content[:40])
    return cut(content, limit - size(CUT_NOTE)) + CUT_NOTE


def text_reply(to_user: str, from_user: str, content: str, create_time: int | None = None) -> str:
    """The XML of a passive text reply to `to_user` (the sender's openid) from `from_user` (the
    Official Account), well-formed and at most 2,048 bytes of Content."""
    created = int(create_time if create_time is not None else time.time())
    return ("<xml>"
            f"<ToUserName>{cdata(to_user)}</ToUserName>"
            f"<FromUserName>{cdata(from_user)}</FromUserName>"
            f"<CreateTime>{created}</CreateTime>"
            "<MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{cdata(fit(content))}</Content>"
            "</xml>")
