from __future__ import annotations

import numpy as np
import pytest
import torch

from mr2ct.data import DigitVideoConfig, bouncing_trajectory, build_moving_mnist, colour_palette, load_split
from mr2ct.metrics import colour_flicker, digit_masks


def test_palette_has_distinct_saturated_colours():
    p = colour_palette(20)
    assert p.shape == (20, 3) and len({tuple(c) for c in p.round(3)}) == 20
    assert np.allclose(p.max(axis=1), 1.0)


def test_bouncing_trajectory_stays_inside_and_reflects():
    rng = np.random.default_rng(0)
    path = bouncing_trajectory(rng, 200, (10, 20), speed=3.0)
    assert path.min() >= 0 and (path[:, 0] <= 10).all() and (path[:, 1] <= 20).all()
    steps = np.abs(np.diff(path, axis=0)).max(axis=1)
    assert steps.max() <= 4  # constant speed, rounded
    assert len(np.unique(np.sign(np.diff(path[:, 1])))) >= 2  # it turned at a wall


@pytest.fixture(scope="module")
def tiny_mmnist(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmnist")
    return build_moving_mnist(root, DigitVideoConfig(depth=10, size=(28, 28), num_digits=40), digit_size=14, speed=2)


def test_pairs_share_motion_and_b_has_one_colour_per_video(tiny_mmnist):
    a = torch.as_tensor(np.array(load_split(tiny_mmnist, "test", "A"))).float()
    b = torch.as_tensor(np.array(load_split(tiny_mmnist, "test", "B"))).float()
    assert a.shape == b.shape == (12, 3, 10, 28, 28)
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])  # white
    assert torch.equal(a.amax(dim=1) > 0, b.amax(dim=1) > 0)  # the same digit at the same places
    assert (digit_masks(a).flatten(2).sum(dim=2) > 0).all()  # a digit in every frame
    assert colour_flicker(b).max().item() < 6  # constant colour (up to rounding of the digit's edges)
    hues = {tuple((b[i].flatten(1).amax(dim=1) / 255).round(decimals=1).tolist()) for i in range(12)}
    assert len(hues) > 3  # colours differ between videos


def test_digit_must_fit(tmp_path):
    with pytest.raises(ValueError, match="does not fit"):
        build_moving_mnist(tmp_path, DigitVideoConfig(depth=4, size=(20, 20), num_digits=8), digit_size=28)
