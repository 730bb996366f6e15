import os
import time

from sqlalchemy import text

from serve_app.storage import check_storage, repair_storage

ORPHAN = "out/2024-01-01/" + "f" * 64 + ".glb"
LEFTOVER_TEMP = "out/2024-01-01/.abc.glb.xyz.tmp"
UNRELATED = "out/2024-01-01/notes.txt"
TOO_DEEP = "out/2024-01-01/more/" + "a" * 64 + ".glb"


def age(path, seconds=3600):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_clean_storage_is_consistent(any_store, db, root, user_id):
    any_store.save(b"glTF", user_id, "a.jpg")
    report = check_storage(db, root, min_age_s=0)
    assert report.consistent
    assert report.rows_without_files == [] and report.files_without_rows == []


def test_lists_and_repairs_both_kinds_of_mismatch_in_either_root(any_store, db, root, user_id):
    kept = any_store.save(b"glTF kept", user_id, "kept.jpg")
    lost = any_store.save(b"glTF lost", user_id, "lost.jpg")
    root.delete(lost.key)
    for key in (ORPHAN, LEFTOVER_TEMP, UNRELATED, TOO_DEEP):
        root.write(key, b"x")

    assert check_storage(db, root, min_age_s=3600).files_without_rows == []  # all too young to judge
    report = check_storage(db, root, min_age_s=0)

    assert not report.consistent
    assert report.rows_without_files == [lost.hashed_name]
    assert report.files_without_rows == sorted([ORPHAN, LEFTOVER_TEMP])

    repair_storage(db, report)

    assert check_storage(db, root, min_age_s=0).consistent
    assert not root.is_file(ORPHAN) and not root.is_file(LEFTOVER_TEMP)
    assert root.is_file(UNRELATED) and root.is_file(TOO_DEEP)  # not ours: untouched
    assert any_store.read(kept.hashed_name) == b"glTF kept"


def test_young_files_are_skipped(store, db, storage_root, user_id):
    kept = store.save(b"glTF kept", user_id, "kept.jpg")
    day_dir = kept.file_path.parent
    orphan, young_orphan = day_dir / ("f" * 64 + ".glb"), day_dir / ("e" * 64 + ".glb")
    for path in (orphan, young_orphan):
        path.write_bytes(b"x")
    for path in (orphan, kept.file_path):
        age(path)
    day = day_dir.name
    assert check_storage(db, storage_root, min_age_s=600).files_without_rows == [f"out/{day}/{orphan.name}"]
    report = check_storage(db, storage_root, min_age_s=0)
    assert report.files_without_rows == sorted([f"out/{day}/{orphan.name}", f"out/{day}/{young_orphan.name}"])


def test_row_pointing_outside_the_root_counts_as_missing(db, storage_root, user_id, tmp_path):
    outside = tmp_path / "outside.glb"
    outside.write_bytes(b"x")
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO glb_files (hashed_name, file_path, user_id) VALUES (:h, '../outside.glb', :u)"),
            {"h": "d" * 64, "u": user_id},
        )
    report = check_storage(db, storage_root)
    assert report.rows_without_files == ["d" * 64]
    repair_storage(db, report)
    assert outside.exists()  # only the row goes
    assert check_storage(db, storage_root).consistent


def test_missing_out_folder_is_fine(db, tmp_path):
    assert check_storage(db, tmp_path / "nowhere").consistent


def test_empty_bucket_is_fine(db, s3_server):
    from serve_app.storage.blob_root import open_root

    root = open_root(s3_server.new_bucket_url(), endpoint_url=s3_server.endpoint_url)
    assert root.available() and check_storage(db, root).consistent
