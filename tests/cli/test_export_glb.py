"""The export CLI (serve_app.cli.export_glb; scripts/export_glb.py, vggt-export) end to end with the
untrained tiny model (CPU, small inputs)."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from serve_app.cli import export_glb as cli
from serve_app.storage import Database
from serve_app.storage.models import GlbFile, User

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "export_glb.py"
TINY = ["--preset", "tiny", "--device", "cpu"]




def write_video(path: Path, seconds: float = 2.0, fps: int = 10, size=(160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for index in range(int(seconds * fps)):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.rectangle(frame, (10 + 5 * index, 20), (60 + 5 * index, 90), (0, 200, 255), -1)
        frame[:, :, 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
        writer.write(frame)
    writer.release()
    return path


def write_photos(folder: Path, count: int = 2) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"photo_{index}.jpg"), image)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def plain_file(folder: Path) -> Path:
    path = folder / "a-file"
    path.write_text("not a folder")
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def glb_points(path: Path) -> int:
    scene = trimesh.load(io.BytesIO(path.read_bytes()), file_type="glb")
    return sum(len(g.vertices) for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_video_to_file_in_a_real_process(clip, tmp_path):
    out = tmp_path / "scene.glb"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--video", str(clip), "--fps", "1", "--out", str(out), *TINY],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()
    assert len(summary) == 1
    assert re.match(rf"wrote {re.escape(str(out))}: 2 frames, [\d,]+ points, [\d.]+ MB GLB in [\d.]+s \(", summary[0])
    for stage in ("decode", "load", "inference", "export"):
        assert f"{stage} " in summary[0]
        assert stage in done.stderr  # its progress bar
    assert done.stderr.count("UNTRAINED") == 1, done.stderr  # the CLI's warning; the loader's is held back
    assert "vggt-export: warning: --preset tiny is an UNTRAINED demo model" in done.stderr
    assert re.search(r"decode .*\| 2/2 ", done.stderr) and re.search(r"inference .*\| (\d+)/\1 ", done.stderr)
    assert glb_points(out) > 1000


def test_photo_folder_to_output_folder_with_options(tmp_path, capsys):
    photos = write_photos(tmp_path / "photos")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_cli(
        capsys,
        "--images", str(photos), "--out", str(out_dir), *TINY, "--quiet",
        "--conf-percentile", "50", "--source", "depth", "--show-cameras", "--frame", "1", "--max-points", "500",
    )  # fmt: skip
    assert code == 0, err
    target = out_dir / "photos.glb"
    assert out.startswith(f"wrote {target}: 2 frames, 500 points")
    scene = trimesh.load(io.BytesIO(target.read_bytes()), file_type="glb")
    assert sorted(scene.geometry) == ["camera_000", "points"]  # one frame, its camera
    assert glb_points(target) == 500


def test_save_to_db_stores_like_the_service(tmp_path, capsys):
    photos = write_photos(tmp_path / "photos")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    db = Database(url)
    db.upgrade()
    with db.session() as session:
        session.add(User(id=3, username="bob", password_hash="x"))
    code, out, err = run_cli(
        capsys,
        "--images", str(photos / "photo_0.jpg"), str(photos / "photo_1.jpg"), *TINY, "--quiet",
        "--save-to-db", "--user-id", "3", "--original-name", "desk",
        "--database-url", url, "--storage-root", str(tmp_path / "root"),
    )  # fmt: skip
    assert code == 0, err
    hashed = re.match(r"stored ([0-9a-f]{64}) \(", out).group(1)
    with db.session() as session:
        row = session.query(GlbFile).filter_by(hashed_name=hashed).one()
        assert (row.user_id, row.original_name) == (3, "desk")
    stored = tmp_path / "root" / row.file_path
    assert stored.is_file() and stored.stat().st_size == row.file_size
    assert stored.read_bytes()[:4] == b"glTF"
    db.dispose()


def bad_video(tmp_path: Path) -> Path:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x01 definitely not a video" * 50)
    return path


def test_the_setup_guides_spellings(clip, tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    db = Database(url)
    db.upgrade()
    with db.session() as session:
        session.add(User(id=1, username="demo", password_hash="x"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    code, out, err = run_cli(
        capsys,
        "--video_path", str(clip), "--out", "outputs", "--fps", "1", "--prediction_mode", "Predicted Pointmap",
        "--conf_thres", "50", "--mask_black_bg", "--mask_white_bg", "--show_cam",
        "--save_to_db", "--user_id", "1", "--original_name", "demo.glb",
        "--database-url", url, "--storage-root", str(tmp_path / "root"), *TINY, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    written = tmp_path / "outputs" / "clip.glb"  # a folder for --out without .glb
    assert written.is_file() and f"wrote {Path('outputs') / 'clip.glb'}" in out and out.startswith("stored ")
    hashed = re.match(r"stored ([0-9a-f]{64}) \(", out).group(1)
    with db.session() as session:
        row = session.query(GlbFile).filter_by(hashed_name=hashed).one()
        assert (row.user_id, row.original_name, row.file_size) == (1, "demo.glb", written.stat().st_size)
    scene = trimesh.load(io.BytesIO(written.read_bytes()), file_type="glb")
    assert "camera_000" in scene.geometry  # --show_cam
    db.dispose()
    assert "--video_path" in cli.build_parser().format_help() and "--conf_thres" in cli.build_parser().format_help()


def test_the_checkpoint_is_found_where_fetch_weights_puts_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["--video", "v.mp4", "--out", "x.glb"])
    assert Path(cli.checkpoint_path(args)) in (REPO / "model.pt", Path("model.pt"))
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path / "checkout")
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "model.pt").write_bytes(b"weights")
    assert cli.checkpoint_path(args) == str(tmp_path / "checkout" / "model.pt")
    (tmp_path / "model.pt").write_bytes(b"local weights")
    assert cli.checkpoint_path(args) == "model.pt"  # the working directory's wins
    explicit = cli.build_parser().parse_args(["--video", "v.mp4", "--out", "x.glb", "--checkpoint", "w.pt"])
    assert cli.checkpoint_path(explicit) == "w.pt"


def test_point_budget_and_encoding_options():
    def export_options(*extra):
        return cli.settings_from(cli.build_parser().parse_args(["--video", "v.mp4", "--out", "x.glb", *extra])).export

    default = export_options()
    assert (default.max_points, default.downsample, default.quantize, default.center) == (800_000, "confidence", True, True)
    assert export_options("--max-points", "0").max_points is None  # full resolution
    assert export_options("--max-points", "1000").max_points == 1000
    plain = export_options("--float32", "--no-center")
    assert (plain.quantize, plain.center) == (False, False)


def test_the_folder_scan_takes_what_the_decoder_opens(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.JPG", "b.heic", "c.webp", "d.bmp", "e.tif", "f.txt"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p in cli.image_files([str(folder)])] == ["a.JPG", "b.heic", "c.webp"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: ["--video", str(t / "missing.mp4"), "--out", str(t / "x.glb")], "no such video"),
        (lambda t: ["--video", str(bad_video(t)), "--out", str(t / "x.glb")], "broken.mp4: not a decodable video ("),
        (lambda t: ["--images", str((t / "empty").mkdir() or t / "empty"), "--out", str(t)], "no photos"),
        (lambda t: ["--video", str(t), "--out", str(t / "x.glb")], "is a folder, not a video file"),
        (lambda t: ["--images", str(write_photos(t / "p")), "--out", str(t / "missing" / "x.glb")], "does not exist"),
        (lambda t: ["--video", "v.mp4", "--out", "x.glb", "--conf-percentile", "120"], "--conf-percentile must be"),
        (lambda t: ["--images", str(t / "nope.jpg"), "--out", str(t)], "no such file"),
        (lambda t: ["--images", str(t), "--out", str(t), "--save-to-db"], "--save-to-db needs --user-id"),
        (lambda t: ["--video", "v.mp4", "--preset", "huge"], "invalid choice"),
        (lambda t: ["--video", "v.mp4"], "one of the arguments --out --save-to-db is required"),
        (lambda t: ["--images", str(write_photos(t / "p")), "--out", str(t), "--frame", "9"], "--frame 9 is out of range"),
        (lambda t: ["--images", str(write_photos(t / "p")), "--out", str(plain_file(t) / "x.glb")], "is a file"),
        (lambda t: ["--video", "v.mp4", "--out", "x.glb", "--prediction_mode", "Pointmap"], "invalid choice"),
        (lambda t: ["--out", str(t / "x.glb")], "required"),
        (lambda t: ["--video", "v.mp4", "--out", "x.glb", "--source", "mesh"], "invalid choice"),
        (lambda t: ["--video", "v.mp4", "--out", "x.glb", "--fps", "0"], "--fps must be positive"),
        (lambda t: ["--video", "v.mp4", "--save-to-db"], "--save-to-db needs --user-id"),
        (lambda t: ["--video", "v.mp4", "--out", "x.glb", "--mask-sky", "--skyseg-model", str(t / "s.onnx")], "sky"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make_args, message):
    code, out, err = run_cli(capsys, *make_args(tmp_path), *TINY, "--quiet")
    assert code == 2
    assert out == ""
    lines = [line for line in err.strip().splitlines() if not line.startswith("vggt-export: warning: --preset tiny")]
    assert len(lines) == 1 and lines[0].startswith("vggt-export: "), err
    assert message in lines[0]
    assert not (tmp_path / "x.glb").exists() and not (tmp_path / "missing").exists()


def test_undecodable_video_fails_before_loading_the_model(tmp_path, capsys, monkeypatch):
    import serve_app.vggt.runner as runner_module

    def no_model(*_args, **_kwargs):
        raise AssertionError("model loaded for a bad video")

    monkeypatch.setattr(runner_module, "InferenceRunner", no_model)
    code, _, err = run_cli(capsys, "--video", str(bad_video(tmp_path)), "--out", str(tmp_path / "x.glb"), *TINY)
    assert code == 2 and "Traceback" not in err


def test_unknown_user_and_bad_frame(tmp_path, capsys, clip):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    code, _, err = run_cli(
        capsys, "--video", str(clip), "--save-to-db", "--user-id", "99", "--database-url", url,
        "--storage-root", str(tmp_path), *TINY, "--quiet",
    )  # fmt: skip
    assert code == 2 and "no user with id 99" in err
    code, _, err = run_cli(
        capsys, "--video", str(clip), "--fps", "1", "--out", str(tmp_path / "x.glb"), "--frame", "5", *TINY, "--quiet"
    )
    assert code == 2 and "frame 5 is out of range" in err
    assert not (tmp_path / "x.glb").exists()


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("vggt-export: warning: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_errors_name_the_command_as_typed(tmp_path):
    assert cli.build_parser().prog == "vggt-export"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("vggt-export")), "--video", str(tmp_path / "v.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "vggt-export: one of the arguments --out --save-to-db is required\n"


def test_a_bad_photo_is_named_by_its_path(tmp_path, capsys):
    photos = write_photos(tmp_path / "p")
    broken = photos / "photo_9.jpg"
    broken.write_bytes(b"not a photo at all")
    for given in ([str(photos / "photo_0.jpg"), str(broken)], [str(photos)]):
        code, out, err = run_cli(capsys, "--images", *given, "--out", str(tmp_path / "x.glb"), *TINY, "--quiet")
        assert code == 2 and out == ""
        assert error_line(err) == f"vggt-export: {broken}: not a decodable image (accepted: JPEG, PNG, WEBP, HEIF)"
    assert not (tmp_path / "x.glb").exists()


def test_a_corrupt_video_says_so(tmp_path, capsys):
    video = bad_video(tmp_path)
    code, _, err = run_cli(capsys, "--video", str(video), "--out", str(tmp_path / "x.glb"), *TINY, "--quiet")
    assert code == 2
    line = error_line(err)
    assert line.startswith(f"vggt-export: {video}: not a decodable video (Invalid data"), line
    assert "Errno" not in line and "<none>" not in line


def test_a_folder_given_as_the_video(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--video", str(tmp_path), "--out", str(tmp_path / "x.glb"), *TINY, "--quiet")
    assert code == 2 and error_line(err) == f"vggt-export: --video: {tmp_path} is a folder, not a video file"


@pytest.mark.parametrize(
    ("options", "flag", "shown"),
    [
        (["--conf-percentile", "120"], "--conf-percentile", "120"),
        (["--conf_thres", "-0.5"], "--conf_thres", "-0.5"),
        (["--conf-percentile=101"], "--conf-percentile", "101"),
    ],
)
def test_a_value_out_of_range_names_its_flag(tmp_path, capsys, options, flag, shown):
    code, _, err = run_cli(capsys, "--video", "v.mp4", "--out", str(tmp_path / "x.glb"), *options, *TINY, "--quiet")
    line = error_line(err)
    assert code == 2 and line.startswith(f"vggt-export: {flag} must be "), line
    assert "[0, 100]" in line and line.endswith(f"got {shown}") and "export." not in line and "setting" not in line


class SettingError(ValueError):
    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting, self.field = setting, setting.split(".", 1)[1]


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("export.conf_percentile must be in [0, 100], got 120.0"),
        ValueError("setting export.conf_percentile must be in [0, 100], got 120.0"),
        SettingError("export.conf_percentile", "export.conf_percentile must be in [0, 100], got 120.0"),
        SettingError("export.conf_percentile", "setting export.conf_percentile must be in [0, 100], got 120.0"),
    ],
)
def test_settings_errors_map_to_flags_with_or_without_the_field(exc):
    args = cli.build_parser().parse_args(["--video", "v.mp4", "--out", "x.glb", "--conf-percentile", "120"])
    assert cli.option_message(exc, args, {}) == "--conf-percentile must be in [0, 100], got 120"
    assert cli.option_message(exc, args, {"conf_percentile": "--conf_thres"}).startswith("--conf_thres must be")
    frames = cli.option_message(ValueError("setting frames.max_images must be positive, got 0"), args, {})
    assert frames == "--max-frames must be positive, got 0"
    assert cli.option_message(ValueError("something else"), args, {}) == "something else"
    worded_otherwise = SettingError("export.conf_percentile", "percentile out of range")
    assert cli.option_message(worded_otherwise, args, {}) == "--conf-percentile: percentile out of range"


def test_out_into_a_missing_folder_is_refused(tmp_path, capsys):
    photos = write_photos(tmp_path / "p")
    cases = ((tmp_path / "out" / "missing", tmp_path / "out" / "missing"), (tmp_path / "a" / "b.glb", tmp_path / "a"))
    for out, folder in cases:
        code, _, err = run_cli(capsys, "--images", str(photos), "--out", str(out), *TINY, "--quiet")
        assert code == 2 and error_line(err) == f"vggt-export: --out: folder {folder} does not exist"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # nothing created


def test_the_folder_scan_is_the_clients(tmp_path):
    from serve_app.frames import photos
    from tcp_proxy import client, photo_files

    assert cli.folder_photos is client.folder_photos is photo_files.folder_photos
    assert photos.SUFFIXES == photo_files.PHOTO_SUFFIXES


def test_progress_moves_through_each_stage(tmp_path):
    photos = write_photos(tmp_path / "p", count=3)
    calls: dict[str, list[tuple[int, int]]] = {}

    @contextlib.contextmanager
    def recording(stage):
        seen = calls.setdefault(stage, [])
        yield lambda done, total: seen.append((done, total))

    args = cli.build_parser().parse_args(["--images", str(photos), "--out", str(tmp_path / "s.glb"), *TINY, "--quiet"])
    summary = cli.run(args, progress=recording)
    assert summary.startswith(f"wrote {tmp_path / 's.glb'}: 3 frames")
    assert calls["decode"] == [(1, 3), (2, 3), (3, 3)]
    inference = calls["inference"]
    total = inference[-1][1]
    assert total > 3 and {t for _, t in inference} == {total}
    assert [done for done, _ in inference] == list(range(total + 1))  # every step of the forward pass, in order
    assert calls["export"] == [(0, 1), (1, 1)]
    assert calls.get("load", []) == []  # loading reports no steps: its bar fills when it ends
