"""The chatbot: text commands and events → domain calls → reply text. Never imports app/."""

from handlers import account, activities, delivery, events, notices, photos, records, wishes
from handlers.router import Context, Incoming, Router, normalize_text

__all__ = ["Context", "Incoming", "Router", "build_router", "normalize_text"]


def build_router() -> Router:
    """Return a router with every command and event registered (a fresh one each call)."""
    router = Router()
    for module in (account, events, wishes, activities, records, photos, notices, delivery):
        module.register(router)
    return router
