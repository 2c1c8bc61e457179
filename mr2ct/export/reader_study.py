"""A blinded two-alternative reader study, as the paper's human evaluation (its Table 3).

``make_study`` builds a self-contained study folder from the outputs of several methods for the same inputs::

    OUT/study/index.html   the study page: open it in a browser (no server needed), or serve it (below)
    OUT/study/study.js     the trials, blinded: opaque trial ids and image names, sides randomised
    OUT/study/images/      one PNG film strip per shown volume or video (axial slices / frames stacked)
    OUT/key.json           the unblinding key (which method is on which side): keep it away from readers
    OUT/answers/           readers' answer files go here (``answers_<reader>_<hash>.json``)

A reader enters a name, sees a few real examples of each domain, then one trial per (case, pair of methods)
in a random order of their own: two outputs for the same input, "which is more realistic?". At the end the
page offers the answers as a JSON download; when it is served by ``serve_study`` (loopback only) it also
saves them in ``OUT/answers`` (what the server accepts: :mod:`mr2ct.export.study_server`). ``score_study``
reads the answers of one or many readers and gives Table 3 (:func:`mr2ct.metrics.two_afc.preference_table`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from mr2ct.export.review_readers import read_clip, read_ras
from mr2ct.export.study_server import serve_study
from mr2ct.export.windows import apply_window, percentile_window
from mr2ct.io.atomic import atomic_file, check_apart, replacing_folder
from mr2ct.io.readers import VolumeError, list_volumes, volume_stem
from mr2ct.metrics.two_afc import (
    REAL,
    AnswerError,
    StudyKey,
    Trial,
    format_preference_table,
    load_answers,
    preference_table,
)

__all__ = ["KINDS", "StudyError", "film_strip", "main", "make_study", "score_study", "serve_study"]

logger = logging.getLogger(__name__)

KINDS = ("ct", "mr", "video")
CT_STUDY_WINDOW = (40.0, 400.0)  # level, width in HU: a head window where brain, fat and bone all show
PAGE = Path(__file__).with_name("reader_study.html")
ASPECT_TOLERANCE = 1e-3  # relative difference of pixel aspect ratios that still counts as one grid
_PAD_CHUNK = b"paDd"  # PNG chunk type: ancillary, private, safe to copy


class StudyError(ValueError):
    """A study that cannot be built or scored as asked (missing files, mismatched case lists, bad options)."""


def _display_frames(path: Path, kind: str, ct_window: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Frames ``(D, H, W[, 3])`` in [0, 1] for display, and the pixel aspect ratio (height / width of a pixel).

    Volumes (``ct``/``mr``, any format :func:`~mr2ct.export.review_readers.read_ras` reads) are shown as axial slices
    from inferior to superior, as radiology viewers show them (anterior up, patient's right on the left); CT
    through ``ct_window``, MR between the percentiles of :data:`~mr2ct.export.windows.MR_PERCENTILES`. Videos are
    NIfTI files of ``(T, H, W)`` or ``(T, H, W, 3)`` values in [0, 255], as the video bundles write them.
    """
    if kind == "video":
        clip = np.moveaxis(read_clip(path), 0, -1) / 255.0  # (T, H, W, C)
        return np.clip(clip[..., 0] if clip.shape[-1] == 1 else clip, 0, 1), 1.0
    volume, spacing = read_ras(path)
    scaled = apply_window(volume, *(ct_window if kind == "ct" else percentile_window(volume)))
    return np.transpose(scaled, (2, 1, 0))[:, ::-1, ::-1], spacing[1] / spacing[0]


def _strip(frames: np.ndarray) -> np.ndarray:
    """Frames ``(D, H, W[, 3])`` in [0, 1] as one uint8 image, the frames stacked top to bottom."""
    return np.ascontiguousarray((frames.reshape(-1, *frames.shape[2:]) * 255).round().astype(np.uint8))


def film_strip(frames: np.ndarray, path: str | Path) -> Path:
    """Write frames ``(D, H, W[, 3])`` in [0, 1] as one PNG with the frames stacked top to bottom."""
    path = Path(path)
    with atomic_file(path) as tmp:
        Image.fromarray(_strip(frames)).save(tmp, format="PNG")
    return path


def pad_png(path: str | Path, size: int) -> Path:
    """Pad a PNG file to exactly ``size`` bytes with a private ancillary chunk (viewers skip it), so that the
    file size of an image tells nothing about how well it compresses. ``size`` is at least the file's size + 12
    (a chunk's length, type and CRC)."""
    path = Path(path)
    data = path.read_bytes()
    fill = size - len(data) - 12
    if fill < 0 or data[-12:-8] != b"\0\0\0\0" or data[-8:-4] != b"IEND":
        raise ValueError(f"{path}: cannot pad a PNG of {len(data)} bytes (ending {data[-8:-4]!r}) to {size} bytes.")
    chunk = fill.to_bytes(4, "big") + _PAD_CHUNK + bytes(fill)
    path.write_bytes(data[:-12] + chunk + zlib.crc32(chunk[4:]).to_bytes(4, "big") + data[-12:])
    return path


def _cases(folder: str | Path, what: str) -> dict[str, Path]:
    """Volumes of ``folder`` by case name."""
    try:
        files = list_volumes(folder)
    except FileNotFoundError:
        raise StudyError(f"{what} folder {folder} not found.") from None
    if not files:
        raise StudyError(f"{what} folder {folder} holds no volumes.")
    return {volume_stem(f): f for f in files}


def _match(cases: Sequence[str], folder: str | Path, what: str) -> dict[str, Path]:
    """The file of each case in a translation folder: ``<case>.nii.gz`` or ``<case>_<postfix>.nii.gz``."""
    files = _cases(folder, what)
    matched, extra = {}, {s for s in files if not s.endswith("_uncertainty")}
    for case in cases:
        # <case>_uncertainty: the confidence map that MR -> CT inference writes beside a translation, not one
        hits = [s for s in files if s == case or (s.startswith(f"{case}_") and s != f"{case}_uncertainty")]
        exact = [s for s in hits if s == case]
        hits = exact or hits
        if len(hits) > 1:
            raise StudyError(f"{what} folder {folder}: several files for case {case!r}: {sorted(hits)}.")
        if hits:
            matched[case] = files[hits[0]]
            extra.discard(hits[0])
    missing = [c for c in cases if c not in matched]
    if missing or extra:
        problems = ([f"no file for case(s) {missing}"] if missing else []) + (
            [f"file(s) {sorted(extra)} match no source case"] if extra else []
        )
        raise StudyError(f"{what} folder {folder}: {'; '.join(problems)} (the case lists must match).")
    return matched


def _name(text: str, what: str) -> str:
    if not text or text != text.strip() or text == REAL or "=" in text:
        raise StudyError(f"invalid {what} name {text!r} (non-empty, no '=', not {REAL!r}).")
    return text


def make_study(
    output_dir: str | Path,
    source_dir: str | Path,
    methods: Mapping[str, str | Path],
    *,
    real_dir: str | Path | None = None,
    examples_source_dir: str | Path | None = None,
    examples_target_dir: str | Path | None = None,
    source_kind: str = "mr",
    target_kind: str = "ct",
    domains: tuple[str, str] | None = None,
    num_examples: int = 3,
    show_source: bool = False,
    ct_window: tuple[float, float] = CT_STUDY_WINDOW,
    title: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Build a blinded 2AFC reader study folder (layout in the module docstring) and return it.

    Args:
        output_dir: the study folder to create (refused if it exists and is not empty, unless ``overwrite``, and
            if it is, holds or lies inside any input folder).
        source_dir: the inputs (one volume / video per case; its case names define the study's cases).
        methods: method name -> folder of its outputs, one per source case, named ``<case>`` or
            ``<case>_<anything>`` (e.g. ``case1_synthct.nii.gz``); at least two methods, or one with ``real_dir``.
        real_dir: real target-domain images of the same cases: adds method-versus-real trials (``P(A < GT)``).
        examples_source_dir, examples_target_dir: real examples shown before the trials, the first
            ``num_examples`` of each; the source ones default to ``source_dir``. The target ones are required and
            must be images of cases not in the trials: one that is pixel for pixel a trial image is refused.
        source_kind, target_kind: "ct", "mr" or "video": how images are displayed (CT through ``ct_window``).
        domains: display names of the two domains (default: the kinds in capitals, e.g. MR, CT).
        show_source: show the input above each trial (the paper shows only the two outputs).
        seed: randomises sides, trial ids and image names (reproducible studies).

    Raises:
        StudyError: missing folders, case lists that do not match, too few methods, bad names or kinds, a case
            whose images differ in grid, or a target example that is a trial image.
        VolumeError: an image that cannot be read.
    """
    for kind in (source_kind, target_kind):
        if kind not in KINDS:
            raise StudyError(f"unknown kind {kind!r}; expected one of {KINDS}.")
    methods = {_name(m, "method"): Path(d) for m, d in methods.items()}
    if len(methods) + (real_dir is not None) < 2:
        raise StudyError("a study needs two methods, or one method and --real images, to compare.")
    if num_examples < 1:
        raise StudyError(f"num_examples must be at least 1, got {num_examples}.")
    if examples_target_dir is None:
        raise StudyError(
            "no real target-domain examples to show: give --examples-target, real images of cases that "
            "are not in the trials (the --real images are the trials' own: readers would know them)."
        )
    output_dir = Path(output_dir)
    inputs = {
        "source": source_dir,
        "real": real_dir,
        "source examples": examples_source_dir,
        "target examples": examples_target_dir,
        **{f"method {m!r}": d for m, d in methods.items()},
    }
    try:
        check_apart(output_dir, inputs)
    except ValueError as err:
        raise StudyError(str(err)) from None
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise StudyError(f"{output_dir} exists and is not empty; use --overwrite to replace it.")
    sources = _cases(source_dir, "source")
    cases = sorted(sources)
    shown = {m: _match(cases, d, f"method {m!r}") for m, d in methods.items()}
    if real_dir is not None:
        shown[REAL] = _match(cases, real_dir, "real")
    domains = domains or (source_kind.upper(), target_kind.upper())
    rng = np.random.default_rng(seed)
    study_id = rng.bytes(6).hex()
    pairs = list(itertools.combinations(methods, 2)) + ([(m, REAL) for m in methods] if real_dir else [])
    plan = [(case, *(pair if rng.random() < 0.5 else pair[::-1])) for case in cases for pair in pairs]
    order = rng.permutation(len(plan))
    example_folders = (
        (domains[0], examples_source_dir or source_dir, source_kind),
        (domains[1], examples_target_dir, target_kind),
    )
    example_files = [
        (domain, path, kind)
        for domain, folder, kind in example_folders
        for path in list(_cases(folder, f"{domain} examples").values())[:num_examples]
    ]

    with replacing_folder(output_dir, overwrite=overwrite, inputs=inputs) as tmp:
        images = tmp / "study" / "images"
        images.mkdir(parents=True)
        total = len(cases) * (len(shown) + show_source) + len(example_files)
        with tqdm(total=total, desc="rendering study images", unit="image") as progress:
            rendered: dict[tuple[str, str], dict] = {}  # (method or "source", case) -> image entry
            seen: dict[str, str] = {}  # pixel hash -> what it shows
            for case in cases:
                files = {m: shown[m][case] for m in shown}
                rendered |= _render_case(case, files, target_kind, ct_window, images, rng, seen)
                if show_source:
                    rendered[("source", case)] = _render(sources[case], source_kind, ct_window, images, rng)[0]
                progress.update(len(files) + show_source)
            examples = []
            for domain, path, kind in example_files:
                entry, digest = _render(path, kind, ct_window, images, rng)
                if kind == target_kind and digest in seen:
                    raise StudyError(
                        f"example {path} is the very image shown in the trials as {seen[digest]}: "
                        "readers would recognise it; give --examples-target images of other cases."
                    )
                examples.append({"domain": domain, "image": entry})
                progress.update()
        stamp = time.time_ns()
        for png in images.iterdir():  # one time stamp for all: the order they were written in tells nothing
            os.utime(png, ns=(stamp, stamp))
        trials, key_trials = [], {}
        for number, i in enumerate(order, start=1):
            case, left, right = plan[i]
            trial_id = f"t{number:04d}"
            trial = {"id": trial_id, "left": rendered[(left, case)], "right": rendered[(right, case)]}
            if show_source:
                trial["source"] = rendered[("source", case)]
            trials.append(trial)
            key_trials[trial_id] = Trial(trial_id, case, left, right)
        study = {
            "study_id": study_id,
            "title": title or f"Which {domains[1]} looks more realistic?",
            "domains": list(domains),
            "examples": examples,
            "trials": trials,
        }
        (tmp / "study" / "study.js").write_text(f"const STUDY = {json.dumps(study, indent=1)};\n", encoding="utf-8")
        shutil.copyfile(PAGE, tmp / "study" / "index.html")
        StudyKey(study_id, tuple(methods), key_trials).save(tmp / "key.json")
        (tmp / "answers").mkdir()
    logger.info(
        f"reader study {study_id}: {len(trials)} trials over {len(cases)} cases, {len(examples)} examples "
        f"-> {output_dir}"
    )
    return output_dir


def _entry(name: str, frames: np.ndarray, aspect: float, kind: str) -> dict[str, Any]:
    """An image as study.js describes it."""
    return {
        "src": f"images/{name}",
        "frames": int(frames.shape[0]),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "aspect": round(float(aspect), 4),
        "video": kind == "video",
    }


def _render(
    path: Path, kind: str, ct_window: tuple[float, float], images: Path, rng: np.random.Generator
) -> tuple[dict[str, Any], str]:
    """Write one image's film strip under a random name; its study.js entry and the hash of its pixels."""
    frames, aspect = _display_frames(path, kind, ct_window)
    name = f"{rng.bytes(8).hex()}.png"
    film_strip(frames, images / name)
    return _entry(name, frames, aspect, kind), hashlib.sha256(_strip(frames).tobytes()).hexdigest()


def _render_case(
    case: str,
    files: Mapping[str, Path],
    kind: str,
    ct_window: tuple[float, float],
    images: Path,
    rng: np.random.Generator,
    seen: dict[str, str],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The film strips of one case's outputs (and real image), alike in all a reader could tell them apart by.

    They must share one display grid (frames, height, width, channels and pixel aspect; else :class:`StudyError`):
    slice counts and sizes are in study.js and on screen. They are written in a random order, get one aspect
    value, and are padded to one file size. ``seen`` collects their pixel hashes (hash -> "method, case").
    """
    drawn = {str(m): _display_frames(files[m], kind, ct_window) for m in rng.permutation(sorted(files))}
    first = next(iter(drawn))
    shape, aspect = drawn[first][0].shape, drawn[first][1]
    for frames, other in drawn.values():
        if frames.shape != shape or abs(other - aspect) > ASPECT_TOLERANCE * aspect:
            grids = "; ".join(
                f"{files[m]}: {f.shape[0]} frames of {f.shape[1]}x{f.shape[2]}, pixel aspect {a:.4g}"
                for m, (f, a) in drawn.items()
            )
            raise StudyError(
                f"case {case!r}: its images differ in grid ({grids}); readers would tell the real one by "
                "its size: resample them to one grid first."
            )
    entries, paths = {}, []
    for method, (frames, _) in drawn.items():
        name = f"{rng.bytes(8).hex()}.png"
        paths.append(film_strip(frames, images / name))
        entries[(method, case)] = _entry(name, frames, aspect, kind)
        seen[hashlib.sha256(_strip(frames).tobytes()).hexdigest()] = f"{method!r} of case {case!r}"
    size = max(p.stat().st_size for p in paths) + 12
    for path in paths:
        pad_png(path, size)
    return entries


def score_study(
    study_dir: str | Path, answers: Sequence[str | Path] = (), num_bootstrap: int = 1000, seed: int = 0
) -> tuple[str, list]:
    """Table 3 of a study from its key and readers' answers (default: every file in ``<study_dir>/answers``).

    Returns the Markdown table (with a line on readers and trials) and its rows.

    Raises:
        AnswerError: a bad key or answers file (see :func:`mr2ct.metrics.two_afc.load_answers`).
        StudyError: no answers at all.
    """
    study_dir = Path(study_dir)
    key = StudyKey.load(study_dir / "key.json")
    paths = [Path(p) for p in answers] or sorted((study_dir / "answers").glob("*.json"))
    if not paths:
        raise StudyError(f"no answers to score: {study_dir / 'answers'} is empty and none were given.")
    judgements = load_answers(paths, key)
    rows = preference_table(judgements, key.methods, num_bootstrap=num_bootstrap, seed=seed)
    readers = sorted({j.reader for j in judgements})
    coverage = ", ".join(f"{r}: {sum(j.reader == r for j in judgements)}/{len(key.trials)}" for r in readers)
    text = format_preference_table(rows, title=f"Reader study {key.study_id}")
    text += f"\n\n{len(readers)} reader(s), trials answered: {coverage}; bootstrap: {num_bootstrap} draws."
    return text, rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mr2ct review", description="Blinded two-alternative reader studies.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="build a study folder from methods' outputs")
    make.add_argument("--source", required=True, help="folder of the inputs (one per case)")
    make.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a method's outputs for the same cases (repeat for each method)",
    )
    make.add_argument("--real", help="real target-domain images of the same cases (adds method-vs-real trials)")
    make.add_argument("--examples-source", help="real source-domain examples (default: --source)")
    make.add_argument(
        "--examples-target", required=True, help="real target-domain examples, of cases that are not in the trials"
    )
    make.add_argument("--source-kind", choices=KINDS, default="mr")
    make.add_argument("--target-kind", choices=KINDS, default="ct")
    make.add_argument("--num-examples", type=int, default=3)
    make.add_argument("--show-source", action="store_true", help="show the input above each trial")
    make.add_argument("--title")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--overwrite", action="store_true")
    make.add_argument("--output", required=True, help="study folder to create")
    serve = sub.add_parser("serve", help="serve a study on 127.0.0.1 and save answers in its answers/ folder")
    serve.add_argument("study")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port on 127.0.0.1 (0: any free port)")
    score = sub.add_parser("score", help="print Table 3 from readers' answers")
    score.add_argument("study")
    score.add_argument("answers", nargs="*", help="answer files (default: STUDY/answers/*.json)")
    score.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for sigma")
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--csv", help="also write the table as CSV")
    return parser


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def _methods(pairs: Sequence[str]) -> dict[str, str]:
    methods: dict[str, str] = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not folder:
            raise StudyError(f"--method expects NAME=DIR, got {pair!r}.")
        if name in methods:
            raise StudyError(f"method {name!r} given twice.")
        methods[name] = folder
    return methods


def _write_csv(rows: Sequence, path: str | Path) -> None:
    path = Path(path)
    with atomic_file(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(rows[0])])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``mr2ct review make | serve | score``; errors exit with a one-line message."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "make":
            out = make_study(
                args.output,
                args.source,
                _methods(args.method),
                real_dir=args.real,
                examples_source_dir=args.examples_source,
                examples_target_dir=args.examples_target,
                source_kind=args.source_kind,
                target_kind=args.target_kind,
                num_examples=args.num_examples,
                show_source=args.show_source,
                title=args.title,
                seed=args.seed,
                overwrite=args.overwrite,
            )
            print(
                f"study ready: give readers {out / 'study'} (open index.html) or run `mr2ct review serve {out}`; "
                f"collect answer files in {out / 'answers'}; then `mr2ct review score {out}`. "
                f"Keep {out / 'key.json'} away from readers."
            )
        elif args.command == "serve":
            try:
                server = serve_study(args.study, args.port)
            except OSError as err:
                raise StudyError(
                    f"cannot serve on 127.0.0.1:{args.port} ({err.strerror or err}): is another "
                    "server using the port? Choose another with --port."
                ) from None
            print(f"serving the study at http://127.0.0.1:{server.server_address[1]}/ (Ctrl+C stops)")
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
        else:
            text, rows = score_study(args.study, args.answers, num_bootstrap=args.bootstrap, seed=args.seed)
            print(text)
            if args.csv:
                _write_csv(rows, args.csv)
    except (StudyError, AnswerError, VolumeError) as err:
        print(f"mr2ct review {args.command}: {err}", file=sys.stderr)
        return 2
    return 0
