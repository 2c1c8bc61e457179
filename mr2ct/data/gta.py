"""GTA segmentation <-> video clips (the GTA experiments of "Unsupervised Video-to-Video Translation").

Sources. Three kinds of folder give the same sequences (RGB frames and per-pixel class ids):

* the VIPER / Playing-for-Benchmarks layout (:mod:`mr2ct.data.viper`)::

      <root>/<split>/img/<seq>/<seq>_<frame>.jpg|png   RGB frames, e.g. train/img/001/001_00010.jpg
      <root>/<split>/cls/<seq>/<seq>_<frame>.png       class maps, coloured with VIPER_CLASSES' palette

  image and class frames are paired by name (every image needs its class map);
* a folder of ordinary videos, one per sequence, each with its labels beside it::

      <root>/<name>.mp4            (or .m4v .mov .avi .mkv .webm) the RGB video; the sequence is <name>
      <root>/<name>_labels/        class maps as a folder of PNG frames (natural order), palette colours
      <root>/<name>_labels.mkv     ... or as a video, only if its colours decode exactly (a lossless codec:
                                   FFV1, PNG, x264rgb at crf 0); a lossy label video is refused

* the procedural driving scene of :mod:`mr2ct.data.driving_scene` (no download), written in the VIPER layout.

Clips. :func:`build_gta_clips` cuts the selected sequences into clips of ``depth`` frames (every
``frame_step``-th frame, clip starts ``stride`` frames apart), resized to ``size`` (centre crop to the aspect
ratio, then anti-aliased bilinear for RGB, nearest for labels), and caches them like the digit videos:
domain A is the segmentation drawn in palette colours (or, for video colourisation, the grey video), domain B
the RGB video. Sequences are split into train and test (``train_fraction``, seeded); the training clips are
shuffled and halved, one half per domain, so training is unpaired; every test clip is in both domains (a
ground-truth pair) and its class ids are kept. The "slow" test subset holds the clips with the least measured
motion (:func:`clip_motion`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from itertools import zip_longest
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mr2ct.data.driving_scene import DrivingSceneConfig, build_driving_scene
from mr2ct.data.viper import (
    GTA_SEQUENCES,
    IMAGE_FOLDER,
    VIPER_CLASSES,
    Palette,
    class_table,
    decode_labels,
    encode_labels,
    frame_name,
    list_viper_sequences,
    palette_array,
    parse_sequences,
    sequence_folders,
)
from mr2ct.io.atomic import building_folder
from mr2ct.io.video import (
    VIDEO_SUFFIXES,
    VideoError,
    fit_frame,
    iter_frames,
    iter_video,
    list_frames,
    write_video,
)

__all__ = [
    "DOMAIN_A_KINDS",
    "GTAClipConfig",
    "build_gta_clips",
    "clip_motion",
    "export_videos",
    "grayscale",
    "labels_beside",
    "list_video_sequences",
    "palette_array",  # re-exported from mr2ct.data.viper: the GTA bundle's configs call mr2ct.data.gta.palette_array
    "read_video_sequence",
    "read_viper_sequence",
    "test_videos",
    "write_test_videos",
]

_VERSION = 1

DOMAIN_A_KINDS = {
    "segmentation": "segmentation in VIPER palette colours (3 channels)",
    "grayscale": "grey video, luma (BT.601) repeated in 3 equal channels",
}
_SLOW_DEFINITION = (
    "motion = mean over consecutive frame pairs of the mean absolute difference of their grey "
    "levels (BT.601 luma, 0-255) in the resized clip; slow = motion <= the slow_quantile "
    "quantile of the test clips' motions"
)


def grayscale(frames: np.ndarray) -> np.ndarray:
    """Grey version of RGB frames ``(..., 3)`` uint8: BT.601 luma, rounded, repeated in 3 equal channels."""
    luma = np.asarray(frames, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def clip_motion(clip: np.ndarray) -> float:
    """Measured motion of an RGB clip ``(3, D, H, W)`` uint8: the mean absolute frame-to-frame difference of
    its grey levels (0-255). It grows with the camera's speed (the scene streams past faster) and with moving
    objects; 0 for a still clip or a single frame."""
    grey = grayscale(np.moveaxis(np.asarray(clip), 0, -1))[..., 0].astype(np.float32)
    return float(np.abs(np.diff(grey, axis=0)).mean()) if len(grey) > 1 else 0.0


# ------------------------------------------------------------------------------------------------ sequences


def _collect(
    pairs: Iterator[tuple[np.ndarray, np.ndarray, Path, int]], size: tuple[int, int] | None, palette: Palette, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(rgb, label colours, label path, frame)`` pairs into ``(T, H, W, 3)`` RGB and ``(T, H, W)`` ids,
    decoding and resizing one frame at a time."""
    frames, labels = [], []
    for rgb, label_rgb, label_path, index in pairs:
        if rgb.shape != label_rgb.shape:
            raise VideoError(
                label_path,
                f"class map is {label_rgb.shape[0]}x{label_rgb.shape[1]} but the frame "
                f"of {name} is {rgb.shape[0]}x{rgb.shape[1]}",
                index,
            )
        frames.append(fit_frame(rgb, size, nearest=False))
        labels.append(fit_frame(decode_labels(label_rgb, palette, label_path, index), size, nearest=True))
    return np.stack(frames), np.stack(labels)


def read_viper_sequence(
    root: str | os.PathLike,
    sequence: str,
    split: str = "train",
    size: tuple[int, int] | None = None,
    frame_step: int = 1,
    palette: Palette = VIPER_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one sequence of a VIPER-layout folder: RGB ``(T, H, W, 3)`` uint8 and class ids ``(T, H, W)`` uint8.

    Image and class frames are paired by file stem (both sets must match); every ``frame_step``-th pair is
    kept and, with ``size``, resized as it is read (see the module notes).
    """
    if int(frame_step) != frame_step or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}.")
    img_dir, cls_dir = sequence_folders(root, split, sequence)
    images = list_frames(img_dir)
    by_stem = {p.stem: p for p in list_frames(cls_dir, (".png",))}
    missing = [p.name for p in images if p.stem not in by_stem]
    if missing or len(by_stem) != len(images):
        extra = sorted(set(by_stem) - {p.stem for p in images})
        raise VideoError(
            cls_dir,
            f"class maps do not match the {len(images)} image frames of {img_dir}: "
            f"{len(missing)} images lack one (e.g. {missing[:3]}), {len(extra)} maps have "
            f"no image (e.g. {extra[:3]})",
        )
    label_files = [by_stem[p.stem] for p in images]
    pairs = (
        (rgb, lab, label_files[i], i)
        for i, rgb, lab in zip(
            range(0, len(images), frame_step),
            iter_frames(images, frame_step),
            iter_frames(label_files, frame_step),
            strict=True,
        )
    )
    return _collect(pairs, size, palette, str(img_dir))


def labels_beside(video: str | os.PathLike) -> Path:
    """The labels of ``<name>.mp4``: the folder ``<name>_labels/`` or else a video ``<name>_labels.<ext>``."""
    video = Path(video)
    folder = video.with_name(f"{video.stem}_labels")
    if folder.is_dir():
        return folder
    for suffix in VIDEO_SUFFIXES:
        candidate = video.with_name(f"{video.stem}_labels{suffix}")
        if candidate.is_file():
            return candidate
    raise VideoError(
        video,
        f"no labels beside it: expected a folder {folder.name}/ of PNG class maps (or a "
        f"lossless video {folder.name}.mkv)",
    )


def _label_frames(labels: Path) -> Iterator[np.ndarray]:
    """The frames of a folder of PNG class maps or of a label video."""
    return iter_frames(list_frames(labels, (".png",))) if labels.is_dir() else iter_video(labels)


def _video_pairs(video: Path, labels: Path, frame_step: int) -> Iterator[tuple[np.ndarray, np.ndarray, Path, int]]:
    """Yield ``(rgb, label colours, labels, frame)`` for every ``frame_step``-th frame of a video and its labels;
    all frames are read, so that frame counts that differ are reported."""
    if int(frame_step) != frame_step or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}.")
    done = object()
    for index, (rgb, label_rgb) in enumerate(zip_longest(iter_video(video), _label_frames(labels), fillvalue=done)):
        if rgb is done or label_rgb is done:
            longer, shorter = (video, labels) if label_rgb is done else (labels, video)
            raise VideoError(longer, f"has more frames than {shorter} (the frame counts must match)", index)
        if index % frame_step == 0:
            yield rgb, label_rgb, labels, index  # type: ignore[misc]  # the sentinel was ruled out above


def read_video_sequence(
    video: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    frame_step: int = 1,
    palette: Palette = VIPER_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a video file and its labels: RGB ``(T, H, W, 3)`` uint8 and class ids ``(T, H, W)`` uint8.

    ``labels`` (default :func:`labels_beside`) is a folder of PNG class maps or a video; a label video must
    decode to palette colours exactly, so a lossy one (e.g. H.264) is refused. Both must have as many frames;
    every ``frame_step``-th frame is kept and, with ``size``, resized as it is read.
    """
    video = Path(video)
    labels = Path(labels) if labels is not None else labels_beside(video)
    try:
        return _collect(_video_pairs(video, labels, frame_step), size, palette, str(video))
    except VideoError as e:
        if labels.is_file() and e.path == str(labels) and "outside the palette" in e.reason:
            raise VideoError(
                e.path,
                f"{e.reason}; a lossy label video cannot be decoded: write the labels as a "
                f"folder of PNG frames {video.stem}_labels/",
                e.frame,
            ) from e
        raise


def list_video_sequences(root: str | os.PathLike) -> dict[str, Path]:
    """The videos of a folder of sequences, by sequence name (file stem); ``<name>_labels.*`` are labels."""
    videos: dict[str, Path] = {}
    for path in sorted(Path(root).iterdir()):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.stem.endswith("_labels"):
            if path.stem in videos:
                raise ValueError(
                    f"two videos for sequence {path.stem!r} in {root}: {videos[path.stem].name}, {path.name}."
                )
            videos[path.stem] = path
    return videos


def export_videos(
    viper_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str = "train",
    sequences: Iterable[str] | None = None,
    fps: float = 15.0,
    crf: int = 18,
) -> Path:
    """Write the sequences of a VIPER-layout folder as videos with labels beside them: ``<out_dir>/<seq>.mp4``
    (H.264) and ``<out_dir>/<seq>_labels/`` (its class maps, copied); return ``out_dir``.

    This is the layout :func:`build_gta_clips` reads from a folder of videos; each video is written
    atomically, frame by frame.
    """
    out_dir = Path(out_dir)
    names = list(sequences) if sequences is not None else list_viper_sequences(viper_root, split)
    for name in tqdm(names, desc=f"exporting {Path(viper_root).name} to videos", unit="sequence"):
        img_dir, cls_dir = sequence_folders(viper_root, split, name)
        write_video(out_dir / f"{name}.mp4", iter_frames(list_frames(img_dir)), fps=fps, crf=crf)
        labels = out_dir / f"{name}_labels"
        labels.mkdir(parents=True, exist_ok=True)
        for path in list_frames(cls_dir, (".png",)):
            shutil.copy2(path, labels / path.name)
    return out_dir


# ------------------------------------------------------------------------------------------------ clips


@dataclass(frozen=True)
class GTAClipConfig:
    """Settings of the GTA clip data set; with the source they name the cache folder.

    Args:
        depth: frames per clip (the paper uses 30, and 8).
        size: ``(H, W)`` of a frame of a clip; frames are centre-cropped to its aspect ratio, then resized.
        stride: frames between the starts of consecutive clips of a sequence (after ``frame_step``);
            default ``depth`` (clips that touch but do not overlap).
        frame_step: keep every ``frame_step``-th frame of a sequence (the frame-rate option).
        sequences: names of the sequences to use, as a list or a spec such as ``"001-004, 044-049"``;
            default the paper's selection ``GTA_SEQUENCES``; ``None``: every sequence of the source.
        split: the split folder of a VIPER-layout source (``train``, ``val``); the procedural scene has ``train``.
        train_fraction: share of the sequences used for training (the rest are test sequences).
        domain_a: ``"segmentation"`` (class colours) or ``"grayscale"`` (video colourisation), see
            ``DOMAIN_A_KINDS``; domain B is always the RGB video.
        slow_quantile: test clips whose motion is at most this quantile of the test clips' motions are "slow".
        seed: seed of the sequence split and of the shuffle that halves the training clips.
    """

    depth: int = 30
    size: tuple[int, int] = (108, 192)
    stride: int | None = None
    frame_step: int = 1
    sequences: tuple[str, ...] | str | None = GTA_SEQUENCES
    split: str = "train"
    train_fraction: float = 0.7
    domain_a: str = "segmentation"
    slow_quantile: float = 0.5
    seed: int = 0

    def __post_init__(self):
        size = tuple(int(s) for s in self.size)
        stride = self.depth if self.stride is None else self.stride
        checks = {
            "depth": self.depth >= 1,
            "size": len(size) == 2 and min(size) >= 1,
            "stride": stride >= 1,
            "frame_step": self.frame_step >= 1,
            "train_fraction": 0 < self.train_fraction < 1,
            "domain_a": self.domain_a in DOMAIN_A_KINDS,
            "slow_quantile": 0 <= self.slow_quantile <= 1,
            "seed": self.seed >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid GTAClipConfig: {', '.join(bad)} (depth, stride, frame_step >= 1; size "
                f"(H, W); train_fraction in (0, 1); domain_a in {sorted(DOMAIN_A_KINDS)}; "
                f"slow_quantile in [0, 1])."
            )
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "stride", int(stride))
        if self.sequences is not None:
            object.__setattr__(self, "sequences", parse_sequences(self.sequences))

    def as_dict(self) -> dict:
        """The settings as JSON-ready values."""
        info = asdict(self)
        info["size"] = list(self.size)
        info["sequences"] = list(self.sequences) if self.sequences is not None else None
        return info

    def folder_name(self, source: dict) -> str:
        """Cache folder name, e.g. ``gta_segmentation_d30_108x192_st30_fs1_seed0_<digest>``; the digest covers
        every setting and the ``source`` description."""
        key = json.dumps({"version": _VERSION, "config": self.as_dict(), "source": source}, sort_keys=True)
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
        return (
            f"gta_{self.domain_a}_d{self.depth}_{self.size[0]}x{self.size[1]}_st{self.stride}_"
            f"fs{self.frame_step}_seed{self.seed}_{digest}"
        )


SequenceReader = Callable[[str], tuple[np.ndarray, np.ndarray]]


def _open_source(
    root_dir: Path, source: str | os.PathLike | None, config: GTAClipConfig, scene: DrivingSceneConfig | None
) -> tuple[dict, list[str], SequenceReader]:
    """Describe the source, list its sequences and return a reader of one (resized, stepped) sequence."""
    size, step = config.size, config.frame_step
    if source is None or source == "procedural":
        scene = scene or DrivingSceneConfig()  # rendered on the first read only (and once: it is cached too)
        return (
            {"kind": "procedural", "scene": scene.folder_name()},
            sorted(scene.sequences),
            lambda name: read_viper_sequence(build_driving_scene(root_dir, scene), name, "train", size, step),
        )
    path = Path(source).resolve()
    if (path / config.split / IMAGE_FOLDER).is_dir():
        return (
            {"kind": "viper", "path": str(path), "split": config.split},
            list_viper_sequences(path, config.split),
            lambda name: read_viper_sequence(path, name, config.split, size, step),
        )
    if path.is_dir() and (videos := list_video_sequences(path)):
        return (
            {"kind": "videos", "path": str(path)},
            sorted(videos),
            lambda name: read_video_sequence(videos[name], size=size, frame_step=step),
        )
    raise FileNotFoundError(
        f"{path} is neither a VIPER-layout folder (no {config.split}/img/) nor a folder of "
        f"videos ({', '.join(VIDEO_SUFFIXES)}) with labels beside them."
    )


def _select(available: list[str], config: GTAClipConfig, source: dict) -> list[str]:
    names = list(config.sequences) if config.sequences is not None else available
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(
            f"sequences {missing} are not in the source {source}; it has {len(available)}: "
            f"{available[:20]}{' ...' if len(available) > 20 else ''}."
        )
    if len(names) < 2:
        raise ValueError(f"need at least 2 sequences (train and test), got {names}.")
    return names


def _split(names: list[str], config: GTAClipConfig, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Train and test sequences: a seeded permutation, ``train_fraction`` of them (at least one each) to train."""
    order = [names[i] for i in rng.permutation(len(names))]
    n_train = min(max(round(config.train_fraction * len(names)), 1), len(names) - 1)
    return sorted(order[:n_train]), sorted(order[n_train:])


def _cache_sequences(scratch: Path, names: list[str], read: SequenceReader, kind: str) -> dict[str, int]:
    """Read every sequence once (resized, stepped) into ``scratch``; return their lengths in frames."""
    scratch.mkdir()
    lengths = {}
    for name in tqdm(names, desc=f"reading {kind} sequences", unit="sequence"):
        frames, labels = read(name)
        np.save(scratch / f"{name}_rgb.npy", frames)
        np.save(scratch / f"{name}_ids.npy", labels)
        lengths[name] = len(frames)
    return lengths


def _clip_splits(
    train: list[str], test: list[str], lengths: dict[str, int], config: GTAClipConfig, rng: np.random.Generator
) -> dict[str, list[tuple[str, int]]]:
    """Clips ``(sequence, start)`` of each split: the training clips shuffled and halved, the test clips twice."""

    def clips_of(names: list[str]) -> list[tuple[str, int]]:
        return [
            (n, s) for n in names for s in range(0, lengths[n] - config.depth + 1, int(config.stride or config.depth))
        ]

    train_clips, test_clips = clips_of(train), clips_of(test)
    train_clips = [train_clips[i] for i in rng.permutation(len(train_clips))]
    half = len(train_clips) // 2
    splits = {"train_A": train_clips[:half], "train_B": train_clips[half:], "test_A": test_clips, "test_B": test_clips}
    if min(len(c) for c in splits.values()) == 0:
        raise ValueError(
            f"too few clips of {config.depth} frames: {len(train_clips)} training, {len(test_clips)} "
            f"test (sequence lengths after frame_step {config.frame_step}: {lengths}); use shorter "
            f"clips, a smaller stride or frame_step, or more sequences."
        )
    return splits


def _write_clips(
    path: Path, clips: list[tuple[str, int]], make: Callable[[str, int], np.ndarray], shape: tuple[int, ...]
) -> None:
    """Write ``make(sequence, start)`` for every clip into a ``(len(clips), *shape)`` uint8 ``.npy``."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(clips), *shape))
    for i, (name, start) in enumerate(tqdm(clips, desc=f"writing {path.name}", unit="clip", leave=False)):
        out[i] = make(name, start)
    out.flush()
    del out


def _write_splits(
    folder: Path, scratch: Path, splits: dict[str, list[tuple[str, int]]], config: GTAClipConfig
) -> np.ndarray:
    """Write the clip arrays and ``test_labels.npy`` from the cached sequences; return the test clips' motion."""
    names = {n for clips in splits.values() for n, _ in clips}
    rgb = {n: np.load(scratch / f"{n}_rgb.npy", mmap_mode="r") for n in names}
    ids = {n: np.load(scratch / f"{n}_ids.npy", mmap_mode="r") for n in names}
    depth, shape = config.depth, (config.depth, *config.size)

    def domain_b(n: str, s: int) -> np.ndarray:
        return np.moveaxis(rgb[n][s : s + depth], -1, 0)

    def domain_a(n: str, s: int) -> np.ndarray:
        if config.domain_a == "grayscale":
            return np.moveaxis(grayscale(rgb[n][s : s + depth]), -1, 0)
        return np.moveaxis(encode_labels(ids[n][s : s + depth]), -1, 0)

    for split, clips in splits.items():
        _write_clips(folder / f"{split}.npy", clips, domain_a if split.endswith("A") else domain_b, (3, *shape))
    _write_clips(folder / "test_labels.npy", splits["test_A"], lambda n, s: ids[n][s : s + depth], shape)
    return np.array([clip_motion(domain_b(n, s)) for n, s in splits["test_A"]])


def build_gta_clips(
    root_dir: str | os.PathLike,
    source: str | os.PathLike | None = None,
    config: GTAClipConfig | None = None,
    scene: DrivingSceneConfig | None = None,
) -> Path:
    """Build (once) and cache the GTA clip data set under ``root_dir``; return its folder.

    ``source`` is a VIPER-layout folder, a folder of videos with labels beside them (see the module notes), or
    ``None`` / ``"procedural"``: the procedural driving scene ``scene`` (default settings), itself built once
    under ``root_dir``. The folder holds ``train_A.npy`` and ``train_B.npy`` (unpaired: disjoint halves of the
    training clips), ``test_A.npy`` and ``test_B.npy`` (paired: row ``i`` is one clip in both domains), all
    ``(N, 3, depth, H, W)`` uint8; ``test_labels.npy`` ``(N, depth, H, W)`` uint8 class ids (VIPER_CLASSES);
    ``slow.npy``, the indices of the slow test clips; and ``meta.json`` (settings, source, classes, sequences
    of each split, their lengths after ``frame_step``, and every clip's sequence and first frame, counted in
    the source's frames, plus each test clip's motion). It is written under a temporary name and renamed when
    complete. The cache is keyed by the settings and the source's path, not its contents:
    delete the folder after changing the source's files.
    """
    config = config or GTAClipConfig()
    root_dir = Path(root_dir)
    source_info, available, read = _open_source(root_dir, source, config, scene)
    folder = root_dir / config.folder_name(source_info)
    if (folder / "meta.json").is_file():
        return folder
    names = _select(available, config, source_info)
    rng = np.random.default_rng(config.seed)
    train, test = _split(names, config, rng)
    with building_folder(folder) as tmp:
        lengths = _cache_sequences(tmp / "sequences", names, read, source_info["kind"])
        splits = _clip_splits(train, test, lengths, config, rng)
        motion = _write_splits(tmp, tmp / "sequences", splits, config)
        shutil.rmtree(tmp / "sequences")
        threshold = float(np.quantile(motion, config.slow_quantile))
        slow = np.flatnonzero(motion <= threshold)
        np.save(tmp / "slow.npy", slow)
        meta = {
            "version": _VERSION,
            "config": config.as_dict(),
            "source": source_info,
            "domains": {"A": DOMAIN_A_KINDS[config.domain_a], "B": "RGB video"},
            "classes": class_table(),
            "sequences": {"train": train, "test": test},
            "sequence_frames": lengths,
            "counts": {**{k: len(v) for k, v in splits.items()}, "slow": len(slow)},
            "slow": {"definition": _SLOW_DEFINITION, "quantile": config.slow_quantile, "threshold": threshold},
            "clips": {
                **{
                    k: [{"sequence": n, "start_frame": s * config.frame_step} for n, s in splits[k]]
                    for k in ("train_A", "train_B")
                },
                "test": [
                    {"sequence": n, "start_frame": s * config.frame_step, "motion": round(float(m), 4)}
                    for (n, s), m in zip(splits["test_A"], motion, strict=True)
                ],
            },
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


def build_gta_validation_clips(
    root_dir: str | os.PathLike,
    config: GTAClipConfig,
    scene: DrivingSceneConfig | None = None,
    source: str | os.PathLike | None = None,
    val_source: str | os.PathLike | None = None,
    scene_seed: int = 1000,
) -> Path:
    """Build (once) the paired validation clips for choosing settings without the test split; return the clip
    folder whose held-out split (``test_A``, ``test_B``, ``slow.npy``) holds them.

    With the procedural scene as the training ``source``, the clips come from a second scene, ``scene`` drawn
    with seed ``scene_seed`` (other roads, cars, pedestrians and camera speeds), so no clip or sequence is shared
    with training or test. With a source of your own, ``val_source`` names the validation sequences (a VIPER
    root, whose ``val`` split is read, or a folder of videos with labels), e.g. VIPER's own validation split.
    In both cases the clips are cut with ``config``'s settings, and the sequences go to the held-out split but
    for the 10% (at least one) that :func:`build_gta_clips` keeps for its training split.

    Raises:
        ValueError: a source of your own without ``val_source``, or ``scene_seed`` equal to the training
            scene's seed (the validation clips would be training clips).
    """
    if source is None or source == "procedural":
        scene = scene or DrivingSceneConfig()
        if scene_seed == scene.seed:
            raise ValueError(
                f"the validation scene's seed ({scene_seed}) is the training scene's: its clips would be training "
                f"clips; choose another val_scene_seed."
            )
        return build_gta_clips(root_dir, None, replace(config, train_fraction=0.1), replace(scene, seed=scene_seed))
    if val_source is None:
        raise ValueError(
            f"a validation split of {source} needs val_source: a folder of validation sequences (e.g. the VIPER "
            f"root, whose val/ split is read, or a folder of videos with labels beside them)."
        )
    return build_gta_clips(root_dir, val_source, replace(config, sequences=None, split="val", train_fraction=0.1))


def test_videos(folder: str | os.PathLike, domain: str) -> dict[str, np.ndarray]:
    """The held-out sequences of a clip folder (:func:`build_gta_clips`) in one domain (``"A"`` or ``"B"``), as
    whole videos ``{sequence: (T, H, W, 3) uint8}``: the test clips of each sequence joined in order (the
    clips overlap with ``stride < depth``; each frame is taken once). For trying inference on whole videos."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    clips = np.load(folder / f"test_{domain}.npy", mmap_mode="r")
    videos: dict[str, list[np.ndarray]] = {}
    ends: dict[str, int] = {}
    for i, info in enumerate(meta["clips"]["test"]):
        name, start = info["sequence"], info["start_frame"] // meta["config"]["frame_step"]
        frames = np.moveaxis(np.asarray(clips[i]), 0, -1)  # (D, H, W, 3)
        skip = max(0, ends.get(name, start) - start)
        videos.setdefault(name, []).append(frames[skip:])
        ends[name] = start + len(frames)
    return {name: np.concatenate(parts) for name, parts in videos.items()}


def write_test_videos(folder: str | os.PathLike, out_dir: str | os.PathLike, domain: str, fps: float = 15.0) -> Path:
    """Write the held-out sequences of a clip folder in one domain as inference inputs, once: domain B (RGB
    video) as ``<out_dir>/<sequence>.mp4``, domain A (segmentation colours or grey video) as lossless PNG frame
    folders ``<out_dir>/<sequence>/``. Existing videos are kept. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    for name, frames in test_videos(folder, domain).items():
        if domain == "B":
            if not (out_dir / f"{name}.mp4").exists():
                write_video(out_dir / f"{name}.mp4", frames, fps=fps)
        elif not (out_dir / name).is_dir():
            with building_folder(out_dir / name, marker=f"{frame_name(name, len(frames) - 1)}.png") as tmp:
                for t, frame in enumerate(frames):
                    Image.fromarray(frame).save(tmp / f"{frame_name(name, t)}.png")
    return out_dir
