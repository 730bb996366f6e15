"""storage.database_url_env / storage.database_url_file: the URL from the environment or a mounted secret, one source only."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import yaml

from serve_app.app_args import settings_from_args
from serve_app.config import AppSettings, StorageSettings
from serve_app.storage.location import LocationError, storage_settings
from tcp_proxy.field_checks import SettingError

SECRET = "S3cret-pw"
URL = f"postgresql+psycopg://vggt:{SECRET}@db.example:5432/vggt"
ENV = "VGGT_TEST_DATABASE_URL"


def test_the_url_comes_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv(ENV, URL + "\n")
    storage = StorageSettings(database_url_env=ENV)
    assert storage.database_url == URL
    assert (storage.database_url_env, storage.database_url_file) == ("", "")  # read once, here
    assert SECRET not in repr(storage)


def test_the_url_comes_from_the_named_file(tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text(f"\n{URL}\n\n")
    storage = StorageSettings(database_url_file=str(secret))
    assert storage.database_url == URL
    secret.unlink()  # read once: later copies of the settings need the file no more
    assert dataclasses.replace(storage, storage_root="/srv").database_url == URL


def test_without_either_the_config_url_is_used():
    assert StorageSettings().database_url == "sqlite:///./vggt_app.db"
    assert StorageSettings(database_url="sqlite:///x.db").database_url == "sqlite:///x.db"


def test_both_sources_named_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, URL)
    secret = tmp_path / "database_url"
    secret.write_text(URL)
    with pytest.raises(SettingError, match="database_url_env and storage.database_url_file are both set") as caught:
        StorageSettings(database_url_env=ENV, database_url_file=str(secret))
    assert caught.value.setting == "storage.database_url_file"


@pytest.mark.parametrize("source", ["database_url_env", "database_url_file"])
def test_a_url_in_the_config_and_a_second_source_is_refused(monkeypatch, tmp_path, source):
    monkeypatch.setenv(ENV, URL)
    secret = tmp_path / "database_url"
    secret.write_text(URL)
    value = ENV if source == "database_url_env" else str(secret)
    with pytest.raises(SettingError, match=f"storage.database_url and storage.{source} are both set") as caught:
        StorageSettings(database_url="sqlite:///other.db", **{source: value})
    assert caught.value.setting == "storage.database_url"
    assert SECRET not in str(caught.value)


def test_a_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SettingError, match=f"environment variable {ENV} is not set") as caught:
        StorageSettings(database_url_env=ENV)
    assert caught.value.setting == "storage.database_url_env"
    monkeypatch.setenv(ENV, "  ")
    with pytest.raises(SettingError, match=f"environment variable {ENV} is empty"):
        StorageSettings(database_url_env=ENV)


def test_a_missing_or_empty_file_is_named(tmp_path):
    missing = tmp_path / "no_such_secret"
    with pytest.raises(SettingError, match=f"cannot read {missing}: No such file or directory") as caught:
        StorageSettings(database_url_file=str(missing))
    assert caught.value.setting == "storage.database_url_file"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SettingError, match=f"{empty} is empty"):
        StorageSettings(database_url_file=str(empty))
    two = tmp_path / "two"
    two.write_text(f"{URL}\n{URL}\n")
    with pytest.raises(SettingError, match="holds 2 lines") as caught:
        StorageSettings(database_url_file=str(two))
    assert SECRET not in str(caught.value)


def test_serve_args_take_the_env_source_and_refuse_both_in_one_line(monkeypatch):
    """The path `serve run` takes: AppArgs validation, then the settings."""
    monkeypatch.setenv(ENV, URL)
    settings = settings_from_args({"storage": {"database_url_env": ENV}})
    assert settings.storage.database_url == URL
    with pytest.raises(SettingError) as caught:
        settings_from_args({"storage": {"database_url_env": ENV, "database_url": "sqlite:///x.db"}})
    assert str(caught.value).splitlines() == [
        "storage.database_url and storage.database_url_env are both set: give the database URL in one place"
    ]
    monkeypatch.delenv(ENV)
    with pytest.raises(SettingError, match=f"environment variable {ENV} is not set"):
        settings_from_args({"storage.database_url_env": ENV})


def test_the_tools_read_the_config_source_and_name_a_missing_one(monkeypatch, tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"applications": [{"name": "vggt", "args": {"storage": {"database_url_env": ENV}}}]}))
    monkeypatch.setenv(ENV, URL)
    args = argparse.Namespace(config=str(config), database_url=None)
    assert storage_settings(args).database_url == URL
    override = argparse.Namespace(config=str(config), database_url="sqlite:///y.db")
    assert storage_settings(override).database_url == "sqlite:///y.db"
    monkeypatch.delenv(ENV)
    with pytest.raises(LocationError, match=f"environment variable {ENV} is not set"):
        storage_settings(args)
    assert AppSettings.from_dict({}).storage.database_url_env == ""
