"""Photos or a video to a GLB point cloud, without Ray or a network (`vggt-export`, `scripts/export_glb.py`).

    vggt-export --video clip.mp4 --out scene.glb
    vggt-export --images photos/ --out out_dir/ --preset tiny
    vggt-export --images a.jpg b.jpg --save-to-db --user-id 1 --original-name scene

The setup guide's spellings work too, as aliases (`--video_path`, `--conf_thres`,
`--prediction_mode "Predicted Pointmap"`, `--save_to_db`, `--show_cam`, ...):

    vggt-export --video_path clip.mp4 --out outputs --fps 0.4 --prediction_mode "Predicted Pointmap"

Runs the service's stages in-process (decode, inference, export, and with
--save-to-db the same storage layer as the service), one progress bar per
stage that follows the stage's work (frames decoded, model steps, export
steps), then prints a one-line summary. Every argument is checked before
anything is decoded; bad input exits with status 2 and one line,
`vggt-export: <what is wrong>`, naming the flag or the file at fault.
`--out` names a file when it ends in `.glb`, else an existing folder that
gets `<input name>.glb`; a folder that does not exist is an error. The
checkpoint is `./model.pt`, else the repository root's (where
`fetch_weights.py` puts it); a missing or unfit one is refused before
anything is decoded, naming the `vggt-fetch-weights` command that gets it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ContextManager

from serve_app.cli import EXIT_BAD_INPUT, InputError, OneLineParser, report
from serve_app.export.options import DOWNSAMPLE_METHODS, POINT_BUDGET, POINT_SOURCES
from serve_app.vggt.config import PRESETS
from tcp_proxy.photo_files import PHOTO_SUFFIXES, folder_photos  # the decoder's formats (serve_app.frames.photos)

PROG = "vggt-export"
REPO_ROOT = Path(__file__).resolve().parents[2]  # where scripts/fetch_weights.py puts model.pt
CHECKPOINT = "model.pt"
# the setup guide's --prediction_mode values
PREDICTION_MODES = {"Predicted Pointmap": "pointmap", "Depthmap and Camera Branch": "depth"}
# settings whose option has another name (section fields not listed here are set by the option of the same name)
SETTING_OPTIONS = {"max_images": "max_frames", "quantize": "float32", "center": "no_center"}
# a settings error as the settings word it: "[setting ]<section>.<field>[:] <what is wrong>"
SETTING_MESSAGE = re.compile(r"^(?:setting )?(?P<section>[a-z_]+)\.(?P<field>[a-z_]+):? (?P<rest>.*)$", re.DOTALL)
UNTRAINED_WARNING = "--preset tiny is an UNTRAINED demo model (random weights): its point cloud is noise"

# called with a stage name around each stage; the context's value is the stage's (done, total) callback
StageProgress = Callable[[str], ContextManager[Any]]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Photos or a video to a VGGT point cloud (GLB).")
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


def settings_from(args: argparse.Namespace, typed: dict[str, str] | None = None):
    """AppSettings from the options given; the rest keep the service defaults.

    A value the settings refuse is an InputError naming its option (the
    spelling in `typed`, dest -> option as given, else the option's first name).
    """
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
        raise InputError(option_message(exc, args, typed or {})) from None


def option_message(exc: ValueError, args: argparse.Namespace, typed: dict[str, str]) -> str:
    """A settings error reworded to name the option that set it: `export.conf_percentile must be in
    [0, 100], got 120.0` -> `--conf-percentile must be in [0, 100], got 120`."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    match = SETTING_MESSAGE.match(text)
    setting = getattr(exc, "setting", None)
    field = getattr(exc, "field", None) or (match and match["field"])
    if not field:
        return text
    dest = SETTING_OPTIONS.get(field, field)
    options = {action.dest: action.option_strings for action in build_parser()._actions if action.option_strings}
    if dest not in options:
        return text
    flag = typed.get(dest) or options[dest][0]
    if not match or (setting is not None and f"{match['section']}.{match['field']}" != setting):
        return f"{flag}: {text}"  # the settings' words do not start with the setting's name
    rest = match["rest"]
    value = getattr(args, dest, None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rest = re.sub(r"got \S+$", f"got {_shown(value)}", rest)
    return f"{flag} {rest}"


def _shown(value: float) -> str:
    """A number as it was most likely typed: 120.0 -> 120, 0.5 -> 0.5."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def typed_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, str]:
    """dest -> the option string used for it in `argv` (`--conf_thres` for conf_percentile)."""
    words = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    typed = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option in words:
                typed[action.dest] = option
    return typed


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
    """Photo files from a folder (its photos, in name order) or as given."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        files = folder_photos(paths[0])
        if not files:
            raise InputError(f"no photos in {paths[0]} (accepted: {', '.join(PHOTO_SUFFIXES)})")
        return files
    for path in paths:
        if Path(path).is_dir():
            raise InputError(f"--images: {path} is a folder; give one folder, or photo files")
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}")
    return [Path(p) for p in paths]


def image_names(paths: list[str], files: list[Path]) -> list[str]:
    """How to name each photo in a message: the path as given, or the folder's path joined with its name."""
    if len(files) == len(paths) and not Path(paths[0]).is_dir():
        return list(paths)
    return [str(Path(paths[0]) / file.name) for file in files]


def check_video(path: str) -> None:
    if Path(path).is_dir():
        raise InputError(f"--video: {path} is a folder, not a video file")
    if not Path(path).is_file():
        raise InputError(f"no such video: {path}")


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
    """Refuse, before any work, an output that cannot be written; no folder is created."""
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder")
    folder = target.parent
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {target}: {parent} is a file, not a folder")
            break
    if not folder.is_dir():
        raise InputError(f"--out: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write {target}: {folder} is not writable")


def check_frame(frame: int | None, frame_count: int, what: str) -> None:
    if frame is not None and not -frame_count <= frame < frame_count:
        raise InputError(f"--frame {frame} is out of range: {what} give {frame_count} frames")


def stage_bars(quiet: bool) -> StageProgress:
    """A progress bar per stage, on stderr, moved by the stage's (done, total) reports.

    A stage that reports nothing (loading the model) fills its bar when it ends.
    """
    from tqdm import tqdm

    @contextlib.contextmanager
    def bar(stage: str) -> Iterator[Callable[[int, int | None], None]]:
        bar_format = "{desc} |{bar:24}| {n_fmt}/{total_fmt} {elapsed}"
        with tqdm(total=1, desc=f"{stage:<9}", bar_format=bar_format, disable=quiet, file=sys.stderr) as progress:
            reported = False

            def advance(done: int, total: int | None) -> None:
                nonlocal reported
                reported = True
                if total != progress.total:
                    progress.total = total  # None while the stage does not know it (a video's length)
                progress.update(done - progress.n)

            yield advance
            if not reported:
                progress.update(1)

    return bar


@contextlib.contextmanager
def untrained_warning_once(preset: str) -> Iterator[None]:
    """Print the untrained-model warning once, up front, and hold back the model loader's own copy of it."""
    if preset != "tiny":
        yield
        return
    report(PROG, f"warning: {UNTRAINED_WARNING}")

    def not_the_warning(record: logging.LogRecord) -> bool:
        return not getattr(record, "untrained_model", False)

    logger = logging.getLogger("serve_app.vggt.runner")
    logger.addFilter(not_the_warning)
    try:
        yield
    finally:
        logger.removeFilter(not_the_warning)


def check_model(settings) -> None:
    """Refuse a missing or unfit checkpoint before anything is decoded (the untrained preset has none)."""
    from serve_app.vggt.checkpoint import CheckpointError, check_checkpoint

    if settings.model.preset != "tiny":
        try:
            check_checkpoint(settings.model.checkpoint, settings.model.preset)
        except CheckpointError as exc:
            raise InputError(str(exc)) from None


def open_store(settings, user_id: int):
    """The service's GLB store, after checking that the owner exists."""
    from serve_app.storage import GlbStore
    from serve_app.storage.blob_root import settings_root
    from serve_app.storage.location import LocationError, open_database, shown_url
    from serve_app.storage.models import User

    url = settings.storage.database_url
    try:
        db = open_database(url, create=True)
    except LocationError as exc:
        raise InputError(str(exc)) from None
    with db.session() as session:
        known = session.get(User, user_id) is not None
    if not known:
        db.dispose()
        raise InputError(f"no user with id {user_id} in {shown_url(url)}")
    return GlbStore(db, settings_root(settings.storage))


def run(
    args: argparse.Namespace, *, progress: StageProgress | None = None, typed: dict[str, str] | None = None
) -> str:
    """Do the work; return the summary line.

    progress: what shows each stage's progress (default: `stage_bars`);
    typed: the option spellings used (`typed_options`), for messages.
    """
    from serve_app.pipeline import Pipeline
    from serve_app.stages import ExportStage, Job, Upload
    from tcp_proxy.errors import BadImageError, NoFramesError

    check_args(args)
    settings = settings_from(args, typed)
    if args.video:
        check_video(args.video)
    images = image_files(args.images) if args.images else None
    if images is not None:
        check_frame(args.frame, len(images), f"{len(images)} photos")
    else:
        check_frame(args.frame, settings.frames.max_frames, "videos")  # at most max_frames are sampled
    name = args.original_name or input_name(args)
    target = output_path(args.out, input_name(args)) if args.out else None
    if target is not None:
        check_output(target)
    check_model(settings)
    stages = [ExportStage(settings, open_store(settings, args.user_id))] if args.save_to_db else []
    pipeline = Pipeline(settings, stages=stages, progress=progress or stage_bars(args.quiet))

    job = Job(user_id=args.user_id if args.save_to_db else None, original_name=name)
    if images is not None:
        upload = Upload(job, images=tuple(p.read_bytes() for p in images))
    else:
        upload = Upload.from_video_file(job, args.video)
    with untrained_warning_once(args.preset):
        try:
            result = pipeline.run(upload)
        except BadImageError as exc:
            raise InputError(named_image_error(exc.message, image_names(args.images, images or []))) from None
        except NoFramesError as exc:
            if not args.video:
                raise
            raise InputError(f"{args.video}: {exc.message}") from None
    done = []
    if args.save_to_db:
        store = pipeline.stage(ExportStage).store
        done.append(f"stored {result.hashed_name} ({store.root.describe(store.locate(result.hashed_name))})")
    if target is not None:
        target.write_bytes(result.glb)
        done.append(f"wrote {target}")
    stages_text = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items())
    return (
        f"{', '.join(done)}: {result.frame_count} frames, {result.point_count:,} points, "
        f"{len(result.glb) / 1e6:.2f} MB GLB in {sum(result.timings.values()):.2f}s ({stages_text})"
    )


def named_image_error(message: str, names: list[str]) -> str:
    """`image 2 of 3: not a decodable image` -> `b.jpg: not a decodable image`."""
    match = re.match(r"image (\d+) of \d+: (.*)", message, re.DOTALL)
    if match and 1 <= int(match[1]) <= len(names):
        return f"{names[int(match[1]) - 1]}: {match[2]}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from tcp_proxy.errors import ServiceError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        print(run(args, typed=typed_options(parser, argv)))
        return 0
    except (InputError, ServiceError, ValueError, OSError, SQLAlchemyError) as exc:
        report(PROG, exc.message if isinstance(exc, ServiceError) else str(exc) or type(exc).__name__)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        report(PROG, "interrupted")
        return 130

