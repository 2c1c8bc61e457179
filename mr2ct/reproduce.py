"""Reproduce the paper's comparison: train every method on a task, evaluate on held-out videos, and write
the paper's table (ours beside the paper's numbers) and a Figure 6-style picture.

    python scripts/reproduce.py --task vmnist --methods 3d random sequential seq_const --preset quick

Each method is trained by the task's bundle (``train.json`` + ``quick.json`` for the quick preset, with the
method's overrides) through MONAI's ``ConfigWorkflow``, so the runs are exactly what ``monai.bundle run``
would do. Results go to ``--output`` (default ``runs/reproduce_<task>_<preset>``): ``table.md``,
``table.csv``, ``results.json``, ``figure.png`` and one folder per method with its weights and logs.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from mr2ct.bundle import bundle_root
from mr2ct.data import load_split
from mr2ct.data.gta import palette_array
from mr2ct.engine import METHODS, method_spatial_dims
from mr2ct.export import save_frame_panel
from mr2ct.metrics import (
    colour_flicker,
    decode_palette,
    digit_colour_sigma,
    digit_intensity_mean,
    mean_and_sigma,
    pixel_accuracy,
    shape_l2,
    tof,
    transition_l2,
    volume_l2,
    warping_error,
)
from mr2ct.networks import (
    FramewiseNetwork,
    PatchGANDiscriminator,
    ResnetGenerator,
    count_parameters,
    matched_width,
)

__all__ = ["TASKS", "main", "run_comparison"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """A per-video metric of a table: ``fn(pred, target)`` when paired, else ``fn(video)``; with ``subset``, only
    over the held-out videos of that subset of the data folder (``<subset>.npy``: their indices)."""

    name: str
    fn: Callable[..., torch.Tensor]
    paired: bool = True
    subset: str | None = None


@dataclass(frozen=True)
class Task:
    """A paper experiment: its bundle, metrics, and the paper's published numbers (mean, sigma or None)."""

    bundle: str
    table: str
    metrics: tuple[Metric, ...]
    paper: dict[str, dict[str, tuple[float, float | None]]]
    reference_row: str  # "identity" (the input) or "ground truth"
    notes: tuple[str, ...] = ()
    direction: str = "a2b"  # the translation the table measures: "a2b" (model.pt) or "b2a" (model_ba.pt)


def _palette_accuracy(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    palette = palette_array()
    return pixel_accuracy(decode_palette(pred, palette), decode_palette(truth, palette))


def _palette_transition_l2(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    palette = palette_array()
    return transition_l2(decode_palette(pred, palette), decode_palette(truth, palette), len(palette))


_TEMPORAL_NOTE = ("warping_error: Lai et al. (2018) on [0, 1] frames, the output warped with the Farneback flow of the "
                  "ground truth (not FlowNet2), occlusions masked; tof: TecoGAN's mean |flow(output) - flow(ground "
                  "truth)| in pixels (mr2ct.metrics.temporal; not in the paper).")

TASKS = {
    "vmnist": Task(
        bundle="vmnist_cyclegan3d",
        table="Table 2: volumetric MNIST, L2 between translation and ground truth",
        metrics=(Metric("l2", volume_l2),),
        paper={"3d": {"l2": (27.21, 5.27)}, "random": {"l2": (48.73, 13.72)},
               "sequential": {"l2": (41.73, 11.40)}, "seq_const": {"l2": (73.41, 5.26)}},
        reference_row="identity",
        notes=("l2: per-video RMSE over all voxels on [0, 255]; sigma: its std over held-out videos. The paper "
               "does not state its reduction.",),
    ),
    "mmnist": Task(
        bundle="mmnist_color_cyclegan3d",
        table="Table 1: coloured moving MNIST (white -> colour)",
        metrics=(Metric("shape_l2", shape_l2), Metric("intensity_mean", digit_intensity_mean, paired=False),
                 Metric("colour_sigma", digit_colour_sigma, paired=False),
                 Metric("colour_flicker", colour_flicker, paired=False), Metric("warping_error", warping_error),
                 Metric("tof", tof)),
        paper={"ground truth": {"intensity_mean": (175.37, None), "colour_sigma": (32.25, None)},
               "3d": {"shape_l2": (0.79, None), "intensity_mean": (204.36, None), "colour_sigma": (45.65, None)},
               "random": {"shape_l2": (1.48, None), "intensity_mean": (139.38, None), "colour_sigma": (64.51, None)},
               "sequential": {"shape_l2": (0.84, None), "intensity_mean": (205.49, None), "colour_sigma": (53.96, None)},
               "seq_const": {"shape_l2": (0.90, None), "intensity_mean": (198.18, None), "colour_sigma": (54.06, None)}},
        reference_row="ground truth",
        notes=("shape_l2: L2 norm of the binary digit-mask difference relative to the ground truth's mask norm "
               "(1 = empty output; the paper does not state its normalisation); intensity_mean and colour_sigma on [0, 255] digit pixels; colour_flicker: "
               "std over time of the mean digit colour (not in the paper).", _TEMPORAL_NOTE),
    ),
    "gta": Task(
        bundle="gta_seg2video_cyclegan3d",
        table="Table 4: GTA video -> segmentation, per-frame pixel accuracy",
        metrics=(Metric("accuracy_slow", _palette_accuracy, subset="slow"), Metric("accuracy_all", _palette_accuracy),
                 Metric("transition_l2", _palette_transition_l2), Metric("warping_error", warping_error),
                 Metric("tof", tof)),
        paper={"3d": {"accuracy_slow": (0.54, None), "accuracy_all": (0.55, None)},
               "random": {"accuracy_slow": (0.46, None), "accuracy_all": (0.65, None)},
               "sequential": {"accuracy_slow": (0.64, None), "accuracy_all": (0.71, None)},
               "seq_const": {"accuracy_slow": (0.56, None), "accuracy_all": (0.68, None)}},
        reference_row="identity",
        notes=("accuracy: per-frame pixel accuracy after decoding each translated pixel to the nearest VIPER palette "
               "colour's class, mean over frames then over clips; slow: the test clips with the least camera motion "
               "(at most the median); transition_l2: L2 between the class-transition matrices of translated and true "
               "segmentation videos, no denoising (not in the paper's table). The paper also lists 200M-parameter "
               "models (3D 0.77/0.72, 2D 0.60/0.70). identity: the RGB input itself decoded to the palette.", _TEMPORAL_NOTE),
        direction="b2a",
    ),
}

# what changes per preset, on top of the bundle's configs (quick: train.json + quick.json)
PRESETS = {
    "quick": {"configs": ("train.json", "quick.json"),
              "overrides": {"max_epochs": 10, "decay_epochs": 5, "epoch_length": 100, "val_interval": 1000},
              "eval_videos": 300},
    "paper": {"configs": ("train.json",), "overrides": {"val_interval": 1000}, "eval_videos": None},
}


def method_overrides(method: str, depth: int) -> dict:
    """How a batch is formed per method: one clip (3d, sequential, seq_const) or random frames from 4 clips,
    as many frames as a sequential batch holds (``depth``)."""
    if method == "random":
        return {"method": method, "clips_per_batch": 4, "frames_per_batch": depth}
    return {"method": method, "clips_per_batch": 1}


def matched_2d_widths(channels: int, ngf: int, ndf: int, blocks: int, depth: int, size: Sequence[int]) -> dict:
    """``ngf``/``ndf`` of 2D networks with the parameter counts of the 3D ones (the paper's equal-size models)."""
    g3 = count_parameters(ResnetGenerator(3, channels, channels, ngf, blocks))
    d3 = count_parameters(PatchGANDiscriminator(3, channels, ndf, input_size=(depth, *size)))
    return {"ngf": matched_width(lambda c: ResnetGenerator(2, channels, channels, c, blocks), g3),
            "ndf": matched_width(lambda c: PatchGANDiscriminator(2, channels, c, input_size=tuple(size)), d3)}


def _config_files(root: Path, preset: str) -> list[str]:
    return [str(root / "configs" / name) for name in PRESETS[preset]["configs"]]


def train_method(root: Path, preset: str, overrides: dict) -> dict:
    """Train one method with the bundle's training workflow; returns iterations, parameters and wall time."""
    start = time.time()
    workflow = ConfigWorkflow(config_file=_config_files(root, preset), workflow_type="train", run_id="training",
                              meta_file=str(root / "configs" / "metadata.json"),
                              logging_file=str(root / "configs" / "logging.conf"), **overrides)
    workflow.initialize()
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    params = {k: count_parameters(workflow.parser.get_parsed_content(k)) for k in ("g_ab", "g_ba", "d_a", "d_b")}
    workflow.finalize()
    return {"iterations": int(trainer.state.iteration), "parameters": params, "train_seconds": time.time() - start}


@torch.no_grad()
def translate_test_set(root: Path, preset: str, overrides: dict, limit: int | None, batch_size: int = 8,
                       direction: str = "a2b"):
    """Translate the held-out A videos with the trained ``models/model.pt`` (``b2a``: the B videos with
    ``models/model_ba.pt``); returns (input, output, truth) on [0, 255] as float tensors ``(N, C, D, H, W)``
    and the data folder."""
    parser = ConfigParser()
    parser.read_config(_config_files(root, preset))
    parser.update(overrides)
    net = parser.get_parsed_content("network_def", instantiate=True)
    weights = "model.pt" if direction == "a2b" else "model_ba.pt"
    net.load_state_dict(torch.load(Path(overrides["ckpt_dir"]) / weights, map_location="cpu"))
    net.eval()
    translator = net if method_spatial_dims(overrides["method"]) == 3 else FramewiseNetwork(net)
    folder = parser.get_parsed_content("data_folder")
    a, b = load_split(folder, "test", "A"), load_split(folder, "test", "B")
    if direction == "b2a":
        a, b = b, a
    n = len(a) if limit is None else min(limit, len(a))
    outputs = []
    for s in range(0, n, batch_size):
        x = torch.as_tensor(np.array(a[s: min(s + batch_size, n)])).float() / 127.5 - 1
        outputs.append(((translator(x).clamp(-1, 1) + 1) * 127.5))
    inputs, truth = torch.as_tensor(np.array(a[:n])).float(), torch.as_tensor(np.array(b[:n])).float()
    return inputs, torch.cat(outputs), truth, Path(folder)


def _measure(task: Task, pred: torch.Tensor, truth: torch.Tensor, folder: Path) -> dict[str, tuple[float, float]]:
    results = {}
    for m in task.metrics:
        keep = slice(None)
        if m.subset is not None:
            keep = [int(i) for i in np.load(folder / f"{m.subset}.npy") if i < len(pred)]
        values = m.fn(pred[keep], truth[keep]) if m.paired else m.fn(pred[keep])
        results[m.name] = mean_and_sigma(values)
    return results


def run_comparison(task_name: str, methods: Sequence[str], preset: str, output: Path, seed: int = 0,
                   match_params: bool = False, eval_videos: int | None = -1, overrides: dict | None = None) -> dict:
    """Train and evaluate ``methods`` on a task; write the table, CSV, JSON and figure to ``output``.

    ``eval_videos`` limits the held-out videos (-1: the preset's number, None: all); ``overrides`` are bundle
    settings applied on top of the preset (e.g. smaller shapes for a smoke test).
    """
    task = TASKS[task_name]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}.")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}.")
    limit = PRESETS[preset]["eval_videos"] if eval_videos == -1 else eval_videos
    root = Path(bundle_root(task.bundle))
    base = ConfigParser()
    base.read_config(_config_files(root, preset))
    base.update(overrides or {})
    settings = {k: base[k] for k in ("depth", "size", "channels", "ngf", "ndf", "num_res_blocks")}
    output.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    rows_for_figure: dict[str, torch.Tensor] = {}
    for method in methods:
        run = {"bundle_root": str(root), "seed": seed, "dataset_dir": str(root / "data"),
               "ckpt_dir": str(output / method / "models"), "output_dir": str(output / method),
               **PRESETS[preset]["overrides"], **(overrides or {}), **method_overrides(method, settings["depth"])}
        if match_params and method_spatial_dims(method) == 2:
            run.update(matched_2d_widths(settings["channels"], settings["ngf"], settings["ndf"],
                                         settings["num_res_blocks"], settings["depth"], settings["size"]))
        logger.info(f"--- {task_name} / {method} ({preset}) ---")
        info = train_method(root, preset, run)
        inputs, pred, truth, folder = translate_test_set(root, preset, run, limit, direction=task.direction)
        results[method] = {**info, "metrics": _measure(task, pred, truth, folder), "overrides": run}
        rows_for_figure.setdefault(f"input ({task.direction[0].upper()})", inputs[0])
        rows_for_figure[method] = pred[0]
    reference = inputs if task.reference_row == "identity" else truth
    results[task.reference_row] = {"metrics": _measure(task, reference, truth, folder)}
    rows_for_figure[f"ground truth ({task.direction[-1].upper()})"] = truth[0]

    meta = {"task": task_name, "table": task.table, "preset": preset, "seed": seed, "match_params": match_params,
            "held_out_videos": int(len(truth)), "settings": settings, "torch": torch.__version__,
            "date": datetime.date.today().isoformat()}
    (output / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str), encoding="utf-8")
    _write_tables(task, results, meta, output)
    save_frame_panel(rows_for_figure, output / "figure.png", num_frames=10, value_range=(0, 255),
                     title=f"{task.table} - held-out video 0, {preset} preset, seed {seed}")
    return results


def _fmt(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "-"
    mean, sigma = value
    return f"{mean:.2f}" if sigma is None else f"{mean:.2f} ± {sigma:.2f}"


def _write_tables(task: Task, results: dict, meta: dict, output: Path) -> None:
    names = [m.name for m in task.metrics]
    header = ["method"] + [f"{n} ({s})" for n in names for s in ("ours", "paper")] + ["iterations", "parameters"]
    rows = []
    for method, r in results.items():
        ours, paper = r["metrics"], task.paper.get(method, {})
        params = r.get("parameters")
        rows.append([method] + [c for n in names for c in (_fmt(ours.get(n)), _fmt(paper.get(n)))]
                    + [str(r.get("iterations", "-")), f"{sum(params.values()) / 1e6:.2f}M" if params else "-"])
    with open(output / "table.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    lines = [f"# {meta['table']}", "",
             f"Preset `{meta['preset']}`, seed {meta['seed']}, {meta['held_out_videos']} held-out videos, "
             f"parameter-matched 2D models: {meta['match_params']}, torch {meta['torch']}, {meta['date']}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Values are mean ± sigma over held-out videos (sigma: standard deviation over videos).",
              *task.notes, "", "![figure](figure.png)"]
    (output / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the reproduction runner."""
    parser = argparse.ArgumentParser(prog="mr2ct reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--match-params", action="store_true", help="give 2D models the 3D models' parameter counts")
    parser.add_argument("--eval-videos", type=int, default=-1, help="held-out videos to evaluate (default: preset's)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    output = args.output or Path("runs") / f"reproduce_{args.task}_{args.preset}"
    run_comparison(args.task, args.methods, args.preset, output, args.seed, args.match_params,
                   None if args.eval_videos == 0 else args.eval_videos)
    print((output / "table.md").read_text(encoding="utf-8"))
    return 0
