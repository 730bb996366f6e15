"""run_stage: the one place a stage is timed and measured."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.stages import Frames, Job, Stage, Upload, run_stage


class Recorder:
    """Collects what run_stage reports, as the Serve metrics would receive it."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self.frames: list[tuple[str, int]] = []

    def record_stage(self, stage: str, seconds: float) -> None:
        self.stages.append((stage, seconds))

    def record_frames(self, source: str, count: int) -> None:
        self.frames.append((source, count))


class TwoBlackFrames(Stage[Upload, Frames]):
    name = "decode"

    def run(self, item: Upload) -> Frames:
        return Frames(item.job, [np.zeros((2, 2, 3), np.uint8)] * 2, item.source)


def test_timing_is_added_to_those_carried_so_far():
    upload = Upload(Job(7, "x"), images=(b"a",), timings={"receive": 0.5})
    recorder = Recorder()
    out = run_stage(TwoBlackFrames(), upload, recorder)
    assert list(out.timings) == ["receive", "decode"]
    assert out.timings["receive"] == 0.5 and out.timings["decode"] >= 0
    assert out.job == Job(7, "x") and len(out.frames) == 2
    assert recorder.stages == [("decode", out.timings["decode"])]
    assert recorder.frames == [("images", 2)]
    assert upload.timings == {"receive": 0.5}  # the input is left as it was


def test_a_failing_stage_records_nothing():
    class Broken(Stage[Upload, Frames]):
        name = "decode"

        def run(self, item: Upload) -> Frames:
            raise ValueError("bad input")

    recorder = Recorder()
    with pytest.raises(ValueError, match="bad input"):
        run_stage(Broken(), Upload(Job()), recorder)
    assert recorder.stages == [] and recorder.frames == []


def test_upload_source():
    assert Upload(Job(), images=(b"a",)).source == "images"
    assert Upload(Job(), video=np.zeros(3, np.uint8)).source == "video"
