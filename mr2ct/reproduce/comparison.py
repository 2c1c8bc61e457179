"""Train and evaluate the methods of a paper experiment through its bundle's workflows, once per seed, and write
the results, tables, curves and figure (the runner behind ``mr2ct reproduce``)."""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from mr2ct.bundle import bundle_root, load_config
from mr2ct.engine import SETTINGS_FILE, atomic_torch_save, checkpoint_generators, get_method
from mr2ct.export import save_frame_panel
from mr2ct.io.atomic import atomic_write_text
from mr2ct.networks import count_parameters, matched_width
from mr2ct.reproduce.curves import curve_rows, write_curves
from mr2ct.reproduce.resume import (
    ENTRY_FILE,
    REQUEST_FILE,
    as_json,
    check_layout,
    configs_digest,
    finished_or_resumable,
)
from mr2ct.reproduce.tables import summarise_seeds, write_seed_tables, write_tables
from mr2ct.reproduce.tasks import PRESETS, TASKS, Task

__all__ = ["evaluate_curve", "evaluate_method", "matched_2d_widths", "run_comparison", "run_seeds", "train_method"]

logger = logging.getLogger(__name__)


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
    settings and resume unfinished trainings from their latest checkpoints
    (:func:`~mr2ct.reproduce.resume.finished_or_resumable`).
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
    digest = configs_digest(base.config, root / "configs" / "evaluate.json")
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
        finished, from_checkpoint = finished_or_resumable(output / method, run, digest) if resume else (None, False)
        if finished is not None:
            logger.info(f"--- {task_name} / {method} ({preset}): finished in {output / method}, read back ---")
            results[method], evaluation = finished["result"], finished["evaluation"]
        else:
            logger.info(f"--- {task_name} / {method} ({preset}){' resumed' if from_checkpoint else ''} ---")
            atomic_write_text(output / method / REQUEST_FILE, json.dumps(as_json(run), indent=2))
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
            atomic_write_text(output / method / ENTRY_FILE, json.dumps(as_json(entry), indent=2))
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
    write_tables(task, results, meta, output)
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
    check_layout(output, several_seeds=len(seeds) > 1)
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
    write_seed_tables(task, summary, meta, output, figure=f"seed_{seeds[0]}/figure.png")
    if curve:
        write_curves(task, curve_rows(per_seed), output, f"{preset} preset, seeds {', '.join(map(str, seeds))}")
    return summary


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
