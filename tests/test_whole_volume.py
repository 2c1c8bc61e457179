"""Whole-volume MR -> CT inference: no seams at window borders, confidence maps, and weights of other settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer

from mr2ct.bundle import load_config
from mr2ct.engine import (
    SETTINGS_FILE,
    AugmentationSpread,
    FinalWeightsSaver,
    TaperedSlidingWindowInferer,
    check_weights_settings,
    shift_volume,
    taper_weights,
)
from mr2ct.networks import ResnetGenerator
from mr2ct.transforms import SplitChannelsd

from conftest import REPO

CONFIGS = REPO / "bundles" / "mrct_cyclegan3d" / "configs"
WINDOW = (16, 48, 48)  # the quick preset's window: slices, x, y
VOLUME = (41, 110, 97)  # larger than the window along every axis, and no multiple of it


def smooth_volume() -> torch.Tensor:
    """A smooth volume: a sum of ramps and a slow wave along all three axes."""
    z, x, y = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in VOLUME), indexing="ij")
    return (0.4 * z + 0.3 * x - 0.3 * y + 0.2 * torch.sin(2 * z + 3 * x * y))[None, None]


def window_mean(x: torch.Tensor) -> torch.Tensor:
    """A network that is a smooth function of its input but sees each window as a whole, like a generator's
    instance normalisation: it outputs the window's mean (plus a tenth of the input)."""
    return x.mean(dim=(2, 3, 4), keepdim=True) + 0.1 * x


def border_steps(out: torch.Tensor, inferer) -> list[float]:
    """The largest change between neighbouring voxels along each axis, relative to the change of the window mean
    from one window to the next (what windows put side by side would jump by)."""
    ramp = smooth_volume()
    reference = 0.1 * ramp
    steps = []
    for axis in range(3):
        change = (out - reference).diff(dim=2 + axis).abs().max()
        hard = (
            ramp.mean(dim=[2 + a for a in range(3) if a != axis], keepdim=True).squeeze().diff().abs().max()
            * WINDOW[axis]
        )
        steps.append(float(change / hard))
    return steps


def test_bundle_inferer_shows_no_window_borders():
    """The bundle's inferer on a smooth volume larger than its window, with a network whose windows disagree: the
    output changes smoothly across every window border along every axis, edges and corners of the volume
    included (the maximum is over all voxels); MONAI's Gaussian blending (overlap 0.25) jumps at the borders."""
    parser = load_config("mrct_cyclegan3d", "inference", overrides={"volume_size": list(WINDOW)})
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, TaperedSlidingWindowInferer)
    out = inferer(smooth_volume(), window_mean)
    assert out.shape == smooth_volume().shape
    assert max(border_steps(out, inferer)) < 0.2, border_steps(out, inferer)
    # at the corners too: every 8-voxel corner block of the volume is smooth
    for corner in np.ndindex(2, 2, 2):
        block = out[(0, 0, *(slice(-8, None) if c else slice(0, 8) for c in corner))]
        assert all(float(block.diff(dim=d).abs().max()) < 0.2 for d in range(3))
    gaussian = SlidingWindowInferer(WINDOW, overlap=0.25, mode="gaussian", padding_mode="replicate")
    assert max(border_steps(gaussian(smooth_volume(), window_mean), gaussian)) > 0.4


def test_taper_weights_cross_fade_to_one():
    w = taper_weights((16,), 0.5)[0, 0]
    assert torch.allclose(w[8:] + w[:8], torch.ones(8))  # neighbours 8 apart sum to 1 in their overlap
    assert w.min() >= 1e-3 and w[6:10].min() > 0.9
    assert taper_weights((8, 4, 4), 0.0).eq(1).all()
    with pytest.raises(ValueError, match="overlap"):
        taper_weights((8, 8), 1.0)
    with pytest.raises(ValueError, match="own blending"):
        TaperedSlidingWindowInferer((8, 8, 8), mode="gaussian")


def test_test_time_spread():
    x = torch.randn(2, 1, 8, 12, 12)
    assert torch.equal(shift_volume(shift_volume(x, (0, 2, -1)), (0, -2, 1))[..., 2:-2, 1:-1], x[..., 2:-2, 1:-1])
    plain = AugmentationSpread(torch.nn.Tanh())(x)  # voxel-wise: the same under flips and shifts, borders included
    assert plain.shape == (2, 2, 8, 12, 12)
    assert torch.equal(plain[:, :1], torch.tanh(x)) and plain[:, 1].abs().max() < 1e-6
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1).eval()
    with torch.no_grad():
        out = AugmentationSpread(generator)(x)
        assert torch.allclose(out[:, :1], generator(x))  # the translation itself is the plain one
    assert out[:, 1].min() >= 0 and out[:, 1].mean() > 1e-3  # strided convolutions are not shift invariant
    with pytest.raises(ValueError, match="do not fit"):
        AugmentationSpread(torch.nn.Identity(), flips=(3,))(x)
    with pytest.raises(ValueError, match="at least one"):
        AugmentationSpread(torch.nn.Identity(), flips=(), shifts=())


def test_split_channels_keeps_meta():
    from monai.data import MetaTensor

    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0]))
    d = SplitChannelsd("pred", ["pred", "uncertainty"])(
        {"pred": MetaTensor(torch.arange(4.0).reshape(2, 2), affine=affine)}
    )
    assert d["pred"].tolist() == [[0.0, 1.0]] and d["uncertainty"].tolist() == [[2.0, 3.0]]
    assert torch.equal(d["uncertainty"].affine, affine)
    with pytest.raises(ValueError, match="equal parts"):
        SplitChannelsd("pred", ["a", "b", "c"])({"pred": torch.zeros(2, 3)})


def test_weights_of_other_settings_are_refused_in_one_line(tmp_path):
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1)
    settings = {"method": "3d", "ngf": 4, "num_res_blocks": 1, "volume_size": (8, 32, 32), "ct_window": [-1000, 2000]}
    FinalWeightsSaver(tmp_path, {"model.pt": net}, settings=settings)(None)
    saved = json.loads((tmp_path / SETTINGS_FILE).read_text())
    assert saved["volume_size"] == [8, 32, 32] and saved["ngf"] == 4
    check_weights_settings(tmp_path / "model.pt", {**settings, "volume_size": [8, 32, 32], "ct_window": [-1e3, 2e3]})
    with pytest.raises(ValueError) as error:
        check_weights_settings(tmp_path / "model.pt", {**settings, "ngf": 64, "num_res_blocks": 9})
    message = str(error.value)
    assert "\n" not in message and "ngf 4 (this run: 64)" in message and "num_res_blocks 1 (this run: 9)" in message
    assert "--ngf 4 --num_res_blocks 1" in message and "method" not in message
    # weights without settings beside them: their tensors are compared with the network's
    (tmp_path / SETTINGS_FILE).unlink()
    check_weights_settings(
        tmp_path / "model.pt", settings, network=ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1)
    )
    with pytest.raises(ValueError, match="do not fit this run's network .*--ngf"):
        check_weights_settings(
            tmp_path / "model.pt", settings, network=ResnetGenerator(3, 1, 1, channels=8, num_res_blocks=1)
        )
    # a settings file from before a setting existed: the unrecorded setting is checked by the tensors
    FinalWeightsSaver(tmp_path, {"model.pt": net}, settings=settings)(None)
    newer = {**settings, "gen_outer_kernel": [1, 7, 7]}
    check_weights_settings(tmp_path / "model.pt", newer, network=ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1))
    frame_wise = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, outer_kernel_size=(1, 7, 7))
    with pytest.raises(ValueError, match="does not record gen_outer_kernel.*--gen_outer_kernel") as error:
        check_weights_settings(tmp_path / "model.pt", newer, network=frame_wise)
    assert "\n" not in str(error.value)
