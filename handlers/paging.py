"""Replies that fit in one WeChat text bubble.

WeChat drops a passive text reply whose Content is longer than 2,048 bytes (UTF-8, about 680
Chinese characters) without a word to the user. Handlers therefore build long answers as pages, and
the pages are stateless: the page number is part of the command (「出勤 #3 2」, 「消息 12 2」), nothing
is remembered between messages, and a page is the same whoever asks and whenever (while the data
stays the same). Pages are cut by bytes, not by a count of items, so a page of short names holds
many and a page of long titles few.

`page_reply` lays out one page of a reply made of a head line, sections of items and a tail;
`clip`, `short` and `text_items` make single texts fit. The renderer (app/reply.py) cuts anything
still too long as a last resort and logs it: a handler that relies on that has a bug.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

REPLY_MAX_BYTES = 2048  # WeChat's limit on a passive text reply's Content, in UTF-8 bytes (a protocol fact)
ELLIPSIS = "…"
_HEAD_MAX = 600  # a head or tail never takes more than this of a page (bytes)
_TAIL_MAX = 400
_ITEM_CHUNK = 600  # free text is cut into pieces of at most this many bytes (see text_items)
_LARGEST_PAGE = 999  # page numbers are reserved room for this many pages


def size(text: str) -> int:
    """The bytes WeChat counts: UTF-8 (a lone surrogate counted as the 3 bytes it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def cut(text: str, max_bytes: int) -> str:
    """The longest start of `text` within `max_bytes` bytes, ending at a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    end = max(0, max_bytes)
    while end > 0 and (data[end] & 0xC0) == 0x80:  # a continuation byte: back to the character's start
        end -= 1
    return data[:end].decode("utf-8", "surrogatepass")


def clip(text: str, max_bytes: int, mark: str = ELLIPSIS) -> str:
    """`text` if it fits in `max_bytes`, else its start and `mark` within them."""
    if size(text) <= max_bytes:
        return text
    return cut(text, max_bytes - size(mark)) + mark


def short(text: str, chars: int = 20) -> str:
    """One line of at most `chars` characters (plus "…"), for a title in a list."""
    line = " ".join((text or "").split())
    return line if len(line) <= chars else line[:chars] + ELLIPSIS


def text_items(text: str, max_bytes: int = _ITEM_CHUNK) -> list[str]:
    """Free text (a notice's body, a wish's details) as items for a section joined by line
    breaks: its lines, a line longer than `max_bytes` in pieces that each fit (broken after
    punctuation or a space near the end of a piece when there is one)."""
    items: list[str] = []
    for line in (text or "").split("\n"):
        while size(line) > max_bytes:
            piece = cut(line, max_bytes)
            # Prefer to break after punctuation or a space in the last third of the piece.
            best = max(piece.rfind(mark) for mark in "。！？；，,.!?; ")
            if best >= len(piece) * 2 // 3:
                piece = piece[:best + 1]
            items.append(piece)
            line = line[len(piece):]
        items.append(line)
    return items


@dataclass(frozen=True)
class Section:
    """Items under a label: `缺席：张三、李四` (sep "、") or `记录：` and one item a line (sep "\\n").
    A section with no items shows `label + empty` (empty None: the section is left out)."""

    items: Sequence[str]
    label: str = ""
    sep: str = "\n"
    empty: str | None = None

    def piece(self, items: Sequence[str]) -> str:
        joint = "\n" if self.label and self.sep == "\n" else ""
        return self.label + joint + self.sep.join(items)

    def start_cost(self) -> int:
        return size(self.label) + (1 if self.label and self.sep == "\n" else 0)


def pages_of(sections: Sequence[Section], budget: int) -> list[list[tuple[Section, list[str]]]]:
    """Pack the sections' items greedily into pages of at most `budget` bytes each (pieces joined
    by line breaks); an item too long for a page by itself is clipped. Deterministic: the same
    items give the same pages, which is what makes a page number in a command enough."""
    pages: list[list[tuple[Section, list[str]]]] = [[]]
    used = 0
    for section in sections:
        if not section.items:
            if section.empty is None:
                continue
            items, atomic = [section.empty], True
        else:
            items, atomic = list(section.items), False
        current: list[str] | None = None  # this section's items on the current page
        for item in items:
            room = budget - section.start_cost()
            item = clip(item, max(room, 1))
            if current is not None and not atomic:
                cost = size(section.sep) + size(item)
            else:
                cost = (1 if pages[-1] else 0) + section.start_cost() + size(item)
            if used + cost > budget and pages[-1]:
                pages.append([])
                used = 0
                current = None
                cost = section.start_cost() + size(item)
            if current is None:
                current = []
                pages[-1].append((section, current))
            current.append(item)
            used += cost
    return pages


def page_reply(head: str, sections: Sequence[Section], page: int, command: Callable[[int], str], *,
               tail: str = "", limit: int = REPLY_MAX_BYTES) -> str:
    """Page `page` (1-based) of a reply: the head (with 「（第 k/n 页）」 when there are several),
    that page's share of the sections, the tail, and 「发送「<command(k+1)>」看下一页。」 but on the
    last page. `command(n)` is the text that asks for page n, e.g. 「出勤 #3 2」."""
    head = clip(head, _HEAD_MAX)
    tail = clip(tail, _TAIL_MAX)
    marker_room = size(f"（第 {_LARGEST_PAGE}/{_LARGEST_PAGE} 页）")
    next_room = size(next_page_hint(command(_LARGEST_PAGE))) + 1
    fixed = size(head) + marker_room + (size(tail) + 1 if tail else 0) + next_room + 1
    budget = max(limit - fixed, 64)
    pages = pages_of(sections, budget)
    count = len(pages)
    if page < 1 or page > count:
        return no_page(page, count, command(1))
    lines = [head + (f"（第 {page}/{count} 页）" if count > 1 else "")]
    lines += [section.piece(items) for section, items in pages[page - 1]]
    if tail:
        lines.append(tail)
    if page < count:
        lines.append(next_page_hint(command(page + 1)))
    return "\n".join(line for line in lines if line)


def next_page_hint(text: str) -> str:
    """The line under a page that is not the last: 「发送「<text>」看下一页。」 (text: the command)."""
    return f"发送「{text}」看下一页。"


def no_page(page: int, count: int, first: str | None = None) -> str:
    """The answer to a page number beyond the pages, with the command of page 1 when given."""
    return f"没有第 {page} 页，共 {count} 页。" + (f"发送「{first}」从第 1 页看起。" if first else "")


def with_page(command: str) -> Callable[[int], str]:
    """The page command of `command`: page 1 is the command itself, page n is 「<command> n」."""
    return lambda page: command if page == 1 else f"{command} {page}"


# The page number typed after a command: 「2」, 「第2页」, 「第 2 页」.
PAGE = r"(?:第 ?)?(?P<page>\d{1,3})(?: ?页)?"


def page_number(text: str | None) -> int:
    return int(text) if text else 1
