"""One diagnosis experiment of issue 15: train one method at the quick preset, score it on VALIDATION data.

    python scripts/diagnose_temporal.py --task mmnist --name e01_base --method 3d
    python scripts/diagnose_temporal.py --task gta --name e11_time1 --set gen_strides='[1, 2, 2]'

Validation data, disjoint from the test split and never trained on:

- mmnist: 10% of the training digits are held out of training (``DigitVideoConfig(val_fraction=0.1)``) and
  rendered in both domains (``val_A`` / ``val_B``, 350 paired videos); the test digits are untouched.
- gta: a second procedural driving scene (scene seed 1000: other roads, cars, pedestrians and camera speeds than
  the training scene of seed 0) cut into clips like the training data; all of its clips but those of two
  sequences are paired validation clips (``train_fraction=0.1``), none is trained on.

Training runs through the task's bundle exactly as ``reproduce.py --preset quick`` does (``train.json`` +
``quick.json`` + the quick overrides + the method's batch settings), with ``--set KEY=JSON`` overrides on top.
Writes ``runs/diagnosis/<task>/<name>/val.json`` and ``val_frames.png`` and appends a line to
``runs/diagnosis/<task>/log.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from mr2ct.bundle import bundle_root
from mr2ct.data import load_split
from mr2ct.data.driving_scene import DrivingSceneConfig
from mr2ct.data.gta import GTAClipConfig, build_gta_clips
from mr2ct.engine import method_spatial_dims
from mr2ct.export import save_frame_panel
from mr2ct.metrics import (
    colour_flicker,
    digit_intensity_mean,
    mean_and_sigma,
    shape_l2,
    tof,
    warping_error,
)
from mr2ct.networks import FramewiseNetwork
from mr2ct.reproduce import PRESETS, TASKS, _palette_accuracy, _palette_transition_l2, method_overrides, train_method

VAL_SCENE_SEED = 1000


def _val_data(task: str, parser: ConfigParser) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(source videos, target videos, indices of the slow clips or None) of the validation set, in the direction
    the task's table measures."""
    if task == "mmnist":
        folder = parser.get_parsed_content("data_folder")
        return load_split(folder, "val", "A"), load_split(folder, "val", "B"), None
    config = GTAClipConfig(depth=parser["depth"], size=tuple(parser["size"]), train_fraction=0.1, seed=0)
    scene = DrivingSceneConfig(size=tuple(parser["scene_size"]), frames=parser["scene_frames"], seed=VAL_SCENE_SEED)
    folder = build_gta_clips(parser.get_parsed_content("dataset_dir"), None, config, scene)
    return load_split(folder, "test", "B"), load_split(folder, "test", "A"), np.load(folder / "slow.npy")


@torch.no_grad()
def _translate(net: torch.nn.Module, source: np.ndarray, batch_size: int = 8) -> torch.Tensor:
    outputs = []
    for s in range(0, len(source), batch_size):
        x = torch.as_tensor(np.array(source[s: s + batch_size])).float() / 127.5 - 1
        outputs.append((net(x).clamp(-1, 1) + 1) * 127.5)
    return torch.cat(outputs)


def _metrics(task: str, pred: torch.Tensor, truth: torch.Tensor, slow: np.ndarray | None) -> dict:
    values = {"warping_error": warping_error(pred, truth), "tof": tof(pred, truth)}
    if task == "mmnist":
        values |= {"shape_l2": shape_l2(pred, truth), "colour_flicker": colour_flicker(pred),
                   "intensity_mean": digit_intensity_mean(pred)}
    else:
        values |= {"accuracy": _palette_accuracy(pred, truth), "transition_l2": _palette_transition_l2(pred, truth)}
        values["accuracy_slow"] = values["accuracy"][torch.as_tensor(slow)]
    return {k: mean_and_sigma(v) for k, v in values.items()}


def run(task: str, name: str, method: str, settings: dict, output: Path) -> dict:
    """Train ``method`` with ``settings`` on the task's training split, score it on the validation set."""
    root = Path(bundle_root(TASKS[task].bundle))
    configs = [str(root / "configs" / f) for f in PRESETS["quick"]["configs"]]
    base = ConfigParser()
    base.read_config(configs)
    out = output / task / name
    overrides = {"bundle_root": str(root), "seed": 0, "dataset_dir": str(root / "data"),
                 "ckpt_dir": str(out / "models"), "output_dir": str(out), **PRESETS["quick"]["overrides"],
                 **method_overrides(method, base["depth"]), **settings}
    if task == "mmnist":
        overrides["data_folder#config#val_fraction"] = 0.1
    info = train_method(root, "quick", overrides)

    parser = ConfigParser()
    parser.read_config(configs)
    parser.update(overrides)
    net = parser.get_parsed_content("network_def", instantiate=True)
    weights = "model.pt" if TASKS[task].direction == "a2b" else "model_ba.pt"
    net.load_state_dict(torch.load(out / "models" / weights, map_location="cpu"))
    net.eval()
    translator = net if method_spatial_dims(method) == 3 else FramewiseNetwork(net)
    source, target, slow = _val_data(task, parser)
    truth = torch.as_tensor(np.array(target)).float()
    pred = _translate(translator, source)
    result = {"task": task, "name": name, "method": method, "settings": settings, "val_videos": len(truth),
              "train_seconds": round(info["train_seconds"], 1), "iterations": info["iterations"],
              "parameters": sum(info["parameters"].values()), "metrics": _metrics(task, pred, truth, slow),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    (out / "val.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    with open(output / task / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    rows = {"input": torch.as_tensor(np.array(source[0])).float(), method: pred[0], "truth": truth[0],
            "input 1": torch.as_tensor(np.array(source[1])).float(), f"{method} 1": pred[1], "truth 1": truth[1]}
    save_frame_panel(rows, out / "val_frames.png", num_frames=min(16, truth.shape[2]), value_range=(0, 255),
                     title=f"{task} {name}: validation videos 0 and 1")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("mmnist", "gta"), required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--method", default="3d")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a bundle config override")
    parser.add_argument("--output", type=Path, default=Path("runs/diagnosis"))
    args = parser.parse_args()
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value  # a plain string, e.g. a "$..." expression
    result = run(args.task, args.name, args.method, settings, args.output)
    print(json.dumps({k: result[k] for k in ("name", "train_seconds", "metrics")}, indent=1))


if __name__ == "__main__":
    main()
