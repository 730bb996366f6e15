"""`vggt-results` (list, delete, expire) and `vggt-users delete`, on a real SQLite database and storage folder."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from sqlalchemy import update

from serve_app.config import AuthSettings
from serve_app.storage import Database, GlbStore, ScryptParams, UserStore
from serve_app.storage.admin import users_main
from serve_app.storage.models import GlbFile, utcnow
from serve_app.storage.results_admin import main

FAST = ScryptParams(n=2**10, r=8, p=1)


@pytest.fixture
def site(tmp_path):
    """A database with users ann and bob, a storage folder, ann's two results (one 40 days old) and bob's one."""
    url, root = f"sqlite:///{tmp_path / 'app.db'}", tmp_path / "storage"
    root.mkdir()
    db = Database(url)
    db.upgrade()
    users = UserStore(db, AuthSettings(), password_params=FAST)
    ann, bob = users.create("ann", "pw").id, users.create("bob", "pw").id
    store = GlbStore(db, root)
    old, new, bobs = (
        store.save(b"glTF old", ann, "old.jpg"),
        store.save(b"glTF new", ann, "new.jpg"),
        store.save(b"glTF b", bob, "b.jpg"),
    )
    with db.session() as session:
        session.execute(
            update(GlbFile)
            .where(GlbFile.hashed_name == old.hashed_name)
            .values(created_at=utcnow() - timedelta(days=40))
        )
    yield {
        "db": db,
        "store": store,
        "root": root,
        "old": old,
        "new": new,
        "bobs": bobs,
        "where": ["--database-url", url, "--storage-root", str(root)],
    }
    db.dispose()


def hashes(site) -> set[str]:
    return {row.hashed_name for row in site["store"].list_for_user(1, 10) + site["store"].list_for_user(2, 10)}


def test_list_all_and_one_users(site, capsys):
    assert main([*site["where"], "list"]) == 0
    out = capsys.readouterr().out
    assert all(site[name].hashed_name in out for name in ("old", "new", "bobs")) and "3 results, 22 bytes" in out
    assert main([*site["where"], "list", "--user", "bob"]) == 0
    out = capsys.readouterr().out
    assert site["bobs"].hashed_name in out and site["old"].hashed_name not in out and "1 results, 6 bytes" in out


def test_delete_removes_rows_and_files(site, capsys):
    old, bobs = site["old"], site["bobs"]
    assert main([*site["where"], "delete", old.hashed_name, f"{bobs.hashed_name}.glb"]) == 0
    assert "2 results and 2 files deleted" in capsys.readouterr().out
    assert hashes(site) == {site["new"].hashed_name}
    assert not old.file_path.exists() and not bobs.file_path.exists() and site["new"].file_path.exists()


@pytest.mark.parametrize("bad", ["ab" * 32, "nonsense"])
def test_delete_of_an_unknown_or_malformed_hash_is_one_line_and_deletes_nothing(site, capsys, bad):
    assert main([*site["where"], "delete", site["old"].hashed_name, bad]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("vggt-results: "), err
    assert len(hashes(site)) == 3 and site["old"].file_path.exists()


def test_expire_dry_run_then_for_real(site, capsys):
    assert main([*site["where"], "expire", "--older-than-days", "30", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {site['old'].hashed_name}" in out and "1 results older than 30 days would be deleted" in out
    assert len(hashes(site)) == 3
    assert main([*site["where"], "expire", "--older-than-days", "30"]) == 0
    assert "1 results older than 30 days and 1 files deleted" in capsys.readouterr().out
    assert hashes(site) == {site["new"].hashed_name, site["bobs"].hashed_name} and not site["old"].file_path.exists()


def test_expire_reads_the_retention_from_the_config_and_needs_one(site, tmp_path, capsys):
    config = tmp_path / "serve.yaml"
    url = site["where"][1]
    config.write_text(yaml.safe_dump({"storage": {"database_url": url, "storage_root": str(site["root"])}}))
    assert main(["--config", str(config), "expire"]) == 2
    assert capsys.readouterr().err.strip() == (
        "vggt-results: no retention: give --older-than-days or set storage.retention_days in the config"
    )
    config.write_text(
        yaml.safe_dump({"storage": {"database_url": url, "storage_root": str(site["root"]), "retention_days": 41}})
    )
    assert main(["--config", str(config), "expire"]) == 0 and len(hashes(site)) == 3  # 40 days: kept
    assert main(["--config", str(config), "expire", "--older-than-days", "39"]) == 0 and len(hashes(site)) == 2


@pytest.mark.parametrize("argv", [["expire", "--older-than-days", "0"], ["expire", "--limit", "x"], ["frobnicate"]])
def test_bad_options_are_one_line(site, capsys, argv):
    assert main([*site["where"], *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("vggt-results: ") and "usage" not in err[0]


def test_a_missing_database_or_root_is_one_line_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "none.db"
    assert main(["--database-url", f"sqlite:///{missing}", "--storage-root", str(tmp_path), "list"]) == 2
    assert "no database at" in capsys.readouterr().err and not missing.exists()
    assert main(["--database-url", f"sqlite:///{missing}", "--storage-root", str(tmp_path / "gone"), "list"]) == 2
    assert "storage root" in capsys.readouterr().err


def test_users_delete_takes_the_users_results(site, capsys):
    assert users_main([*site["where"], "delete", "ann"]) == 0
    assert "deleted user 'ann' with 2 results (2 files)" in capsys.readouterr().out
    assert hashes(site) == {site["bobs"].hashed_name}
    assert not site["old"].file_path.exists() and not site["new"].file_path.exists()
    assert users_main([*site["where"], "delete", "ann"]) == 2
    assert capsys.readouterr().err.strip() == "vggt-users: no user named 'ann'"


def test_check_storage_repair_finishes_a_deletion_left_queued(site, tmp_path, capsys):
    from serve_app.cli import check_storage
    from serve_app.storage.models import GlbDeletion

    old = site["old"]
    with site["db"].session() as session:  # what a deletion stopped between its row and its file leaves
        session.execute(GlbFile.__table__.delete().where(GlbFile.hashed_name == old.hashed_name))
        session.add(GlbDeletion(file_key=old.key, queued_at=0.0))
    (tmp_path / "spool").mkdir()
    options = [*site["where"], "--min-age-s", "0", "--spool-dir", str(tmp_path / "spool")]
    assert check_storage.main(options) == 0
    out = capsys.readouterr().out
    assert "file awaiting deletion (its row is deleted)" in out and "storage is consistent" in out
    assert old.file_path.exists()
    assert check_storage.main([*options, "--repair"]) == 0
    assert "repaired: 1 files awaiting deletion deleted" in capsys.readouterr().out
    assert not old.file_path.exists() and site["new"].file_path.exists()
