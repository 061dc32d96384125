"""Settings that would only fail later are refused when they are loaded."""

import pytest

from config import ConfigError, load_config


def test_birthday_date_field_is_join_date_or_full_member_date(monkeypatch):
    monkeypatch.delenv("BIRTHDAY_DATE_FIELD", raising=False)
    assert load_config()["BIRTHDAY_DATE_FIELD"] == "join_date"
    monkeypatch.setenv("BIRTHDAY_DATE_FIELD", " full_member_date ")
    assert load_config()["BIRTHDAY_DATE_FIELD"] == "full_member_date"
    monkeypatch.setenv("BIRTHDAY_DATE_FIELD", "birthday")
    with pytest.raises(ConfigError, match=r"BIRTHDAY_DATE_FIELD='birthday' is not supported; use one of: "
                                          r"join_date \(入党日期\), full_member_date \(转正日期\)"):
        load_config()


def test_the_app_does_not_start_with_a_bad_birthday_date_field(app_factory):
    with pytest.raises(ConfigError, match="BIRTHDAY_DATE_FIELD='转正日期'"):
        app_factory(BIRTHDAY_DATE_FIELD="转正日期")
