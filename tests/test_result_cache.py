"""ResultCache keys: the same upload with the same settings, and nothing else, gives the same key."""

from __future__ import annotations

import pytest

from serve_app.config import AppSettings
from serve_app.result_cache import ResultCache
from serve_app.stages import Job, Upload


def key(settings: dict | None = None, **upload) -> str:
    return ResultCache(AppSettings.from_dict(settings or {})).key(Upload(Job(1, "x"), **upload))


def test_same_upload_same_key_whoever_and_whatever_it_is_called():
    photos = (b"first photo", b"second photo")
    assert key(images=photos) == key(images=photos)
    assert ResultCache(AppSettings()).key(Upload(Job(2, "other name"), images=photos)) == key(images=photos)
    assert len(key(images=photos)) == 64


@pytest.mark.parametrize(
    "other",
    [
        {"images": (b"first photo", b"second photo!")},  # one byte more
        {"images": (b"second photo", b"first photo")},  # another order
        {"images": (b"first photos", b"econd photo")},  # same bytes, other framing
        {"images": (b"first photo",)},
    ],
)
def test_any_change_of_the_upload_changes_the_key(other):
    assert key(images=(b"first photo", b"second photo")) != key(**other)


@pytest.mark.parametrize(
    "settings",
    [
        {"export": {"conf_percentile": 10}},
        {"export": {"max_points": 1000}},
        {"frames": {"fps": 1.0}},
        {"model": {"preset": "tiny"}},
        {"model": {"checkpoint": "other.pt"}},
        {"model": {"preprocess_mode": "pad"}},
    ],
)
def test_settings_that_shape_the_result_are_part_of_the_key(settings):
    assert key(images=(b"a",)) != key(settings, images=(b"a",))


@pytest.mark.parametrize("settings", [{"model": {"head_chunk_frames": 2}}, {"proxy": {"port": 1}}])
def test_settings_that_do_not_change_the_result_are_not(settings):
    assert key(images=(b"a",)) == key(settings, images=(b"a",))


def test_videos_are_keyed_by_their_bytes(tmp_path):
    first, same, other = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    first.write_bytes(b"\x00video" * 300_000)  # more than one read chunk
    same.write_bytes(first.read_bytes())
    other.write_bytes(first.read_bytes()[:-1] + b"!")
    mapped = {name: Upload.from_video_file(Job(1, "x"), path).video for name, path in [("first", first), ("same", same), ("other", other)]}
    assert key(video=mapped["first"]) == key(video=mapped["same"]) != key(video=mapped["other"])
    assert key(video=mapped["first"]) != key(images=(first.read_bytes(),))
