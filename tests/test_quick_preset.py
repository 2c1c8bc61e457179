"""The quick preset meets the project's learning yardstick (slow: about 5 minutes on 2 CPU cores)."""

from __future__ import annotations

import json

import pytest

from test_bundle import CONFIGS, VMNIST_BUNDLE, run_bundle


@pytest.mark.slow
def test_quick_preset_reaches_the_learning_yardstick(tmp_path):
    """DESIGN.md: the tiny 3D CycleGAN at 16x28x28 reaches a test MSE about 0.07x the identity baseline's."""
    quick = json.loads((CONFIGS / "quick.json").read_text(encoding="utf-8"))
    ov = {
        "bundle_root": str(VMNIST_BUNDLE),
        "dataset_dir": str(tmp_path / "data"),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "runs"),
        **{k: v for k, v in quick.items() if not str(v).startswith("$")},
    }
    assert run_bundle("training", "train.json", ov).returncode == 0
    assert run_bundle("evaluating", "evaluate.json", {**ov, "report_dir": str(tmp_path / "report")}).returncode == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics["mse_ratio"]["mean"] < 0.1, metrics
