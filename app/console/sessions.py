"""The app's sessions: none for the webhook, the API and the other doors (no request pays for
opening one); the console's for /console."""

from flask.sessions import SecureCookieSessionInterface, SessionInterface

CONSOLE_PREFIX = "/console"


class Sessions(SessionInterface):
    """A session only under /console; every other request gets a null one."""

    def __init__(self) -> None:
        self.console = SecureCookieSessionInterface()

    def open_session(self, app, request):
        if request.path.startswith(CONSOLE_PREFIX):
            return self.console.open_session(app, request)
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        if not self.is_null_session(session):
            self.console.save_session(app, session, response)
