"""Review sheets for radiologists: one picture per case and an HTML index of all cases.

A volume sheet (PNG) shows the axial, coronal and sagittal mid-planes (rows) of the source, its translation and,
when there is one, the ground truth (columns), oriented as radiology viewers show them; every CT is shown twice,
in a brain and in a bone window. A video sheet (GIF) plays the clips side by side. :func:`write_review_sheets`
matches what an inference run wrote to its sources and writes ``sheets/<case>.png`` (or ``.gif``) and
``index.html``; :func:`main` is the ``mr2ct review sheets`` command line.
"""

from __future__ import annotations

import argparse
import csv
import html
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import nibabel as nib
import numpy as np
from matplotlib import font_manager
from monai.transforms import Orientation
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from mr2ct.data.readers import VOLUME_SUFFIXES, VolumeError, list_volumes, read_volume, volume_stem
from mr2ct.export.panels import to_display

__all__ = [
    "CT_WINDOWS",
    "MR_PERCENTILES",
    "apply_window",
    "main",
    "midplanes",
    "percentile_window",
    "read_clip",
    "read_ras",
    "uncertainty_sheet",
    "video_sheet",
    "volume_sheet",
    "write_review_sheets",
]

logger = logging.getLogger(__name__)

CT_WINDOWS: dict[str, tuple[float, float]] = {"brain": (40.0, 80.0), "bone": (400.0, 1800.0)}
"""CT display windows ``name: (level, width)`` in HU: brain L40 W80 and the common bone window L400 W1800."""

MR_PERCENTILES = (0.5, 99.5)
"""MR is shown between these percentiles of each volume's intensities (a window robust to outliers)."""

_KIND_NAMES = {"ct": "CT", "mr": "MR"}
_PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}  # plane: the (X, Y, Z) axis held at its middle
_PLANE_NOTES = {"axial": "A up, R left", "coronal": "S up, R left", "sagittal": "S up, A left"}
_BACKGROUND = (32, 32, 32)
_TEXT = (240, 200, 80)  # yellow, as the overlays of a PACS viewer
_FONT_SIZE = 13
_LINE = _FONT_SIZE + 5  # pixels per line of text
_GAP = 4  # pixels between panels
_ROW_LABEL_WIDTH = 100
_VIDEO_RANGE = (0.0, 255.0)  # intensities of the NIfTI videos the video bundles read and write
_STYLE = ("body{font-family:sans-serif;background:#181818;color:#ddd}a{color:#f0c850}table{border-collapse:collapse}"
          "th,td{padding:4px 10px;border-bottom:1px solid #333;text-align:left}img{max-width:480px;max-height:320px}")


def apply_window(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """Display grey levels in [0, 1]: ``level - width / 2`` or less is 0 (black), ``level + width / 2`` or more 1."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}.")
    return np.clip((np.asarray(values, dtype=np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def percentile_window(volume: np.ndarray, percentiles: tuple[float, float] = MR_PERCENTILES) -> tuple[float, float]:
    """``(level, width)`` of the window spanning the given percentiles of ``volume``'s intensities."""
    lo, hi = np.percentile(np.asarray(volume, dtype=np.float32), percentiles)
    width = max(float(hi - lo), 1e-6)  # a constant volume shows black
    return float(lo) + width / 2, width


def midplanes(volume: np.ndarray) -> dict[str, np.ndarray]:
    """The axial, coronal and sagittal mid-planes of an ``(X, Y, Z)`` RAS array, as radiology viewers show them.

    Row 0 is the top of the image: anterior on the axial plane, superior on the coronal and sagittal planes. The
    patient's right is on the image's left (axial, coronal) and anterior on the left of the sagittal plane.
    """
    v = np.asarray(volume)
    return {name: np.take(v, v.shape[axis] // 2, axis=axis).T[::-1, ::-1] for name, axis in _PLANES.items()}


def _plane_sizes(shape: Sequence[int], spacing: Sequence[float], panel_size: int) -> dict[str, tuple[int, int]]:
    """``(width, height)`` in pixels of each plane, all at one scale that maps the largest extent to ``panel_size``."""
    extent = [n * s for n, s in zip(shape, spacing)]
    scale = panel_size / max(extent)
    sizes = {}
    for name, axis in _PLANES.items():
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


def _write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def volume_sheet(path: str | Path, columns: Mapping[str, tuple[np.ndarray, str]], *,
                 spacing: Sequence[float] | None = None, title: str | None = None, panel_size: int = 256) -> Path:
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
    panels = []  # (label, window description, level, width, volume)
    for label, (volume, kind) in columns.items():
        if kind == "ct":
            panels += [(label, f"{name} L{level:g} W{width:g}", level, width, volume)
                       for name, (level, width) in CT_WINDOWS.items()]
        elif kind == "mr":
            panels.append((label, f"p{MR_PERCENTILES[0]:g}-p{MR_PERCENTILES[1]:g}", *percentile_window(volume), volume))
        else:
            raise ValueError(f"column {label!r}: kind must be 'ct' or 'mr', got {kind!r}.")
    sizes = _plane_sizes(shape, spacing or (1.0, 1.0, 1.0), panel_size)
    cell = max(w for w, _ in sizes.values())
    header = _LINE + _GAP if title else 0
    top = header + 2 * _LINE + _GAP
    canvas = Image.new("RGB", (_ROW_LABEL_WIDTH + len(panels) * (cell + _GAP),
                               top + sum(h + _GAP for _, h in sizes.values())), _BACKGROUND)
    if title:
        _draw_lines(canvas, (0, 0, canvas.width, _LINE), [title])
    for i, (label, window, level, width, volume) in enumerate(panels):
        left, y = _ROW_LABEL_WIDTH + i * (cell + _GAP), top
        _draw_lines(canvas, (left, header, cell, 2 * _LINE), [label, window])
        for name, plane in midplanes(volume).items():
            w, h = sizes[name]
            grey = Image.fromarray(np.round(apply_window(plane, level, width) * 255).astype(np.uint8))
            canvas.paste(grey.resize((w, h), Image.Resampling.BILINEAR).convert("RGB"), (left + (cell - w) // 2, y))
            y += h + _GAP
    y = top
    for name, (_, h) in sizes.items():
        _draw_lines(canvas, (0, y, _ROW_LABEL_WIDTH - _GAP, h), [name, _PLANE_NOTES[name]])
        y += h + _GAP
    return _write_atomic(Path(path), lambda tmp: canvas.save(tmp, format="PNG"))


def uncertainty_sheet(path: str | Path, translation: np.ndarray, uncertainty: np.ndarray,
                      error: np.ndarray | None = None, *, spacing: Sequence[float] | None = None,
                      title: str | None = None, panel_size: int = 256, window: tuple[float, float] = CT_WINDOWS["bone"],
                      unit: str = "HU") -> Path:
    """Write a PNG of where a translation can be trusted: its mid-planes (rows) in grey with the confidence map
    overlaid as a heat map (dark red to yellow, transparent where it is near 0) and, when the ground truth is known,
    the true absolute error overlaid alike, on the same colour scale, beside it.

    Args:
        path: the PNG to write (under a temporary name, then renamed).
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
    from matplotlib import colormaps

    maps = {"uncertainty": uncertainty, **({"|error|": error} if error is not None else {})}
    shapes = {name: np.shape(v) for name, v in {"translation": translation, **maps}.items()}
    if len(set(shapes.values())) > 1 or len(np.shape(translation)) != 3:
        raise ValueError(f"uncertainty_sheet needs 3D volumes of one shape, got shapes {shapes}.")
    level, width = window
    foreground = np.asarray(translation) > level - width / 2
    tops = {name: max(float(np.percentile(np.asarray(v)[foreground] if foreground.any() else v, 99)), 1e-6)
            for name, v in maps.items()}
    heat = colormaps["hot"]
    sizes = _plane_sizes(np.shape(translation), spacing or (1.0, 1.0, 1.0), panel_size)
    cell = max(w for w, _ in sizes.values())
    header = _LINE + _GAP if title else 0
    top = header + 2 * _LINE + _GAP
    canvas = Image.new("RGB", (_ROW_LABEL_WIDTH + len(maps) * (cell + _GAP),
                               top + sum(h + _GAP for _, h in sizes.values())), _BACKGROUND)
    if title:
        _draw_lines(canvas, (0, 0, canvas.width, _LINE), [title])
    grey_planes = midplanes(apply_window(translation, level, width))
    for i, (name, values) in enumerate(maps.items()):
        left, y = _ROW_LABEL_WIDTH + i * (cell + _GAP), top
        _draw_lines(canvas, (left, header, cell, 2 * _LINE), [f"{name} on translation", f"0-{tops[name]:.0f} {unit}"])
        for plane, grey in zip(_PLANES, grey_planes.values()):
            share = np.clip(midplanes(values)[plane] / tops[name], 0.0, 1.0)[..., None]
            colour = heat(share[..., 0])[..., :3]
            rgb = (1 - np.sqrt(share)) * grey[..., None] + np.sqrt(share) * colour  # faint where confident
            w, h = sizes[plane]
            picture = Image.fromarray(np.round(rgb * 255).astype(np.uint8))
            canvas.paste(picture.resize((w, h), Image.Resampling.BILINEAR), (left + (cell - w) // 2, y))
            y += h + _GAP
    y = top
    for plane, (_, h) in sizes.items():
        _draw_lines(canvas, (0, y, _ROW_LABEL_WIDTH - _GAP, h), [plane, _PLANE_NOTES[plane]])
        y += h + _GAP
    return _write_atomic(Path(path), lambda tmp: canvas.save(tmp, format="PNG"))


def video_sheet(path: str | Path, columns: Mapping[str, np.ndarray], *, fps: float = 8,
                value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
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
            raise ValueError(f"clip {label!r}: expected a (C, T, H, W) array with C = 1 or 3, "
                             f"got shape {tuple(np.shape(clip))}.")
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
    return _write_atomic(Path(path), lambda tmp: frames[0].save(tmp, format="GIF", save_all=True,
                                                                 append_images=frames[1:], duration=duration, loop=0))


def _find_volume(folder: Path, stem: str) -> Path | None:
    """``folder/<stem><volume suffix>``, or the DICOM series folder ``folder/<stem>``; None if there is none."""
    candidates = [folder / f"{stem}{suffix}" for suffix in VOLUME_SUFFIXES] + [folder / stem]
    return next((p for p in candidates if p.exists()), None)


def read_ras(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A volume's voxels with RAS axes (x right, y anterior, z superior) and its voxel size in mm."""
    image = Orientation(axcodes="RAS", labels=None)(read_volume(path)[None])
    return image[0].numpy(), tuple(float(s) for s in image.pixdim)


def read_clip(path: Path) -> np.ndarray:
    """A NIfTI video as ``(C, T, H, W)``; the file holds ``(T, H, W)`` or ``(T, H, W, C)``, as the bundles write."""
    try:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        raise VolumeError(path, f"cannot be read as a NIfTI video ({e})") from e
    if data.ndim == 3:
        return data[None]
    if data.ndim == 4 and data.shape[-1] in (1, 3):
        return np.moveaxis(data, -1, 0)
    raise VolumeError(path, f"has shape {data.shape}, expected a (T, H, W) or (T, H, W, 3) video")


def _read_metrics(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """``(metric names, {case stem: {metric: value}})`` of a per-case CSV whose first column names the case."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path}: expected a CSV with a header, a case column and metric columns")
    names = rows[0][1:]
    return names, {volume_stem(row[0]): dict(zip(names, row[1:])) for row in rows[1:]}


def _case_sheet(sheet: Path, paths: Sequence[Path], labels: Sequence[str], kinds: Sequence[str], video: bool) -> Path:
    """Read one case (source, translation, then ground truth if any), check that they share a grid, write its sheet."""
    if video:
        arrays, spacings = [read_clip(p) for p in paths], None
    else:
        arrays, spacings = zip(*(read_ras(p) for p in paths))
    for path, array in zip(paths[1:], arrays[1:]):
        if array.shape[-3:] != arrays[0].shape[-3:]:
            raise VolumeError(path, f"has shape {array.shape[-3:]}, its source {paths[0]} has {arrays[0].shape[-3:]}")
    if video:
        return video_sheet(sheet, dict(zip(labels, arrays)), value_range=_VIDEO_RANGE)
    return volume_sheet(sheet, {label: (v, kind) for label, v, kind in zip(labels, arrays, kinds)},
                        spacing=spacings[0], title=sheet.stem)


def _write_index(path: Path, cases: Sequence[tuple[str, str]], metrics: tuple[list[str], dict] | None,
                 notes: Sequence[str]) -> Path:
    """``index.html``: one row per ``(case, sheet path relative to the index)``: thumbnail, name and metrics."""
    names, values = metrics or ([], {})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["sheet", "case", *names])
    rows = []
    for case, sheet in cases:
        href = html.escape(quote(sheet))
        cells = [f'<a href="{href}"><img src="{href}" alt="{html.escape(case)}" loading="lazy"></a>',
                 f'<a href="{href}">{html.escape(case)}</a>',
                 *(html.escape(values.get(case, {}).get(n) or "\u2013") for n in names)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    text = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>Review sheets</title>',
        f"<style>{_STYLE}</style></head><body>", "<h1>Review sheets</h1>",
        *(f"<p>{html.escape(note)}</p>" for note in notes),
        f"<table><thead><tr>{head}</tr></thead><tbody>", *rows, "</tbody></table></body></html>", ""])
    return _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_review_sheets(output_dir: str | Path, *, source_dir: str | Path, translation_dir: str | Path,
                        truth_dir: str | Path | None = None, metrics_csv: str | Path | None = None,
                        source_kind: str = "mr", target_kind: str = "ct", postfix: str = "_synthct",
                        video: bool = False) -> Path:
    """Write one review sheet per case into ``output_dir/sheets`` and ``output_dir/index.html`` listing them.

    The cases are the volumes of ``source_dir`` (see :func:`~mr2ct.data.readers.list_volumes`). The translation
    of case ``<stem>`` is ``translation_dir/<stem><postfix>`` with any volume suffix, as inference writes it
    (``subject_0001_synthct.nii.gz``; the video bundles write ``<stem>_toB``), and its ground truth is
    ``truth_dir/<stem>``. Volumes are read with :func:`~mr2ct.data.readers.read_volume` and shown with RAS axes
    (see :func:`volume_sheet`); videos are NIfTI files of ``(T, H, W)`` or ``(T, H, W, C)`` values in
    [0, 255], as the video bundles write them (see :func:`video_sheet`).

    Args:
        output_dir: where ``sheets/<case>.png`` (``.gif`` for videos) and ``index.html`` are written.
        source_dir: the inputs of the translation.
        translation_dir: the translations.
        truth_dir: the ground truths, if any (a case without one is shown without, with a warning).
        metrics_csv: per-case metrics shown in the index, e.g. the evaluate bundle's ``report/cases.csv``: the
            first column names the case (a path or a stem), the other columns are shown as written; a case the
            file lacks shows "–".
        source_kind: ``"mr"`` or ``"ct"``: how the source is windowed.
        target_kind: ``"ct"`` or ``"mr"``: how the translation and the ground truth are windowed.
        postfix: appended to a source's stem to name its translation.
        video: the cases are videos: write animated GIFs.

    Returns:
        The path of ``index.html``.

    Raises:
        FileNotFoundError: a missing folder or metrics file, or cases without a translation (all named;
            nothing is written then).
        VolumeError: a volume that cannot be read, or a translation or ground truth whose shape is not its
            source's; the message names the file.
        ValueError: an unknown kind or a metrics file without metric columns.
    """
    for kind in (source_kind, target_kind):
        if kind not in _KIND_NAMES:
            raise ValueError(f"kinds must be 'mr' or 'ct', got {kind!r}.")
    output_dir, source_dir, translation_dir = Path(output_dir), Path(source_dir), Path(translation_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else None
    for folder in (source_dir, translation_dir, truth_dir):
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder does not exist")
    metrics = _read_metrics(Path(metrics_csv)) if metrics_csv is not None else None
    cases = [(volume_stem(s), s) for s in list_volumes(source_dir)]
    translations = {stem: _find_volume(translation_dir, stem + postfix) for stem, _ in cases}
    missing = [stem for stem, path in translations.items() if path is None]
    if missing:
        raise FileNotFoundError(f"{translation_dir}: no translation for {len(missing)} of {len(cases)} case(s) "
                                f"(expected <case>{postfix}.nii.gz): {', '.join(missing)}")
    truths = {stem: _find_volume(truth_dir, stem) if truth_dir else None for stem, _ in cases}
    if truth_dir and None in truths.values():
        logger.warning(f"{truth_dir}: no ground truth for " + ", ".join(s for s, p in truths.items() if p is None))
    if metrics and not set(metrics[1]) & set(translations):
        logger.warning(f"{metrics_csv}: names none of the {len(cases)} case(s) of {source_dir}")

    names = (_KIND_NAMES[source_kind], "s" + _KIND_NAMES[target_kind], _KIND_NAMES[target_kind])
    labels = ("source", "translation", "ground truth") if video else names
    kinds = (source_kind, target_kind, target_kind)
    written = []
    for stem, source in tqdm(cases, desc="review sheets", unit="case"):
        paths = [p for p in (source, translations[stem], truths[stem]) if p is not None]
        sheet = _case_sheet(output_dir / "sheets" / f"{stem}{'.gif' if video else '.png'}", paths, labels, kinds, video)
        written.append((stem, sheet.relative_to(output_dir).as_posix()))
        uncertainty = None if video else _find_volume(translation_dir, f"{stem}_uncertainty")
        if uncertainty is not None:  # the confidence map that inference wrote beside the translation
            (translation, spacing), (spread, _) = read_ras(translations[stem]), read_ras(uncertainty)
            error = np.abs(translation - read_ras(truths[stem])[0]) if truths[stem] is not None else None
            window = CT_WINDOWS["bone"] if target_kind == "ct" else percentile_window(translation)
            sheet = uncertainty_sheet(output_dir / "sheets" / f"{stem}_uncertainty.png", translation, spread, error,
                                      spacing=spacing, title=f"{stem}: where to trust the translation", window=window,
                                      unit="HU" if target_kind == "ct" else "")
            written.append((f"{stem} (uncertainty)", sheet.relative_to(output_dir).as_posix()))

    columns = " | ".join(labels[: 3 if truth_dir else 2])
    notes = [f"{len(written)} case(s); columns: {columns}. Source: {source_dir}; translation: {translation_dir}"
             + (f"; ground truth: {truth_dir}" if truth_dir else "") + (f"; metrics: {metrics_csv}" if metrics else "")]
    if not video:
        windows = ", ".join(f"{n} L{level:g} W{width:g}" for n, (level, width) in CT_WINDOWS.items())
        notes.append(f"Mid-planes as radiology viewers show them (axial: anterior up, patient's right on the left). "
                     f"CT windows (HU): {windows}; MR: {MR_PERCENTILES[0]:g}-{MR_PERCENTILES[1]:g} percentiles.")
    return _write_index(output_dir / "index.html", written, metrics, notes)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mr2ct review sheets",
                                     description="Review sheets (PNG or GIF per case) and an index.html of a "
                                                 "translation run, for radiologists.")
    parser.add_argument("--source", required=True, help="folder of the translated inputs")
    parser.add_argument("--translation", required=True, help="folder of the translations")
    parser.add_argument("--truth", help="folder of the ground truths (same names as the sources)")
    parser.add_argument("--metrics", help="per-case metrics CSV, e.g. the evaluate bundle's report/cases.csv")
    parser.add_argument("--source-kind", choices=sorted(_KIND_NAMES), default="mr")
    parser.add_argument("--target-kind", choices=sorted(_KIND_NAMES), default="ct")
    parser.add_argument("--postfix", default="_synthct", help="translation name = source name + postfix")
    parser.add_argument("--video", action="store_true", help="the cases are videos: write animated GIFs")
    parser.add_argument("--output", required=True, help="folder for sheets/ and index.html")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of :func:`write_review_sheets`; errors exit with one line ``mr2ct review sheets: ...``."""
    args = _parser().parse_args(argv)
    try:
        index = write_review_sheets(args.output, source_dir=args.source, translation_dir=args.translation,
                                    truth_dir=args.truth, metrics_csv=args.metrics, source_kind=args.source_kind,
                                    target_kind=args.target_kind, postfix=args.postfix, video=args.video)
    except (OSError, ValueError, ImportError) as e:
        raise SystemExit("mr2ct review sheets: " + " ".join(str(e).splitlines())) from e
    print(f"review sheets: {index}")
    return 0
