"""WeChat's delivery reports of template messages (TEMPLATESENDJOBFINISH): recorded, not answered."""

from handlers.router import Context, Handlers, Incoming
from models.outbox import record_template_report

on = Handlers()


@on.event("templatesendjobfinish")
def template_finished(message: Incoming, ctx: Context) -> None:
    # The fields arrive as MsgID and Status; a repeated or late report changes nothing.
    record_template_report(ctx.session, message.fields.get("MsgID") or "", message.fields.get("Status") or "",
                           ctx.now)


register = on.register
