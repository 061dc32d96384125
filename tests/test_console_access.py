"""The console lets in a signed-in secretary or admin and sends everyone else to the login page."""


def test_only_a_signed_in_manager_passes(client, make_member, console_login):
    sec = make_member("书记甲", role="书记")
    assert client.get("/console/").status_code == 302
    console_login(client, sec)
    r = client.get("/console/")
    assert r.status_code == 200 and "书记甲" in r.get_data(as_text=True)
    plain = make_member("党员乙", phone="13900000002")
    console_login(client, plain)
    assert client.get("/console/").status_code == 302
