"""Which predicted points go into the cloud, and with which colours.

The selection follows the reference VGGT viewer: pick the point source, keep
one frame if asked, drop the least confident points by percentile (and any
with confidence <= 1e-5), optionally drop near-black and near-white pixels.
`cap_points` then thins the cloud for phones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .options import ExportOptions
from .ranks import percentile as percentile_of
from .ranks import top_indices

MIN_CONFIDENCE = 1e-5  # points at or below this are never kept
BLACK_SUM_LIMIT = 16  # rgb sums below this count as black background
WHITE_CHANNEL_LIMIT = 240  # all three channels above this count as white background
SEARCH_SAMPLE = 1_000_000  # points used to choose the voxel size
GRID_LIMIT = 2_000_000  # cells per axis at most (cell indices fit in 21 bits)


def prediction_keys(source: str) -> tuple[str, ...]:
    """The prediction arrays an export from `source` reads; the others need not travel to it."""
    if source == "pointmap":
        return ("world_points", "world_points_conf", "images", "extrinsic")
    return ("world_points_from_depth", "depth_conf", "images", "extrinsic")


def points_and_confidence(predictions: dict, source: str) -> tuple[np.ndarray, np.ndarray]:
    """World points [S,H,W,3] and their confidence [S,H,W] for `source`.

    "pointmap" falls back to the depth unprojection when the point map is
    absent; a missing confidence counts as 1 everywhere.
    """
    if source == "pointmap" and "world_points" in predictions:
        points_key, conf_key = "world_points", "world_points_conf"
    else:
        points_key, conf_key = "world_points_from_depth", "depth_conf"
    points = np.asarray(predictions[points_key])
    conf = predictions.get(conf_key)
    conf = np.ones(points.shape[:-1], np.float32) if conf is None else np.asarray(conf)
    return points, conf


def pixel_colors(images: np.ndarray) -> np.ndarray:
    """[S,3,H,W] (or [S,H,W,3]) floats in [0, 1] to [S*H*W, 3] uint8, truncating."""
    images = np.asarray(images)
    channels_first = images.ndim == 4 and images.shape[1] == 3
    values = (images * 255).astype(np.uint8)  # scale where the floats lie, then move the bytes
    if channels_first:
        values = values.transpose(0, 2, 3, 1)
    return values.reshape(-1, 3)


def frame_index(frame: int | None, frame_count: int) -> int | None:
    """Check a frame number against the frame count (negatives count from the end)."""
    if frame is None:
        return None
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise ValueError(f"frame must be an integer, got {frame!r}")
    if not -frame_count <= frame < frame_count:
        raise ValueError(f"frame {frame} is out of range: there are {frame_count} frames")
    return int(frame) % frame_count


def confidence_threshold(conf: np.ndarray, percentile: float) -> float:
    """The confidence below which the lowest `percentile` percent of points lie (checked by ExportOptions).

    Exactly `np.percentile(conf, percentile)`, without sorting a copy of every value (`ranks.percentile`).
    """
    if percentile == 0.0 or conf.size == 0:
        return 0.0
    return percentile_of(conf.reshape(-1), percentile)


def keep_mask(
    conf: np.ndarray,
    colors: np.ndarray,
    *,
    percentile: float,
    mask_black_bg: bool,
    mask_white_bg: bool,
) -> np.ndarray:
    """Boolean mask over flat points: confident enough and not masked background."""
    threshold = confidence_threshold(conf, percentile)
    if conf.dtype.kind == "f":
        # `conf >= threshold and conf > MIN_CONFIDENCE` in one comparison, in conf's precision (as numpy
        # compares a float array with a Python float): above MIN_CONFIDENCE is at least the next value up
        kind = conf.dtype.type
        least = np.nextafter(kind(MIN_CONFIDENCE), kind(np.inf))
        keep = conf >= np.maximum(kind(threshold), least)
    else:
        keep = (conf >= threshold) & (conf > MIN_CONFIDENCE)
    if mask_black_bg:
        keep &= colors.sum(axis=1, dtype=np.int32) >= BLACK_SUM_LIMIT
    if mask_white_bg:
        keep &= ~np.all(colors > WHITE_CHANNEL_LIMIT, axis=1)
    return keep


def select_points(
    predictions: dict,
    options: ExportOptions = ExportOptions(),
    *,
    conf_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Kept points [N,3] float32 and their colours [N,3] uint8, by `options`.

    `conf_scale` [S,H,W] multiplies the confidence first (the sky mask).
    """
    selection = select(predictions, options, conf_scale=conf_scale)
    return selection.vertices(selection.kept), selection.colors(selection.kept)


@dataclass(frozen=True)
class Selection:
    """The candidate points of an export and which of them are kept, by flat index.

    Positions and colours are read for the indices asked, so an export that
    caps millions of kept points to a budget converts only those it writes.
    """

    points: np.ndarray  # [S*H*W, 3] every candidate point
    confidence: np.ndarray  # [S*H*W]
    images: np.ndarray  # [S, 3, H, W] (or [S, H, W, 3]) floats in [0, 1]
    kept: np.ndarray  # flat indices of the kept points, ascending

    def vertices(self, indices: np.ndarray) -> np.ndarray:
        return np.take(self.points, indices, axis=0).astype(np.float32, copy=False)  # take: 2x [indices]

    def colors(self, indices: np.ndarray) -> np.ndarray:
        """uint8 RGB of the given flat indices, exactly `pixel_colors(images)[indices]`."""
        images = self.images
        if images.ndim == 4 and images.shape[1] == 3 and images.flags.c_contiguous:  # [S, 3, H, W]
            plane = images.shape[2] * images.shape[3]
            frame, pixel = np.divmod(indices, plane)
            red = frame * (3 * plane) + pixel  # flat index of the red value; green and blue one plane on each
            flat = images.reshape(-1)
            out = np.empty((len(indices), 3), np.uint8)
            for channel in range(3):
                out[:, channel] = flat.take(red + channel * plane) * 255  # truncated, as astype(np.uint8)
            return out
        if images.ndim == 4 and images.shape[1] == 3:
            frame, pixel = np.divmod(indices, images.shape[2] * images.shape[3])
            row, column = np.divmod(pixel, images.shape[3])
            values = images[frame, :, row, column]  # [N, 3]
        else:
            values = images.reshape(-1, 3)[indices]
        return (values * 255).astype(np.uint8)

    def capped(self, max_points: int | None, method: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Positions and colours of the kept points after `cap_points`'s cap, the same choice.

        "uniform" and "confidence" choose indices first and read only the chosen
        points; "voxel" merges positions and colours, so it reads every kept point.
        """
        kept = self.kept
        if max_points is not None and len(kept) > max_points and method != "voxel":
            if method == "confidence":  # kept points are above MIN_CONFIDENCE already (`keep_mask`)
                keys = sampling_keys(len(kept), self.confidence[kept], seed, clamped=True)
                kept = kept[top_indices(keys, max_points)]
            else:
                kept = kept[cap_indices(len(kept), max_points, method=method, seed=seed)]
            return self.vertices(kept), self.colors(kept)
        return cap_points(self.vertices(kept), self.colors(kept), max_points, method=method, seed=seed)


def select(predictions: dict, options: ExportOptions = ExportOptions(), *, conf_scale=None) -> Selection:
    """The points `options` keeps (confidence, background masks, one frame), as a `Selection`."""
    points, conf = points_and_confidence(predictions, options.source)
    images = np.asarray(predictions["images"])
    if conf_scale is not None:
        conf = conf * conf_scale
    index = frame_index(options.frame, len(points))
    if index is not None:
        points, conf, images = points[index : index + 1], conf[index : index + 1], images[index : index + 1]
    flat_conf = conf.reshape(-1)
    masks = options.mask_black_bg or options.mask_white_bg
    colors = pixel_colors(images) if masks else np.empty((len(flat_conf), 3), np.uint8)  # read only by the masks
    keep = keep_mask(
        flat_conf,
        colors,
        percentile=options.conf_percentile,
        mask_black_bg=options.mask_black_bg,
        mask_white_bg=options.mask_white_bg,
    )
    return Selection(points.reshape(-1, 3), flat_conf, images, np.flatnonzero(keep))


def cap_indices(
    count: int, max_points: int, *, method: str = "uniform", confidence: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Positions (ascending) of the `max_points` of `count` points "uniform" or "confidence" keeps.

    "confidence": the points with the largest `sampling_keys`; where keys tie at
    the cut, the earlier points (`ranks.top_indices`).
    """
    if method == "confidence" and confidence is not None:
        return top_indices(sampling_keys(count, confidence, seed), max_points)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(count, size=max_points, replace=False))


def sampling_keys(count: int, confidence: np.ndarray, seed: int = 0, *, clamped: bool = False) -> np.ndarray:
    """log(u) / w per point: u uniform in (0, 1] from the seeded generator, w the confidence
    (at least MIN_CONFIDENCE; NaN counts as MIN_CONFIDENCE). The larger the key, the likelier kept.

    clamped: the caller knows every confidence is above MIN_CONFIDENCE (no clamping pass).
    """
    keys = np.random.default_rng(seed).random(count, dtype=np.float32)
    np.subtract(1, keys, out=keys)  # in (0, 1]: log is finite
    np.log(keys, out=keys)
    weights = np.asarray(confidence) if clamped else np.fmax(confidence, MIN_CONFIDENCE)
    return np.divide(keys, weights, out=keys if weights.dtype == np.float32 else None)


def cap_points(
    vertices: np.ndarray,
    colors: np.ndarray,
    max_points: int | None,
    *,
    method: str = "uniform",
    confidence: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points, chosen the same way on every call.

    "uniform" keeps a seeded random subset in the original order;
    "confidence" keeps a seeded random subset drawn with probability growing
    with `confidence` (weighted sampling without replacement, Efraimidis and
    Spirakis: the largest log(u) / w), in the original order; "voxel" merges
    points per grid cell (mean position and colour), choosing the coarsest
    cell that still leaves about `max_points`, then thins the rest.
    """
    if max_points is None or len(vertices) <= max_points:
        return vertices, colors
    if method == "voxel":
        vertices, colors = voxel_downsample(vertices, colors, max_points, seed=seed)
        if len(vertices) <= max_points:
            return vertices, colors
        method = "uniform"
    chosen = cap_indices(len(vertices), max_points, method=method, confidence=confidence, seed=seed)
    return vertices[chosen], colors[chosen]


def voxel_downsample(
    vertices: np.ndarray, colors: np.ndarray, max_points: int, *, rounds: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean point and colour per occupied cell of a grid sized for `max_points`, in cell order (x, then y, then z).

    The cell size is found by bisection (on at most SEARCH_SAMPLE points drawn
    with `seed`, so the full cloud may give a few more cells than `max_points`,
    which `cap_points` then thins). When no size searched leaves `max_points`
    cells or fewer, one cell holds the whole cloud (its mean point).
    """
    lower = vertices.min(axis=0).astype(np.float64)
    largest = max(float((vertices.max(axis=0) - lower).max()), 1e-12)
    sample = vertices
    if len(vertices) > SEARCH_SAMPLE:
        sample = vertices[np.random.default_rng(seed).choice(len(vertices), SEARCH_SAMPLE, replace=False)]
    small, large = largest / GRID_LIMIT, largest  # too many cells at `small`, at most 2 per axis at `large`
    cell = float("inf")  # one cell for the whole cloud: the answer when every size searched leaves too many
    for _ in range(rounds):
        middle = float(np.sqrt(small * large))
        count = _cell_ids(sample, lower, middle)[1]
        if count > max_points:
            small = middle
        else:
            large = cell = middle
            if count >= 0.95 * max_points:
                break
    inverse, cell_count = _cell_ids(vertices, lower, cell)
    counts = np.bincount(inverse, minlength=cell_count).astype(np.float64)[:, None]
    mean_points = _sum_per_cell(inverse, vertices, cell_count) / counts
    mean_colors = _sum_per_cell(inverse, colors, cell_count) / counts
    return mean_points.astype(np.float32), np.round(mean_colors).astype(np.uint8)


def _cell_ids(vertices: np.ndarray, lower: np.ndarray, cell: float) -> tuple[np.ndarray, int]:
    """Index of each point's cell among the occupied cells, and their count."""
    ijk = ((vertices - lower) / cell).astype(np.int64)
    keys = (ijk[:, 0] << 42) | (ijk[:, 1] << 21) | ijk[:, 2]
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1


def _sum_per_cell(inverse: np.ndarray, values: np.ndarray, cell_count: int) -> np.ndarray:
    return np.stack(
        [np.bincount(inverse, weights=values[:, axis], minlength=cell_count) for axis in range(3)], axis=1
    )
