"""The console lets in a signed-in secretary or admin and sends everyone else to the login page;
its forms' tokens last as long as its session."""

import time

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from models import Member


def test_only_a_signed_in_manager_passes(client, make_member, console_login):
    sec = make_member("书记甲", role="书记")
    assert client.get("/console/").status_code == 302
    console_login(client, sec)
    r = client.get("/console/")
    assert r.status_code == 200 and "书记甲" in r.get_data(as_text=True)
    plain = make_member("党员乙", phone="13900000002")
    console_login(client, plain)
    assert client.get("/console/").status_code == 302


class _Then(URLSafeTimedSerializer):
    """Flask-WTF's token serializer, signing as if `hours` ago."""

    def __init__(self, *args, hours: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hours = hours

    def make_signer(self, salt=None):
        signer = super().make_signer(salt)
        signer.get_timestamp = lambda: int(time.time() - self.hours * 3600)
        return signer


def test_a_form_token_lasts_as_long_as_the_session(app, client, make_member, console_login, engine):
    sec = make_member("书记甲", role="书记")
    member = make_member("党员乙", phone="13900000002")
    console_login(client, sec)
    assert client.get(f"/console/members/{member.id}").status_code == 200  # the page gives the form its token
    with client.session_transaction(path="/console/") as console_session:
        raw = console_session["csrf_token"]

    def edit(hours: float, name: str):
        token = _Then(app.config["SECRET_KEY"], salt="wtf-csrf-token", hours=hours).dumps(raw)
        return client.post(f"/console/members/{member.id}", data={"csrf_token": token, "name": name,
                                                                  "phone": "13900000002"})

    assert edit(7.5, "党员丙").status_code in (200, 302)  # a form opened 7½ hours ago still sends
    with Session(engine) as s:
        assert s.get(Member, member.id).name == "党员丙"
    late = edit(8.5, "党员丁")  # older than the session itself (CONSOLE_SESSION_HOURS, 8)
    assert late.status_code == 400 and "页面已过期" in late.get_data(as_text=True)
    with Session(engine) as s:
        assert s.get(Member, member.id).name == "党员丙"
