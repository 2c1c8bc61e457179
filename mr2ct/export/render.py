"""The PIL renderer of review pictures: mid-plane montages of volumes (PNG) and side-by-side clips (GIF).

Mid-planes are shown one way everywhere (:func:`midplanes`: as radiology viewers show them), in the review sheets
(:func:`volume_sheet`) and in the evaluation report's case pictures (:func:`save_midplane_panel`). Pictures are
written atomically (:func:`~mr2ct.io.atomic.atomic_file`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps, font_manager
from PIL import Image, ImageDraw, ImageFont

from mr2ct.export.windows import CT_WINDOWS, MR_PERCENTILES, apply_window, percentile_window, to_display
from mr2ct.io.atomic import atomic_file

__all__ = ["PLANES", "midplanes", "save_midplane_panel", "uncertainty_sheet", "video_sheet", "volume_sheet"]

PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}
"""The mid-planes: ``plane: the (X, Y, Z) axis held at its middle``."""
_PLANE_NOTES = {"axial": "A up, R left", "coronal": "S up, R left", "sagittal": "S up, A left"}
_BACKGROUND = (32, 32, 32)
_TEXT = (240, 200, 80)  # yellow, as the overlays of a PACS viewer
_FONT_SIZE = 13
_LINE = _FONT_SIZE + 5  # pixels per line of text
_GAP = 4  # pixels between panels
_ROW_LABEL_WIDTH = 100


def midplanes(volume: np.ndarray) -> dict[str, np.ndarray]:
    """The axial, coronal and sagittal mid-planes of an ``(X, Y, Z)`` RAS array, as radiology viewers show them.

    Row 0 is the top of the image: anterior on the axial plane, superior on the coronal and sagittal planes. The
    patient's right is on the image's left (axial, coronal) and anterior on the left of the sagittal plane.
    """
    v = np.asarray(volume)
    return {name: np.take(v, v.shape[axis] // 2, axis=axis).T[::-1, ::-1] for name, axis in PLANES.items()}


def _plane_sizes(shape: Sequence[int], spacing: Sequence[float], panel_size: int) -> dict[str, tuple[int, int]]:
    """``(width, height)`` in pixels of each plane, all at one scale that maps the largest extent to ``panel_size``."""
    extent = [n * s for n, s in zip(shape, spacing)]
    scale = panel_size / max(extent)
    sizes = {}
    for name, axis in PLANES.items():
        columns, rows = (extent[a] for a in range(3) if a != axis)
        sizes[name] = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    return sizes


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), _FONT_SIZE)


def _draw_lines(canvas: Image.Image, box: tuple[int, int, int, int], lines: Sequence[str]) -> None:
    """Write ``lines`` in the box ``(left, top, width, height)`` of ``canvas``, cut at the box's edges."""
    left, top, width, height = box
    strip = Image.new("RGB", (max(1, width), max(1, height)), _BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        draw.text((2, i * _LINE + 2), line, fill=_TEXT, font=_font())
    canvas.paste(strip, (left, top))


def _windowed_planes(volume: np.ndarray, level: float, width: float) -> dict[str, np.ndarray]:
    """The mid-planes of ``volume`` as grey pictures on [0, 1] in the window ``(level, width)``."""
    return {name: apply_window(plane, level, width) for name, plane in midplanes(volume).items()}


def _midplane_montage(
    columns: Sequence[tuple[str, str, Mapping[str, np.ndarray]]],
    shape: Sequence[int],
    spacing: Sequence[float],
    title: str | None,
    panel_size: int,
) -> Image.Image:
    """A montage of mid-planes: one column per ``(label, note, {plane: picture})``, one row per plane of
    :func:`midplanes`, plane names on the left, column labels (and ``title``) above. A picture is a plane of the
    ``shape`` volume on [0, 1], grey ``(rows, cols)`` or colour ``(rows, cols, 3)``, shown at true proportions."""
    sizes = _plane_sizes(shape, spacing, panel_size)
    cell = max(w for w, _ in sizes.values())
    header = _LINE + _GAP if title else 0
    top = header + 2 * _LINE + _GAP
    canvas = Image.new(
        "RGB",
        (_ROW_LABEL_WIDTH + len(columns) * (cell + _GAP), top + sum(h + _GAP for _, h in sizes.values())),
        _BACKGROUND,
    )
    if title:
        _draw_lines(canvas, (0, 0, canvas.width, _LINE), [title])
    for i, (label, note, pictures) in enumerate(columns):
        left, y = _ROW_LABEL_WIDTH + i * (cell + _GAP), top
        _draw_lines(canvas, (left, header, cell, 2 * _LINE), [label, note])
        for name in PLANES:
            w, h = sizes[name]
            picture = Image.fromarray(np.round(np.clip(pictures[name], 0.0, 1.0) * 255).astype(np.uint8))
            canvas.paste(picture.resize((w, h), Image.Resampling.BILINEAR).convert("RGB"), (left + (cell - w) // 2, y))
            y += h + _GAP
    y = top
    for name, (_, h) in sizes.items():
        _draw_lines(canvas, (0, y, _ROW_LABEL_WIDTH - _GAP, h), [name, _PLANE_NOTES[name]])
        y += h + _GAP
    return canvas


def _save_png(canvas: Image.Image, path: Path) -> Path:
    with atomic_file(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def volume_sheet(
    path: str | Path,
    columns: Mapping[str, tuple[np.ndarray, str]],
    *,
    spacing: Sequence[float] | None = None,
    title: str | None = None,
    panel_size: int = 256,
) -> Path:
    """Write a PNG montage of one case: the mid-planes (rows) of each volume in each of its windows (columns).

    Args:
        path: the PNG to write (under a temporary name, then renamed).
        columns: ordered ``label: (volume, kind)``, e.g. source, translation, ground truth. ``volume`` is an
            ``(X, Y, Z)`` array with RAS axes (x to the patient's right, y anterior, z superior); ``kind`` is
            ``"ct"`` (HU, shown once per window of :data:`CT_WINDOWS`) or ``"mr"`` (shown between the
            :data:`MR_PERCENTILES` of its intensities). All volumes share one grid.
        spacing: voxel size ``(x, y, z)`` in mm (default 1 mm), so that the planes keep the anatomy's proportions.
        title: a line above the montage, e.g. the case name.
        panel_size: length in pixels of the volume's largest physical extent.

    Raises:
        ValueError: no column, an unknown kind, or volumes that are not 3D or not all of one shape.
    """
    if not columns:
        raise ValueError("volume_sheet needs at least one column.")
    shapes = {label: np.shape(volume) for label, (volume, _) in columns.items()}
    shape = next(iter(shapes.values()))
    if len(shape) != 3 or len(set(shapes.values())) > 1:
        raise ValueError(f"volume_sheet needs 3D volumes of one shape, got shapes {shapes}.")
    panels = []  # (label, window description, pictures)
    for label, (volume, kind) in columns.items():
        if kind == "ct":
            panels += [
                (label, f"{name} L{level:g} W{width:g}", _windowed_planes(volume, level, width))
                for name, (level, width) in CT_WINDOWS.items()
            ]
        elif kind == "mr":
            panels.append(
                (
                    label,
                    f"p{MR_PERCENTILES[0]:g}-p{MR_PERCENTILES[1]:g}",
                    _windowed_planes(volume, *percentile_window(volume)),
                )
            )
        else:
            raise ValueError(f"column {label!r}: kind must be 'ct' or 'mr', got {kind!r}.")
    canvas = _midplane_montage(panels, shape, spacing or (1.0, 1.0, 1.0), title, panel_size)
    return _save_png(canvas, Path(path))


def uncertainty_sheet(
    path: str | Path,
    translation: np.ndarray,
    uncertainty: np.ndarray,
    error: np.ndarray | None = None,
    *,
    spacing: Sequence[float] | None = None,
    title: str | None = None,
    panel_size: int = 256,
    window: tuple[float, float] = CT_WINDOWS["bone"],
    unit: str = "HU",
) -> Path:
    """Write a PNG of where a translation can be trusted: its mid-planes (rows) in grey with the confidence map
    overlaid as a heat map (dark red to yellow, transparent where it is near 0) and, when the ground truth is known,
    the true absolute error overlaid alike, on the same colour scale, beside it.

    Args:
        path: the PNG to write (atomically).
        translation: the ``(X, Y, Z)`` RAS translation (e.g. a synthetic CT in HU).
        uncertainty: its confidence map on the same grid (larger = less trusted), e.g. ``<case>_uncertainty.nii.gz``.
        error: ``|translation - ground truth|`` on the same grid, or None.
        spacing: voxel size ``(x, y, z)`` in mm.
        title: a line above the montage.
        panel_size: length in pixels of the volume's largest physical extent.
        window: ``(level, width)`` of the grey translation under the overlay (default: the bone window).
        unit: the maps' unit, for the labels.

    Each map's colour scale runs from 0 to its own 99th percentile inside the translation's foreground (its voxels
    above the window's lower end), written above its panels: a spread is smaller than the error it predicts, and
    what the sheet shows is whether the two agree on where the translation is wrong.
    """
    maps = {"uncertainty": uncertainty, **({"|error|": error} if error is not None else {})}
    shapes = {name: np.shape(v) for name, v in {"translation": translation, **maps}.items()}
    if len(set(shapes.values())) > 1 or len(np.shape(translation)) != 3:
        raise ValueError(f"uncertainty_sheet needs 3D volumes of one shape, got shapes {shapes}.")
    level, width = window
    foreground = np.asarray(translation) > level - width / 2
    tops = {
        name: max(float(np.percentile(np.asarray(v)[foreground] if foreground.any() else v, 99)), 1e-6)
        for name, v in maps.items()
    }
    heat = colormaps["hot"]
    grey_planes = _windowed_planes(translation, level, width)
    columns = []
    for name, values in maps.items():
        pictures = {}
        for plane, share in midplanes(np.clip(np.asarray(values) / tops[name], 0.0, 1.0)).items():
            weight = np.sqrt(share)[..., None]  # faint where confident
            pictures[plane] = (1 - weight) * grey_planes[plane][..., None] + weight * heat(share)[..., :3]
        columns.append((f"{name} on translation", f"0-{tops[name]:.0f} {unit}", pictures))
    canvas = _midplane_montage(columns, np.shape(translation), spacing or (1.0, 1.0, 1.0), title, panel_size)
    return _save_png(canvas, Path(path))


def save_midplane_panel(
    rows: Mapping[str, torch.Tensor | np.ndarray],
    path: str | Path,
    value_ranges: Mapping[str, tuple[float, float]],
    spacing: tuple[float, float, float] = (1, 1, 1),
    title: str | None = None,
    panel_size: int = 256,
) -> Path:
    """Save a PNG of the axial, coronal and sagittal mid-planes (rows) of each named volume (columns).

    The volumes are ``(1, slices, x, y)``: the MR/CT bundle's network layout of RAS axes (slices superior). Each is
    shown in its own intensity window ``value_ranges[name] = (black, white)`` (e.g. MR on [-1, 1], CT in HU) and
    oriented as :func:`midplanes` says; ``spacing`` (slice, x, y in mm) keeps the anatomy's proportions.
    """
    volumes = []
    for name, volume in rows.items():
        lo, hi = value_ranges[name]
        grey = to_display(volume, (lo, hi))
        if grey.ndim != 3:
            raise ValueError(f"{name}: expected a (1, slices, x, y) volume, got shape {tuple(np.shape(volume))}.")
        volumes.append((name, f"[{lo:g}, {hi:g}]", np.transpose(grey, (1, 2, 0))))  # -> (x, y, slices)
    if len({v.shape for _, _, v in volumes}) > 1:
        raise ValueError(f"save_midplane_panel needs volumes of one shape, got {[v.shape for _, _, v in volumes]}.")
    slices, x, y = spacing
    columns = [(name, note, midplanes(volume)) for name, note, volume in volumes]
    return _save_png(_midplane_montage(columns, volumes[0][2].shape, (x, y, slices), title, panel_size), Path(path))


def video_sheet(
    path: str | Path,
    columns: Mapping[str, np.ndarray],
    *,
    fps: float = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Path:
    """Write an animated GIF that plays the clips side by side: one GIF frame per video frame, labels above.

    Under the labels, a frame counter and a progress bar keep the frames distinct (the GIF writer merges identical
    consecutive frames) while the sheet is at least T pixels wide.

    Args:
        path: the GIF to write (under a temporary name, then renamed).
        columns: ordered ``label: clip``; a clip is a ``(C, T, H, W)`` array or tensor, C = 1 (grey) or 3 (RGB).
            All clips have the same T and H (their widths may differ).
        fps: frames per second.
        value_range: the intensities shown black and white (values outside are clipped): ``(0, 1)`` by default,
            ``(-1, 1)`` for the networks' outputs, ``(0, 255)`` for the video bundles' NIfTI files.

    Raises:
        ValueError: no clip, a clip that is not ``(C, T, H, W)`` with C = 1 or 3, or clips of different T or H.
    """
    if not columns:
        raise ValueError("video_sheet needs at least one clip.")
    for label, clip in columns.items():
        if len(np.shape(clip)) != 4 or np.shape(clip)[0] not in (1, 3):
            raise ValueError(
                f"clip {label!r}: expected a (C, T, H, W) array with C = 1 or 3, got shape {tuple(np.shape(clip))}."
            )
    sizes = {label: tuple(np.shape(clip)[1:3]) for label, clip in columns.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"clips must have the same number of frames T and height H, got (T, H) = {sizes}.")
    clips = {}
    for label, clip in columns.items():
        grey_or_rgb = np.round(to_display(clip, value_range) * 255).astype(np.uint8)  # (T, H, W) or (T, H, W, 3)
        clips[label] = grey_or_rgb if grey_or_rgb.ndim == 4 else np.repeat(grey_or_rgb[..., None], 3, axis=-1)
    num_frames, height = next(iter(sizes.values()))
    widths = [clip.shape[2] for clip in clips.values()]
    top = 2 * _LINE + _GAP  # labels, then the frame counter and a progress bar
    frames = []
    for t in range(num_frames):
        canvas = Image.new("RGB", (sum(widths) + _GAP * (len(clips) - 1), top + height), _BACKGROUND)
        _draw_lines(canvas, (0, _LINE, canvas.width, _LINE), [f"{t + 1}/{num_frames}"])
        bar = round((t + 1) / num_frames * canvas.width)
        if bar:
            ImageDraw.Draw(canvas).rectangle((0, 2 * _LINE, bar - 1, top - 2), fill=_TEXT)
        left = 0
        for (label, clip), w in zip(clips.items(), widths):
            _draw_lines(canvas, (left, 0, w, _LINE), [label])
            canvas.paste(Image.fromarray(clip[t]), (left, top))
            left += w + _GAP
        frames.append(canvas)
    duration = max(1, round(1000 / fps))
    with atomic_file(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return Path(path)
