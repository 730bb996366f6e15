import os
import time

from sqlalchemy import text

from serve_app.storage import check_storage, repair_storage


def age(path, seconds=3600):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_clean_storage_is_consistent(store, db, storage_root, user_id):
    store.save(b"glTF", user_id, "a.jpg")
    report = check_storage(db, storage_root, min_age_s=0)
    assert report.consistent
    assert report.rows_without_files == [] and report.files_without_rows == []


def test_lists_and_repairs_both_kinds_of_mismatch(store, db, storage_root, user_id):
    kept = store.save(b"glTF kept", user_id, "kept.jpg")
    lost = store.save(b"glTF lost", user_id, "lost.jpg")
    lost.file_path.unlink()
    day_dir = kept.file_path.parent
    orphan = day_dir / ("f" * 64 + ".glb")
    leftover_temp = day_dir / (".abc.glb.xyz.tmp")
    young_orphan = day_dir / ("e" * 64 + ".glb")
    unrelated = day_dir / "notes.txt"
    for path in (orphan, leftover_temp, young_orphan, unrelated):
        path.write_bytes(b"x")
    for path in (orphan, leftover_temp, unrelated, kept.file_path):
        age(path)

    report = check_storage(db, storage_root, min_age_s=600)

    assert not report.consistent
    assert report.rows_without_files == [lost.hashed_name]
    assert report.files_without_rows == sorted([orphan.resolve(), leftover_temp.resolve()])

    repair_storage(db, report)

    assert check_storage(db, storage_root, min_age_s=600).consistent
    assert not orphan.exists() and not leftover_temp.exists()
    assert young_orphan.exists() and unrelated.exists()  # too young / not ours: untouched
    assert store.read(kept.hashed_name) == b"glTF kept"
    assert check_storage(db, storage_root, min_age_s=0).files_without_rows == [young_orphan.resolve()]


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
