"""The VIPER / Playing-for-Benchmarks data set's tables and folder layout (https://playing-for-benchmarks.org).

Its class palette (:data:`VIPER_CLASSES`), the paper's selection of its sequences (:data:`GTA_SEQUENCES`), the
colour coding of its class maps (:func:`encode_labels`, :func:`decode_labels`) and its folder layout::

    <root>/<split>/img/<seq>/<seq>_<frame>.jpg|png   RGB frames, e.g. train/img/001/001_00010.jpg
    <root>/<split>/cls/<seq>/<seq>_<frame>.png       class maps, coloured with VIPER_CLASSES' palette

Both the GTA clip builder (:mod:`mr2ct.data.gta`, which reads such folders) and the procedural driving scene
(:mod:`mr2ct.data.driving_scene`, which writes one) build on this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mr2ct.io.video import VideoError

__all__ = [
    "CLASS_FOLDER",
    "GTA_SEQUENCES",
    "IMAGE_FOLDER",
    "VIPER_CLASSES",
    "Palette",
    "class_id",
    "class_table",
    "decode_labels",
    "encode_labels",
    "frame_name",
    "list_viper_sequences",
    "palette_array",
    "parse_sequences",
    "sequence_folders",
    "write_viper_sequence",
]

# VIPER's classes.csv (id = position): name and colour of its class maps. "van" and "train" share a colour in
# the data set's own table, so a map cannot tell them apart: that colour decodes to "van".
VIPER_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("ambiguous", (111, 74, 0)),
    ("sky", (70, 130, 180)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("railtrack", (230, 150, 140)),
    ("terrain", (152, 251, 152)),
    ("tree", (87, 182, 35)),
    ("vegetation", (35, 142, 35)),
    ("building", (70, 70, 70)),
    ("infrastructure", (153, 153, 153)),
    ("fence", (190, 153, 153)),
    ("billboard", (150, 20, 20)),
    ("trafficlight", (250, 170, 30)),
    ("trafficsign", (220, 220, 0)),
    ("mobilebarrier", (180, 180, 100)),
    ("firehydrant", (173, 153, 153)),
    ("chair", (168, 153, 153)),
    ("trash", (81, 0, 21)),
    ("trashcan", (81, 0, 81)),
    ("person", (220, 20, 60)),
    ("animal", (255, 0, 0)),
    ("bicycle", (119, 11, 32)),
    ("motorcycle", (0, 0, 230)),
    ("car", (0, 0, 142)),
    ("van", (0, 80, 100)),
    ("bus", (0, 60, 100)),
    ("truck", (0, 0, 70)),
    ("trailer", (0, 0, 90)),
    ("train", (0, 80, 100)),
    ("plane", (0, 100, 100)),
    ("boat", (50, 0, 90)),
)
Palette = Sequence[tuple[str, Sequence[int]]]

IMAGE_FOLDER, CLASS_FOLDER = "img", "cls"  # <root>/<split>/<folder>/<seq>/


def sequence_folders(root: str | os.PathLike, split: str, sequence: str) -> tuple[Path, Path]:
    """The image and class-map folders of one sequence: ``<root>/<split>/img/<seq>`` and ``.../cls/<seq>``."""
    return Path(root) / split / IMAGE_FOLDER / sequence, Path(root) / split / CLASS_FOLDER / sequence


def frame_name(sequence: str, index: int) -> str:
    """File stem of frame ``index`` of a sequence, e.g. ``001_00010``."""
    return f"{sequence}_{index:05d}"


def parse_sequences(spec: str | Iterable[str | int]) -> tuple[str, ...]:
    """Sequence names from ``"001-004, 044-049, 051"`` (ranges keep the zero padding) or from a list of names."""
    if not isinstance(spec, str):
        return tuple(f"{s:03d}" if isinstance(s, int) else str(s) for s in spec)
    names = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        if not last:
            names.append(first)
            continue
        if not (first.isdigit() and last.isdigit()) or int(last) < int(first):
            raise ValueError(f"bad sequence range {part!r} in {spec!r} (expected e.g. '044-049').")
        names.extend(f"{n:0{len(first)}d}" for n in range(int(first), int(last) + 1))
    return tuple(names)


GTA_SEQUENCES = parse_sequences("001-004, 044-049, 051, 066-069")  # the paper's selection of VIPER sequences


def palette_array(palette: Palette = VIPER_CLASSES) -> np.ndarray:
    """``(K, 3)`` uint8 colours of a palette of ``(name, colour)``; row ``k`` is class ``k``."""
    return np.array([colour for _, colour in palette], dtype=np.uint8).reshape(-1, 3)


def class_id(name: str, palette: Palette = VIPER_CLASSES) -> int:
    """Id of the class called ``name``."""
    for k, (class_name, _) in enumerate(palette):
        if class_name == name:
            return k
    raise KeyError(f"no class {name!r}; classes: {', '.join(n for n, _ in palette)}.")


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def decode_labels(
    rgb: np.ndarray, palette: Palette = VIPER_CLASSES, path: str | os.PathLike = "<array>", frame: int | None = None
) -> np.ndarray:
    """Class ids ``(H, W)`` uint8 of a colour-coded class map ``(H, W, 3)``.

    A colour shared by several classes decodes to the first. A colour outside the palette raises
    :class:`~mr2ct.io.video.VideoError` naming ``path`` and ``frame``, the number of such pixels and the
    most frequent such colours.
    """
    colours = palette_array(palette)
    keys = _pack(colours)
    order = np.argsort(keys, kind="stable")  # stable: the first of equal colours comes first
    sorted_keys = keys[order]
    packed = _pack(np.asarray(rgb)[..., :3])
    pos = np.clip(np.searchsorted(sorted_keys, packed), 0, len(keys) - 1)
    known = sorted_keys[pos] == packed
    if not known.all():
        values, counts = np.unique(packed[~known], return_counts=True)
        top = values[np.argsort(counts)[::-1][:5]]
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in top)
        more = f" and {len(values) - len(top)} more" if len(values) > len(top) else ""
        raise VideoError(
            path,
            f"{int((~known).sum())} of {known.size} pixels have colours outside the palette "
            f"of {len(colours)} classes: {shown}{more}",
            frame,
        )
    return order[pos].astype(np.uint8)


def encode_labels(ids: np.ndarray, palette: Palette = VIPER_CLASSES) -> np.ndarray:
    """Colour-coded class map ``(..., 3)`` uint8 of class ids ``(...)``."""
    colours = palette_array(palette)
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= len(colours)):
        raise ValueError(f"class ids must lie in [0, {len(colours) - 1}], got [{ids.min()}, {ids.max()}].")
    return colours[ids]


def class_table(palette: Palette = VIPER_CLASSES) -> list[dict]:
    """The palette as JSON-ready rows ``{"id", "name", "colour"}`` (as the data sets' ``meta.json`` list it)."""
    return [{"id": k, "name": n, "colour": list(c)} for k, (n, c) in enumerate(palette)]


def list_viper_sequences(root: str | os.PathLike, split: str = "train") -> list[str]:
    """Names of the sequences of a VIPER-layout folder (sub-folders of ``<root>/<split>/img``), sorted."""
    img = Path(root) / split / IMAGE_FOLDER
    if not img.is_dir():
        raise FileNotFoundError(
            f"{img} does not exist; a VIPER-layout folder holds <split>/img/<seq>/ and <split>/cls/<seq>/."
        )
    return sorted(p.name for p in img.iterdir() if p.is_dir())


def write_viper_sequence(
    root: str | os.PathLike,
    sequence: str,
    frames: Iterable[np.ndarray],
    labels: Iterable[np.ndarray],
    split: str = "train",
    image_suffix: str = ".png",
    palette: Palette = VIPER_CLASSES,
) -> None:
    """Write RGB frames and class ids as ``<root>/<split>/img|cls/<seq>/<seq>_<frame:05d>.<suffix>|.png``.

    ``image_suffix`` ``".jpg"`` writes JPEG (quality 95, no chroma subsampling), as VIPER's own download holds
    JPEG; class maps are always PNG (lossless).
    """
    img_dir, cls_dir = sequence_folders(root, split, sequence)
    img_dir.mkdir(parents=True, exist_ok=True)
    cls_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = (
        {"quality": 95, "subsampling": 0} if image_suffix.lower() in (".jpg", ".jpeg") else {"compress_level": 3}
    )
    for index, (rgb, ids) in enumerate(zip(frames, labels, strict=True)):
        name = frame_name(sequence, index)
        Image.fromarray(np.asarray(rgb)).save(img_dir / f"{name}{image_suffix}", **options)
        Image.fromarray(encode_labels(ids, palette)).save(cls_dir / f"{name}.png", compress_level=3)
