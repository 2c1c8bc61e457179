"""Reproduce the paper's comparison: train every method on a task, evaluate on held-out videos, and write
the paper's table (ours beside the paper's numbers) and a Figure 6-style picture.

    python scripts/reproduce.py --task vmnist --methods 3d random sequential seq_const --preset quick

Each method is trained and then evaluated by the task's bundle (``train.json`` + ``quick.json`` for the quick
preset, then ``evaluate.json``, with the method as an override) through MONAI's ``ConfigWorkflow``, so the runs
are exactly what ``python -m monai.bundle run training`` and ``run evaluating`` do; the table is read from each
evaluation's report (``report/metrics.json``). Results go to ``--output`` (default
``runs/reproduce_<task>_<preset>``): ``table.md``, ``table.csv``, ``results.json``, ``figure.png`` and one folder
per method with its weights, logs and report.

With several seeds (``--seeds 0 1 2``) every method is trained and evaluated once per seed (the seed sets the
data split, the initial weights and the data order), each seed's run in ``seed_<s>/`` as above, and the tables
in ``--output`` show per metric the mean over seeds with the spread over seeds (sample standard deviation,
ddof 1) beside the per-video sigma (the mean over seeds of each run's standard deviation over held-out videos).

With ``--curve N`` every method is also evaluated on the held-out set every ``N`` iterations, from the training
checkpoints (``checkpoint_<iteration>.pt``, all kept; the generator of each is evaluated by the same evaluation
workflow in ``<method>/curve/iteration_<i>/``): ``curves.csv`` (method, seed, iteration, metric, value: the mean
over held-out videos) and ``curves.png`` (each metric against the iteration, one line per method: the mean over
seeds, shaded over the range of the seeds).

With ``--resume`` a run that was stopped goes on where it stopped: a method that finished in ``--output``
(``<method>/comparison.json``) with the same settings and bundle configs is read back instead of trained again, and
an unfinished training resumes from its latest checkpoint (``python -m monai.bundle run training ... --resume
true``); a method folder that holds a run with other settings is an error, never overwritten, and so is an
``--output`` that holds a run of the other layout (one seed / several seeds). Code changes are not detected: after
changing the code, use a new ``--output``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import logging
import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from monai.bundle import ConfigParser, ConfigWorkflow

from mr2ct.bundle import bundle_root, load_config
from mr2ct.engine import (
    METHODS,
    SETTINGS_FILE,
    atomic_torch_save,
    checkpoint_generators,
    get_method,
    latest_checkpoint,
)
from mr2ct.export import save_frame_panel
from mr2ct.export.panels import atomic_savefig
from mr2ct.io.atomic import atomic_file, atomic_write_text
from mr2ct.networks import count_parameters, matched_width

__all__ = ["TASKS", "evaluate_curve", "format_mean_sigma", "main", "run_comparison", "run_seeds", "write_curves"]

logger = logging.getLogger(__name__)

#: a method's finished run in its folder: its settings, the bundle configs' digest, its result and evaluation
ENTRY_FILE = "comparison.json"
#: the settings of a method's training, written before it starts (``--resume`` checks them)
REQUEST_FILE = "request.json"


@dataclass(frozen=True)
class Task:
    """A paper experiment: its bundle, the table's columns (``{column: metric name in the evaluation report}``),
    the paper's published numbers (mean, sigma or None) and the reference row.

    ``reference_row`` is ``"identity"`` (the untranslated input, evaluated like a method) or ``"ground truth"``,
    whose values are the report's ``reference_metrics`` (``{column: report metric}``; a column not listed is 0:
    the ground truth compared with itself). ``val_split``: how the task's validation split (``split="val"``) is
    drawn: ``"fraction"`` (``val_fraction`` of the training digits held out of training), ``"scene"`` (GTA: a
    second procedural scene) or None (no validation split).
    """

    bundle: str
    table: str
    metrics: dict[str, str]
    paper: dict[str, dict[str, tuple[float, float | None]]]
    reference_row: str
    reference_metrics: dict[str, str] | None = None
    notes: tuple[str, ...] = ()
    val_split: str | None = None


_TEMPORAL_NOTE = (
    "warping_error: Lai et al. (2018) on [0, 1] frames, the output warped with the Farneback flow of the "
    "ground truth (not FlowNet2), occlusions masked; tof: TecoGAN's mean |flow(output) - flow(ground "
    "truth)| in pixels (mr2ct.metrics.temporal; not in the paper)."
)

TASKS = {
    "vmnist": Task(
        bundle="vmnist_cyclegan3d",
        table="Table 2: volumetric MNIST, L2 between translation and ground truth",
        metrics={"l2": "l2"},
        paper={
            "3d": {"l2": (27.21, 5.27)},
            "random": {"l2": (48.73, 13.72)},
            "sequential": {"l2": (41.73, 11.40)},
            "seq_const": {"l2": (73.41, 5.26)},
        },
        reference_row="identity",
        notes=(
            "l2: per-video RMSE over all voxels on [0, 255]; sigma: its std over held-out videos. The paper "
            "does not state its reduction.",
        ),
        val_split="fraction",
    ),
    "mmnist": Task(
        bundle="mmnist_color_cyclegan3d",
        table="Table 1: coloured moving MNIST (white -> colour)",
        metrics={
            "shape_l2": "shape_l2",
            "intensity_mean": "intensity_mean",
            "colour_sigma": "colour_sigma",
            "colour_flicker": "colour_flicker",
            "warping_error": "warping_error",
            "tof": "tof",
        },
        paper={
            "ground truth": {"intensity_mean": (175.37, None), "colour_sigma": (32.25, None)},
            "3d": {"shape_l2": (0.79, None), "intensity_mean": (204.36, None), "colour_sigma": (45.65, None)},
            "random": {"shape_l2": (1.48, None), "intensity_mean": (139.38, None), "colour_sigma": (64.51, None)},
            "sequential": {"shape_l2": (0.84, None), "intensity_mean": (205.49, None), "colour_sigma": (53.96, None)},
            "seq_const": {"shape_l2": (0.90, None), "intensity_mean": (198.18, None), "colour_sigma": (54.06, None)},
        },
        reference_row="ground truth",
        reference_metrics={
            "intensity_mean": "gt_intensity_mean",
            "colour_sigma": "gt_colour_sigma",
            "colour_flicker": "gt_colour_flicker",
        },
        notes=(
            "shape_l2: L2 norm of the binary digit-mask difference relative to the ground truth's mask norm "
            "(1 = empty output; the paper does not state its normalisation); intensity_mean and colour_sigma on "
            "[0, 255] digit pixels; colour_flicker: "
            "std over time of the mean digit colour (not in the paper).",
            _TEMPORAL_NOTE,
        ),
        val_split="fraction",
    ),
    "gta": Task(
        bundle="gta_seg2video_cyclegan3d",
        table="Table 4: GTA video -> segmentation, per-frame pixel accuracy",
        metrics={
            "accuracy_slow": "pixel_accuracy_slow",
            "accuracy_all": "pixel_accuracy",
            "transition_l2": "transition_l2_d0",
            "warping_error": "warping_error",
            "tof": "tof",
        },
        paper={
            "3d": {"accuracy_slow": (0.54, None), "accuracy_all": (0.55, None)},
            "random": {"accuracy_slow": (0.46, None), "accuracy_all": (0.65, None)},
            "sequential": {"accuracy_slow": (0.64, None), "accuracy_all": (0.71, None)},
            "seq_const": {"accuracy_slow": (0.56, None), "accuracy_all": (0.68, None)},
        },
        reference_row="identity",
        notes=(
            "accuracy: per-frame pixel accuracy after decoding each translated pixel to the nearest VIPER palette "
            "colour's class, mean over frames then over clips; slow: the test clips with the least camera motion "
            "(at most the median); transition_l2: L2 between the class-transition matrices of translated and true "
            "segmentation videos, no denoising (not in the paper's table). The paper also lists 200M-parameter "
            "models (3D 0.77/0.72, 2D 0.60/0.70). identity: the RGB input itself decoded to the palette.",
            _TEMPORAL_NOTE,
        ),
        val_split="scene",
    ),
}

# what changes per preset, on top of the bundle's configs (quick: train.json + quick.json)
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "configs": ("train.json", "quick.json"),
        "overrides": {"max_epochs": 10, "decay_epochs": 5, "epoch_length": 100, "val_interval": 1000},
        "eval_videos": 300,
    },
    "paper": {"configs": ("train.json",), "overrides": {"val_interval": 1000}, "eval_videos": None},
}


def matched_2d_widths(bundle: str, files: Sequence[Path], overrides: dict | None, method: str) -> dict[str, int]:
    """``ngf``/``ndf`` at which the 2D ``method``'s generator and discriminator have the parameter counts of the
    ``3d`` method's (the paper's equal-size models, section 5.2).

    Every network is built from the bundle's config as it trains (``files`` layered on ``train.json``, then
    ``overrides``), so the 3D count is that of the model the table compares, with the preset's kernels, strides and
    discriminator view, not the paper's layers.
    """
    reference = load_config(bundle, files=files, overrides={**(overrides or {}), "method": "3d"})
    config = load_config(bundle, files=files, overrides={**(overrides or {}), "method": method})
    widths = {}
    for width, name in (("ngf", "network_def"), ("ndf", "discriminator_def")):
        target = count_parameters(reference.get_parsed_content(name))
        widths[width] = matched_width(partial(_built_at_width, config, name, width), target)
    return widths


def _built_at_width(config: ConfigParser, name: str, width: str, value: int) -> torch.nn.Module:
    """The network ``name`` of ``config`` with its setting ``width`` (``ngf`` or ``ndf``) at ``value``."""
    config[width] = value  # setting an item resets the parsed references
    return config.get_parsed_content(name)


def _workflow(root: Path, preset: str, workflow: str, overrides: dict) -> ConfigWorkflow:
    """The bundle's ``training`` or ``evaluating`` workflow of the preset (evaluate.json layered last), initialised."""
    configs = root / "configs"
    files = [str(configs / name) for name in PRESETS[preset]["configs"]]
    run_id, kind = ("training", "train") if workflow == "train" else ("evaluating", "infer")
    if workflow == "evaluate":
        files.append(str(configs / "evaluate.json"))
    flow = ConfigWorkflow(
        config_file=files,
        workflow_type=kind,
        run_id=run_id,
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        **overrides,
    )
    flow.initialize()
    return flow


def train_method(root: Path, preset: str, overrides: dict) -> dict:
    """Train one method with the bundle's training workflow; returns iterations, parameters and wall time."""
    start = time.time()
    workflow = _workflow(root, preset, "train", overrides)
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    params = {k: count_parameters(workflow.parser.get_parsed_content(k)) for k in ("g_ab", "g_ba", "d_a", "d_b")}
    workflow.finalize()
    return {"iterations": int(trainer.state.iteration), "parameters": params, "train_seconds": time.time() - start}


def evaluate_method(root: Path, preset: str, task: Task, overrides: dict) -> dict:
    """Evaluate the trained method with the bundle's evaluation workflow and read its report: the table's
    columns as ``(mean, sigma)``, the number of evaluated videos and the report folder."""
    workflow = _workflow(root, preset, "evaluate", overrides)
    workflow.run()
    report = Path(workflow.parser.get_parsed_content("report_dir"))
    workflow.finalize()
    written = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    summary = written["metrics"]
    metrics = {column: (summary[name]["mean"], summary[name]["std"]) for column, name in task.metrics.items()}
    reference = {
        column: (summary[name]["mean"], summary[name]["std"]) for column, name in (task.reference_metrics or {}).items()
    }
    return {
        "metrics": metrics,
        "reference": reference,
        "videos": written["settings"]["evaluated cases"],
        "report": report,
    }


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (paths as strings, tuples as lists), so that settings compare equal."""
    return json.loads(json.dumps(value, default=str))


def _configs_digest(config: Any, *files: Path) -> str:
    """SHA-256 of a bundle's merged config and of ``files``' text: a finished run is reused only while they are
    unchanged."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8"))
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _finished_or_resumable(folder: Path, run: dict, digest: str) -> tuple[dict | None, bool]:
    """For ``--resume``: ``(the finished entry, False)`` when ``folder`` holds a finished run of ``run``'s settings
    and configs, ``(None, True)`` when it holds a training of them with a checkpoint to resume from, ``(None,
    False)`` when it holds neither. A folder whose run has other settings raises ``ValueError`` naming the differing
    keys: its weights are never mixed with or overwritten by another run's."""
    wanted = _as_json(run)
    entry = _read_held(folder / ENTRY_FILE)
    if entry is not None:
        _check_same_run(folder, wanted, entry["run"], same_configs=entry.get("configs") == digest)
        if "curve" in entry["result"]:  # JSON keys are strings; the curve's are iterations
            entry["result"]["curve"] = {int(i): v for i, v in entry["result"]["curve"].items()}
        return entry, False
    request = _read_held(folder / REQUEST_FILE)
    if request is not None:
        _check_same_run(folder, wanted, request)
        return None, latest_checkpoint(run["ckpt_dir"]) is not None
    return None, False


def _read_held(path: Path) -> dict | None:
    """The JSON a method folder holds in ``path``, None if there is no such file; unreadable: ``ValueError``."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read ({error}); move the folder away or use another --output.") from None


def _check_same_run(folder: Path, wanted: dict, held: dict, same_configs: bool = True) -> None:
    """Raise ``ValueError`` naming the settings (or the configs) in which ``folder``'s run differs from ``wanted``."""
    differing = sorted(k for k in {*wanted, *held} if wanted.get(k) != held.get(k))
    if not differing and not same_configs:
        differing = ["the bundle's configs"]
    if differing:
        raise ValueError(
            f"{folder} holds a run with other settings ({', '.join(differing)}); --resume would mix them: use "
            "another --output, or move the folder away."
        )


def run_comparison(
    task_name: str,
    methods: Sequence[str],
    preset: str,
    output: Path,
    seed: int = 0,
    match_params: bool = False,
    eval_videos: int | None = -1,
    overrides: dict | None = None,
    curve: int | None = None,
    split: str = "test",
    val_fraction: float = 0.1,
    resume: bool = False,
) -> dict:
    """Train and evaluate ``methods`` on a task; write the table, CSV, JSON and figure to ``output``.

    ``eval_videos`` limits the held-out videos (-1: the preset's number, None: all); ``overrides`` are bundle
    settings applied on top of the preset (e.g. smaller shapes for a smoke test); ``curve``: also evaluate every
    ``curve`` iterations (:func:`evaluate_curve`) and write ``curves.csv`` / ``curves.png``; ``split``: the
    held-out split evaluated, ``"test"`` or ``"val"`` (the task's validation split: ``val_fraction`` of the
    training digits held out of training, or GTA's second procedural scene; settings are selected there, without
    looking at the test split); ``resume``: read back the methods that finished in ``output`` with the same
    settings and resume unfinished trainings from their latest checkpoints (:func:`_finished_or_resumable`).
    """
    if curve is not None and curve < 1:
        raise ValueError(f"curve must be a positive number of iterations, got {curve}.")
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}.")
    task = TASKS[task_name]
    if split == "val" and task.val_split is None:
        with_val = ", ".join(name for name, t in TASKS.items() if t.val_split)
        raise ValueError(f"task {task_name!r} has no validation split (tasks with one: {with_val}); use split 'test'.")
    held_out: dict[str, Any] = {"eval_split": "val"} if split == "val" else {}
    if split == "val" and task.val_split == "fraction":
        held_out["val_fraction"] = val_fraction
    for method in methods:
        get_method(method)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}.")
    limit = PRESETS[preset]["eval_videos"] if eval_videos == -1 else eval_videos
    root = Path(bundle_root(task.bundle))
    preset_files = [root / "configs" / n for n in PRESETS[preset]["configs"][1:]]
    base = load_config(task.bundle, files=preset_files, overrides=overrides)
    settings = {k: base.get_parsed_content(k) for k in ("depth", "size", "channels", "ngf", "ndf", "num_res_blocks")}
    digest = _configs_digest(base.config, root / "configs" / "evaluate.json")
    output.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    examples: dict[str, np.ndarray] = {}
    common = {
        "bundle_root": str(root),
        "seed": seed,
        "dataset_dir": str(root / "data"),
        "num_eval_cases": limit,
        **PRESETS[preset]["overrides"],
        **({"ckpt_iteration_interval": curve, "ckpt_n_saved": None} if curve else {}),
        **held_out,
        **(overrides or {}),
    }
    for method in methods:
        run = {
            **common,
            "method": method,
            "ckpt_dir": str(output / method / "models"),
            "output_dir": str(output / method),
        }
        if match_params and get_method(method).spatial_dims == 2:
            run.update(matched_2d_widths(task.bundle, preset_files, overrides, method))
        finished, from_checkpoint = _finished_or_resumable(output / method, run, digest) if resume else (None, False)
        if finished is not None:
            logger.info(f"--- {task_name} / {method} ({preset}): finished in {output / method}, read back ---")
            results[method], evaluation = finished["result"], finished["evaluation"]
        else:
            logger.info(f"--- {task_name} / {method} ({preset}){' resumed' if from_checkpoint else ''} ---")
            atomic_write_text(output / method / REQUEST_FILE, json.dumps(_as_json(run), indent=2))
            info = train_method(root, preset, {**run, "resume": from_checkpoint})
            evaluation = evaluate_method(root, preset, task, run)
            results[method] = {**info, "metrics": evaluation["metrics"], "overrides": run}
            if from_checkpoint:
                results[method]["resumed"] = True  # its train_seconds count only the resumed part
            if curve:
                results[method]["curve"] = evaluate_curve(
                    root, preset, task, run, info["iterations"], curve, evaluation["metrics"]
                )
            entry = {"run": run, "configs": digest, "result": results[method], "evaluation": evaluation}
            atomic_write_text(output / method / ENTRY_FILE, json.dumps(_as_json(entry), indent=2))
        with np.load(Path(evaluation["report"]) / "examples.npz") as cases:
            examples.setdefault("input", cases["image_0"])
            examples[method] = cases["pred_0"]
            examples["ground truth"] = cases["label_0"]
    results[task.reference_row] = {"metrics": _reference_metrics(task, root, preset, run, output, evaluation)}

    meta = {
        "task": task_name,
        "table": task.table,
        "preset": preset,
        "seed": seed,
        "match_params": match_params,
        "split": split,
        "held_out_videos": int(evaluation["videos"]),
        "settings": settings,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }
    atomic_write_text(output / "results.json", json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    _write_tables(task, results, meta, output)
    if curve:
        write_curves(task, curve_rows({seed: results}), output, f"{preset} preset, seed {seed}")
    rows = {name: torch.as_tensor(examples[name]) for name in ("input", *methods, "ground truth")}
    save_frame_panel(
        rows,
        output / "figure.png",
        num_frames=10,
        value_range=(0, 255),
        title=f"{task.table} - held-out video 0, {preset} preset, seed {seed}",
    )
    return results


def evaluate_curve(
    root: Path, preset: str, task: Task, run: dict, iterations: int, every: int, final: dict
) -> dict[int, dict]:
    """``{iteration: the table's columns as (mean, sigma)}`` every ``every`` iterations and at the end
    (``final``: the evaluation of the trained model): the generators of each training checkpoint
    ``<ckpt_dir>/checkpoint_<iteration>.pt`` (their weight averages once ``gen_average_epochs`` has begun
    averaging, as ``model.pt`` would be; :func:`~mr2ct.engine.checkpoint_generators`) are written to
    ``<output_dir>/curve/iteration_<i>/models/`` as the bundle saves them (``model.pt``: A->B, ``model_ba.pt``:
    B->A, which GTA's video -> segmentation evaluates), with the run's ``model_settings.json``, and evaluated
    there by the bundle's evaluation workflow."""
    models = Path(run["ckpt_dir"])
    points: dict[int, dict] = {}
    for iteration in range(every, iterations, every):
        checkpoint = models / f"checkpoint_{iteration}.pt"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{checkpoint} is missing: the training run kept no checkpoint at {iteration}.")
        folder = Path(run["output_dir"]) / "curve" / f"iteration_{iteration}"
        generators = checkpoint_generators(torch.load(checkpoint, map_location="cpu", weights_only=True))
        for key, name in (("g_ab", "model.pt"), ("g_ba", "model_ba.pt")):
            atomic_torch_save(generators[key], folder / "models" / name)
        atomic_write_text(folder / "models" / SETTINGS_FILE, (models / SETTINGS_FILE).read_text(encoding="utf-8"))
        at = {**run, "ckpt_dir": str(folder / "models"), "output_dir": str(folder)}
        points[iteration] = evaluate_method(root, preset, task, at)["metrics"]
    points[iterations] = final
    return points


def curve_rows(per_seed: dict[int, dict]) -> list[tuple[str, int, int, str, float]]:
    """``(method, seed, iteration, metric, value)`` of the methods' curves in ``{seed: run_comparison's results}``
    (value: the mean over held-out videos)."""
    return [
        (method, seed, iteration, column, float(value[0]))
        for seed, results in per_seed.items()
        for method, r in results.items()
        for iteration, columns in sorted(r.get("curve", {}).items())
        for column, value in columns.items()
    ]


def write_curves(task: Task, rows: Sequence[tuple[str, int, int, str, float]], output: Path, title: str) -> None:
    """``curves.csv`` (one row per method, seed, iteration and metric) and ``curves.png``: one panel per metric,
    one line per method (the mean over seeds at each iteration), shaded between the lowest and highest seed."""
    with atomic_file(output / "curves.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "iteration", "metric", "value"])
        writer.writerows(rows)
    metrics = list(task.metrics)
    methods = list(dict.fromkeys(r[0] for r in rows))
    seeds = sorted({r[1] for r in rows})
    columns = min(3, len(metrics))
    lines = -(-len(metrics) // columns)
    width = max(6.4, 4.2 * columns)
    fig = Figure(figsize=(width, 3.2 * lines + 0.4))
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(lines, columns, k + 1)
        for colour, method in enumerate(methods):
            values: dict[int, list[float]] = {}
            for m, _, iteration, name, value in rows:
                if m == method and name == metric:
                    values.setdefault(iteration, []).append(value)
            steps = sorted(values)
            mean = [float(np.mean(values[i])) for i in steps]
            ax.plot(steps, mean, marker="o", markersize=3, color=f"C{colour}", label=method)
            if len(seeds) > 1:
                low, high = [min(values[i]) for i in steps], [max(values[i]) for i in steps]
                ax.fill_between(steps, low, high, color=f"C{colour}", alpha=0.2, linewidth=0)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    shading = " (mean over seeds; shaded: their range)" if len(seeds) > 1 else ""
    fig.suptitle(textwrap.fill(f"{task.table}: held-out set, {title}{shading}", int(width * 15)), fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, output / "curves.png", dpi=100)


def run_seeds(
    task_name: str,
    methods: Sequence[str],
    preset: str,
    output: Path,
    seeds: Sequence[int],
    match_params: bool = False,
    eval_videos: int | None = -1,
    overrides: dict | None = None,
    curve: int | None = None,
    split: str = "test",
    val_fraction: float = 0.1,
    resume: bool = False,
) -> dict:
    """:func:`run_comparison` once per seed (one seed: exactly :func:`run_comparison` in ``output``; several:
    each in ``output/seed_<s>``), then the tables over seeds in ``output``: per metric the mean over seeds,
    the sample standard deviation over seeds (ddof 1) and the mean per-video sigma. Returns the summary
    (``{row: {"metrics": {column: {"mean", "seed_std", "sigma", "per_seed"}}, ...}}``)."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}.")
    _check_layout(output, several_seeds=len(seeds) > 1)
    held_out: dict[str, Any] = {"curve": curve, "split": split, "val_fraction": val_fraction, "resume": resume}
    if len(seeds) == 1:
        return run_comparison(
            task_name, methods, preset, output, seeds[0], match_params, eval_videos, overrides, **held_out
        )
    per_seed = {
        seed: run_comparison(
            task_name, methods, preset, output / f"seed_{seed}", seed, match_params, eval_videos, overrides, **held_out
        )
        for seed in seeds
    }
    task = TASKS[task_name]
    summary = summarise_seeds(per_seed)
    first = json.loads((output / f"seed_{seeds[0]}" / "results.json").read_text(encoding="utf-8"))["meta"]
    meta = {**first, "seeds": seeds, "seed_spread": "sample standard deviation over seeds (ddof 1)"}
    meta.pop("seed", None)
    atomic_write_text(output / "results.json", json.dumps({"meta": meta, "results": summary}, indent=2, default=str))
    _write_seed_tables(task, summary, meta, output, figure=f"seed_{seeds[0]}/figure.png")
    if curve:
        write_curves(task, curve_rows(per_seed), output, f"{preset} preset, seeds {', '.join(map(str, seeds))}")
    return summary


def _check_layout(output: Path, several_seeds: bool) -> None:
    """Refuse an ``output`` that holds a run of the other layout before anything is trained: a one-seed run keeps
    its method folders in ``output``, a run of several seeds each seed in ``output/seed_<s>``, and both write their
    tables to ``output``, so mixing them would retrain what is there and write one run's tables over the other's."""
    seed_folders = sorted(p.name for p in output.glob("seed_*") if p.is_dir())
    method_folders = sorted(p.parent.name for p in output.glob(f"*/{REQUEST_FILE}"))
    if several_seeds and method_folders:
        raise ValueError(
            f"{output} holds a one-seed run ({', '.join(method_folders)}); a run of several seeds keeps each seed in "
            "seed_<s>/ and would write its tables over that run's: use another --output."
        )
    if not several_seeds and seed_folders:
        raise ValueError(
            f"{output} holds a run of several seeds ({', '.join(seed_folders)}); to add methods to one of its seeds "
            f"give --output {output}/seed_<s> (with --resume), otherwise another --output."
        )


def summarise_seeds(per_seed: dict[int, dict]) -> dict:
    """``{seed: run_comparison's results}`` -> ``{row: {"metrics": {column: {"mean", "seed_std", "sigma",
    "per_seed"}}, "iterations", "parameters", "train_seconds"}}`` with rows and columns of the first seed.

    ``mean``: the mean over seeds of each seed's mean over videos; ``seed_std``: their sample standard deviation
    (ddof 1; 0 for one seed); ``sigma``: the mean over seeds of the per-video standard deviations.
    """
    seeds = list(per_seed)
    first = per_seed[seeds[0]]
    summary: dict[str, dict] = {}
    for row, r in first.items():
        columns = {}
        for column in r["metrics"]:
            values = [per_seed[s][row]["metrics"][column] for s in seeds]
            means = np.array([float(v[0]) for v in values])
            sigmas = np.array([float(v[1]) for v in values])
            columns[column] = {
                "mean": float(means.mean()),
                "seed_std": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
                "sigma": float(sigmas.mean()),
                "per_seed": dict(zip(seeds, means.tolist(), strict=True)),
            }
        entry: dict = {"metrics": columns}
        if "iterations" in r:
            entry["iterations"] = r["iterations"]
            entry["parameters"] = r["parameters"]
            entry["train_seconds"] = {s: per_seed[s][row]["train_seconds"] for s in seeds}
        summary[row] = entry
    return summary


def seed_orderings(summary: dict, column: str) -> tuple[list[str], bool]:
    """The rows in ascending order of ``column``'s mean over seeds, and whether every seed orders them alike."""
    rows = [row for row, r in summary.items() if column in r["metrics"]]
    order = sorted(rows, key=lambda row: summary[row]["metrics"][column]["mean"])
    seeds = list(summary[rows[0]]["metrics"][column]["per_seed"]) if rows else []

    def per_seed(seed: Any) -> Callable[[str], float]:
        return lambda row: summary[row]["metrics"][column]["per_seed"][seed]

    same = all(sorted(rows, key=per_seed(s)) == order for s in seeds)
    return order, same


def _markdown_table(meta: dict, runs: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """The title, the settings line (``runs``: which seeds and how many held-out videos) and the table of
    ``table.md``."""
    return [
        f"# {meta['table']}",
        "",
        f"Preset `{meta['preset']}`, {runs} ({meta['split']} split), "
        f"parameter-matched 2D models: {meta['match_params']}, torch {meta['torch']}, {meta['date']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _write_seed_tables(task: Task, summary: dict, meta: dict, output: Path, figure: str) -> None:
    names = list(task.metrics)
    header = ["method"]
    for n in names:
        header += [f"{n} (ours: mean ± seed std)", f"{n} (per-video sigma)", f"{n} (paper)"]
    header += ["iterations", "parameters"]
    rows = []
    for method, r in summary.items():
        ours, paper = r["metrics"], task.paper.get(method, {})
        params = r.get("parameters")
        cells = [method]
        for n in names:
            value = ours.get(n)
            cells += [
                format_mean_sigma(None if value is None else (value["mean"], value["seed_std"])),
                "-" if value is None else f"{value['sigma']:.{table_decimals(value['mean'])}f}",
                format_mean_sigma(paper.get(n)),
            ]
        cells += [str(r.get("iterations", "-")), f"{sum(params.values()) / 1e6:.2f}M" if params else "-"]
        rows.append(cells)
    csv_header = ["method"] + [f"{n} {k}" for n in names for k in ("mean", "seed_std", "sigma", "paper")]
    csv_rows = []
    for method, r in summary.items():
        cells = [method]
        for n in names:
            value, published = r["metrics"].get(n), task.paper.get(method, {}).get(n)
            cells += ["" if value is None else value[k] for k in ("mean", "seed_std", "sigma")]
            cells.append("" if published is None else published[0])
        csv_rows.append(cells + [r.get("iterations", ""), sum(r["parameters"].values()) if "parameters" in r else ""])
    with atomic_file(output / "table.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(csv_header + ["iterations", "parameters"])
        writer.writerows(csv_rows)
    seeds = ", ".join(map(str, meta["seeds"]))
    lines = _markdown_table(
        meta,
        f"seeds {seeds}, {meta['held_out_videos']} held-out videos per seed",
        header,
        rows,
    )
    lines += [
        "",
        f"Values are the mean over seeds ({seeds}) of each seed's mean over held-out videos ± the sample standard "
        "deviation of those means over seeds (ddof 1); per-video sigma: the mean over seeds of the standard "
        "deviation over held-out videos. Each seed draws its own data split, initial weights and data order.",
        "",
        "Ascending order of the means, and whether every seed gives the same order:",
        "",
    ]
    for n in names:
        order, same = seed_orderings(summary, n)
        lines.append(
            f"- {n}: {' < '.join(order)} ({'the same in every seed' if same else 'not the same in every seed'})"
        )
    lines += ["", *task.notes, "", f"![figure of seed {meta['seeds'][0]}]({figure})"]
    atomic_write_text(output / "table.md", "\n".join(lines) + "\n")


def _reference_metrics(
    task: Task, root: Path, preset: str, last_run: dict, output: Path, last: dict
) -> dict[str, tuple[float, float]]:
    """The reference row: the untranslated input evaluated like a method (``identity``: the last method's
    evaluation with an identity translator), or the ground truth's own values from the last evaluation's report
    (0 where the ground truth is compared with itself)."""
    if task.reference_row == "ground truth":
        return {column: last["reference"].get(column, (0.0, 0.0)) for column in task.metrics}
    run = {**last_run, "output_dir": str(output / "identity"), "translator": "$torch.nn.Identity()"}
    return evaluate_method(root, preset, task, run)["metrics"]


def format_mean_sigma(value: tuple[float, float | None] | None) -> str:
    """A table cell ``mean ± sigma`` (``-`` for no value): two decimals, or as many as show two significant
    digits of a mean below 0.1, up to four (a warping error of 0.0079 is not "0.01 ± 0.00"; float noise around 0
    stays "0.0000")."""
    if value is None:
        return "-"
    mean, sigma = value
    decimals = table_decimals(mean)
    return f"{mean:.{decimals}f}" if sigma is None else f"{mean:.{decimals}f} ± {sigma:.{decimals}f}"


def table_decimals(mean: float) -> int:
    """Decimals of every table cell of a metric whose mean is ``mean``: two, or as many as show two significant
    digits of a mean below 0.1, up to four."""
    if mean != 0 and abs(mean) < 0.1 and math.isfinite(mean):
        return min(4, 1 - math.floor(math.log10(abs(mean))))
    return 2


def _write_tables(task: Task, results: dict, meta: dict, output: Path) -> None:
    names = list(task.metrics)
    header = ["method"] + [f"{n} ({s})" for n in names for s in ("ours", "paper")] + ["iterations", "parameters"]
    rows = []
    for method, r in results.items():
        ours, paper = r["metrics"], task.paper.get(method, {})
        params = r.get("parameters")
        rows.append(
            [method]
            + [c for n in names for c in (format_mean_sigma(ours.get(n)), format_mean_sigma(paper.get(n)))]
            + [str(r.get("iterations", "-")), f"{sum(params.values()) / 1e6:.2f}M" if params else "-"]
        )
    with atomic_file(output / "table.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    lines = _markdown_table(meta, f"seed {meta['seed']}, {meta['held_out_videos']} held-out videos", header, rows)
    lines += [
        "",
        "Values are mean ± sigma over held-out videos (sigma: standard deviation over videos).",
        *task.notes,
        "",
        "![figure](figure.png)",
    ]
    atomic_write_text(output / "table.md", "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the reproduction runner."""
    parser = argparse.ArgumentParser(prog="mr2ct reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0); same as --seeds SEED")
    seeds.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="train and evaluate every method once per seed"
    )
    parser.add_argument("--match-params", action="store_true", help="give 2D models the 3D models' parameter counts")
    parser.add_argument("--eval-videos", type=int, default=-1, help="held-out videos to evaluate (default: preset's)")
    parser.add_argument(
        "--curve", type=int, default=None, metavar="N", help="also evaluate every N iterations: curves.csv / .png"
    )
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="held-out split to evaluate: test, or val (vmnist, mmnist: --val-fraction of the training digits held "
        "out of training; gta: a second procedural scene; select settings here, not on test)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of training digits for --split val")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with a stopped run in --output: read back the methods it finished with these settings, resume "
        "an unfinished training from its latest checkpoint",
    )
    args = parser.parse_args(argv)
    output = args.output or Path("runs") / f"reproduce_{args.task}_{args.preset}{'_val' if args.split == 'val' else ''}"
    run_seeds(
        args.task,
        args.methods,
        args.preset,
        output,
        args.seeds or [0 if args.seed is None else args.seed],
        args.match_params,
        None if args.eval_videos == 0 else args.eval_videos,
        curve=args.curve,
        split=args.split,
        val_fraction=args.val_fraction,
        resume=args.resume,
    )
    print((output / "table.md").read_text(encoding="utf-8"))
    return 0
