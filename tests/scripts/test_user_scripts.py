"""The admin scripts, run as a user would: subprocesses in a fresh working directory."""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from serve_app.config import AuthSettings
from serve_app.storage import Database, GlbStore, ScryptParams, UserStore
from serve_app.storage.admin import parse_flag

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
FAST = ScryptParams(n=2**10, r=8, p=1)  # for checks made here; the scripts use OWASP cost


def run(cwd, script, *args, stdin=""):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(autouse=True)
def own_temp_dir(tmp_path_factory, monkeypatch):
    """The scripts' system temp dir (where the spool folders are looked for by default): one of this
    test's own, so folders left in the machine's /tmp are neither reported nor deleted."""
    temp = tmp_path_factory.mktemp("system-temp")
    monkeypatch.setenv("TMPDIR", str(temp))
    return temp


def open_default_db(cwd):
    db = Database(f"sqlite:///{cwd / 'vggt_app.db'}")
    return db, UserStore(db, AuthSettings(), password_params=FAST)


@pytest.mark.parametrize("word", ["true", "1", "yes", "y", "t", "TRUE", "Yes", "T"])
def test_true_words_of_the_old_script(word):
    assert parse_flag(word) is True


@pytest.mark.parametrize("word", ["false", "0", "no", "n", "f", "False"])
def test_false_words(word):
    assert parse_flag(word) is False


def test_other_flag_words_are_refused():
    with pytest.raises(argparse.ArgumentTypeError):
        parse_flag("maybe")


def test_create_user_like_the_old_script_on_the_default_database(tmp_path):
    result = run(tmp_path, "create_user.py", "demo", "123456", "true")
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
    result = run(tmp_path, "create_user.py", "plain", "abcdef")
    assert result.returncode == 0, result.stderr

    db, users = open_default_db(tmp_path)  # ./vggt_app.db of the working directory
    with db.engine.connect() as connection:
        hashes = connection.execute(text("SELECT password_hash FROM users")).scalars().all()
    assert len(hashes) == 2 and all(h.startswith("scrypt$131072$8$1$") for h in hashes)  # OWASP cost
    assert users.authenticate("demo", "123456").is_vip
    assert not users.authenticate("plain", "abcdef").is_vip
    db.dispose()


def test_create_user_refuses_bad_input(tmp_path):
    assert run(tmp_path, "create_user.py", "demo", "123456").returncode == 0
    taken = run(tmp_path, "create_user.py", "demo", "other")
    assert taken.returncode != 0 and "already exists" in taken.stderr
    empty = run(tmp_path, "create_user.py", "bob", "")
    assert empty.returncode != 0 and "empty" in empty.stderr
    bad_flag = run(tmp_path, "create_user.py", "bob", "pw", "maybe")
    assert bad_flag.returncode != 0 and "true/false" in bad_flag.stderr


def test_create_user_reads_a_password_left_out_from_stdin(tmp_path):
    vip = run(tmp_path, "create_user.py", "carol", "--vip", stdin="from-stdin\n")
    assert vip.returncode == 0, vip.stderr
    plain = run(tmp_path, "create_user.py", "dave", stdin="also-from-stdin\n")
    assert plain.returncode == 0, plain.stderr
    db, users = open_default_db(tmp_path)
    assert users.authenticate("carol", "from-stdin").is_vip
    assert not users.authenticate("dave", "also-from-stdin").is_vip
    db.dispose()


def test_create_user_without_a_password_refuses_before_making_a_database(tmp_path):
    empty = run(tmp_path, "create_user.py", "erin", stdin="")
    assert empty.returncode == 2 and empty.stderr == "vggt-create-user: password must not be empty\n"
    clash = run(tmp_path, "create_user.py", "frank", "pw", "false", "--vip")
    assert clash.returncode == 2 and "disagree" in clash.stderr
    assert list(tmp_path.iterdir()) == []  # no database made


def run_on_a_terminal(cwd, script, *args, answers):
    """(exit status, what the terminal showed) of a script whose controlling terminal is a pseudo-terminal,
    each answer typed after the next `password...: ` prompt."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def own_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
        preexec_fn=own_terminal,  # noqa: PLW1509 - it only takes the terminal before exec
    )  # fmt: skip
    os.close(slave)
    shown, deadline = b"", time.monotonic() + 120
    try:
        for typed, answer in enumerate(answers):
            while shown.count(b"password") <= typed or not shown.endswith(b": "):
                assert time.monotonic() < deadline and child.poll() is None, shown
                shown += _read(master)
            os.write(master, answer.encode() + b"\n")
        while time.monotonic() < deadline:
            piece = _read(master)
            shown += piece
            if not piece and child.poll() is not None:
                break
    finally:
        child.wait(timeout=120)
        os.close(master)
    return child.returncode, shown.decode(errors="replace")


def _read(fd: int) -> bytes:
    """What the terminal shows within 0.2 s; b"" when nothing, or when the script is gone."""
    import select

    if not select.select([fd], [], [], 0.2)[0]:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:  # the script ended and closed the terminal
        return b""


def test_create_user_asks_twice_on_a_terminal(tmp_path):
    status, shown = run_on_a_terminal(tmp_path, "create_user.py", "gina", "--vip", answers=["typed-pw", "typed-pw"])
    assert status == 0, shown
    assert "typed-pw" not in shown  # not echoed
    db, users = open_default_db(tmp_path)
    assert users.authenticate("gina", "typed-pw").is_vip
    db.dispose()


def test_create_user_refuses_two_different_passwords_on_a_terminal(tmp_path):
    status, shown = run_on_a_terminal(tmp_path, "create_user.py", "hugo", answers=["one", "two"])
    assert status == 2 and "vggt-create-user: the two passwords differ" in shown
    assert not (tmp_path / "vggt_app.db").exists()


def test_users_tool_manages_an_account(tmp_path):
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    added = run(tmp_path, "users.py", "--database-url", url, "add", "alice", stdin="first-pw\n")
    assert added.returncode == 0, added.stderr
    changed = run(tmp_path, "users.py", "--database-url", url, "passwd", "alice", "second-pw")
    assert changed.returncode == 0, changed.stderr
    vip = run(tmp_path, "users.py", "--database-url", url, "vip", "alice", "on", "--until", "2999-01-01")
    assert vip.returncode == 0 and "2999-01-01" in vip.stdout
    disabled = run(tmp_path, "users.py", "--database-url", url, "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr

    listed = run(tmp_path, "users.py", "--database-url", url, "list")
    assert listed.returncode == 0
    line = next(row for row in listed.stdout.splitlines() if "alice" in row)
    assert "disabled" in line and "2999-01-01" in line

    db = Database(url)
    users = UserStore(db, AuthSettings(), password_params=FAST)
    assert users.authenticate("alice", "second-pw") is None  # disabled
    assert users.list()[0]["vip_active"]
    db.dispose()

    for command in (["enable", "alice"], ["vip", "alice", "off"]):
        assert run(tmp_path, "users.py", "--database-url", url, *command).returncode == 0
    db = Database(url)
    info = UserStore(db, AuthSettings(), password_params=FAST).authenticate("alice", "second-pw")
    assert info is not None and not info.is_vip
    db.dispose()


def test_users_tool_refuses_unknown_users_and_empty_passwords(tmp_path):
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    assert run(tmp_path, "users.py", "--database-url", url, "add", "alice", "pw").returncode == 0
    unknown = run(tmp_path, "users.py", "--database-url", url, "disable", "nobody")
    assert unknown.returncode != 0 and "nobody" in unknown.stderr
    empty = run(tmp_path, "users.py", "--database-url", url, "add", "bob", stdin="\n")
    assert empty.returncode != 0 and "empty" in empty.stderr
    bad_date = run(tmp_path, "users.py", "--database-url", url, "vip", "bob", "on", "--until", "soon")
    assert bad_date.returncode != 0 and "2027-01-31" in bad_date.stderr


def storage_with_owner(tmp_path):
    """(database URL, storage root, open Database, GlbStore, owner's id) of a fresh store."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    root = tmp_path / "storage"
    db = Database(url)
    db.upgrade()
    user = UserStore(db, AuthSettings(), password_params=FAST).create("owner", "pw")
    return url, root, db, GlbStore(db, root), user


def test_check_storage_reports_and_repairs(tmp_path):
    url, root, db, store, user = storage_with_owner(tmp_path)
    kept = store.save(b"glTF kept", user.id, "a.jpg")
    lost = store.save(b"glTF lost", user.id, "b.jpg")
    lost.file_path.unlink()
    orphan = kept.file_path.with_name("c" * 64 + ".glb")
    orphan.write_bytes(b"glTF orphan")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    db.dispose()
    (tmp_path / "spool").mkdir()
    options = ["--database-url", url, "--storage-root", str(root), "--spool-dir", str(tmp_path / "spool")]

    checked = run(tmp_path, "check_storage.py", *options)
    assert checked.returncode == 1
    assert f"row without file: {lost.hashed_name}" in checked.stdout
    assert f"file without row: {orphan}" in checked.stdout
    assert orphan.exists()

    repaired = run(tmp_path, "check_storage.py", *options, "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert not orphan.exists() and kept.file_path.exists()
    clean = run(tmp_path, "check_storage.py", *options)
    assert clean.returncode == 0 and "consistent" in clean.stdout


def test_check_storage_reports_and_repairs_a_bucket(tmp_path, s3_server):
    from serve_app.storage.blob_root import open_root

    bucket_url = s3_server.new_bucket_url()
    url, _, db, _, user = storage_with_owner(tmp_path)
    root = open_root(bucket_url, endpoint_url=s3_server.endpoint_url)
    store = GlbStore(db, root)
    kept = store.save(b"glTF kept", user.id, "a.jpg")
    lost = store.save(b"glTF lost", user.id, "b.jpg")
    root.delete(lost.key)
    orphan = kept.key.rsplit("/", 1)[0] + "/" + "c" * 64 + ".glb"
    root.write(orphan, b"glTF orphan")
    db.dispose()
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"storage: {{database_url: '{url}', storage_root: '{bucket_url}', s3_endpoint_url: '{s3_server.endpoint_url}'}}\n"
    )
    options = ["--config", str(config), "--min-age-s", "0", "--spool-dir", str(tmp_path)]

    checked = run(tmp_path, "check_storage.py", *options)  # the dummy credentials come from the environment
    assert checked.returncode == 1, checked.stderr
    assert f"row without file: {lost.hashed_name}" in checked.stdout
    assert f"file without row: {bucket_url}/{orphan}" in checked.stdout
    assert f"2 rows checked under {bucket_url}" in checked.stdout

    repaired = run(tmp_path, "check_storage.py", *options, "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert not root.is_file(orphan) and root.is_file(kept.key)
    missing = run(tmp_path, "check_storage.py", *options, "--storage-root", "s3://no-such-bucket/x")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_check_storage_lists_and_repairs_spool_folders_of_dead_processes(tmp_path):
    import subprocess
    import sys

    url, root, db, _, _ = storage_with_owner(tmp_path)
    db.dispose()
    root.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    spool = tmp_path / "spool"
    left = spool / f"vggt-spool-{child.pid}-x"
    left.mkdir(parents=True)
    (left / "upload-1.video").write_bytes(b"half an upload")
    live = spool / f"vggt-spool-{os.getpid()}-y"
    live.mkdir()
    options = ["--database-url", url, "--storage-root", str(root), "--spool-dir", str(spool)]
    checked = run(tmp_path, "check_storage.py", *options)
    assert checked.returncode == 1 and f"process that is gone: {left}" in checked.stdout
    assert str(live) not in checked.stdout
    repaired = run(tmp_path, "check_storage.py", *options, "--repair")
    assert repaired.returncode == 0 and not left.exists() and live.exists()


def test_check_storage_looks_for_spool_folders_in_the_temp_dir_by_default(tmp_path, own_temp_dir):
    url, root, db, _, _ = storage_with_owner(tmp_path)
    db.dispose()
    root.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    left = own_temp_dir / f"vggt-spool-{child.pid}-x"
    left.mkdir()
    options = ["--database-url", url, "--storage-root", str(root)]
    checked = run(tmp_path, "check_storage.py", *options)
    assert checked.returncode == 1 and f"process that is gone: {left}" in checked.stdout
    assert run(tmp_path, "check_storage.py", *options, "--repair").returncode == 0
    assert not left.exists()
    assert run(tmp_path, "check_storage.py", *options).returncode == 0


def _serve_config(path: Path, database: Path, root: Path) -> Path:
    path.write_text(
        "applications:\n  - name: vggt\n    import_path: serve_app.app:build_app\n    args:\n"
        f"      storage: {{database_url: 'sqlite:///{database}', storage_root: '{root}'}}\n"
    )
    return path


def test_tools_find_the_services_database_from_its_config(tmp_path):
    service_dir, elsewhere = tmp_path / "service", tmp_path / "elsewhere"
    service_dir.mkdir(), elsewhere.mkdir()
    config = _serve_config(tmp_path / "serve.yaml", service_dir / "vggt_app.db", service_dir)
    assert run(elsewhere, "users.py", "--config", str(config), "add", "alice", "pw").returncode == 0
    listed = run(elsewhere, "users.py", "--config", str(config), "list")
    assert listed.returncode == 0 and "alice" in listed.stdout
    by_env = subprocess.run(
        [sys.executable, str(SCRIPTS / "users.py"), "list"],
        cwd=elsewhere,
        env={**os.environ, "VGGT_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_env.returncode == 0 and "alice" in by_env.stdout
    checked = run(elsewhere, "check_storage.py", "--config", str(config))
    assert checked.returncode == 0 and "0 rows checked" in checked.stdout
    assert list(elsewhere.iterdir()) == []  # nothing created where the tools ran


def test_read_only_tools_never_create_a_database(tmp_path):
    listed = run(tmp_path, "users.py", "list")
    assert listed.returncode != 0
    assert listed.stderr.count("\n") == 1 and "no database at" in listed.stderr and "vggt_app.db" in listed.stderr
    for args in (["disable", "x"], ["vip", "x", "on"], ["passwd", "x", "pw"]):
        assert run(tmp_path, "users.py", *args).returncode != 0
    checked = run(tmp_path, "check_storage.py")
    assert checked.returncode == 2 and "no database at" in checked.stderr
    assert not (tmp_path / "vggt_app.db").exists()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "invalid database URL"),
        ("nosuchdriver://host/db", "cannot open the database"),
        ("postgresql://admin:hunter2@127.0.0.1:1/vggt", "cannot open the database"),
        ("postgresql+psycopg://admin:hunter2@db.example:abc/vggt", "its port is not a number"),
    ],
)
def test_a_bad_database_url_is_one_line(tmp_path, url, fragment):
    for script, args in (("users.py", ["--database-url", url, "list"]), ("check_storage.py", ["--database-url", url])):
        result = run(tmp_path, script, *args)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert fragment in result.stderr and "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_check_storage_refuses_a_repair_that_would_delete_every_row(tmp_path):
    url, root, db, store, user = storage_with_owner(tmp_path)
    saved = [store.save(b"glTF", user.id, f"{i}.jpg") for i in range(2)]
    db.dispose()

    missing_root = run(tmp_path, "check_storage.py", "--database-url", url, "--storage-root", str(tmp_path / "typo"))
    assert missing_root.returncode == 2 and "does not exist" in missing_root.stderr
    wrong_root = tmp_path / "empty"
    wrong_root.mkdir()
    options = ["--database-url", url, "--storage-root", str(wrong_root), "--repair"]
    refused = run(tmp_path, "check_storage.py", *options)
    assert refused.returncode == 2 and "refusing to delete all 2 rows" in refused.stderr
    assert run(tmp_path, "check_storage.py", "--database-url", url, "--storage-root", str(root)).returncode == 0
    forced = run(tmp_path, "check_storage.py", *options, "--force")
    assert forced.returncode == 0 and "2 rows" in forced.stdout
    assert all(s.file_path.exists() for s in saved)  # the files under the real root were never touched
