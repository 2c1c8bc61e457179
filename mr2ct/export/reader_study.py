"""A blinded two-alternative reader study, as the paper's human evaluation (its Table 3).

``make_study`` builds a self-contained study folder from the outputs of several methods for the same inputs::

    OUT/study/index.html   the study page: open it in a browser (no server needed), or serve it (below)
    OUT/study/study.js     the trials, blinded: opaque trial ids and image names, sides randomised
    OUT/study/images/      one PNG film strip per shown volume or video (axial slices / frames stacked)
    OUT/key.json           the unblinding key (which method is on which side): keep it away from readers
    OUT/answers/           readers' answer files go here (``answers_<reader>.json``)

A reader enters a name, sees a few real examples of each domain, then one trial per (case, pair of methods)
in a random order of their own: two outputs for the same input, "which is more realistic?". At the end the
page offers the answers as a JSON download; when it is served by ``serve_study`` (loopback only) it also
saves them in ``OUT/answers``. ``score_study`` reads the answers of one or many readers and gives Table 3
(:func:`mr2ct.metrics.two_afc.preference_table`).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import re
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from mr2ct.data.atomic import replacing_folder
from mr2ct.data.readers import VolumeError, list_volumes, volume_stem
from mr2ct.export.sheets import apply_window, percentile_window, read_clip, read_ras
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
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class StudyError(ValueError):
    """A study that cannot be built or scored as asked (missing files, mismatched case lists, bad options)."""


def _display_frames(path: Path, kind: str, ct_window: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Frames ``(D, H, W[, 3])`` in [0, 1] for display, and the pixel aspect ratio (height / width of a pixel).

    Volumes (``ct``/``mr``, any format :func:`~mr2ct.export.sheets.read_ras` reads) are shown as axial slices
    from inferior to superior, as radiology viewers show them (anterior up, patient's right on the left); CT
    through ``ct_window``, MR between the percentiles of :data:`~mr2ct.export.sheets.MR_PERCENTILES`. Videos are
    NIfTI files of ``(T, H, W)`` or ``(T, H, W, 3)`` values in [0, 255], as the video bundles write them.
    """
    if kind == "video":
        clip = np.moveaxis(read_clip(path), 0, -1) / 255.0  # (T, H, W, C)
        return np.clip(clip[..., 0] if clip.shape[-1] == 1 else clip, 0, 1), 1.0
    volume, spacing = read_ras(path)
    scaled = apply_window(volume, *(ct_window if kind == "ct" else percentile_window(volume)))
    return np.transpose(scaled, (2, 1, 0))[:, ::-1, ::-1], spacing[1] / spacing[0]


def film_strip(frames: np.ndarray, path: str | Path) -> Path:
    """Write frames ``(D, H, W[, 3])`` in [0, 1] as one PNG with the frames stacked top to bottom."""
    path = Path(path)
    strip = np.ascontiguousarray((frames.reshape(-1, *frames.shape[2:]) * 255).round().astype(np.uint8))
    tmp = path.with_name(f".{path.name}.part")
    Image.fromarray(strip).save(tmp, format="PNG")
    tmp.replace(path)
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
            [f"file(s) {sorted(extra)} match no source case"] if extra else [])
        raise StudyError(f"{what} folder {folder}: {'; '.join(problems)} (the case lists must match).")
    return matched


def _name(text: str, what: str) -> str:
    if not text or text != text.strip() or text == REAL or "=" in text:
        raise StudyError(f"invalid {what} name {text!r} (non-empty, no '=', not {REAL!r}).")
    return text


def make_study(output_dir: str | Path, source_dir: str | Path, methods: Mapping[str, str | Path], *,
               real_dir: str | Path | None = None, examples_source_dir: str | Path | None = None,
               examples_target_dir: str | Path | None = None, source_kind: str = "mr", target_kind: str = "ct",
               domains: tuple[str, str] | None = None, num_examples: int = 3, show_source: bool = False,
               ct_window: tuple[float, float] = CT_STUDY_WINDOW, title: str | None = None, seed: int = 0,
               overwrite: bool = False) -> Path:
    """Build a blinded 2AFC reader study folder (layout in the module docstring) and return it.

    Args:
        output_dir: the study folder to create (refused if it exists and is not empty, unless ``overwrite``).
        source_dir: the inputs (one volume / video per case; its case names define the study's cases).
        methods: method name -> folder of its outputs, one per source case, named ``<case>`` or
            ``<case>_<anything>`` (e.g. ``case1_synthct.nii.gz``); at least two methods, or one with ``real_dir``.
        real_dir: real target-domain images of the same cases: adds method-versus-real trials (``P(A < GT)``).
        examples_source_dir, examples_target_dir: real examples shown before the trials (default: the source
            folder and ``real_dir``); the first ``num_examples`` of each.
        source_kind, target_kind: "ct", "mr" or "video": how images are displayed (CT through ``ct_window``).
        domains: display names of the two domains (default: the kinds in capitals, e.g. MR, CT).
        show_source: show the input above each trial (the paper shows only the two outputs).
        seed: randomises sides, trial ids and image names (reproducible studies).

    Raises:
        StudyError: missing folders, case lists that do not match, too few methods, bad names or kinds.
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
    examples_target_dir = examples_target_dir or real_dir
    if examples_target_dir is None:
        raise StudyError("no real target-domain examples to show: give --examples-target (or --real).")
    output_dir = Path(output_dir)
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

    with replacing_folder(output_dir, overwrite=overwrite) as tmp:
        images = tmp / "study" / "images"
        images.mkdir(parents=True)
        rendered: dict[tuple[str, str], dict[str, Any]] = {}

        def image(path: Path, kind: str, tag: tuple[str, str]) -> dict[str, Any]:
            if tag not in rendered:
                frames, aspect = _display_frames(path, kind, ct_window)
                name = f"{rng.bytes(8).hex()}.png"
                film_strip(frames, images / name)
                rendered[tag] = {"src": f"images/{name}", "frames": int(frames.shape[0]), "width": int(frames.shape[2]),
                                 "height": int(frames.shape[1]), "aspect": aspect, "video": kind == "video"}
                progress.update()
            return rendered[tag]

        total = len({(m, c) for c, a, b in plan for m in (a, b)}) + 2 * num_examples + (len(cases) * show_source)
        with tqdm(total=total, desc="rendering study images", unit="image") as progress:
            examples = [{"domain": domain, "image": image(path, kind, ("example", str(path)))}
                        for domain, folder, kind in ((domains[0], examples_source_dir or source_dir, source_kind),
                                                     (domains[1], examples_target_dir, target_kind))
                        for path in list(_cases(folder, f"{domain} examples").values())[:num_examples]]
            trials, key_trials = [], {}
            for number, i in enumerate(order, start=1):
                case, left, right = plan[i]
                trial_id = f"t{number:04d}"
                trial = {"id": trial_id, "left": image(shown[left][case], target_kind, (left, case)),
                         "right": image(shown[right][case], target_kind, (right, case))}
                if show_source:
                    trial["source"] = image(sources[case], source_kind, ("source", case))
                trials.append(trial)
                key_trials[trial_id] = Trial(trial_id, case, left, right)
        study = {"study_id": study_id, "title": title or f"Which {domains[1]} looks more realistic?",
                 "domains": list(domains), "examples": examples, "trials": trials}
        (tmp / "study" / "study.js").write_text(f"const STUDY = {json.dumps(study, indent=1)};\n", encoding="utf-8")
        shutil.copyfile(PAGE, tmp / "study" / "index.html")
        StudyKey(study_id, tuple(methods), key_trials).save(tmp / "key.json")
        (tmp / "answers").mkdir()
    logger.info(f"reader study {study_id}: {len(trials)} trials over {len(cases)} cases, {len(examples)} examples "
                f"-> {output_dir}")
    return output_dir


def _answers_name(reader: str) -> str:
    return f"answers_{_SAFE_NAME.sub('_', reader).strip('_') or 'reader'}.json"


class _StudyRequestHandler(SimpleHTTPRequestHandler):
    """Serves ``<study>/study`` read-only and accepts ``POST /answers`` (a reader's JSON) into ``<study>/answers``."""

    study_dir: Path
    study_id: str
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") != "/answers":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            data = json.loads(self.rfile.read(min(length, 10_000_000)).decode("utf-8"))
            if data.get("study_id") != self.study_id or not str(data.get("reader", "")).strip():
                raise ValueError("answers for another study, or without a reader name")
        except (ValueError, AttributeError) as err:
            self.send_error(HTTPStatus.BAD_REQUEST, str(err))
            return
        with self.lock:
            path = self.study_dir / "answers" / _answers_name(str(data["reader"]))
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            tmp.replace(path)
        body = json.dumps({"saved": path.name}).encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        logger.debug(format % args)


def serve_study(study_dir: str | Path, port: int = 8000) -> ThreadingHTTPServer:
    """A study server on the loopback interface only (``127.0.0.1``): call ``serve_forever()`` on it.

    It serves the study page and saves each reader's answers as ``<study_dir>/answers/answers_<reader>.json``
    (atomically; a reader who sends again replaces their own file). ``port=0`` picks a free port.
    """
    study_dir = Path(study_dir)
    key = StudyKey.load(study_dir / "key.json")
    handler = type("StudyRequestHandler", (_StudyRequestHandler,),
                   {"study_dir": study_dir, "study_id": key.study_id})
    (study_dir / "answers").mkdir(exist_ok=True)

    def make_handler(*args, **kwargs):
        return handler(*args, directory=str(study_dir / "study"), **kwargs)

    return ThreadingHTTPServer(("127.0.0.1", port), make_handler)


def score_study(study_dir: str | Path, answers: Sequence[str | Path] = (), num_bootstrap: int = 1000,
                seed: int = 0) -> tuple[str, list]:
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
    make.add_argument("--method", action="append", required=True, metavar="NAME=DIR",
                      help="a method's outputs for the same cases (repeat for each method)")
    make.add_argument("--real", help="real target-domain images of the same cases (adds method-vs-real trials)")
    make.add_argument("--examples-source", help="real source-domain examples (default: --source)")
    make.add_argument("--examples-target", help="real target-domain examples (default: --real)")
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
    serve.add_argument("--port", type=int, default=8000)
    score = sub.add_parser("score", help="print Table 3 from readers' answers")
    score.add_argument("study")
    score.add_argument("answers", nargs="*", help="answer files (default: STUDY/answers/*.json)")
    score.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for sigma")
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--csv", help="also write the table as CSV")
    return parser


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
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(rows[0])])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``mr2ct review make | serve | score``; errors exit with a one-line message."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "make":
            out = make_study(args.output, args.source, _methods(args.method), real_dir=args.real,
                             examples_source_dir=args.examples_source, examples_target_dir=args.examples_target,
                             source_kind=args.source_kind, target_kind=args.target_kind,
                             num_examples=args.num_examples, show_source=args.show_source, title=args.title,
                             seed=args.seed, overwrite=args.overwrite)
            print(f"study ready: give readers {out / 'study'} (open index.html) or run `mr2ct review serve {out}`; "
                  f"collect answer files in {out / 'answers'}; then `mr2ct review score {out}`. "
                  f"Keep {out / 'key.json'} away from readers.")
        elif args.command == "serve":
            server = serve_study(args.study, args.port)
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
