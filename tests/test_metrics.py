from __future__ import annotations

import math

import pytest
import torch

from mr2ct.metrics import (
    colour_flicker,
    digit_colour_sigma,
    digit_flicker,
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


def _moving_square(colours: list[tuple[float, float, float]]) -> torch.Tensor:
    """A 4x4 square moving one pixel right per frame in 8x10 frames, frame t painted ``colours[t]``."""
    video = torch.zeros(1, 3, len(colours), 8, 10)
    for t, colour in enumerate(colours):
        video[0, :, t, 2:6, 1 + t : 5 + t] = torch.tensor(colour)[:, None, None]
    return video


def test_digit_flicker_measures_colour_changes_inside_the_moving_digit():
    red, green = (200.0, 0.0, 0.0), (0.0, 200.0, 0.0)
    truth = _moving_square([red] * 4)
    assert digit_flicker(truth, truth).item() == 0.0
    # the same motion, the colour switching every frame: inside the digit at both frames (the square's 3 overlapping
    # columns) each pixel changes by |200 - 0| in two of three channels
    switching = _moving_square([red, green, red, green])
    assert digit_flicker(switching, truth).item() == pytest.approx(400 / 3)
    assert digit_flicker(torch.zeros_like(truth), truth).item() == 0.0  # nothing drawn: as still as the truth
    # the truth's own change inside its digit is subtracted: a digit fading in the truth and steady in the output
    fading = _moving_square([red, (180.0, 0.0, 0.0), (160.0, 0.0, 0.0), (140.0, 0.0, 0.0)])
    assert digit_flicker(truth, fading).item() == pytest.approx(-20 / 3)
    assert math.isnan(digit_flicker(truth, torch.zeros_like(truth)).item())  # no digit in the truth
    with pytest.raises(ValueError, match="must be"):
        digit_flicker(truth[0], truth[0])


def test_mean_and_sigma_ignores_nan():
    assert mean_and_sigma(torch.tensor([1.0, 3.0, float("nan")])) == (2.0, 1.0)
    assert all(math.isnan(x) for x in mean_and_sigma(torch.tensor([float("nan")])))
