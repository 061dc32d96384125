"""The chatbot router: text commands by Chinese keyword, events by type, menu clicks, QR scenes.

A handler has one signature, `handler(message, ctx) -> str | None`; it calls the domain and returns
the reply text (None: nothing to say). Domain errors become their Chinese message here.

Idempotency: a command registered with `effect=True` (and every media and QR-scene handler) changes
something, so before it runs the message's key (`dispatch(..., dedup_key=...)`) is inserted into the
session's transaction (models.handled); the domain function's commit commits it with the action.
A second delivery of the message finds the key and answers what the first one answered; a refusal
(DomainError) rolls the key back with the action, so a retry tries again. Read-only commands write
nothing.

Typos: the longest keyword that starts a text wins, so a mistyped longer command would run a shorter
one ("积分帮" → 积分). When the text glued to a keyword is more than it can take (it takes no
arguments, or the text does not fit its pattern) and the text is a near miss of another command, the
router answers with that command instead of running anything (see Router._near_miss).
"""

import difflib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy.orm import Session

from config import DEFAULTS, Settings
from handlers.presenter import BIND_HOW, HELP_HINT, MANAGERS_ONLY, chat_text
from models import DomainError, Member, authz
from models.handled import claim_message, store_refusal, store_reply
from models.member import member_for_openid, role_for_openid
from models.org import edit_distance
from models.text import FORBIDDEN, bad_character, describe_character

_SPACES = re.compile(r"\s+")
# Control characters other than tab, LF and CR (and U+FFFE/U+FFFF): never typed on purpose; the
# same rule as every other door's (models/text.py).
_CONTROL = FORBIDDEN
_SPOKEN_END = "。！？.!?"  # dropped from the end of a recognised voice message


def control_hint(text: str) -> str:
    """The refusal of a message holding a character no door stores, naming it."""
    return f"消息包含不允许的控制字符（{describe_character(bad_character(text))}），请删除后重新发送。"


VOICE_HINT = "没能识别这条语音，请发送文字指令。" + HELP_HINT
UNSUPPORTED_HINT = "暂时只能处理文字指令。" + HELP_HINT


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
    msg_type: str  # WeChat's MsgType: text, event, image, voice, video, location, link …
    content: str = ""
    event: str = ""  # WeChat's Event: subscribe, unsubscribe, SCAN, CLICK, LOCATION … (any case)
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
    settings: Settings = DEFAULTS
    args: list[str] = field(default_factory=list)
    rest: str = ""  # the text after the command keyword (folded: half-width, single spaces)
    match: re.Match | None = None
    typed: str = ""  # the text as typed (`rest` is the end of it, folded)
    dedup_key: str = ""  # the message's identity; "" : not de-duplicated in the database
    claimed: bool = False  # the key is in the session's transaction (an effect is under way)

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
    managers_only: bool = False  # only those models/authz.py calls managers (书记, 管理员) may run it
    needs_member: bool = False
    # True: running the command changes something (it is made idempotent by the message's key);
    # "args": only when arguments follow the keyword (组织生活 alone lists, 组织生活 … sets); False: reads.
    effect: bool | str = False

    @property
    def takes_args(self) -> bool:
        """Whether anything may follow the keyword: a pattern, arguments with an effect ("args"), or
        a summary whose usage part (before " — ") names arguments ("帮助 [主题] — …")."""
        usage = self.summary.split(" — ")[0].strip()
        return self.pattern is not None or self.effect == "args" or usage not in ("", self.keyword)

    def has_effect(self, rest: str) -> bool:
        return self.effect is True or (self.effect == "args" and bool(rest))

    def allowed_for(self, role: str | None) -> bool:
        """Whether a caller with `role` (None: not bound) may run the command. The router knows the
        caller by role only, so that 帮助 and this check need not load the member (the webhook
        caches roles); models/authz.py says which roles manage."""
        if self.managers_only:
            return authz.is_manager_role(role)
        return not self.needs_member or role is not None


def _form(word: str) -> str:
    """The form a command word is compared in: a Latin one in lower case."""
    return word.lower() if word.isascii() else word


def _typo_allowance(word: str) -> int:
    """How many characters a typed word may differ by from a command word to count as its typo."""
    return 1 if len(word) <= 4 else 2


class _Duplicate(Exception):
    """This delivery repeats a message already handled: answer `reply` (stored by the first)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Router:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self._by_word: dict[str, Command] = {}
        # The words, longest first ("取消报名" before "报名"), each with the form it is compared in:
        # a Latin word case-insensitively ("HELP" is "help").
        self._longest_first: list[tuple[str, str, bool]] = []
        self._events: dict[str, Handler] = {}
        self._clicks: dict[str, str] = {}
        self._scenes: dict[str, tuple[Handler, bool]] = {}
        self._media: dict[str, tuple[Handler, bool]] = {}

    # Registration -------------------------------------------------------------------------
    def command(self, keyword: str, *, aliases=(), summary="", pattern: str | None = None, usage="",
                managers_only=False, needs_member=False, effect: bool | str = False) -> Callable[[Handler], Handler]:
        """Register a text command under its keyword and aliases; `effect` says whether it changes
        anything (see Command.effect); `managers_only`: only managers (models/authz.py) may run it."""
        if effect not in (True, False, "args"):
            raise ValueError(f"effect must be True, False or 'args', not {effect!r}")

        def decorator(handler: Handler) -> Handler:
            cmd = Command(keyword, handler, tuple(aliases), summary,
                          re.compile(pattern) if pattern is not None else None, usage or keyword,
                          managers_only, needs_member or managers_only, effect)
            for word in (keyword, *cmd.aliases):
                if not word or normalize_text(word) != word or " " in word:
                    raise ValueError(f"invalid command word {word!r}")
                if _form(word) in {_form(w) for w in self._by_word}:
                    raise ValueError(f"command word {word!r} registered twice")
                self._by_word[word] = cmd
            self._longest_first = [(w, _form(w), w.isascii()) for w in sorted(self._by_word, key=len, reverse=True)]
            self.commands.append(cmd)
            return handler

        return decorator

    def event(self, name: str) -> Callable[[Handler], Handler]:
        """Register the handler of an event type (lower case, as wechatpy names them)."""

        def decorator(handler: Handler) -> Handler:
            self._events[name.lower()] = handler
            return handler

        return decorator

    def scene(self, prefix: str, *, effect: bool = True) -> Callable[[Handler], Handler]:
        """Register the handler of parametric QR codes whose scene starts with `prefix` (it has an
        effect, such as a sign-in, unless `effect=False`)."""

        def decorator(handler: Handler) -> Handler:
            self._scenes[prefix] = (handler, effect)
            return handler

        return decorator

    def media(self, msg_type: str, *, effect: bool = True) -> Callable[[Handler], Handler]:
        """Register the handler of a non-text message type (image …; it has an effect, such as a
        photo attached, unless `effect=False`). A voice message is read as its recognised text."""

        def decorator(handler: Handler) -> Handler:
            self._media[msg_type.lower()] = (handler, effect)
            return handler

        return decorator

    def click(self, key: str, text: str) -> None:
        """Map a menu button's key to the command text it stands for."""
        self._clicks[key] = text

    # Dispatch -----------------------------------------------------------------------------
    def dispatch(self, message: Incoming, session: Session, now: datetime,
                 settings: Settings = DEFAULTS, *,
                 role_of: Callable[[str], str | None] | None = None, dedup_key: str = "") -> str | None:
        """Return the reply to a message (None: nothing to say). With `dedup_key` (the message's
        identity), a handler with an effect runs at most once per key, whatever Redis does."""
        ctx = Context(session=session, message=message, now=now, router=self, settings=settings,
                      role_of=role_of, dedup_key=dedup_key)
        try:
            reply = self._dispatch(message, ctx)
        except _Duplicate as duplicate:
            return duplicate.reply or None
        except DomainError as exc:
            session.rollback()
            reply = chat_text(exc)
            if ctx.claimed:
                store_refusal(session, dedup_key, reply)
            return reply
        if ctx.claimed:
            store_reply(session, dedup_key, reply or "")
        return reply

    def _dispatch(self, message: Incoming, ctx: Context) -> str | None:
        kind = message.msg_type.lower()
        if kind == "text":
            return self.run_text(message.content, message, ctx)
        if kind == "event":
            return self._dispatch_event(message, ctx)
        if kind == "voice" and "voice" not in self._media:
            return self._voice(message, ctx)
        handler, effect = self._media.get(kind, (None, False))
        if handler is None:
            return UNSUPPORTED_HINT  # video, shortvideo, link, file, location …
        if effect:
            self._claim(ctx)
        return handler(message, ctx)

    def _claim(self, ctx: Context) -> None:
        """Put the message's key into the transaction before an effect; a repeat ends here."""
        if not ctx.dedup_key or ctx.claimed:
            return
        first, reply = claim_message(ctx.session, ctx.dedup_key, ctx.now)
        if not first:
            raise _Duplicate(reply)
        ctx.claimed = True

    def run_text(self, text: str, message: Incoming, ctx: Context) -> str | None:
        """Run the command a text names (also used for menu clicks, voice and scanned codes)."""
        if _CONTROL.search(text or ""):
            return control_hint(text)
        ctx.typed, text = text, normalize_text(text)
        if not text:
            return HELP_HINT
        found = self.match(text)
        if found is None:
            return self._unknown(text, ctx)
        cmd, rest = found
        refusal = self._near_miss(text, cmd, rest, ctx) or self._refusal(cmd, ctx)
        if refusal:
            return refusal
        ctx.rest = rest
        ctx.args = rest.split() if rest else []
        if cmd.pattern is not None:
            ctx.match = cmd.pattern.fullmatch(rest)
            if ctx.match is None:
                return f"格式不对。用法：{cmd.usage}"
        if cmd.has_effect(rest):
            self._claim(ctx)
        return cmd.handler(message, ctx)

    @staticmethod
    def _refusal(cmd: Command, ctx: Context) -> str | None:
        """Why the caller may not run `cmd` (None: they may)."""
        if cmd.allowed_for(ctx.role):
            return None
        if ctx.role is None:
            return "请先绑定党员身份：" + BIND_HOW
        return MANAGERS_ONLY.format(keyword=cmd.keyword)

    def _voice(self, message: Incoming, ctx: Context) -> str | None:
        """A voice message is handled as the text WeChat recognised in it, if any."""
        recognised = message.fields.get("Recognition") or ""
        if _CONTROL.search(recognised):
            return control_hint(recognised)
        spoken = recognised.strip().rstrip(_SPOKEN_END).strip()
        if not spoken:
            return VOICE_HINT
        return self.run_text(spoken, message, ctx)

    def match(self, text: str) -> tuple[Command, str] | None:
        """Return the command whose keyword starts `text` (the longest one) and the rest."""
        lower = text[:32].lower()  # keywords are short; only Latin ones are compared in lower case
        for word, form, latin in self._longest_first:
            if (lower.startswith(form) if latin else text.startswith(word)):
                rest = text[len(word):]
                # "帮助" matches "帮助" and "帮助 x", and a Chinese keyword may run into its
                # arguments ("认领#12"); a Latin one must end at a word boundary ("help").
                if word.isascii() and rest[:1].isalnum():
                    continue
                return self._by_word[word], rest.strip()
        return None

    def _near_miss(self, text: str, cmd: Command, rest: str, ctx: Context) -> str | None:
        """The suggestion to answer instead of running `cmd`, when what is glued to its keyword
        makes the text a typo of another command ("积分帮" is 积分榜 mistyped, not 积分 with "帮").

        Only a keyword followed without a space by text it cannot take (it takes no arguments, or
        the text does not fit its pattern) is suspect; the text's first word is then compared with
        the other commands' words, and for a keyword that takes no arguments what follows it too
        ("我的积份": 积分). None: run `cmd` as before."""
        word = self._suspect_word(text, cmd, rest)
        if not word:
            return None
        head, _, tail = text.partition(" ")
        best = self._closest_word(cmd, word, head, tail, ctx.role)
        if best is None:
            return None
        candidate, after = best
        other = self._by_word[candidate]
        if after:
            shown = f"{candidate} {after if len(after) <= 30 else after[:30] + '…'}"
        elif other.takes_args and other.pattern is not None and not other.pattern.fullmatch(""):
            shown = other.usage  # "活动位置 #编号 [半径米]": the arguments it needs
        else:
            shown = candidate
        typed = head if len(head) <= 12 else head[:12] + "…"
        return f"没有「{typed}」这个指令，您是不是想发送「{shown}」？"

    def _suspect_word(self, text: str, cmd: Command, rest: str) -> str:
        """The word of `cmd` that starts `text` when text it cannot take is glued to it ("": none)."""
        if not rest:
            return ""
        word = next((w for w, _, _ in self._longest_first if text.startswith(w) and self._by_word[w] is cmd), "")
        if not word or word.isascii() or text[len(word):len(word) + 1] == " ":
            return ""  # "积分 榜": separated on purpose
        if cmd.takes_args and (cmd.pattern is None or cmd.pattern.fullmatch(rest)):
            return ""
        return word

    def _closest_word(self, cmd: Command, word: str, head: str, tail: str,
                      role: str | None) -> tuple[str, str] | None:
        """The other command word (Chinese, visible to `role`) that the typed text is a typo of,
        the closest and then the longest, and what follows it; None: none is close enough."""
        glued = head[len(word):]
        mine = {word, cmd.keyword, *cmd.aliases}
        best: tuple[int, int, str, str] | None = None  # (distance, -length, word, what follows it)
        for other in self.visible_commands(role):
            if other is cmd:
                continue
            for candidate in (other.keyword, *other.aliases):
                if candidate in mine or candidate.isascii():
                    continue
                # The first word against a longer command's word ("积分帮" → 积分榜); what follows a
                # keyword without arguments against any word of the same beginning ("积份" → 积分).
                tries = [(head, tail)] if len(candidate) > len(word) else []
                if not cmd.takes_args and len(glued) > 1 and glued[0] == candidate[0]:
                    tries.append((glued, tail))
                for typed, after in tries:
                    distance = edit_distance(typed, candidate)
                    if distance <= _typo_allowance(candidate) and (best is None or
                                                                   (distance, -len(candidate)) < best[:2]):
                        best = (distance, -len(candidate), candidate, after)
        return None if best is None else best[2:]

    def visible_commands(self, role: str | None) -> list[Command]:
        """The commands to list in 帮助 for a caller with `role` (None: not bound)."""
        return [c for c in self.commands if c.allowed_for(role) or (role is None and not c.managers_only)]

    def _unknown(self, text: str, ctx: Context) -> str:
        head = text.split(" ")[0][:6]
        words = [w for c in self.visible_commands(ctx.role) for w in (c.keyword, *c.aliases)]
        close = difflib.get_close_matches(head, words, n=1, cutoff=0.5)
        if close:
            return f"没有「{head}」这个指令，您是不是想发送「{self._by_word[close[0]].usage}」？"
        return f"没看懂「{text[:20]}」。" + HELP_HINT

    def _dispatch_event(self, message: Incoming, ctx: Context) -> str | None:
        event = message.event.lower()
        key = message.key
        if event == "click" and key in self._clicks:
            return self.run_text(self._clicks[key], message, ctx)
        if event == "click" and "click" not in self._events:
            # A menu button whose key this server does not know (a menu set up ahead of the code).
            return "这个菜单按钮暂未开通。" + HELP_HINT
        if event in ("scancode_waitmsg", "scancode_push"):
            return self._scanned(message, ctx, waiting=event == "scancode_waitmsg")
        # Following by scanning a parametric QR code: raw "subscribe" with EventKey "qrscene_<scene>"
        # (wechatpy calls it "subscribe_scan" and removes the prefix).
        if event == "subscribe_scan" or (event == "subscribe" and key and not key.startswith(("scanbarcode|",
                                                                                            "scanimage|"))):
            reply = self._dispatch_scene(key.removeprefix("qrscene_"), message, ctx)
            welcome = self._events["subscribe"](message, ctx) if "subscribe" in self._events else None
            return "\n\n".join(part for part in (welcome, reply) if part) or None
        if event == "scan" and key:
            return self._dispatch_scene(key, message, ctx)
        handler = self._events.get(event)
        # An event nobody handles (PUBLISHJOBFINISH, card and store events …) gets no reply.
        return handler(message, ctx) if handler else None

    def _dispatch_scene(self, scene: str, message: Incoming, ctx: Context) -> str | None:
        found = self._scene_for(scene)
        if found is None:
            return "该二维码已失效或无法识别。" + HELP_HINT
        handler, rest = found
        return self._run_scene(handler, rest, message, ctx)

    def _scene_for(self, scene: str) -> tuple[tuple[Handler, bool], str] | None:
        for prefix, entry in self._scenes.items():
            if scene.startswith(prefix):
                return entry, scene[len(prefix):]
        return None

    def _run_scene(self, entry: tuple[Handler, bool], rest: str, message: Incoming, ctx: Context) -> str | None:
        handler, effect = entry
        ctx.rest = rest
        if effect:
            self._claim(ctx)
        return handler(message, ctx)

    def _scanned(self, message: Incoming, ctx: Context, *, waiting: bool) -> str | None:
        """A code scanned with a menu's scanner: a sign-in scene or a command is handled as such.
        For scancode_waitmsg the client shows 消息接收中 until we answer, so it always gets a reply;
        for scancode_push the client shows the result itself, so only a command or scene is answered."""
        scanned = (message.fields.get("ScanResult") or "").strip()
        found = self._scene_for(scanned) if scanned else None
        if found is not None:
            return self._run_scene(found[0], found[1], message, ctx)
        if scanned and not _CONTROL.search(scanned) and self.match(normalize_text(scanned)) is not None:
            return self.run_text(scanned, message, ctx)
        if not waiting:
            return None
        if not scanned:
            return "没有读到二维码的内容，请重新扫描。"
        shown = _CONTROL.sub("", scanned)
        shown = shown if len(shown) <= 100 else shown[:100] + "…"
        return f"已收到扫码内容：{shown}\n这不是本公众号的指令或签到二维码。" + HELP_HINT


class Handlers:
    """One handler module's registrations, collected at import by decorators that mirror the
    router's (`command`, `event`, `scene`, `media`, `click`); `register(router)` binds them, in the
    order written, so that every `build_router()` gets a fresh router with the same handlers.

        on = Handlers()

        @on.command("积分", summary="查看积分")
        def points(message: Incoming, ctx: Context) -> str: ...

        register = on.register
    """

    def __init__(self) -> None:
        self._calls: list[tuple[str, tuple, dict, Handler | None]] = []

    def _later(self, method: str, *args, **options) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self._calls.append((method, args, options, handler))
            return handler

        return decorator

    def command(self, keyword: str, **options) -> Callable[[Handler], Handler]:
        return self._later("command", keyword, **options)

    def event(self, name: str) -> Callable[[Handler], Handler]:
        return self._later("event", name)

    def scene(self, prefix: str, **options) -> Callable[[Handler], Handler]:
        return self._later("scene", prefix, **options)

    def media(self, msg_type: str, **options) -> Callable[[Handler], Handler]:
        return self._later("media", msg_type, **options)

    def click(self, key: str, text: str) -> None:
        self._calls.append(("click", (key, text), {}, None))

    def register(self, router: Router) -> None:
        for method, args, options, handler in self._calls:
            bind = getattr(router, method)
            if handler is None:
                bind(*args, **options)
            else:
                bind(*args, **options)(handler)
