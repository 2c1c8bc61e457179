from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mr2ct.metrics import mae_hu, psnr_hu, ssim_hu


def volumes():
    rng = np.random.default_rng(0)
    ct = rng.normal(0, 400, (20, 30, 28))
    sct = ct + rng.normal(50, 150, ct.shape)
    mask = np.zeros(ct.shape, bool)
    mask[3:17, 5:25, 4:24] = True
    return ct, sct, mask


def test_identical_volumes():
    ct, _, mask = volumes()
    assert mae_hu(ct, ct, mask) == 0.0
    assert psnr_hu(ct, ct, mask) == math.inf
    assert ssim_hu(ct, ct, mask) == pytest.approx(1.0)


def test_known_values_offset_and_clipping():
    ct = np.zeros((8, 8, 8))
    mask = np.ones_like(ct, dtype=bool)
    assert mae_hu(ct, ct + 10, mask) == pytest.approx(10.0)
    assert psnr_hu(ct, ct + 10, mask) == pytest.approx(10 * math.log10(4024**2 / 100))
    bone = np.full((8, 8, 8), 3000.0)
    assert mae_hu(bone, bone + 1000, mask) == pytest.approx(1000.0)  # MAE is not clipped
    assert psnr_hu(bone, bone + 1000, mask) == math.inf  # PSNR is: both clip to 3000
    # uniform volumes: only SSIM's luminance term remains, (2ab + c1) / (a^2 + b^2 + c1) after the +1024 shift
    a, b, c1 = 1024.0, 1124.0, (0.01 * 4024) ** 2
    assert ssim_hu(ct, ct + 100, mask) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_voxels_outside_the_mask_do_not_count():
    ct, sct, mask = volumes()
    changed = sct.copy()
    changed[~mask] += 500
    for metric in (mae_hu, psnr_hu, ssim_hu):
        assert metric(ct, changed, mask) == pytest.approx(metric(ct, sct, mask))


def test_matches_scikit_image_reference():
    # reference values from scikit-image 0.26 on the same arrays, as SynthRAD2023's evaluation computes them:
    # structural_similarity(x, y, data_range=4024, full=True, win_size=7)[1][mask].mean() and
    # peak_signal_noise_ratio(clip(ct)[mask], clip(sct)[mask], data_range=4024)
    ct, sct, mask = volumes()
    assert ssim_hu(ct, sct, mask) == pytest.approx(0.9655375191916236, rel=1e-9)
    assert psnr_hu(ct, sct, mask) == pytest.approx(28.130487758089696, rel=1e-9)
    assert mae_hu(torch.as_tensor(ct), torch.as_tensor(sct), torch.as_tensor(mask)) == pytest.approx(126.19506652037371)


def test_bad_inputs():
    ct, sct, mask = volumes()
    with pytest.raises(ValueError, match="same shape"):
        mae_hu(ct, sct[:-1], mask)
    with pytest.raises(ValueError, match="empty"):
        psnr_hu(ct, sct, np.zeros_like(mask))
    with pytest.raises(ValueError, match="3D"):
        ssim_hu(ct[0], sct[0], mask[0])
