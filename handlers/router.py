"""The chatbot router: text commands by Chinese keyword, events by type, menu clicks, QR scenes.

A handler has one signature, `handler(message, ctx) -> str | None`; it calls the domain and returns
the reply text (None: nothing to say). Domain errors become their Chinese message here.
"""

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy.orm import Session

from models import DomainError, Member
from models.member import member_for_openid, role_for_openid

_SPACES = re.compile(r"\s+")
HELP_HINT = "发送「帮助」查看可用指令。"


def normalize_text(text: str) -> str:
    """Fold full-width characters (１２, ＃, 　) to half-width and collapse white space."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text or "")).strip()


def fold(text: str) -> tuple[str, list[int]]:
    """Return `text` folded as `normalize_text` does (but NFKC character by character), and for
    each character of the result the index in `text` of the character it came from, so that free
    text can be taken as it was typed."""
    out: list[str] = []
    where: list[int] = []
    pending_space = False
    for index, char in enumerate(text or ""):
        for folded in unicodedata.normalize("NFKC", char):
            if folded.isspace():
                pending_space = bool(out)
                continue
            if pending_space:
                out.append(" ")
                where.append(index)
                pending_space = False
            out.append(folded)
            where.append(index)
    return "".join(out), where


@dataclass(frozen=True)
class Incoming:
    """A message or event from WeChat, reduced to what the handlers use."""

    openid: str
    msg_type: str  # text, event, image, voice, video, location, link …
    content: str = ""
    event: str = ""  # lower case: subscribe, unsubscribe, scan, click, location …
    key: str = ""  # EventKey; for a scan-to-follow the "qrscene_" prefix is removed
    latitude: float | None = None
    longitude: float | None = None
    media_id: str = ""
    msg_id: str = ""
    create_time: int = 0
    # Every field of the pushed XML as text, by its WeChat name ("Recognition", "Status", "ScanResult"
    # …; those of ScanCodeInfo and the like flattened one level), for what the fields above omit.
    fields: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass
class Context:
    """What a handler gets besides the message: the session, the time, settings, parsed arguments."""

    session: Session
    message: Incoming
    now: datetime
    router: "Router"
    settings: Mapping = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    rest: str = ""  # the text after the command keyword (folded: half-width, single spaces)
    match: re.Match | None = None
    typed: str = ""  # the text as typed (`rest` is the end of it, folded)

    def original(self, start: int = 0) -> str:
        """The text from `rest[start:]` on as the user typed it: full-width punctuation, line breaks
        and all (for free text such as a notice's body; commands and numbers read `rest`)."""
        folded, typed_at = fold(self.typed)
        if folded != normalize_text(self.typed):  # NFKC of a combining sequence, char by char: rare
            return self.rest[start:]
        at = len(folded) - len(self.rest) + start
        return self.typed[typed_at[at]:].strip() if at < len(typed_at) else ""

    def text(self, group: int | str) -> str:
        """The typed text of a pattern group that runs to the end of the message ('' if empty)."""
        if self.match is None or not self.match.group(group):
            return ""
        return self.original(self.match.start(group))

    @cached_property
    def member(self) -> Member | None:
        return member_for_openid(self.session, self.message.openid)

    # Where the caller's role comes from when the member is not loaded (the webhook passes one
    # that answers from its cache); default: the database.
    role_of: Callable[[str], str | None] | None = None

    @cached_property
    def role(self) -> str | None:
        """The caller's role, None when not bound; cheaper than loading the member if not loaded."""
        if "member" in self.__dict__:
            return self.member.role if self.member else None
        if self.role_of is not None:
            return self.role_of(self.message.openid)
        return role_for_openid(self.session, self.message.openid)


Handler = Callable[[Incoming, Context], str | None]


@dataclass
class Command:
    keyword: str
    handler: Handler
    aliases: tuple[str, ...] = ()
    summary: str = ""  # one line for 帮助, e.g. "绑定 姓名 手机号 — 绑定党员身份"
    pattern: re.Pattern | None = None  # what the arguments must look like
    usage: str = ""  # shown when the arguments do not match
    roles: tuple[str, ...] = ()  # empty: anyone; else only bound members with one of these roles
    needs_member: bool = False

    def allowed_for(self, role: str | None) -> bool:
        """Whether a caller with `role` (None: not bound) may run the command."""
        if self.roles:
            return role in self.roles
        return not self.needs_member or role is not None


class Router:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self._by_word: dict[str, Command] = {}
        self._longest_first: list[str] = []  # the words, longest first: "取消报名" before "报名"
        self._events: dict[str, Handler] = {}
        self._clicks: dict[str, str] = {}
        self._scenes: dict[str, Handler] = {}
        self._media: dict[str, Handler] = {}

    # Registration -------------------------------------------------------------------------
    def command(self, keyword: str, *, aliases=(), summary="", pattern: str | None = None, usage="",
                roles=(), needs_member=False) -> Callable[[Handler], Handler]:
        """Register a text command under its keyword and aliases."""

        def decorator(handler: Handler) -> Handler:
            cmd = Command(keyword, handler, tuple(aliases), summary,
                          re.compile(pattern) if pattern is not None else None, usage or keyword,
                          tuple(roles), needs_member or bool(roles))
            for word in (keyword, *cmd.aliases):
                if not word or normalize_text(word) != word or " " in word:
                    raise ValueError(f"invalid command word {word!r}")
                if word in self._by_word:
                    raise ValueError(f"command word {word!r} registered twice")
                self._by_word[word] = cmd
            self._longest_first = sorted(self._by_word, key=len, reverse=True)
            self.commands.append(cmd)
            return handler

        return decorator

    def event(self, name: str) -> Callable[[Handler], Handler]:
        """Register the handler of an event type (lower case, as wechatpy names them)."""

        def decorator(handler: Handler) -> Handler:
            self._events[name.lower()] = handler
            return handler

        return decorator

    def scene(self, prefix: str) -> Callable[[Handler], Handler]:
        """Register the handler of parametric QR codes whose scene starts with `prefix`."""

        def decorator(handler: Handler) -> Handler:
            self._scenes[prefix] = handler
            return handler

        return decorator

    def media(self, msg_type: str) -> Callable[[Handler], Handler]:
        """Register the handler of a non-text message type (image, voice …)."""

        def decorator(handler: Handler) -> Handler:
            self._media[msg_type] = handler
            return handler

        return decorator

    def click(self, key: str, text: str) -> None:
        """Map a menu button's key to the command text it stands for."""
        self._clicks[key] = text

    # Dispatch -----------------------------------------------------------------------------
    def dispatch(self, message: Incoming, session: Session, now: datetime,
                 settings: Mapping | None = None, *,
                 role_of: Callable[[str], str | None] | None = None) -> str | None:
        """Return the reply to a message (None: nothing to say)."""
        ctx = Context(session=session, message=message, now=now, router=self, settings=settings or {},
                      role_of=role_of)
        try:
            if message.msg_type == "text":
                return self.run_text(message.content, message, ctx)
            if message.msg_type == "event":
                return self._dispatch_event(message, ctx)
            handler = self._media.get(message.msg_type)
            if handler:
                return handler(message, ctx)
            return "暂时只能处理文字指令。" + HELP_HINT
        except DomainError as exc:
            session.rollback()
            return exc.message

    def run_text(self, text: str, message: Incoming, ctx: Context) -> str | None:
        """Run the command a text names (also used for menu clicks)."""
        ctx.typed, text = text, normalize_text(text)
        if not text:
            return HELP_HINT
        found = self.match(text)
        if found is None:
            return self._unknown(text, ctx)
        cmd, rest = found
        if not cmd.allowed_for(ctx.role):
            if ctx.role is None:
                return "请先绑定党员身份：发送「绑定 姓名 手机号」，例如：绑定 张三 13800000000"
            return f"「{cmd.keyword}」仅限{'、'.join(cmd.roles)}使用。"
        ctx.rest = rest
        ctx.args = rest.split() if rest else []
        if cmd.pattern is not None:
            ctx.match = cmd.pattern.fullmatch(rest)
            if ctx.match is None:
                return f"格式不对。用法：{cmd.usage}"
        return cmd.handler(message, ctx)

    def match(self, text: str) -> tuple[Command, str] | None:
        """Return the command whose keyword starts `text` (the longest one) and the rest."""
        for word in self._longest_first:
            if text.startswith(word):
                rest = text[len(word):]
                # "帮助" matches "帮助" and "帮助 x", and a Chinese keyword may run into its
                # arguments ("认领#12"); a Latin one must end at a word boundary ("help").
                if word.isascii() and rest[:1].isalnum():
                    continue
                return self._by_word[word], rest.strip()
        return None

    def visible_commands(self, role: str | None) -> list[Command]:
        """The commands to list in 帮助 for a caller with `role` (None: not bound)."""
        return [c for c in self.commands if c.allowed_for(role) or (role is None and not c.roles)]

    def _unknown(self, text: str, ctx: Context) -> str:
        head = text.split(" ")[0][:6]
        words = [w for c in self.visible_commands(ctx.role) for w in (c.keyword, *c.aliases)]
        close = difflib.get_close_matches(head, words, n=1, cutoff=0.5)
        if close:
            return f"没有「{head}」这个指令，您是不是想发送「{self._by_word[close[0]].usage}」？"
        return f"没看懂「{text[:20]}」。" + HELP_HINT

    def _dispatch_event(self, message: Incoming, ctx: Context) -> str | None:
        event = message.event
        if event == "click" and message.key in self._clicks:
            return self.run_text(self._clicks[message.key], message, ctx)
        if event in ("scan", "subscribe", "subscribe_scan") and message.key:
            reply = self._dispatch_scene(message, ctx)
            if event == "scan":
                return reply
            # Following by scanning: welcome first, then what the code was for.
            welcome = self._events["subscribe"](message, ctx) if "subscribe" in self._events else None
            return "\n\n".join(part for part in (welcome, reply) if part) or None
        handler = self._events.get(event)
        return handler(message, ctx) if handler else None

    def _dispatch_scene(self, message: Incoming, ctx: Context) -> str | None:
        for prefix, handler in self._scenes.items():
            if message.key.startswith(prefix):
                ctx.rest = message.key[len(prefix):]
                return handler(message, ctx)
        return "该二维码已失效或无法识别。" + HELP_HINT
