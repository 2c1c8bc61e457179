"""Shared test settings: small thread count, repository paths, a tiny built volumetric MNIST."""

from __future__ import annotations

import locale
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
VMNIST_BUNDLE = REPO / "bundles" / "vmnist_cyclegan3d"
MMNIST_BUNDLE = REPO / "bundles" / "mmnist_color_cyclegan3d"

torch.set_num_threads(2)


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
