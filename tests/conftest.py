"""Shared test settings: small thread count, repository paths, a tiny built volumetric MNIST."""

from __future__ import annotations

import json
import locale
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
VMNIST_BUNDLE = REPO / "bundles" / "vmnist_cyclegan3d"
MMNIST_BUNDLE = REPO / "bundles" / "mmnist_color_cyclegan3d"
# GTA bundle settings small enough for a CPU test: 8-frame 16x32 clips of a 24-frame 32x64 scene, tiny networks
GTA_TINY = {
    "depth": 8,
    "size": [16, 32],
    "scene_size": [32, 64],
    "scene_frames": 24,
    "sequences": "001-004",
    "ngf": 4,
    "ndf": 4,
    "num_res_blocks": 1,
    "num_workers": 0,
}

# at most two threads per test process; under pytest-xdist (`make test` runs two workers) the cores are shared out
TEST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // TEST_WORKERS)))


@pytest.fixture(scope="session")
def tiny_vmnist(tmp_path_factory) -> Path:
    """A 40-digit volumetric MNIST of 8x16x16 volumes, built once per test session."""
    from mr2ct.data import DigitVideoConfig, build_volumetric_mnist

    root = tmp_path_factory.mktemp("vmnist")
    return build_volumetric_mnist(root, DigitVideoConfig(depth=8, size=(16, 16), num_digits=40, seed=0))


@pytest.fixture(autouse=True)
def _restore_locale():
    """SimpleITK's GDCM DICOM writer (used by tests to make DICOM series) switches the process locale to "C",
    after which Python opens text files as ASCII; put it back so that no test depends on the order."""
    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)


def run_bundle(configs: Path, run_id: str, config: str, overrides: dict, *flags: str) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run <run_id>`` of ``configs/<config>`` as a user runs it, with ``--key value``
    overrides (lists, booleans and None as JSON); output decoded as UTF-8."""
    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        run_id,
        "--config_file",
        str(configs / config),
        "--logging_file",
        str(configs / "logging.conf"),
    ]
    for k, v in overrides.items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, (list, bool)) or v is None else str(v)]
    return subprocess.run(args + list(flags), capture_output=True, encoding="utf-8", errors="replace", timeout=900)
