"""`AppArgs`: the application's `args` as a strict pydantic model, made from the settings dataclasses.

Serve validates the YAML's `args` against it before it calls the builder
(`build_app(args: AppArgs)` is Serve's typed builder), so `serve run` and
`serve deploy` refuse an unknown key, a value of the wrong type, out of range
or not among the choices before any replica starts. The models are generated
from the dataclasses of `serve_app.config`: their fields, defaults and
annotations, whose `annotated_types` constraints and `Literal` choices
pydantic enforces natively; rules that tie fields together (TLS files, PROXY
protocol addresses) run by building the dataclass once the fields pass. A
refusal is the `SettingError` the dataclasses give for the same args, so both
word it alike. `serve run serve_app.app:build_app model.preset=tiny`-style
dotted keys are nested first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from serve_app.config import SECTIONS, AppSettings, nest_dotted_keys
from tcp_proxy.field_checks import SettingError, field_hints


def section_model(section_cls: type) -> type[BaseModel]:
    """A strict model with the fields, annotations (constraints included) and defaults of one settings
    dataclass; once its fields pass, the dataclass is built to apply the rules that tie fields together."""
    defaults = section_cls()
    fields: dict[str, Any] = {name: (hint, getattr(defaults, name)) for name, hint in field_hints(section_cls).items()}

    def cross_field_rules(model: BaseModel) -> BaseModel:
        section_cls(**model.model_dump())
        return model

    return create_model(
        f"{section_cls.__name__}Args",
        __config__=ConfigDict(extra="forbid", strict=True),
        __validators__={"cross_field_rules": model_validator(mode="after")(cross_field_rules)},
        **fields,
    )


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        return nest_dotted_keys(data) if isinstance(data, dict) else data

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """As pydantic's, but a problem is one SettingError line naming the setting (what `serve run` shows)."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _refusal(obj, exc) from None


SECTION_MODELS: dict[str, type[BaseModel]] = {name: section_model(cls) for name, cls in SECTIONS.items()}
AppArgs = create_model("AppArgs", __base__=_Args, **{name: (model, model()) for name, model in SECTION_MODELS.items()})
AppArgs.__doc__ = "The application's args: one strict section per `AppSettings` field."


def settings_from_args(args: Any) -> AppSettings:
    """AppSettings from validated `AppArgs` or a plain mapping; any problem is a one-line SettingError."""
    if not isinstance(args, AppArgs):
        args = AppArgs.model_validate(args or {})
    return AppSettings.from_dict(args.model_dump())


def one_line(exc: ValidationError) -> str:
    """`setting proxy.port: Input should be a valid integer (got '4567')`, and how many settings more."""
    errors = exc.errors()
    first = errors[0]
    where = _setting(first["loc"])
    if first["type"] == "extra_forbidden":
        text = f"unknown setting {where}"
    else:
        text = f"setting {where}: {first['msg']} (got {first.get('input')!r})"
    more = len({_setting(error["loc"]) for error in errors}) - 1
    return text + (f"; and {more} more" if more else "")


def _refusal(obj: Any, exc: ValidationError) -> SettingError:
    """The SettingError the settings dataclasses give for `obj`, else pydantic's first error in one line."""
    try:
        AppSettings.from_dict(obj)
    except SettingError as error:
        return error
    except (TypeError, AttributeError):
        pass
    return SettingError(_setting(exc.errors()[0]["loc"]), one_line(exc))


def _setting(loc: tuple[Any, ...]) -> str:
    """ "proxy.port" from a pydantic location, which may go on into a union's member ("max_points", "int")."""
    return ".".join(str(part) for part in loc[:2]) or "args"
