"""ProxySettings built directly (as the standalone proxy and the tests do), and the checker behind it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from annotated_types import Ge, Gt, Interval, Le, Lt, MultipleOf

from tcp_proxy.field_checks import PositiveInt, SettingError, accepts, bounds, check_fields, requirement
from tcp_proxy.settings import ProxySettings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("overrides", "setting", "message"),
    [
        ({"port": 65536}, "proxy.port", "setting proxy.port must be an integer in [0, 65535], got 65536"),
        ({"port": "4567"}, "proxy.port", "setting proxy.port must be an integer in [0, 65535], got '4567'"),
        ({"port": True}, "proxy.port", "setting proxy.port must be an integer in [0, 65535], got True"),
        ({"read_timeout_s": 0}, "proxy.read_timeout_s", "setting proxy.read_timeout_s must be a number > 0, got 0"),
        ({"upload_grace_s": -1}, "proxy.upload_grace_s", "setting proxy.upload_grace_s must be a number >= 0, got -1"),
        ({"list_limit": 1.0}, "proxy.list_limit", "setting proxy.list_limit must be an integer >= 0, got 1.0"),
        (
            {"max_result_bytes": 1 << 31},
            "proxy.max_result_bytes",
            "setting proxy.max_result_bytes must be an integer in (0, 2147483648), got 2147483648",
        ),
        ({"host": None}, "proxy.host", "setting proxy.host must be a string, got None"),
        (
            {"bind_sessions_to_ip": "yes"},
            "proxy.bind_sessions_to_ip",
            "setting proxy.bind_sessions_to_ip must be true or false, got 'yes'",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(overrides, setting, message):
    with pytest.raises(SettingError) as info:
        ProxySettings(**overrides)
    assert isinstance(info.value, ValueError)
    assert (str(info.value), info.value.setting, info.value.field) == (message, setting, setting.split(".")[1])


def test_values_at_the_bounds_are_accepted():
    settings = ProxySettings(port=65535, max_result_bytes=(1 << 31) - 1, list_limit=0, handover_s=0, upload_grace_s=0)
    assert (settings.port, settings.max_result_bytes, settings.list_limit) == (65535, (1 << 31) - 1, 0)
    assert ProxySettings(port=0).port == 0  # any free port


def test_an_int_for_a_float_setting_becomes_a_float():
    settings = ProxySettings(read_timeout_s=5)
    assert settings.read_timeout_s == 5.0 and isinstance(settings.read_timeout_s, float)
    assert isinstance(ProxySettings().min_upload_bytes_per_s, float)


def test_cross_field_rules_name_a_setting_too():
    with pytest.raises(SettingError, match="go together") as tls:
        ProxySettings(tls_cert_file="cert.pem")
    assert tls.value.setting == "proxy.tls_key_file"
    with pytest.raises(SettingError, match="go together") as key_only:
        ProxySettings(tls_key_file="key.pem")
    assert key_only.value.setting == "proxy.tls_cert_file"
    with pytest.raises(SettingError, match="^setting proxy.proxy_protocol_from: ") as balancers:
        ProxySettings(proxy_protocol_from="10.0.0.5, nonsense")
    assert balancers.value.field == "proxy_protocol_from" and "\n" not in str(balancers.value)
    assert ProxySettings(tls_cert_file="c.pem", tls_key_file="k.pem", proxy_protocol_from="10.0.0.0/8").tls_key_file


def test_the_settings_import_without_pydantic():
    code = "import sys\nsys.modules['pydantic'] = None\nimport tcp_proxy.settings\nprint('ok')\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize(
    ("hint", "words"),
    [
        (int, "an integer"),
        (Annotated[float, Interval(ge=0, le=100)], "a number in [0, 100]"),
        (Annotated[int, Gt(0), Lt(10)], "an integer in (0, 10)"),
        (Annotated[float, Le(1)], "a number <= 1"),
        (PositiveInt | None, "an integer > 0 or null"),
        (Literal["crop", "pad"], "one of ['crop', 'pad']"),
        (str | None, "a string or null"),
    ],
)
def test_requirements_in_words(hint, words):
    assert requirement(hint) == words


def test_accepts_follows_pydantic_strict_mode():
    assert accepts(float, 1) and not accepts(float, True) and not accepts(float, "1")
    assert not accepts(int, True) and not accepts(int, 1.0)
    assert accepts(PositiveInt | None, None) and not accepts(PositiveInt | None, 0)
    assert not accepts(Literal["a", "b"], "c") and not accepts(Literal[1], True)
    assert bounds(Annotated[int, Interval(ge=0, le=65535)] | None) == {"ge": 0, "le": 65535}


def test_a_constraint_the_checker_cannot_enforce_is_refused_loudly():
    @dataclasses.dataclass(frozen=True)
    class Odd:
        step: Annotated[int, MultipleOf(2)] = 2

        def __post_init__(self) -> None:
            check_fields(self, "odd")

    with pytest.raises(TypeError, match="MultipleOf"):
        Odd()


def test_check_fields_reads_annotations_of_the_dataclass():
    @dataclasses.dataclass(frozen=True)
    class Section:
        size: Annotated[int, Ge(1)] = 1

        def __post_init__(self) -> None:
            check_fields(self, "demo")

    with pytest.raises(SettingError, match=r"^setting demo.size must be an integer >= 1, got 0$"):
        Section(size=0)
