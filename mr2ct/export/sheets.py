"""Review sheets for radiologists: one picture per case and an HTML index of all cases.

A volume sheet (PNG, :func:`~mr2ct.export.render.volume_sheet`) shows the axial, coronal and sagittal mid-planes
(rows) of the source, its translation and, when there is one, the ground truth (columns), oriented as radiology
viewers show them; every CT is shown twice, in a brain and in a bone window. A video sheet (GIF,
:func:`~mr2ct.export.render.video_sheet`) plays the clips side by side. :func:`write_review_sheets` matches what an
inference run wrote to its sources and writes ``sheets/<case>.png`` (or ``.gif``) and ``index.html``
(:mod:`~mr2ct.export.index_page`); :func:`main` is the ``mr2ct review sheets`` command line.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mr2ct.export.index_page import write_index
from mr2ct.export.render import uncertainty_sheet, video_sheet, volume_sheet
from mr2ct.export.review_readers import find_volume, read_clip, read_metrics, read_ras
from mr2ct.export.windows import CT_WINDOWS, MR_PERCENTILES, percentile_window
from mr2ct.io.atomic import check_apart
from mr2ct.io.readers import VolumeError, list_volumes, volume_stem

__all__ = ["main", "write_review_sheets"]

logger = logging.getLogger(__name__)

_KIND_NAMES = {"ct": "CT", "mr": "MR"}
_VIDEO_RANGE = (0.0, 255.0)  # intensities of the NIfTI videos the video bundles read and write


def _case_sheet(sheet: Path, paths: Sequence[Path], labels: Sequence[str], kinds: Sequence[str], video: bool) -> Path:
    """Read one case (source, translation, then ground truth if any), check that they share a grid, write its sheet."""
    spacings: Sequence[tuple[float, ...]] = ()
    if video:
        arrays = [read_clip(p) for p in paths]
    else:
        arrays, spacings = zip(*(read_ras(p) for p in paths))
    for path, array in zip(paths[1:], arrays[1:]):
        if array.shape[-3:] != arrays[0].shape[-3:]:
            raise VolumeError(path, f"has shape {array.shape[-3:]}, its source {paths[0]} has {arrays[0].shape[-3:]}")
    if video:
        return video_sheet(sheet, dict(zip(labels, arrays)), value_range=_VIDEO_RANGE)
    return volume_sheet(
        sheet,
        {label: (v, kind) for label, v, kind in zip(labels, arrays, kinds)},
        spacing=spacings[0],
        title=sheet.stem,
    )


def write_review_sheets(
    output_dir: str | Path,
    *,
    source_dir: str | Path,
    translation_dir: str | Path,
    truth_dir: str | Path | None = None,
    metrics_csv: str | Path | None = None,
    source_kind: str = "mr",
    target_kind: str = "ct",
    postfix: str = "_synthct",
    video: bool = False,
) -> Path:
    """Write one review sheet per case into ``output_dir/sheets`` and ``output_dir/index.html`` listing them.

    The cases are the volumes of ``source_dir`` (see :func:`~mr2ct.io.readers.list_volumes`). The translation
    of case ``<stem>`` is ``translation_dir/<stem><postfix>`` with any volume suffix, as inference writes it
    (``subject_0001_synthct.nii.gz``; the video bundles write ``<stem>_toB``), and its ground truth is
    ``truth_dir/<stem>``. Volumes are read with :func:`~mr2ct.io.readers.read_volume` and shown with RAS axes
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
        ValueError: an unknown kind, a metrics file without metric columns, or an output folder that is or lies
            in an input folder, or whose ``sheets`` folder is or holds one.
    """
    for kind in (source_kind, target_kind):
        if kind not in _KIND_NAMES:
            raise ValueError(f"kinds must be 'mr' or 'ct', got {kind!r}.")
    output_dir, source_dir, translation_dir = Path(output_dir), Path(source_dir), Path(translation_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else None
    for folder in (source_dir, translation_dir, truth_dir):
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder does not exist")
    # the sheets folder apart from the inputs: not one of them, not holding one, not inside one
    check_apart(output_dir / "sheets", {"source": source_dir, "translation": translation_dir, "truth": truth_dir})
    metrics = read_metrics(Path(metrics_csv)) if metrics_csv is not None else None
    cases = [(volume_stem(s), s) for s in list_volumes(source_dir)]
    translations = {stem: find_volume(translation_dir, stem + postfix) for stem, _ in cases}
    missing = [stem for stem, path in translations.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"{translation_dir}: no translation for {len(missing)} of {len(cases)} case(s) "
            f"(expected <case>{postfix}.nii.gz): {', '.join(missing)}"
        )
    truths = {stem: find_volume(truth_dir, stem) if truth_dir else None for stem, _ in cases}
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
        uncertainty = None if video else find_volume(translation_dir, f"{stem}_uncertainty")
        if uncertainty is not None:  # the confidence map that inference wrote beside the translation
            (translation, spacing), (spread, _) = read_ras(paths[1]), read_ras(uncertainty)
            truth = truths[stem]
            error = np.abs(translation - read_ras(truth)[0]) if truth is not None else None
            window = CT_WINDOWS["bone"] if target_kind == "ct" else percentile_window(translation)
            sheet = uncertainty_sheet(
                output_dir / "sheets" / f"{stem}_uncertainty.png",
                translation,
                spread,
                error,
                spacing=spacing,
                title=f"{stem}: where to trust the translation",
                window=window,
                unit="HU" if target_kind == "ct" else "",
            )
            written.append((f"{stem} (uncertainty)", sheet.relative_to(output_dir).as_posix()))

    columns = " | ".join(labels[: 3 if truth_dir else 2])
    notes = [
        f"{len(written)} case(s); columns: {columns}. Source: {source_dir}; translation: {translation_dir}"
        + (f"; ground truth: {truth_dir}" if truth_dir else "")
        + (f"; metrics: {metrics_csv}" if metrics else "")
    ]
    if not video:
        windows = ", ".join(f"{n} L{level:g} W{width:g}" for n, (level, width) in CT_WINDOWS.items())
        notes.append(
            f"Mid-planes as radiology viewers show them (axial: anterior up, patient's right on the left). "
            f"CT windows (HU): {windows}; MR: {MR_PERCENTILES[0]:g}-{MR_PERCENTILES[1]:g} percentiles."
        )
    return write_index(output_dir / "index.html", written, metrics, notes)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mr2ct review sheets",
        description="Review sheets (PNG or GIF per case) and an index.html of a translation run, for radiologists.",
    )
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
        index = write_review_sheets(
            args.output,
            source_dir=args.source,
            translation_dir=args.translation,
            truth_dir=args.truth,
            metrics_csv=args.metrics,
            source_kind=args.source_kind,
            target_kind=args.target_kind,
            postfix=args.postfix,
            video=args.video,
        )
    except (OSError, ValueError, ImportError) as e:
        raise SystemExit("mr2ct review sheets: " + " ".join(str(e).splitlines())) from e
    print(f"review sheets: {index}")
    return 0
