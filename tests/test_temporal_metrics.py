"""Temporal-consistency metrics (tOF, warping error) on hand-made videos with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from scipy.ndimage import gaussian_filter

from mr2ct.metrics import (
    farneback_flow,
    grey_frames,
    occlusion_mask,
    temporal_metric_handler,
    tof,
    warp_back,
    warping_error,
)

_CANVAS = gaussian_filter(np.random.default_rng(0).uniform(0, 255, (3, 80, 120)), (0, 2.5, 2.5))
CANVAS = (_CANVAS - _CANVAS.min()) / (_CANVAS.max() - _CANVAS.min()) * 255  # a smooth RGB texture on [0, 255]


def moving(dx: int, dy: int, frames: int = 8, size: tuple[int, int] = (40, 48)) -> torch.Tensor:
    """A ``(1, 3, frames, H, W)`` video of the texture moving rigidly by ``(dx, dy)`` pixels per frame."""
    h, w = size
    window = [CANVAS[:, 20 - dy * t : 20 - dy * t + h, 30 - dx * t : 30 - dx * t + w] for t in range(frames)]
    return torch.tensor(np.stack(window, axis=1)[None], dtype=torch.float32)


def test_farneback_flow_finds_a_known_shift():
    grey = grey_frames(moving(2, -1))[0]
    flow = farneback_flow(grey[0], grey[1])
    assert flow.shape == (40, 48, 2) and flow.dtype == np.float32
    centre = flow[10:30, 10:38]
    assert centre[..., 0].mean() == pytest.approx(2, abs=0.1) and centre[..., 1].mean() == pytest.approx(-1, abs=0.1)


def test_grey_frames_of_grey_and_rgb_videos():
    rgb = torch.zeros(1, 3, 2, 2, 2)
    rgb[:, 0] = 255  # pure red: BT.601 luma 0.299 * 255
    assert grey_frames(rgb).shape == (1, 2, 2, 2) and grey_frames(rgb).dtype == np.uint8
    assert int(grey_frames(rgb)[0, 0, 0, 0]) == 76
    grey = torch.full((1, 1, 2, 2, 2), 300.0)  # clipped to 255
    assert (grey_frames(grey) == 255).all()


def test_tof_is_zero_for_identical_videos_and_the_shift_difference_otherwise():
    video = moving(1, 0)
    assert tof(video, video).tolist() == [0.0]
    # the target moves by (1, 0) per frame, the output stands still: the flows differ by 1 pixel
    assert tof(moving(0, 0), video).item() == pytest.approx(1.0, abs=0.05)
    # (1, 1) against a still video: |(1, 1)| = sqrt(2)
    assert tof(moving(1, 1), moving(0, 0)).item() == pytest.approx(np.sqrt(2), abs=0.1)
    both = tof(torch.cat([video, moving(0, 0)]), torch.cat([video, video]))
    assert both.shape == (2,) and both[0] == 0 and both[1] > 0.9


def test_warping_error_is_near_zero_for_a_rigidly_moving_video():
    video = moving(1, 0)
    assert warping_error(video, video).item() < 1e-5
    assert warping_error(video).item() < 1e-5  # the output's own flow: the same here
    assert warping_error(moving(1, 1), moving(1, 1)).item() < 1e-4


def test_per_frame_flicker_raises_the_warping_error_by_its_squared_steps():
    """A global brightness offset c_t per frame adds (c_t - c_{t+1})^2 (on [0, 1]) to each pair's term; with the
    flow of the clean video the expected error is the mean of the squared steps."""
    video = moving(1, 0)
    offsets = np.array([0, 10, -10, 10, -10, 10, -10, 10], dtype=np.float32)
    flickering = video + torch.tensor(offsets).view(1, 1, -1, 1, 1)
    expected = np.mean((np.diff(offsets) / 255) ** 2)
    assert warping_error(flickering, video).item() == pytest.approx(expected, rel=0.02)
    assert warping_error(flickering[:, :1], video).item() == pytest.approx(expected, rel=0.02)  # grey output


def test_warping_error_uses_the_reference_flow():
    """A still output of a moving scene is inconsistent with the scene's motion: its own flow (zero) hides it,
    the reference flow shows it."""
    still = moving(0, 0)
    assert warping_error(still).item() < 1e-6
    assert warping_error(still, moving(2, 0)).item() > 10 * warping_error(moving(2, 0), moving(2, 0)).item() + 1e-4


def test_warp_back_and_occlusion_mask():
    frame = np.arange(20, dtype=np.float32).reshape(4, 5)
    flow = np.zeros((4, 5, 2), dtype=np.float32)
    flow[..., 0] = 1  # frame t's pixel x is at x + 1 in frame t + 1
    assert np.array_equal(warp_back(frame, flow)[:, :4], frame[:, 1:])
    occluded = occlusion_mask(flow, -flow)  # consistent flows: only the column whose match leaves the frame
    assert occluded[:, :4].sum() == 0 and occluded[:, 4].all()
    assert occlusion_mask(flow, flow)[:, :4].all()  # forward and backward disagree: occluded everywhere
    boundary = flow.copy()
    boundary[:, 2:, 0] = 3  # a motion boundary between columns 1 and 2
    assert occlusion_mask(boundary, -boundary)[:, 1].all()


def test_bad_inputs_are_refused():
    video = moving(1, 0)
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        tof(video[0], video[0])
    with pytest.raises(ValueError, match="at least 2 frames"):
        warping_error(video[:, :, :1])
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        tof(video[:, :2], video[:, :2])
    with pytest.raises(ValueError, match="differ in N, D, H or W"):
        warping_error(video, video[:, :, :4])
    with pytest.raises(ValueError, match="name must be one of"):
        temporal_metric_handler("flicker")


def test_temporal_metric_handlers_in_an_evaluator():
    video, still = moving(1, 0), moving(0, 0)
    batches = [[{"pred": video[0], "label": video[0]}, {"pred": still[0], "label": video[0]}]]
    engine = Engine(lambda e, batch: batch)
    temporal_metric_handler("tof").attach(engine, "tof")
    temporal_metric_handler("warping_error").attach(engine, "warping_error")
    engine.run(batches)
    expected_tof = tof(torch.cat([video, still]), torch.cat([video, video])).mean().item()
    assert engine.state.metrics["tof"] == pytest.approx(expected_tof)
    expected_we = warping_error(torch.cat([video, still]), torch.cat([video, video])).mean().item()
    assert engine.state.metrics["warping_error"] == pytest.approx(expected_we)
    assert len(engine.state.metric_details["tof"]) == 2
