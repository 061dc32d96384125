"""会议记录: a secretary records what an organizational-life occasion discussed and decided; photos
sent within RECORD_PHOTO_MINUTES are attached (handlers/photos.py)."""

import re

from handlers.router import Context, Handlers, Incoming
from models.activity import get_managed_activity
from models.records import RecordText, write_record

on = Handlers()

# Optional labelled parts before the content (主持人：张三 记录人：李四 议题：…) and a 决议 after it.
_LABELS = re.compile(r"^\s*(?P<label>主持人|主持|记录人|记录|议题)[:：]\s*(?P<value>\S+)\s*")
_DECISIONS = re.compile(r"\s*决议[:：]\s*(?P<decisions>.+)$", re.S)
_FIELDS = {"主持人": "chair", "主持": "chair", "记录人": "recorder", "记录": "recorder", "议题": "topic"}


def parse_record(text: str) -> RecordText:
    """The labelled parts of a record typed in one message, the rest as its content."""
    values: dict[str, str] = {}
    while match := _LABELS.match(text):
        values[_FIELDS[match["label"]]] = match["value"]
        text = text[match.end():]
    decisions = _DECISIONS.search(text)
    if decisions:
        values["decisions"] = decisions["decisions"].strip()
        text = text[:decisions.start()]
    return RecordText(content=text.strip(), **values)


@on.command("会议记录", summary="会议记录 #编号 [主持人：姓名] 内容 [决议：…] — 记录组织生活（书记）",
            pattern=r"(?s)#?(?P<n>\d{1,12}) (?P<text>.+)",
            usage="会议记录 #编号 内容，例如：会议记录 #3 主持人：王书记 学习党章第一章 决议：下月开展志愿服务",
            managers_only=True, effect=True)
def record(message: Incoming, ctx: Context) -> str:
    activity = get_managed_activity(ctx.session, int(ctx.match["n"]), ctx.member)
    text = parse_record(ctx.match["text"])
    saved = write_record(ctx.session, activity, ctx.member, text, ctx.now)
    minutes = ctx.settings.record_photo_minutes
    return (f"已保存{activity.number}「{activity.title}」的会议记录（议题：{saved.topic}，"
            f"主持人：{saved.chair or '未填写'}，记录人：{saved.recorder}）。"
            f"{minutes}分钟内发送的照片会附在这份记录上。")


register = on.register
