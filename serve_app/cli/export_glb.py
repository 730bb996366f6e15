"""Photos or a video to a GLB point cloud, without Ray or a network (`vggt-export`, `scripts/export_glb.py`).

    export_glb.py --video clip.mp4 --out scene.glb
    export_glb.py --images photos/ --out out_dir/ --preset tiny
    export_glb.py --images a.jpg b.jpg --save-to-db --user-id 1 --original-name scene

The setup guide's spellings work too, as aliases (`--video_path`, `--conf_thres`,
`--prediction_mode "Predicted Pointmap"`, `--save_to_db`, `--show_cam`, ...):

    export_glb.py --video_path clip.mp4 --out outputs --fps 0.4 --prediction_mode "Predicted Pointmap"

Runs the service's stages in-process (decode, inference, export, and with
--save-to-db the same storage layer as the service), one progress bar per
stage, then prints a one-line summary. Every argument is checked before
anything is decoded; bad input exits with status 2 and a one-line message.
`--out` names a file when it ends in `.glb`, else a folder (created if
needed) that gets `<input name>.glb`. The checkpoint is `./model.pt`, else
the repository root's (where `fetch_weights.py` puts it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from serve_app.export.options import DOWNSAMPLE_METHODS, POINT_BUDGET, POINT_SOURCES
from serve_app.frames.photos import SUFFIXES as IMAGE_SUFFIXES  # what the decoder opens
from serve_app.vggt.config import PRESETS

REPO_ROOT = Path(__file__).resolve().parents[2]  # where scripts/fetch_weights.py puts model.pt
CHECKPOINT = "model.pt"
EXIT_BAD_INPUT = 2
# the setup guide's --prediction_mode values
PREDICTION_MODES = {"Predicted Pointmap": "pointmap", "Depthmap and Camera Branch": "depth"}


class InputError(Exception):
    """Bad command-line input, reported in one line."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage too; keep it to one line
        raise InputError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description="Photos or a video to a VGGT point cloud (GLB).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", "--video_path", metavar="PATH", help="a video file")
    source.add_argument("--images", "--image_folder", metavar="PATH", nargs="+", help="a folder of photos, or photos")
    parser.add_argument("--out", metavar="FILE_OR_DIR", help="write the GLB: a .glb file, or a folder for <input>.glb")
    parser.add_argument(
        "--save-to-db", "--save_to_db", action="store_true", help="store it like the service (file + glb_files row)"
    )
    parser.add_argument("--user-id", "--user_id", type=int, help="owner of the stored GLB (with --save-to-db)")
    parser.add_argument("--original-name", "--original_name", help="name recorded with the stored GLB")
    parser.add_argument("--database-url", help="database for --save-to-db (default: the service's)")
    parser.add_argument("--storage-root", help="folder holding out/ for --save-to-db (default: the service's)")

    parser.add_argument("--fps", type=float, help="frames sampled per second of video")
    parser.add_argument("--max-frames", type=int, help="at most this many frames (video), or photos")

    parser.add_argument(
        "--conf-percentile", "--conf_thres", type=float, help="drop this percent of the least confident points"
    )
    parser.add_argument("--source", choices=POINT_SOURCES, help="point map, or depth unprojected with cameras")
    parser.add_argument(
        "--prediction_mode",
        choices=list(PREDICTION_MODES),
        help='the setup guide\'s name for --source: "Predicted Pointmap" = pointmap, "Depthmap and Camera Branch" = depth',
    )
    parser.add_argument("--mask-black-bg", "--mask_black_bg", action="store_true", help="drop near-black pixels")
    parser.add_argument("--mask-white-bg", "--mask_white_bg", action="store_true", help="drop near-white pixels")
    parser.add_argument("--show-cameras", "--show_cam", action="store_true", help="add a marker per camera")
    parser.add_argument("--frame", type=int, help="export only this frame (0-based)")
    parser.add_argument(
        "--max-points", type=int, help=f"point cap (default {POINT_BUDGET:,}, a phone's budget); 0 = full resolution"
    )
    parser.add_argument("--downsample", choices=DOWNSAMPLE_METHODS, help="how --max-points thins (default: confidence)")
    parser.add_argument("--float32", action="store_true", help="float32 positions instead of quantized int16")
    parser.add_argument("--no-center", action="store_true", help="keep the first camera at the origin")
    parser.add_argument("--mask-sky", action="store_true", help="drop sky pixels (needs --skyseg-model)")
    parser.add_argument("--skyseg-model", metavar="PATH", default="skyseg.onnx", help="local sky segmentation model")

    parser.add_argument("--checkpoint", help=f"VGGT-1B weights (default: ./{CHECKPOINT}, else {REPO_ROOT / CHECKPOINT})")
    parser.add_argument("--preset", default="vggt-1b", choices=PRESETS, help='"tiny" is an UNTRAINED demo model')
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def checkpoint_path(args: argparse.Namespace) -> str:
    """--checkpoint, else ./model.pt, else the repository root's model.pt (fetch_weights.py's default)."""
    if args.checkpoint:
        return args.checkpoint
    here = Path(CHECKPOINT)
    return str(here if here.is_file() or not (REPO_ROOT / CHECKPOINT).is_file() else REPO_ROOT / CHECKPOINT)


def settings_from(args: argparse.Namespace):
    """AppSettings from the options given; the rest keep the service defaults."""
    from serve_app.config import AppSettings

    frames = {"fps": args.fps, "max_frames": args.max_frames, "max_images": args.max_frames}
    export = {
        "conf_percentile": args.conf_percentile,
        "source": args.source or PREDICTION_MODES.get(args.prediction_mode or ""),
        "mask_black_bg": args.mask_black_bg or None,
        "mask_white_bg": args.mask_white_bg or None,
        "show_cameras": args.show_cameras or None,
        "frame": args.frame,
        "max_points": args.max_points or None,
        "downsample": args.downsample,
        "quantize": False if args.float32 else None,
        "center": False if args.no_center else None,
        "mask_sky": args.mask_sky or None,
        "skyseg_model": args.skyseg_model if args.mask_sky else None,
    }
    storage = {"database_url": args.database_url, "storage_root": args.storage_root}
    model = {"checkpoint": checkpoint_path(args), "preset": args.preset, "device": args.device}
    sections = {name: _given(values) for name, values in {"frames": frames, "export": export}.items()}
    sections.update(storage=_given(storage), model=_given(model))
    if args.max_points == 0:
        sections["export"]["max_points"] = None  # full resolution
    try:
        return AppSettings.from_dict(sections)
    except ValueError as exc:  # a value out of range, as the settings check it
        raise InputError(str(exc)) from None


def _given(values: dict) -> dict:
    return {key: value for key, value in values.items() if value is not None}


def check_args(args: argparse.Namespace) -> None:
    if not args.out and not args.save_to_db:
        raise InputError("one of the arguments --out --save-to-db is required")
    if args.source and args.prediction_mode and args.source != PREDICTION_MODES[args.prediction_mode]:
        raise InputError("--source and --prediction_mode disagree")
    if args.save_to_db and args.user_id is None:
        raise InputError("--save-to-db needs --user-id")
    if not args.save_to_db and (args.user_id is not None or args.original_name):
        raise InputError("--user-id and --original-name go with --save-to-db")
    if args.max_points is not None and args.max_points < 0:
        raise InputError(f"--max-points must be 0 (full resolution) or positive, got {args.max_points}")
    for name in ("fps", "max_frames"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.mask_sky and not Path(args.skyseg_model).is_file():
        raise InputError(f"--mask-sky needs a local sky segmentation model; {args.skyseg_model} not found")


def image_files(paths: list[str]) -> list[Path]:
    """Photo files from a folder (sorted by name) or as given."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        folder = Path(paths[0])
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"no photos in {folder}")
        return files
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise InputError(f"no such file: {path}")
    return files


def input_name(args: argparse.Namespace) -> str:
    """The video's file name, or the photos' folder (or single photo) name."""
    if args.video:
        return Path(args.video).name
    first = Path(args.images[0])
    return (first if len(args.images) == 1 else first.parent.resolve()).name or "scene"


def output_path(out: str, name: str) -> Path:
    """A `.glb` path is the file; anything else is a folder that gets `<name>.glb`."""
    path = Path(out)
    if path.suffix.lower() == ".glb" and not path.is_dir():
        return path
    return path / f"{Path(name).stem}.glb"


def check_output(target: Path) -> None:
    """Refuse, before any work, an output that cannot be written."""
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder")
    for parent in (target.parent, *target.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {target}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise InputError(f"cannot write {target}: {parent} is not writable")
            break


def check_frame(frame: int | None, frame_count: int, what: str) -> None:
    if frame is not None and not -frame_count <= frame < frame_count:
        raise InputError(f"--frame {frame} is out of range: {what} give {frame_count} frames")


def stage_bars(quiet: bool):
    """A progress bar per stage, on stderr."""
    from tqdm import tqdm

    @contextlib.contextmanager
    def bar(stage: str):
        bar_format = "{desc} |{bar:24}| {elapsed}"
        with tqdm(total=1, desc=f"{stage:<9}", bar_format=bar_format, disable=quiet, file=sys.stderr) as progress:
            yield
            progress.update(1)

    return bar


def open_store(settings, user_id: int):
    """The service's GLB store, after checking that the owner exists."""
    from serve_app.storage import Database, GlbStore
    from serve_app.storage.blob_root import settings_root
    from serve_app.storage.models import User

    db = Database(settings.storage.database_url)
    db.upgrade()
    with db.session() as session:
        if session.get(User, user_id) is None:
            raise InputError(f"no user with id {user_id} in {settings.storage.database_url}")
    return GlbStore(db, settings_root(settings.storage))


def run(args: argparse.Namespace) -> str:
    """Do the work; return the summary line."""
    from serve_app.pipeline import Pipeline
    from serve_app.stages import ExportStage, Job, Upload

    check_args(args)
    if args.video and not Path(args.video).is_file():
        raise InputError(f"no such video: {args.video}")
    images = image_files(args.images) if args.images else None
    settings = settings_from(args)
    if images is not None:
        check_frame(args.frame, len(images), f"{len(images)} photos")
    else:
        check_frame(args.frame, settings.frames.max_frames, "videos")  # at most max_frames are sampled
    name = args.original_name or input_name(args)
    target = output_path(args.out, input_name(args)) if args.out else None
    if target is not None:
        check_output(target)
    stages = [ExportStage(settings, open_store(settings, args.user_id))] if args.save_to_db else []
    pipeline = Pipeline(settings, stages=stages, progress=stage_bars(args.quiet))

    if args.preset == "tiny":
        print(
            "WARNING: --preset tiny is an UNTRAINED demo model (random weights): its point cloud is noise",
            file=sys.stderr,
        )

    job = Job(user_id=args.user_id if args.save_to_db else None, original_name=name)
    if images is not None:
        upload = Upload(job, images=tuple(p.read_bytes() for p in images))
    else:
        upload = Upload.from_video_file(job, args.video)
    result = pipeline.run(upload)
    done = []
    if args.save_to_db:
        store = pipeline.stage(ExportStage).store
        done.append(f"stored {result.hashed_name} ({store.root.describe(store.locate(result.hashed_name))})")
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result.glb)
        done.append(f"wrote {target}")
    stages_text = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items())
    return (
        f"{', '.join(done)}: {result.frame_count} frames, {result.point_count:,} points, "
        f"{len(result.glb) / 1e6:.2f} MB GLB in {sum(result.timings.values()):.2f}s ({stages_text})"
    )


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from tcp_proxy.errors import ServiceError

    try:
        args = build_parser().parse_args(argv)
        print(run(args))
        return 0
    except (InputError, ServiceError, ValueError, OSError, SQLAlchemyError) as exc:
        message = exc.message if isinstance(exc, ServiceError) else (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"export_glb: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("export_glb: interrupted", file=sys.stderr)
        return 130

