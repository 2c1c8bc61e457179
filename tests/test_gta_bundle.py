"""The GTA segmentation <-> video bundle as users run it, and whole-video translation by sliding along time."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mr2ct.bundle import load_config
from mr2ct.io.video import read_video, write_video

import conftest
from conftest import GTA_TINY, REPO

BUNDLE = REPO / "bundles" / "gta_seg2video_cyclegan3d"
CONFIGS = BUNDLE / "configs"


def tiny_overrides(tmp_path: Path) -> dict:
    return {
        **GTA_TINY,
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(tmp_path / "data"),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "runs"),
    }


def run_bundle(run_id: str, config: str, overrides: dict) -> subprocess.CompletedProcess:
    return conftest.run_bundle(CONFIGS, run_id, config, overrides)


def test_metadata_and_paper_settings():
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [30, 108, 192]
    train = json.loads((CONFIGS / "train.json").read_text(encoding="utf-8"))
    assert (train["depth"], train["size"], train["channels"]) == (30, [108, 192], 3)
    assert train["sequences"] == "001-004, 044-049, 051, 066-069"  # the paper's daylight selection


def test_train_evaluate_infer_end_to_end(tmp_path):
    ov = tiny_overrides(tmp_path)
    train = run_bundle(
        "training",
        "train.json",
        {**ov, "max_epochs": 1, "decay_epochs": 1, "epoch_length": 2, "val_interval": 1, "num_val_cases": 2},
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "val_pixel_accuracy" in train.stdout + train.stderr
    assert {"model.pt", "model_ba.pt"} <= {p.name for p in (tmp_path / "models").iterdir()}

    # Table 4 direction (video -> segmentation) with the slow subset
    evaluate = run_bundle("evaluating", "evaluate.json", ov)
    assert evaluate.returncode == 0, evaluate.stdout[-3000:] + evaluate.stderr[-3000:]
    metrics = json.loads((tmp_path / "runs" / "report" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    for name in (
        "pixel_accuracy",
        "pixel_accuracy_slow",
        "mean_iou",
        "transition_l2_d0",
        "transition_l2_d2",
        "label_flicker",
    ):
        assert name in metrics, name
    assert 0 <= metrics["pixel_accuracy"]["mean"] <= 1
    assert metrics["pixel_accuracy_slow"]["n"] < metrics["pixel_accuracy"]["n"]
    other = run_bundle("evaluating", "evaluate.json", {**ov, "direction": "a2b"})
    assert other.returncode == 0, other.stderr[-3000:]
    assert {"l2", "flicker"} <= set(
        json.loads((tmp_path / "runs" / "report_a2b" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    )

    # segmentation -> video on the held-out sequences, written as whole videos (longer than a clip)
    out = tmp_path / "videos"
    infer = run_bundle("inference", "inference.json", {**ov, "output_dir": str(out)})
    assert infer.returncode == 0, infer.stdout[-3000:] + infer.stderr[-3000:]
    inputs = sorted((tmp_path / "data" / "inference" / "test_A").iterdir())
    assert inputs and all(p.is_dir() for p in inputs)  # segmentation inputs: lossless PNG frame folders
    name = inputs[0].name
    video = read_video(out / f"{name}_to_video.mp4")
    assert video.shape == (24, 16, 32, 3)  # every frame of the 24-frame sequence, 8-frame windows
    assert read_video(out / f"{name}_side_by_side.mp4").shape == (24, 16, 64, 3)
    assert (out / f"{name}_side_by_side.gif").is_file()

    # video -> segmentation on a folder with an MP4 of another size and a corrupt file: one failure reported
    folder = tmp_path / "mine"
    folder.mkdir()
    frames = (np.random.default_rng(0).random((20, 40, 72, 3)) * 255).astype(np.uint8)
    write_video(folder / "drive.mp4", frames, fps=10)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40)
    mine = run_bundle(
        "inference",
        "inference.json",
        {
            **ov,
            "direction": "b2a",
            "input_dir": str(folder),
            "output_dir": str(tmp_path / "segs"),
            "amp": True,
            "sw_batch_size": 2,
        },
    )  # bf16, 2 windows per pass
    assert mine.returncode == 1, mine.stdout[-3000:] + mine.stderr[-3000:]
    rows = {
        Path(r["source"]).name: r for r in csv.DictReader(open(tmp_path / "segs" / "summary.csv", encoding="utf-8"))
    }
    assert rows["drive.mp4"]["status"] == "translated" and rows["broken.mp4"]["status"] == "failed"
    assert "broken.mp4" in rows["broken.mp4"]["reason"]
    assert read_video(tmp_path / "segs" / "drive_to_segmentation.mp4").shape == (20, 16, 32, 3)


@pytest.mark.slow
def test_colourisation_configuration(tmp_path):
    """colorize.json: grey video (A) <-> RGB video (B), validated by L2, evaluated by L2 and flicker."""
    ov = {
        **tiny_overrides(tmp_path),
        "max_epochs": 1,
        "decay_epochs": 1,
        "epoch_length": 2,
        "val_interval": 1,
        "num_val_cases": 2,
    }
    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "colorize.json")]),
    ]
    for k, v in ov.items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    train = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", timeout=900)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "val_l2" in train.stdout + train.stderr
    folder = next((tmp_path / "data").glob("gta_grayscale_*"))
    grey = np.load(folder / "test_A.npy")
    assert np.array_equal(grey[:, 0], grey[:, 1]) and np.array_equal(grey[:, 1], grey[:, 2])  # grey in 3 channels


def test_sliding_along_time_has_no_seams():
    """The bundle's inferer on a network that outputs its window's mean brightness: clips side by side would
    jump by a window's change at each border; the blended windows (Gaussian along time only, so every pixel,
    corners included, blends alike) change by a small fraction of it."""
    parser = load_config(BUNDLE.name, "inference", overrides={"depth": 16, "size": [8, 8]})
    inferer = parser.get_parsed_content("inferer")
    ramp = torch.linspace(-1, 1, 64).reshape(1, 1, 64, 1, 1).expand(1, 3, 64, 8, 8).contiguous()

    def window_mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4), keepdim=True).expand_as(x).clone()

    out = inferer(ramp, window_mean)
    assert out.shape == ramp.shape
    hard = 16 * 2 / 63  # the change of the window mean from one clip to the next
    for h, w in ((0, 0), (4, 4), (7, 0)):
        steps = out[0, 0, :, h, w].diff().abs()
        assert float(steps.max()) < 0.2 * hard, (h, w)


@pytest.mark.parametrize(
    "method, overrides",
    [
        ("3d", {}),
        ("3d", {"clips_per_batch": 2}),
        ("sequential", {}),
        ("seq_const", {"crop_depth": 4}),
        ("sequential", {"crop_depth": 4, "clips_per_batch": 2}),
    ],
)
def test_quick_pools_hold_150_iterations_of_fakes_whatever_the_batch_shape(method, overrides):
    """quick.json gives the one-clip methods 150 iterations of pool history (a pool counts samples): the same
    history when a user changes how many clips or frames a batch holds, measured on a batch the method forms."""
    parser = load_config(
        BUNDLE.name, "train", files=[CONFIGS / "quick.json"], overrides={"method": method, **overrides}
    )
    clips = torch.zeros(parser.get_parsed_content("clips_per_batch"), 3, parser.get_parsed_content("depth"), 8, 8)
    real_a, _ = parser.get_parsed_content("train#trainer#prepare_batch")({"A": clips, "B": clips})
    assert parser.get_parsed_content("pool_size") == 150 * real_a.shape[0]


def test_quick_pool_of_random_keeps_cyclegans_50_frames():
    parser = load_config(BUNDLE.name, "train", files=[CONFIGS / "quick.json"], overrides={"method": "random"})
    assert parser.get_parsed_content("pool_size") == 50
