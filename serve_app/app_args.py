"""`AppArgs`: the application's `args` as a strict pydantic model, made from the settings dataclasses.

Serve validates the YAML's `args` against it before it calls the builder
(`build_app(args: AppArgs)` is Serve's typed builder), so `serve run` and
`serve deploy` refuse an unknown key or a value of the wrong type before any
replica starts. The models are generated from the dataclasses of
`serve_app.config` (fields, types, defaults), which stay the one declaration
of every setting; their range and choice checks (`__post_init__`) run when
`AppSettings` is built from the validated model. `serve run
serve_app.app:build_app model.preset=tiny`-style dotted keys are nested first.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from serve_app.config import AppSettings, nest_dotted_keys


def _section_model(section_cls: type) -> type[BaseModel]:
    """A strict model with the fields, types and defaults of one settings dataclass."""
    hints = typing.get_type_hints(section_cls)
    defaults = section_cls()
    fields: dict[str, Any] = {f.name: (hints[f.name], getattr(defaults, f.name)) for f in dataclasses.fields(section_cls)}
    return create_model(f"{section_cls.__name__}Args", __config__=ConfigDict(extra="forbid", strict=True), **fields)


SECTIONS: dict[str, type] = {f.name: type(f.default_factory()) for f in dataclasses.fields(AppSettings)}  # type: ignore[misc]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        return nest_dotted_keys(data) if isinstance(data, dict) else data

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """As pydantic's, but a problem is one ValueError line naming the setting (what `serve run` shows)."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None


_SECTION_MODELS = {name: _section_model(section_cls) for name, section_cls in SECTIONS.items()}
AppArgs = create_model(
    "AppArgs", __base__=_Args, **{name: (model, model()) for name, model in _SECTION_MODELS.items()}
)
AppArgs.__doc__ = "The application's args: one strict section per `AppSettings` field."


def settings_from_args(args: Any) -> AppSettings:
    """AppSettings from validated `AppArgs` or a plain mapping; any problem is a one-line ValueError."""
    if not isinstance(args, AppArgs):
        args = AppArgs.model_validate(args or {})
    sections = {name: cls(**getattr(args, name).model_dump()) for name, cls in SECTIONS.items()}
    return AppSettings(**sections)


def one_line(exc: ValidationError) -> str:
    """`setting proxy.port: Input should be a valid integer (got '4567')`, and how many more."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "args"
    if first["type"] == "extra_forbidden":
        text = f"unknown setting {where}"
    else:
        text = f"setting {where}: {first['msg']} (got {first.get('input')!r})"
    more = exc.error_count() - 1
    return text + (f"; and {more} more" if more else "")
