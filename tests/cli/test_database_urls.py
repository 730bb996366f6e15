"""The command-line tools never print a database URL's password, and a URL that does not parse is one line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from serve_app.cli import check_storage, export_glb
from serve_app.storage import admin
from serve_app.storage.location import LocationError, parse_database_url, shown_url

SECRET = "S3cret"
BAD_PORT = f"postgresql+psycopg://app:{SECRET}@db.example:abc/vggt"
REFUSED = f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/vggt"  # nothing listens on port 1
TINY = ["--preset", "tiny", "--device", "cpu", "--quiet"]


def test_shown_url_hides_the_password_even_of_a_url_that_does_not_parse():
    assert shown_url(REFUSED) == "postgresql+psycopg://app:***@127.0.0.1:1/vggt"
    assert shown_url(BAD_PORT) == "postgresql+psycopg://app:***@db.example:abc/vggt"
    assert shown_url("sqlite:///./vggt_app.db") == "sqlite:///./vggt_app.db"
    with pytest.raises(LocationError, match=r"^invalid database URL .*: its port is not a number$") as caught:
        parse_database_url(BAD_PORT)
    assert SECRET not in str(caught.value)


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command}: "), err
    assert SECRET not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("url", "fragment"), [(BAD_PORT, "port is not a number"), (REFUSED, "cannot open the database")])
def test_admin_tools_with_a_bad_url_say_one_line_without_the_password(tmp_path, capsys, url, fragment):
    runs = {
        "vggt-users": lambda: admin.users_main(["--database-url", url, "list"]),
        "vggt-create-user": lambda: admin.create_user_main(["bob", "pw", "--database-url", url]),
        "vggt-check-storage": lambda: check_storage.main(["--database-url", url, "--storage-root", str(tmp_path)]),
    }
    for command, run in runs.items():
        assert run() == 2, command
        assert fragment in one_line(capsys, command)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    return path


def export_to(url: str, photo, root) -> int:
    argv = ["--images", str(photo), "--save-to-db", "--user-id", "42", "--database-url", url]
    return export_glb.main([*argv, "--storage-root", str(root), *TINY])


def test_export_names_the_database_of_an_unknown_owner_without_its_password(tmp_path, capsys, photo, postgres_server):
    from sqlalchemy.engine import make_url

    plain = make_url(postgres_server.new_database_url())
    url = plain.set(password=SECRET).render_as_string(hide_password=False)  # the test server trusts loopback
    assert export_to(url, photo, tmp_path) == 2
    line = one_line(capsys, "vggt-export")
    assert line == f"vggt-export: no user with id 42 in {plain.render_as_string().replace('postgres@', 'postgres:***@')}"


@pytest.mark.parametrize(("url", "fragment"), [(BAD_PORT, "port is not a number"), (REFUSED, "cannot open the database")])
def test_export_with_a_bad_url_says_one_line_without_the_password(tmp_path, capsys, photo, url, fragment):
    assert export_to(url, photo, tmp_path) == 2
    assert fragment in one_line(capsys, "vggt-export")
