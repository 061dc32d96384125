"""A photo sent to the Official Account: attached to the meeting record its sender just wrote, else to
the wish they just reported fulfilled (each within its minutes, from the settings)."""

from handlers.router import Context, Handlers, Incoming
from models.records import attach_record_photo
from models.wishes import attach_photo

on = Handlers()


@on.media("image")
def photo(message: Incoming, ctx: Context) -> str:
    member = ctx.member
    record = attach_record_photo(ctx.session, member, message.media_id, ctx.now, ctx.settings) if member else None
    if record is not None:
        activity = record.activity
        return f"照片已附在{activity.number}「{activity.title}」的会议记录上，共 {len(record.photos)} 张。"
    wish = attach_photo(ctx.session, member, message.media_id, now=ctx.now, settings=ctx.settings) if member else None
    if wish is None:
        return (f"已收到图片。如需作为心愿完成凭证，请先发送「完成 #编号 说明」，"
                f"再在{ctx.settings.wish_photo_minutes}分钟内发送照片。")
    return f"照片已附在心愿 #{wish.id}「{wish.title}」上，共 {len(wish.photos)} 张。"


register = on.register
