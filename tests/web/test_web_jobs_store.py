"""The `web_jobs` table: ids, owners, and final states that no later write undoes."""

from __future__ import annotations

import pytest

from serve_app.storage.web_jobs import WebJobs


def test_a_final_state_is_never_left_and_only_the_owner_reads_the_job(db, alice, bob, clock):
    jobs = WebJobs(db, clock=clock)
    job = jobs.create(alice.id, "photos")
    assert len(job.id) == 32 and job.state == "queued"
    jobs.update(job.id, "inferring")
    jobs.update(job.id, "failed", error="ERROR_BAD_IMAGE", message="m" * 300)
    jobs.update(job.id, "exporting")  # a late write of an earlier state
    jobs.update(job.id, "done", hashed_name="a" * 64)
    stored = jobs.get(job.id, alice.id)
    assert (stored.state, stored.error, len(stored.message), stored.hashed_name) == ("failed", "ERROR_BAD_IMAGE", 255, None)
    assert jobs.get(job.id, bob.id) is None and jobs.get("x" * 32, alice.id) is None and jobs.get("short", alice.id) is None
    with pytest.raises(ValueError):
        jobs.update(job.id, "paused")
    with pytest.raises(ValueError):
        jobs.create(alice.id, "audio")


def test_jobs_are_forgotten_keep_s_after_their_last_change(db, alice, clock):
    jobs = WebJobs(db, keep_s=100.0, clock=clock)
    old, recent = jobs.create(alice.id, "photos"), jobs.create(alice.id, "video")
    clock.now += 60
    jobs.update(recent.id, "decoding")
    clock.now += 40  # old: unchanged for exactly keep_s; recent: 40 s
    jobs.purge()
    assert jobs.get(old.id, alice.id) is None and jobs.get(recent.id, alice.id) is not None


def test_an_unfinished_job_unchanged_for_longer_than_stale_s_is_ended_failed(db, alice, clock):
    jobs = WebJobs(db, clock=clock)
    job = jobs.create(alice.id, "photos")
    clock.now += 60
    record = jobs.get(job.id, alice.id)
    assert not jobs.stale(record, 60.0)  # unchanged for exactly stale_s: still followed
    assert jobs.fail_stale(record, 60.0, "ERROR_INTERNAL", "lost").state == "queued"
    clock.now += 0.5
    assert jobs.stale(record, 60.0)
    jobs.touch([job.id])  # its replica beats meanwhile: the beat wins over the stale read
    assert jobs.fail_stale(record, 60.0, "ERROR_INTERNAL", "lost").state == "queued"
    clock.now += 60.5
    failed = jobs.fail_stale(jobs.get(job.id, alice.id), 60.0, "ERROR_INTERNAL", "lost")
    assert (failed.state, failed.error, failed.message) == ("failed", "ERROR_INTERNAL", "lost")


def test_a_finished_job_is_never_touched_or_ended_again(db, alice, clock):
    jobs = WebJobs(db, clock=clock)
    job = jobs.create(alice.id, "photos")
    jobs.update(job.id, "done", hashed_name="a" * 64, point_count=7)
    finished_at = jobs.get(job.id, alice.id).updated_at
    clock.now += 1000
    jobs.touch([job.id])
    record = jobs.get(job.id, alice.id)
    assert record.updated_at == finished_at and not jobs.stale(record, 60.0)
    assert jobs.fail_stale(record, 60.0, "ERROR_INTERNAL", "lost").state == "done"
