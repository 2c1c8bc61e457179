from __future__ import annotations

import math

import pytest
import torch

from mr2ct.metrics import (
    colour_flicker,
    digit_colour_sigma,
    digit_intensity_mean,
    digit_masks,
    mean_and_sigma,
    shape_l2,
    volume_l2,
)


def test_volume_l2_known_values():
    a = torch.zeros(2, 1, 2, 2, 2)
    b = a.clone()
    b[0] = 10.0  # every voxel off by 10 -> RMSE 10
    b[1, 0, 0, 0, 0] = 8.0  # one of 8 voxels off by 8 -> sqrt(64 / 8)
    assert volume_l2(b, a).tolist() == pytest.approx([10.0, math.sqrt(8.0)])
    with pytest.raises(ValueError, match="differ in shape"):
        volume_l2(a, a[:, :, :1])
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        volume_l2(a[0], a[0])


def test_shape_l2_and_masks():
    gt = torch.zeros(1, 3, 1, 2, 2)
    gt[0, 2, 0, 0, :] = 200.0  # a blue digit on the top row
    pred = torch.zeros(1, 3, 1, 2, 2)
    pred[0, 0, 0, :, 0] = 255.0  # a red digit on the left column: 2 pixels differ, the digit has 2
    assert digit_masks(gt)[0, 0].tolist() == [[True, True], [False, False]]
    assert shape_l2(pred, gt).item() == pytest.approx(1.0)
    assert shape_l2(gt, gt).item() == 0.0
    assert shape_l2(torch.zeros_like(gt), gt).item() == pytest.approx(1.0)  # an empty output scores 1
    pred[0, 2, 0, 0, 0] = 200.0  # now one of the two digit pixels is right: 2 wrong pixels / 2 -> 1, still
    assert shape_l2(pred, gt).item() == pytest.approx(1.0)
    assert math.isnan(shape_l2(gt, torch.zeros_like(gt)).item())


def test_intensity_mean_and_colour_sigma():
    v = torch.zeros(1, 3, 2, 2, 2)
    v[0, :, 0, 0, 0] = torch.tensor([200.0, 100.0, 0.0])
    v[0, :, 0, 0, 1] = torch.tensor([220.0, 120.0, 0.0])
    # frame 0: digit pixels in R: 200, 220 (std 10); G: 100, 120 (std 10); B: 0, 0 (std 0) -> sigma 20/3
    assert digit_intensity_mean(v).item() == pytest.approx((200 + 100 + 220 + 120) / 6)
    assert digit_colour_sigma(v).item() == pytest.approx(20 / 3)  # frame 1 has no digit and is left out
    assert math.isnan(digit_intensity_mean(torch.zeros(1, 1, 1, 2, 2)).item())


def test_colour_flicker_is_zero_for_constant_colour_and_measures_changes():
    steady = torch.zeros(1, 3, 4, 2, 2)
    steady[0, 0, :, 0, 0] = 200.0
    assert colour_flicker(steady).item() == pytest.approx(0.0)
    changing = steady.clone()
    changing[0, 0, ::2, 0, 0] = 180.0  # red channel alternates 180 / 200 -> std 10; G, B constant 0
    assert colour_flicker(changing).item() == pytest.approx(10 / 3)


def test_mean_and_sigma_ignores_nan():
    assert mean_and_sigma(torch.tensor([1.0, 3.0, float("nan")])) == (2.0, 1.0)
    assert all(math.isnan(x) for x in mean_and_sigma(torch.tensor([float("nan")])))
