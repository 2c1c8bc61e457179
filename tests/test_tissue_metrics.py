"""Per-tissue errors, bone Dice, rank correlations of confidence maps, and their evaluator handlers and report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mr2ct.data import render_head, tissue_class_map
from mr2ct.data.head_phantom import HeadPhantomConfig
from mr2ct.export import summarize_metric_details
from mr2ct.metrics import (
    MRCT_METRICS,
    bone_dice,
    rank_correlation,
    rank_correlation_sigma,
    synthrad_metric_handler,
    tissue_classes,
    tissue_error,
    uncertainty_metric_handler,
    voxel_rank_correlation,
)


def case():
    """A CT with air, soft tissue and bone thirds, and a synthetic CT off by -100, +20 and -300 HU in them."""
    ct = np.zeros((6, 6, 9))
    ct[..., :3], ct[..., 3:6], ct[..., 6:] = -1000.0, 40.0, 1200.0
    sct = ct + np.concatenate([np.full((6, 6, 3), v) for v in (-100.0, 20.0, -300.0)], axis=-1)
    return ct, sct, np.ones(ct.shape, bool)


def test_tissue_classes_by_thresholds():
    assert tissue_classes(np.array([-1000, -401, -400, 0, 299, 300, 2000.0])).tolist() == [0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="increase"):
        tissue_classes(np.zeros(3), (300, -400))


def test_tissue_errors_and_bias_in_each_class():
    ct, sct, mask = case()
    tissue = tissue_classes(ct)
    assert [tissue_error(ct, sct, mask, tissue, t) for t in ("air", "soft", "bone")] == pytest.approx([100, 20, 300])
    assert [tissue_error(ct, sct, mask, tissue, t, signed=True) for t in ("air", "soft", "bone")] == pytest.approx(
        [-100, 20, -300]
    )
    mask[..., 6:] = False  # no bone inside the mask: undefined, not 0
    assert math.isnan(tissue_error(ct, sct, mask, tissue, "bone"))
    with pytest.raises(ValueError, match="tissue must be"):
        tissue_error(ct, sct, mask, tissue, "muscle")
    with pytest.raises(ValueError, match="same shape"):
        tissue_error(ct, sct, mask, tissue[:-1], "air")


def test_bone_dice():
    ct, sct, mask = case()
    assert bone_dice(ct, ct, mask) == 1.0
    assert bone_dice(ct, sct, mask) == 1.0  # 900 HU is still bone
    shifted = np.roll(ct, 1, axis=-1)  # bone moved by one of its three columns: 2 of 3 overlap
    assert bone_dice(ct, shifted, mask) == pytest.approx(2 / 3)
    assert bone_dice(ct, np.zeros_like(ct), mask) == 0.0
    assert bone_dice(np.zeros_like(ct), np.zeros_like(ct), mask) == 1.0


def test_rank_correlations():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3])) and math.isnan(rank_correlation([1, 2], [2, 1]))
    ct, sct, mask = case()
    error = np.abs(sct - ct)
    assert voxel_rank_correlation(error, ct, sct, mask) == pytest.approx(1.0)
    assert voxel_rank_correlation(-error, ct, sct, mask) == pytest.approx(-1.0)


def test_rank_correlation_sigma_shrinks_with_more_cases():
    """The bootstrap standard error of a case-level rank correlation: large over 6 cases, small over 200, of the
    same noisy relation; seeded, so the report is reproducible."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)  # true rank correlation about 0.68
    few, many = rank_correlation_sigma(x[:6], y[:6]), rank_correlation_sigma(x, y)
    assert few > 0.3 and many < 0.06 and few > 5 * many
    assert rank_correlation_sigma(x[:6], y[:6]) == few  # seeded
    assert rank_correlation_sigma(x, x) == pytest.approx(0.0, abs=1e-12)  # every resample ranks alike
    assert math.isnan(rank_correlation_sigma([1, 2], [2, 1]))
    with pytest.raises(ValueError, match="one length"):
        rank_correlation_sigma([1, 2, 3], [1, 2])


def test_phantom_tissue_map_matches_its_ct():
    head = render_head(np.random.default_rng([0, 3]), HeadPhantomConfig(shape=(48, 48, 12), num_train=1, num_test=1))
    tissue, ct, mask = tissue_class_map(head["labels"]), head["ct"], head["mask"] > 0
    assert set(np.unique(tissue)) == {0, 1, 2}
    assert np.median(ct[(tissue == 2) & mask]) > 300 and np.median(ct[(tissue == 0) & mask]) < -400
    assert np.abs(np.median(ct[tissue == 1])) < 100
    # the labels and the CT thresholds mostly agree (not everywhere: partial volumes blur the edges)
    assert (tissue == tissue_classes(ct))[mask].mean() > 0.85


def item(ct, sct, mask=None, tissue=None, uncertainty=None) -> dict:
    """An evaluator output item, as the MR -> CT evaluation's postprocessing leaves it."""
    out = {
        "image": torch.zeros(1, *ct.shape),
        "label": torch.as_tensor(ct)[None].float(),
        "pred": torch.as_tensor(sct)[None].float(),
    }
    for key, value in (("eval_mask", mask), ("eval_tissue", tissue), ("uncertainty", uncertainty)):
        if value is not None:
            out[key] = torch.as_tensor(value)[None].float()
    return out


def run_handler(handler, items) -> torch.Tensor:
    metric = handler.metric_fn
    metric.reset()
    metric(*handler._output_transform(items))
    return metric.get_buffer().flatten()


def test_handlers_use_the_cases_mask_and_tissue_map():
    ct, sct, mask = case()
    tissue = tissue_classes(ct)
    swapped = np.where(tissue == 2, 0, np.where(tissue == 0, 2, 1))  # a tissue map that calls the bone air
    for handler, expected in (
        (synthrad_metric_handler("mae_bone"), 300.0),
        (synthrad_metric_handler("me_air"), -100.0),
        (synthrad_metric_handler("dice_bone"), 1.0),
    ):
        assert run_handler(handler, [item(ct, sct, mask, tissue)]).item() == pytest.approx(expected)
    assert run_handler(synthrad_metric_handler("mae_bone"), [item(ct, sct, mask, swapped)]).item() == pytest.approx(100)
    # without a tissue map the thresholds on the CT decide; the evaluation's mask counts, not one from the CT
    assert run_handler(synthrad_metric_handler("mae_bone"), [item(ct, sct)]).item() == pytest.approx(300.0)
    small = np.zeros_like(mask)
    small[..., 4] = True
    assert run_handler(synthrad_metric_handler("mae"), [item(ct, sct, small)]).item() == pytest.approx(20.0)
    assert {"mae", "psnr", "ssim", "mae_soft", "me_bone", "dice_bone"} <= set(MRCT_METRICS)
    with pytest.raises(ValueError, match="metric must be one of"):
        synthrad_metric_handler("mae_muscle")


def test_uncertainty_handlers_and_case_correlation():
    ct, sct, mask = case()
    good = np.abs(sct - ct) + 5.0  # ranks the errors exactly
    items = [item(ct, sct, mask, uncertainty=good), item(ct, ct + 1.0, mask, uncertainty=np.full(ct.shape, 2.0))]
    assert run_handler(uncertainty_metric_handler("mean_uncertainty"), items).tolist() == pytest.approx(
        [good.mean(), 2.0]
    )
    spearman = run_handler(uncertainty_metric_handler("uncertainty_voxel_spearman"), items)
    assert spearman[0].item() == pytest.approx(1.0) and math.isnan(spearman[1].item())  # a flat map ranks nothing
    with pytest.raises(KeyError, match="uncertainty"):
        run_handler(uncertainty_metric_handler("mean_uncertainty"), [item(ct, sct)])
    summary = summarize_metric_details(
        {
            "mean_uncertainty": torch.tensor([1.0, 2.0, 3.0, 4.0]),
            "mae": torch.tensor([10.0, 30.0, 20.0, 40.0]),
            "mae_bone": torch.tensor([1.0, float("nan"), 3.0, 5.0]),
        },
        rank_correlations={"case_spearman": ("mean_uncertainty", "mae")},
    )
    assert summary["case_spearman"]["mean"] == pytest.approx(0.8)
    assert summary["case_spearman"]["std"] == pytest.approx(
        rank_correlation_sigma([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0])
    )
    assert summary["mae_bone"] == {"mean": 3.0, "std": pytest.approx(np.std([1.0, 3.0, 5.0])), "n": 3}
