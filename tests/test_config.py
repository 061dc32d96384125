"""Settings that would only fail later are refused when they are loaded."""

import dataclasses

import pytest

from config import ConfigError, load_config


def test_birthday_date_field_is_join_date_or_full_member_date(monkeypatch):
    monkeypatch.delenv("BIRTHDAY_DATE_FIELD", raising=False)
    assert load_config().birthday_date_field == "join_date"
    monkeypatch.setenv("BIRTHDAY_DATE_FIELD", " full_member_date ")
    assert load_config().birthday_date_field == "full_member_date"
    monkeypatch.setenv("BIRTHDAY_DATE_FIELD", "birthday")
    with pytest.raises(ConfigError, match=r"BIRTHDAY_DATE_FIELD='birthday' is not supported; use one of: "
                                          r"join_date \(入党日期\), full_member_date \(转正日期\)"):
        load_config()


def test_the_app_does_not_start_with_a_bad_birthday_date_field(app_factory):
    with pytest.raises(ConfigError, match="BIRTHDAY_DATE_FIELD='转正日期'"):
        app_factory(BIRTHDAY_DATE_FIELD="转正日期")


def test_the_settings_are_one_frozen_object_typed_from_the_environment(monkeypatch):
    monkeypatch.setenv("WISH_MAX_POINTS", "30")
    monkeypatch.setenv("SEND_RATE_LIMIT", "2.5")
    settings = load_config({"WISH_FULFIL_DAYS": 7})
    assert (settings.wish_max_points, settings.send_rate_limit, settings.wish_fulfil_days) == (30, 2.5, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.wish_max_points = 1
    assert settings.replace(WISH_MAX_POINTS=5).wish_max_points == 5 and settings.wish_max_points == 30
    monkeypatch.setenv("WISH_MAX_POINTS", "三十")
    with pytest.raises(ConfigError, match="WISH_MAX_POINTS='三十' is not a number"):
        load_config()


def test_an_unknown_setting_or_time_zone_is_refused():
    with pytest.raises(ConfigError, match="WISH_MAX_POINT is not a setting"):
        load_config({"WISH_MAX_POINT": 5})
    with pytest.raises(ConfigError, match="TIMEZONE='Asia/Beijing' is not a known time zone"):
        load_config({"TIMEZONE": "Asia/Beijing"})
