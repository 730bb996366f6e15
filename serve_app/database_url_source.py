"""Where the database URL comes from: the config itself, an environment variable, or a file.

A password written into `storage.database_url` is shown by the Ray
dashboard with the rest of the Serve config. `storage.database_url_env`
names an environment variable that holds the URL instead, and
`storage.database_url_file` a file (a mounted secret); the config then holds
only that name. Exactly one source is used: naming both, or naming one while
`database_url` is changed from its default, is a `SettingError`. The value
is read once, when the settings are built (`StorageSettings`), so replicas
receive the URL with their settings and need neither the variable nor the
file. No message here ever contains the URL itself.
"""

from __future__ import annotations

import os

from tcp_proxy.field_checks import SettingError

DEFAULT_DATABASE_URL = "sqlite:///./vggt_app.db"


def resolve_database_url(url: str, env: str, file: str) -> str:
    """The database URL from the one source named: `url` itself, variable `env`, or file `file`."""
    if env and file:
        raise SettingError(
            "storage.database_url_file",
            "storage.database_url_env and storage.database_url_file are both set: give the database URL in one place",
        )
    if not env and not file:
        return url
    source = "storage.database_url_env" if env else "storage.database_url_file"
    if url != DEFAULT_DATABASE_URL:
        raise SettingError(
            "storage.database_url",
            f"storage.database_url and {source} are both set: give the database URL in one place",
        )
    return url_from_env(env) if env else url_from_file(file)


def url_from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SettingError(
            "storage.database_url_env",
            f"storage.database_url_env: environment variable {name} is not set "
            "(it must be set where the settings are built: the node running `serve run` or the Serve controller)",
        )
    value = value.strip()
    if not value:
        raise SettingError("storage.database_url_env", f"storage.database_url_env: environment variable {name} is empty")
    return value


def url_from_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingError(
            "storage.database_url_file", f"storage.database_url_file: cannot read {os.path.abspath(path)}: {reason}"
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SettingError("storage.database_url_file", f"storage.database_url_file: {os.path.abspath(path)} is empty")
    if len(lines) > 1:
        raise SettingError(
            "storage.database_url_file",
            f"storage.database_url_file: {os.path.abspath(path)} holds {len(lines)} lines; it must hold only the URL",
        )
    return lines[0]
