"""Types, ranges and choices declared on a settings dataclass's fields, checked when it is built.

A field says what it accepts in its annotation, in the vocabulary pydantic
reads natively (`annotated_types`): `port: Annotated[int, Ge(0), Le(65535)]`,
`fps: PositiveFloat`, `device: Literal["auto", "cpu"]`, `max_points:
PositiveInt | None`. A strict pydantic model made from the same annotations
enforces the same rules; `check_fields`, called from `__post_init__`, enforces
them when the dataclass is built directly. A refusal is one `SettingError`
line: `setting proxy.port must be an integer in [0, 65535], got 70000`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Annotated, Any, Literal, Union

import annotated_types as at

PositiveInt = Annotated[int, at.Gt(0)]
PositiveFloat = Annotated[float, at.Gt(0)]
NonNegativeInt = Annotated[int, at.Ge(0)]
NonNegativeFloat = Annotated[float, at.Ge(0)]

_NOUNS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


class SettingError(ValueError):
    """One refused setting: `.setting` is "proxy.port", `.field` is "port"; the message is one line."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.field = setting.rsplit(".", 1)[-1]


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    """The annotation of each field of dataclass `cls`, constraints (`Annotated`) kept."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_fields(obj: Any, section: str) -> None:
    """Refuse the first field of `obj` whose value its annotation does not accept (SettingError naming
    `section.field`). An int given for a float field becomes a float, as in the pydantic model."""
    for name, hint in field_hints(type(obj)).items():
        value = getattr(obj, name)
        if not accepts(hint, value):
            setting = f"{section}.{name}"
            raise SettingError(setting, f"setting {setting} must be {requirement(hint)}, got {value!r}")
        if type(value) is int and float in _plain_types(hint) and int not in _plain_types(hint):
            object.__setattr__(obj, name, float(value))


def accepts(hint: Any, value: Any) -> bool:
    """Whether `value` has the type `hint` names and meets its constraints."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *metadata = typing.get_args(hint)
        return accepts(base, value) and all(_meets(rule, value) for rule in _rules(metadata))
    if origin in (Union, types.UnionType):
        return any(accepts(member, value) for member in typing.get_args(hint))
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint) if isinstance(hint, type) else True


def requirement(hint: Any) -> str:
    """What `hint` accepts, in words: "an integer in [0, 65535]", "one of ['crop', 'pad'] or null"."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *metadata = typing.get_args(hint)
        return " ".join([requirement(base), *_bound_words(_rules(metadata))])
    if origin in (Union, types.UnionType):
        return " or ".join(requirement(member) for member in typing.get_args(hint))
    if origin is Literal:
        return f"one of {list(typing.get_args(hint))}"
    return _NOUNS.get(hint, getattr(hint, "__name__", str(hint)))


def bounds(hint: Any) -> dict[str, Any]:
    """The bounds a field's annotation declares ({"ge": 0, "le": 65535}), unions and `Interval` looked into."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        found: dict[str, Any] = {}
        for rule in _rules(typing.get_args(hint)[1:]):
            found.update({key: getattr(rule, key) for key, _ in _BOUNDS if hasattr(rule, key)})
        return found
    if origin in (Union, types.UnionType):
        return {key: value for member in typing.get_args(hint) for key, value in bounds(member).items()}
    return {}


def _rules(metadata: Any) -> list[at.BaseMetadata]:
    rules: list[at.BaseMetadata] = []
    for item in metadata:
        if isinstance(item, at.GroupedMetadata):
            rules.extend(_rules(item))
        elif isinstance(item, (at.Gt, at.Ge, at.Lt, at.Le)):
            rules.append(item)
        elif isinstance(item, at.BaseMetadata):
            raise TypeError(f"field_checks does not enforce {item!r}; declare Gt, Ge, Lt, Le or Interval")
    return rules


def _meets(rule: at.BaseMetadata, value: Any) -> bool:
    if isinstance(rule, at.Gt):
        return value > rule.gt
    if isinstance(rule, at.Ge):
        return value >= rule.ge
    if isinstance(rule, at.Lt):
        return value < rule.lt
    return value <= rule.le  # type: ignore[attr-defined]


def _bound_words(rules: list[at.BaseMetadata]) -> list[str]:
    found = {key: getattr(rule, key) for rule in rules for key, _ in _BOUNDS if hasattr(rule, key)}
    low = [key for key in ("gt", "ge") if key in found]
    high = [key for key in ("lt", "le") if key in found]
    if low and high:
        left, right = ("(" if low[0] == "gt" else "["), (")" if high[0] == "lt" else "]")
        return [f"in {left}{found[low[0]]}, {found[high[0]]}{right}"]
    return [f"{symbol} {found[key]}" for key, symbol in _BOUNDS if key in found]


def _plain_types(hint: Any) -> set[Any]:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _plain_types(typing.get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_plain_types(member) for member in typing.get_args(hint)))
    return {hint}
