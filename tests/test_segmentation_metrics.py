from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.handlers import from_engine

from mr2ct.metrics.segmentation import (
    DENOISE_LEVELS,
    decode_palette,
    label_flicker,
    mean_iou,
    mode_filter,
    pixel_accuracy,
    segmentation_metric,
    segmentation_metric_handler,
    temporal_flicker,
    transition_l2,
    transition_matrix,
)

PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]


def ids(*frames) -> torch.Tensor:
    """One label video ``(1, D, H, W)`` from its frames given as nested lists."""
    return torch.tensor([frames])


def colours(label_ids: torch.Tensor, palette=PALETTE) -> torch.Tensor:
    """The colour video ``(N, 3, D, H, W)`` of class ids."""
    return torch.tensor(palette, dtype=torch.float32)[label_ids].permute(0, 4, 1, 2, 3)


def test_decode_palette_nearest_colour():
    video = torch.tensor([[10, 240, 30, 300], [5, 20, 0, -5], [3, 10, 200, 0]], dtype=torch.float32)
    video = video.reshape(1, 3, 1, 2, 2)  # near black, near red, near blue, red beyond the range
    assert decode_palette(video, PALETTE).tolist() == [[[[0, 1], [2, 1]]]]
    assert decode_palette(video, np.array(PALETTE, dtype=np.uint8)).shape == (1, 1, 2, 2)
    assert decode_palette(torch.full((1, 3, 1, 1, 1), 127.5), [[0, 0, 0], [255, 255, 255]]).item() == 0  # tie
    true = torch.randint(0, 3, (2, 3, 4, 5))
    assert torch.equal(decode_palette(colours(true) + torch.randn(2, 3, 3, 4, 5) * 20, PALETTE), true)
    with pytest.raises(ValueError, match=r"palette must be \(K, 3\)"):
        decode_palette(video, [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        decode_palette(video[0], PALETTE)


def test_pixel_accuracy():
    true = ids([[0, 0], [1, 1]], [[0, 1], [0, 1]])
    pred = ids([[0, 1], [1, 1]], [[0, 1], [1, 1]])  # 2 of 8 pixels wrong
    assert pixel_accuracy(pred, true).tolist() == [0.75]
    assert pixel_accuracy(true, true).tolist() == [1.0]
    assert pixel_accuracy(pred[:, None], true[:, None].float()).tolist() == [0.75]  # (N, 1, D, H, W), float ids
    both = pixel_accuracy(torch.cat([pred, true]), torch.cat([true, true]))
    assert both.shape == (2,) and both.tolist() == [0.75, 1.0]


def test_pixel_accuracy_is_per_frame_and_ignores_a_class():
    true = ids([[0, 1], [0, 1]], [[9, 9], [9, 1]])
    pred = ids([[0, 1], [0, 1]], [[0, 0], [0, 0]])
    # frame 0: 4/4 right; frame 1: 0/1 right (3 ignored) -> mean of frames 0.5 (not 4/5 over the video)
    assert pixel_accuracy(pred, true, ignore_index=9).tolist() == [0.5]
    assert pixel_accuracy(pred, true).tolist() == [0.5]  # 4/4 and 0/4 without ignoring
    nothing = ids([[9, 9]], [[9, 9]])
    assert math.isnan(pixel_accuracy(nothing, nothing, ignore_index=9).item())
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_accuracy(pred, true[:, :1])
    with pytest.raises(ValueError, match=r"\(N, D, H, W\)"):
        pixel_accuracy(pred[0], true[0])
    with pytest.raises(ValueError, match="whole class ids"):
        pixel_accuracy(pred + 0.5, true)


def test_mean_iou():
    true, pred = ids([[0, 0], [1, 1]]), ids([[0, 1], [1, 1]])
    # class 0: 1 / 2, class 1: 2 / 3, class 2 absent from both: skipped
    assert mean_iou(pred, true, 3).item() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert mean_iou(pred, true, 3, ignore_index=0).item() == pytest.approx(1.0)  # only the class-1 pixels count
    # ignored truth outside [0, K): pixel 0 left out; a predicted "ignore" on pixel 1 misses class 0
    true, pred = ids([[255, 0], [1, 1]]), ids([[0, 255], [1, 1]])
    assert mean_iou(pred, true, 3, ignore_index=255).item() == pytest.approx((0.0 + 1.0) / 2)
    assert mean_iou(torch.cat([pred, true]), torch.cat([true, true]), 3, ignore_index=255).shape == (2,)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        mean_iou(pred, true, 3)
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        mean_iou(ids([[0, 2]]), ids([[0, 1]]), 2)


def test_transition_matrix_by_hand():
    video = ids([[0, 0], [1, 1]], [[1, 0], [1, 1]], [[1, 1], [1, 1]])
    # class 0 at t: 2 pixels (t=0) -> one stays 0, one becomes 1; then 1 pixel (t=1) -> 1: row [1/3, 2/3]
    # class 1 at t: 2 pixels (t=0) + 3 pixels (t=1), all stay 1; class 2 never present: a row of zeros
    expected = torch.tensor([[[1 / 3, 2 / 3, 0], [0, 1, 0], [0, 0, 0]]])
    assert torch.allclose(transition_matrix(video, 3), expected)
    everything_changes = transition_matrix(ids([[0, 0]], [[1, 1]]), 2)
    assert everything_changes.tolist() == [[[0.0, 1.0], [0.0, 0.0]]]
    with pytest.raises(ValueError, match="at least 2 frames"):
        transition_matrix(video[:, :1], 3)
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        transition_matrix(video + 1, 2)


def test_transition_l2():
    still, change = ids([[0, 0]], [[0, 0]]), ids([[0, 0]], [[1, 1]])
    assert transition_l2(still, still, 2).tolist() == [0.0]
    # [[1, 0], [0, 0]] vs [[0, 1], [0, 0]]
    assert transition_l2(change, still, 2).item() == pytest.approx(math.sqrt(2))
    # a class present in one video only adds its whole row: [[0, 0], [0, 1]] vs [[1, 0], [0, 0]]
    assert transition_l2(still + 1, still, 2).item() == pytest.approx(math.sqrt(2))
    assert transition_l2(torch.cat([change, still]), torch.cat([still, still]), 2).shape == (2,)
    with pytest.raises(ValueError, match="differ in shape"):
        transition_l2(still, still[:, :, :, :1], 2)


def test_denoising_removes_an_isolated_pixel():
    clean = torch.zeros(1, 3, 5, 5, dtype=torch.long)
    noisy = clean.clone()
    noisy[0, 1, 2, 2] = 1
    # level 0: class 0 at t: 25 + 24 pixels, of which 1 turns into 1; class 1: one pixel, back to 0
    assert torch.allclose(transition_matrix(noisy, 2), torch.tensor([[[48 / 49, 1 / 49], [1.0, 0.0]]]))
    assert transition_l2(noisy, clean, 2).item() == pytest.approx(math.sqrt(2 / 49**2 + 1))
    for level in DENOISE_LEVELS[1:]:
        assert transition_matrix(noisy, 2, denoise=level).tolist() == [[[1.0, 0.0], [0.0, 0.0]]]
        assert transition_l2(noisy, clean, 2, denoise=level).item() == 0.0
    assert DENOISE_LEVELS[0] == 0


def test_mode_filter_window_and_ties():
    frame = [[0, 0, 1], [0, 2, 1], [0, 1, 1]]
    filtered = mode_filter(ids(frame), 3, 1)[0, 0]
    assert filtered[1, 1] == 0  # 4 votes for 0, 4 for 1, 1 for its own class 2: the lowest tied class
    assert filtered[0, 0] == 0 and filtered[2, 2] == 1  # windows clipped to the image at the corners
    assert mode_filter(ids([[0, 1, 2]]), 3, 1).tolist() == [[[[0, 1, 2]]]]  # ties keep the own class
    assert torch.equal(mode_filter(ids(frame), 3, 0), ids(frame))
    for level in (-1, 1.5):
        with pytest.raises(ValueError, match="denoising level"):
            mode_filter(ids(frame), 3, level)


def test_mode_filter_matches_a_pixel_loop():
    frames = torch.randint(0, 4, (1, 2, 6, 7), generator=torch.Generator().manual_seed(0))
    filtered = mode_filter(frames, 4, 2)
    for d, y, x in np.ndindex(2, 6, 7):
        votes = torch.bincount(frames[0, d, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].flatten(), minlength=4)
        modes = (votes == votes.max()).nonzero().flatten().tolist()
        own = frames[0, d, y, x].item()
        assert filtered[0, d, y, x].item() == (own if own in modes else modes[0])


def test_temporal_flicker():
    video = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0]]).reshape(1, 1, 3, 1, 2)
    assert temporal_flicker(video).tolist() == [2.5]  # |10| + 0 + 0 + 0 over 4 pixel pairs
    rgb = video.expand(1, 3, 3, 1, 2).clone()
    rgb[:, 1:] = 0  # channels are averaged
    assert temporal_flicker(rgb).item() == pytest.approx(2.5 / 3)
    assert temporal_flicker(video, video).tolist() == [0.0]
    assert temporal_flicker(video, torch.zeros_like(rgb)).tolist() == [2.5]  # minus the reference's 0
    mask = torch.tensor([[[[True, False]]] * 3])
    assert temporal_flicker(video, mask=mask).tolist() == [5.0]  # only pixel 0: (10 + 0) / 2
    mask[0, 2, 0, 0] = False  # pixel 0 is in the object at frames 0 and 1 only
    assert temporal_flicker(video, mask=mask).tolist() == [10.0]
    assert math.isnan(temporal_flicker(video, mask=torch.zeros_like(mask)).item())
    with pytest.raises(ValueError, match="mask must be"):
        temporal_flicker(video, mask=mask[:, :2])
    with pytest.raises(ValueError, match="at least 2 frames"):
        temporal_flicker(video[:, :, :1])
    with pytest.raises(ValueError, match="differ in N, D, H or W"):
        temporal_flicker(video, video[:, :, :2])


def test_label_flicker():
    video = ids([[0, 0]], [[1, 0]], [[1, 0]])
    assert label_flicker(video).tolist() == [0.25]  # 1 class change among 4 pixel pairs
    assert label_flicker(video, video).tolist() == [0.0]
    assert label_flicker(video, torch.zeros_like(video)).tolist() == [0.25]
    assert label_flicker(video, mask=torch.tensor([[[[True, False]]] * 3])).tolist() == [0.5]
    with pytest.raises(ValueError, match="differ in shape"):
        label_flicker(video, video[:, :2])


def test_segmentation_metric_decodes_colour_videos():
    true = ids([[0, 0], [1, 1]], [[0, 1], [0, 2]])
    pred = ids([[0, 1], [1, 1]], [[0, 1], [0, 2]])
    pred_rgb, true_rgb = colours(pred) + 7.0, colours(true)
    assert segmentation_metric("pixel_accuracy", PALETTE)(pred_rgb, true_rgb).tolist() == [0.875]
    assert segmentation_metric("pixel_accuracy", PALETTE, ignore_index=1)(pred_rgb, true_rgb).tolist() == [0.75]
    assert segmentation_metric("mean_iou", PALETTE)(pred_rgb, true_rgb).item() == pytest.approx(
        mean_iou(pred, true, 3).item()
    )
    assert segmentation_metric("transition_l2", PALETTE, denoise=1)(pred_rgb, true_rgb).item() == pytest.approx(
        transition_l2(pred, true, 3, denoise=1).item()
    )
    assert segmentation_metric("label_flicker", PALETTE)(pred_rgb, true_rgb).item() == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="name must be one of"):
        segmentation_metric("dice", PALETTE)
    with pytest.raises(ValueError, match="transition_l2 only"):
        segmentation_metric("pixel_accuracy", PALETTE, denoise=1)


def test_segmentation_metric_handler_in_an_engine():
    true = ids([[0, 0], [1, 1]], [[0, 1], [0, 1]])
    wrong_quarter = ids([[0, 1], [1, 1]], [[0, 1], [1, 1]])
    items = [{"pred": colours(p)[0], "label": colours(true)[0]} for p in (wrong_quarter, true)]
    handler = segmentation_metric_handler("pixel_accuracy", PALETTE, from_engine(["pred", "label"]))
    engine = Engine(lambda e, b: items)
    handler.attach(engine, "pixel_accuracy")
    engine.run([0])
    assert engine.state.metrics["pixel_accuracy"] == pytest.approx((0.75 + 1.0) / 2)
    assert engine.state.metric_details["pixel_accuracy"].flatten().tolist() == [0.75, 1.0]
