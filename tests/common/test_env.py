"""The typed environment helpers fail loudly on bad values."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from stamm_site.settings.env import database_from_url, env_bool, env_choice, env_int, env_list, env_str


def test_required_string_missing_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        env_str("DJANGO_SECRET_KEY", environ={})


def test_empty_required_string_is_refused():
    with pytest.raises(ImproperlyConfigured, match="empty"):
        env_str("X", environ={"X": "  "})


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("off", False), ("No", False)])
def test_bool_values(raw, expected):
    assert env_bool("FLAG", environ={"FLAG": raw}) is expected


def test_bool_garbage_is_refused():
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe'"):
        env_bool("FLAG", environ={"FLAG": "maybe"})


def test_int_with_minimum():
    assert env_int("N", environ={"N": "42"}, minimum=1) == 42
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("N", environ={"N": "4x"})
    with pytest.raises(ImproperlyConfigured, match=">= 1"):
        env_int("N", environ={"N": "0"}, minimum=1)


def test_list_and_choice():
    assert env_list("HOSTS", environ={"HOSTS": "a.example, b.example,,"}) == ["a.example", "b.example"]
    assert env_choice("B", ("sql", "influxdb"), environ={"B": "influxdb"}) == "influxdb"
    with pytest.raises(ImproperlyConfigured, match="must be one of sql, influxdb"):
        env_choice("B", ("sql", "influxdb"), environ={"B": "mysql"})


def test_database_url():
    config = database_from_url("postgresql://user:pw@db.example:5433/stamm")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.example", 5433, "stamm")
    with pytest.raises(ImproperlyConfigured, match="postgresql:// or sqlite://"):
        database_from_url("mysql://x@y/z")
