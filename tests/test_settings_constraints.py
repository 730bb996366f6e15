"""The ranges and choices declared on the settings' fields hold alike in the dataclasses and in `AppArgs`.

The table is derived from the fields' annotations: for every bound, the value
at it (or the nearest one inside) is accepted and the value just past it is
refused, by the dataclass built directly, by pydantic's own validation of the
generated model, and by `AppArgs` and `AppSettings.from_dict` with the same
setting named in the same words.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union

import pytest
from pydantic import ValidationError

from serve_app.app_args import SECTION_MODELS, AppArgs
from serve_app.config import SECTIONS, AppSettings
from tcp_proxy.field_checks import SettingError, bounds, field_hints


def _number_type(hint: Any) -> type | None:
    """int or float for a numeric field (optional or constrained), else None."""
    if typing.get_origin(hint) is Annotated:
        return _number_type(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (Union, typing.get_origin(int | None)):
        found = {_number_type(member) for member in typing.get_args(hint)} - {None}
        return found.pop() if len(found) == 1 else None
    return hint if hint in (int, float) else None


def _choices(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return ()


def _bound_cases(number: type, found: dict[str, Any]) -> list[tuple[Any, bool]]:
    step = 1 if number is int else 0.5
    cases = []
    for key, bound in found.items():
        inside, outside = {"ge": (0, -step), "gt": (step, 0), "le": (0, step), "lt": (-step, 0)}[key]
        cases += [(bound + inside, True), (bound + outside, False)]
    return cases


def _table() -> list[tuple[str, str, Any, bool]]:
    table = []
    for section, cls in SECTIONS.items():
        for name, hint in field_hints(cls).items():
            number = _number_type(hint)
            if number is not None:
                table += [(section, name, value, ok) for value, ok in _bound_cases(number, bounds(hint))]
            choices = _choices(hint)
            table += [(section, name, choice, True) for choice in choices]
            if choices:
                table.append((section, name, "nonsense", False))
    return table


KNOWN = [
    ("proxy", "port", 65535, True),
    ("proxy", "port", 65536, False),
    ("proxy", "port", 0, True),
    ("proxy", "port", -1, False),
    ("export", "conf_percentile", 100, True),
    ("export", "conf_percentile", 100.5, False),
    ("export", "conf_percentile", 0, True),
    ("export", "conf_percentile", -0.5, False),
    ("proxy", "max_result_bytes", (1 << 31) - 1, True),
    ("proxy", "max_result_bytes", 1 << 31, False),
    ("frames", "max_side", 0, True),
    ("frames", "max_side", -1, False),
    ("frames", "fps", 0.01, True),
    ("frames", "fps", 0, False),
    ("model", "torch_threads", -1, True),
    ("model", "torch_threads", -2, False),
    ("export", "max_points", None, True),
    ("export", "max_points", 1, True),
    ("export", "max_points", 0, False),
    ("proxy", "list_limit", 0, True),
    ("proxy", "handover_s", 0, True),
    ("proxy", "handover_s", -0.5, False),
    ("auth", "account_recheck_s", 0, True),
    ("auth", "max_failures", 0, False),
    ("model", "device", "cuda", True),
    ("model", "device", "tpu", False),
    ("export", "downsample", "voxel", True),
    ("export", "downsample", "random", False),
]
TABLE = _table()


def _id(case: tuple[str, str, Any, bool]) -> str:
    section, name, value, ok = case
    return f"{section}.{name}={value!r}:{'ok' if ok else 'refused'}"


def test_the_table_covers_every_declared_constraint():
    constrained = {(section, name) for section, name, _, _ in TABLE}
    assert len(constrained) >= 40
    assert {(section, name) for section, name, _, _ in KNOWN} <= constrained
    unbounded = {
        f"{section}.{name}"
        for section, cls in SECTIONS.items()
        for name, hint in field_hints(cls).items()
        if _number_type(hint) is not None and not bounds(hint)
    }
    assert unbounded == {"model.seed", "export.frame"}  # any integer is meaningful there


@pytest.mark.parametrize("case", TABLE + KNOWN, ids=_id)
def test_dataclass_and_pydantic_model_agree_at_each_bound(case):
    section, name, value, ok = case
    cls, setting = SECTIONS[section], f"{section}.{name}"
    if ok:
        assert getattr(cls(**{name: value}), name) == value
        SECTION_MODELS[section].model_validate({name: value})
        assert getattr(getattr(AppArgs.model_validate({section: {name: value}}), section), name) == value
        assert getattr(getattr(AppSettings.from_dict({setting: value}), section), name) == value
        return
    with pytest.raises(SettingError) as built:
        cls(**{name: value})
    with pytest.raises(ValidationError) as native:
        SECTION_MODELS[section].model_validate({name: value})
    with pytest.raises(SettingError) as validated:
        AppArgs.model_validate({section: {name: value}})
    with pytest.raises(SettingError) as loaded:
        AppSettings.from_dict({section: {name: value}})
    assert native.value.errors()[0]["loc"][0] == name
    for refusal in (built.value, validated.value, loaded.value):
        assert (refusal.setting, refusal.field) == (setting, name)
        assert str(refusal) == str(built.value)
    assert str(built.value).startswith(f"setting {setting} must be ") and str(built.value).endswith(f", got {value!r}")


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_the_pydantic_model_declares_what_the_dataclass_declares(section):
    model_fields = SECTION_MODELS[section].model_fields
    hints = field_hints(SECTIONS[section])
    assert list(model_fields) == list(hints)
    for name, hint in hints.items():
        info = model_fields[name]
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        assert bounds(annotation) == bounds(hint), name
        assert _choices(annotation) == _choices(hint), name
        assert info.default == getattr(SECTIONS[section](), name), name


def test_wrong_types_are_refused_alike():
    for section, name, value in [("proxy", "port", "4567"), ("proxy", "port", True), ("frames", "fps", "1")]:
        with pytest.raises(SettingError) as built:
            SECTIONS[section](**{name: value})
        with pytest.raises(ValidationError):
            SECTION_MODELS[section].model_validate({name: value})
        with pytest.raises(SettingError) as validated:
            AppArgs.model_validate({section: {name: value}})
        assert str(built.value) == str(validated.value)
