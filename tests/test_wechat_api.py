"""Our wechatpy client reaches the configured base URL for every call, the token is shared."""

import json

from scheduler.wechat_api import official_account_client


def test_every_call_goes_to_the_fake_server_and_the_token_is_shared(app, wechat_api):
    store = app.extensions["redis"]
    client = official_account_client(app.extensions["settings"], store)
    client.message.send_text("o-user", "您好")
    # wechatpy hard-codes https://api.weixin.qq.com/cgi-bin/token; it still reached the fake.
    assert len(wechat_api.calls_to("/cgi-bin/token")) == 1
    sent = wechat_api.calls_to("/cgi-bin/message/custom/send")
    assert sent[0].body == {"touser": "o-user", "msgtype": "text", "text": {"content": "您好"}}
    stored = json.loads(store.get(f"lx:wechatpy:{app.extensions['settings'].wechat_app_id}_access_token"))
    assert sent[0].params["access_token"] == stored

    # A second process (another client over the same Redis) uses the stored token.
    other = official_account_client(app.extensions["settings"], store)
    other.message.send_text("o-user", "再见")
    assert len(wechat_api.calls_to("/cgi-bin/token")) == 1


def test_a_rejected_token_is_refreshed_once_and_the_call_retried(app, wechat_api):
    client = official_account_client(app.extensions["settings"], app.extensions["redis"])
    client.call(lambda: client.message.send_text("o-user", "一"))
    wechat_api.expire_tokens()
    client.call(lambda: client.message.send_text("o-user", "二"))
    assert len(wechat_api.calls_to("/cgi-bin/token")) == 2
    bodies = [c.body["text"]["content"] for c in wechat_api.calls_to("/cgi-bin/message/custom/send")]
    assert bodies == ["一", "二", "二"]  # the second was refused once (40001), then sent again


def test_the_fake_scripts_errors(app, wechat_api):
    import pytest
    from wechatpy.exceptions import APILimitedException, WeChatClientException

    client = official_account_client(app.extensions["settings"], app.extensions["redis"])
    wechat_api.fail("/cgi-bin/message/custom/send", 45015)
    with pytest.raises(WeChatClientException) as info:
        client.message.send_text("o-user", "x")
    assert info.value.errcode == 45015
    wechat_api.fail("/cgi-bin/message/custom/send", 45009)
    with pytest.raises(APILimitedException):
        client.message.send_text("o-user", "x")
    wechat_api.fail("/cgi-bin/message/custom/send", None, status=502)
    with pytest.raises(WeChatClientException):
        client.message.send_text("o-user", "x")
    client.message.send_text("o-user", "ok")
    assert len(wechat_api.calls_to("/cgi-bin/message/custom/send")) == 4
