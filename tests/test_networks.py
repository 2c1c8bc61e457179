from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.nets import PatchDiscriminator

from mr2ct.engine import adversarial_loss
from mr2ct.networks import (
    BoxFilter,
    ClipAndFrameDiscriminator,
    FramewiseNetwork,
    PatchGANDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    count_parameters,
    frames_to_volume,
    generator_min_size,
    init_weights,
    matched_width,
    patch_layer_strides,
    video_discriminator,
    volume_to_frames,
)
from mr2ct.networks.resnet_generator import inner_convolution


@pytest.mark.parametrize(
    "spatial_dims, channels, size, strides",
    [
        (3, 1, (30, 84, 84), 2),
        (3, 3, (30, 84, 84), 2),
        (3, 3, (8, 108, 192), (1, 2, 2)),
        (3, 1, (8, 108, 192), 2),
        (3, 1, (7, 13, 10), 2),
        (2, 1, (84, 84), 2),
        (2, 3, (108, 192), 2),
        (2, 3, (37, 41), 2),
    ],
)
def test_generator_keeps_any_input_size(spatial_dims, channels, size, strides):
    net = ResnetGenerator(spatial_dims, channels, channels, channels=4, num_res_blocks=1, strides=strides)
    x = torch.randn(2, channels, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0  # tanh output


def test_generator_paper_architecture():
    net = ResnetGenerator(3, 1, 1)  # ngf 64, 9 blocks: the paper's generator
    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    assert convs[0].kernel_size == (7, 7, 7) and convs[-1].kernel_size == (7, 7, 7)
    assert [c.stride for c in convs[1:3]] == [(2, 2, 2)] * 2
    assert sum(isinstance(c, torch.nn.ConvTranspose3d) for c in convs) == 2
    assert len(convs) == 1 + 2 + 9 * 2 + 2 + 1
    assert any(isinstance(m, torch.nn.ReflectionPad3d) for m in net.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules())
    assert 30e6 < count_parameters(net) < 40e6


def test_generator_unstrided_time_axis_keeps_depth_resolution():
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, strides=(1, 2, 2))
    assert net.size_multiple == (1, 4, 4)
    strides = [m.stride for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.stride != (1, 1, 1)]
    assert strides == [(1, 2, 2), (1, 2, 2)]


def test_generator_outer_kernel_per_axis():
    """``outer_kernel_size`` (3, 7, 7): stem and output convolutions span 3 frames, padded so sizes are kept."""
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, strides=(1, 2, 2), outer_kernel_size=(3, 7, 7))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs[0].kernel_size == (3, 7, 7) and convs[-1].kernel_size == (3, 7, 7)
    assert net(torch.randn(1, 1, 9, 12, 12)).shape == (1, 1, 9, 12, 12)
    impulse = torch.zeros(1, 1, 11, 12, 12)
    impulse[:, :, 5, 6, 6] = 1
    with torch.no_grad():
        stem = [net.model[1].conv(net.model[0](x)) for x in (impulse, torch.zeros_like(impulse))]  # stem alone
    reached = (stem[0] - stem[1]).abs().sum(dim=(0, 1, 3, 4)) > 0
    assert reached.nonzero().flatten().tolist() == [4, 5, 6]  # frames t-1..t+1, not t-3..t+3
    assert count_parameters(net) < count_parameters(ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1))
    for bad in (4, (3, 7), (0, 7, 7)):
        with pytest.raises(ValueError, match="outer_kernel_size"):
            ResnetGenerator(3, 1, 1, outer_kernel_size=bad)


def _frames_reached(net: ResnetGenerator, frames: int, changed: int) -> list[int]:
    """Output frames that change when input frame ``changed`` does (the network's temporal receptive field)."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, frames, 12, 12)
    y = x.clone()
    y[:, :, changed] += 1.0
    with torch.no_grad():
        diff = (net(x) - net(y)).abs().amax(dim=(0, 1, 3, 4))
    return (diff > 1e-6).nonzero().flatten().tolist()


def test_generator_sampling_kernel_leaves_time_to_the_residual_blocks():
    """``sampling_kernel_size`` (1, 3, 3) with time unstrided and frame-wise outer convolutions: only the residual
    blocks convolve along time, so without them a frame's translation depends on that frame alone, and each block
    widens the reach by its two 3-wide convolutions. The default 3-wide sampling convolutions reach further."""
    frame_wise = {"strides": (1, 2, 2), "outer_kernel_size": (1, 7, 7), "norm": "BATCH"}
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=0, sampling_kernel_size=(1, 3, 3), **frame_wise).eval()
    assert _frames_reached(net, 11, 5) == [5]
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, sampling_kernel_size=(1, 3, 3), **frame_wise).eval()
    assert _frames_reached(net, 11, 5) == [3, 4, 5, 6, 7]
    default = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=0, **frame_wise).eval()
    assert _frames_reached(default, 11, 5) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    kernels = {m.kernel_size for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))}
    assert kernels == {(1, 7, 7), (1, 3, 3), (3, 3, 3)}
    for upsample in ("transposed", "transposed_box", "nearest", "conv_linear"):
        for conv in ("full", "2+1d"):
            resized = ResnetGenerator(
                3,
                2,
                2,
                channels=2,
                num_res_blocks=1,
                upsample=upsample,
                conv=conv,
                sampling_kernel_size=(1, 3, 3),
                strides=(1, 2, 2),
            )
            assert resized(torch.randn(1, 2, 5, 9, 10)).shape == (1, 2, 5, 9, 10)
    for bad in ((1, 3, 3), 2, (3, 0, 3)):  # (1, 3, 3) with time strided would skip every other frame
        with pytest.raises(ValueError, match="sampling_kernel_size must be odd"):
            ResnetGenerator(3, 1, 1, strides=2, sampling_kernel_size=bad)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [1, 3, 7, 11, 19])
def test_generator_min_size_is_exact(stride, kernel, monkeypatch):
    """``generator_min_size`` is the smallest size the generator translates along an axis with that stride and
    outer kernel: it runs there (keeping the size), refuses one voxel less in one line, and without that check
    one voxel less fails inside PyTorch's reflection padding."""
    net = ResnetGenerator(2, 1, 1, channels=2, num_res_blocks=1, strides=(stride, 2), outer_kernel_size=(kernel, 3))
    (smallest,) = generator_min_size([stride], [kernel])
    assert smallest == (max(kernel // 2, 1) + 1 if stride == 1 else {19: 9}.get(kernel, 1))
    assert net(torch.randn(1, 1, smallest, 8)).shape == (1, 1, smallest, 8)
    if smallest == 1:
        return
    with pytest.raises(ValueError, match="too small"):
        net(torch.randn(1, 1, smallest - 1, 8))
    monkeypatch.setattr(net, "min_input_size", (1, 1))
    with pytest.raises(RuntimeError, match="[Pp]adding"):
        net(torch.randn(1, 1, smallest - 1, 8))


def test_generator_rejects_bad_input():
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1)
    with pytest.raises(ValueError, match="5D batch"):
        net(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"too small for strides \(1, 2, 2\) and outer kernel \(7, 7, 7\)"):
        ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, strides=(1, 2, 2))(torch.randn(1, 1, 3, 16, 16))
    with pytest.raises(ValueError, match="strides"):
        ResnetGenerator(3, 1, 1, strides=3)
    with pytest.raises(ValueError, match="spatial_dims"):
        ResnetGenerator(1, 1, 1)


@pytest.mark.parametrize(
    "spatial_dims, channels, size",
    [
        (3, 1, (30, 84, 84)),
        (3, 3, (30, 84, 84)),
        (3, 3, (8, 108, 192)),
        (3, 1, (16, 28, 28)),
        (2, 3, (84, 84)),
        (2, 1, (108, 192)),
    ],
)
def test_discriminator_gives_patch_logits_for_short_clips(spatial_dims, channels, size):
    net = PatchGANDiscriminator(spatial_dims, channels, channels=4, input_size=size)
    with torch.no_grad():
        y = net(torch.randn(2, channels, *size))
    assert y.shape[:2] == (2, 1) and y.ndim == spatial_dims + 2
    assert min(y.shape[2:]) >= 1


def test_monai_patch_discriminator_fails_where_ours_adapts():
    x = torch.randn(1, 1, 16, 64, 64)
    monai_net = PatchDiscriminator(spatial_dims=3, channels=4, in_channels=1, num_layers_d=3)
    with pytest.raises(RuntimeError):
        monai_net(x)
    assert PatchGANDiscriminator(3, 1, channels=4, input_size=(16, 64, 64))(x).shape[2] >= 1


def test_patch_layer_strides_adapt_per_axis():
    assert patch_layer_strides((30, 84, 84), 3, 3) == [(2, 2, 2)] * 3  # standard PatchGAN where it fits
    assert patch_layer_strides((8, 108, 192), 3, 3) == [(2, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert patch_layer_strides(None, 2, 2) == [(2, 2), (2, 2)]
    with pytest.raises(ValueError, match="entries"):
        patch_layer_strides((8, 8), 3, 3)


def test_discriminator_paper_recipe_and_size_check():
    net = PatchGANDiscriminator(3, 1, input_size=(30, 84, 84))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4, 4) for c in convs)
    assert not any(isinstance(m, torch.nn.InstanceNorm3d) for m in net.model[0].modules())  # no norm on layer 1
    with pytest.raises(ValueError, match="built for inputs of size"):
        net(torch.randn(1, 1, 16, 84, 84))
    with pytest.raises(ValueError, match="too small"):
        PatchGANDiscriminator(3, 1, channels=4)(torch.randn(1, 1, 8, 32, 32))


def test_init_weights_normal_002():
    net = init_weights(ResnetGenerator(3, 1, 1, channels=16, num_res_blocks=2))
    conv = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][2]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert conv.weight.mean().abs().item() < 0.002
    assert torch.all(conv.bias == 0)


def test_framewise_network_equals_per_frame_application():
    net2d = ResnetGenerator(2, 3, 3, channels=4, num_res_blocks=1).eval()
    video = torch.randn(2, 3, 5, 12, 12)
    frames = volume_to_frames(video)
    assert torch.equal(frames[3], video[0, :, 3])  # frames of one clip stay consecutive
    assert torch.equal(frames_to_volume(frames, 5), video)
    with torch.no_grad():
        out = FramewiseNetwork(net2d, frames_per_forward=3)(video)
        expected = torch.stack([net2d(video[:, :, t]) for t in range(5)], dim=2)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("upsample", ["nearest", "linear", "conv_linear"])
@pytest.mark.parametrize(
    "spatial_dims, size, strides", [(3, (16, 28, 28), (1, 2, 2)), (3, (7, 13, 10), 2), (2, (37, 41), 2)]
)
def test_generator_resize_convolution_upsampling(upsample, spatial_dims, size, strides):
    net = ResnetGenerator(spatial_dims, 3, 3, channels=4, num_res_blocks=1, strides=strides, upsample=upsample)
    transposed = ResnetGenerator(spatial_dims, 3, 3, channels=4, num_res_blocks=1, strides=strides)
    assert count_parameters(net) == count_parameters(transposed)  # a 3-wide convolution either way
    assert not any(isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)) for m in net.modules())
    resizes = [m for m in net.modules() if isinstance(m, torch.nn.Upsample)]
    assert len(resizes) == 2 and resizes[0].scale_factor == tuple(float(s) for s in net.strides)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert net(x).shape == x.shape
    with pytest.raises(RuntimeError):  # another architecture: weights of one do not load into the other
        net.load_state_dict(transposed.state_dict())


@pytest.mark.parametrize("strides", [2, (1, 2, 2)])
@pytest.mark.parametrize("upsample", ["transposed", "transposed_box", "nearest", "conv_linear"])
def test_factorised_generator_keeps_sizes_with_every_upsampling(strides, upsample):
    """``conv="2+1d"``: every inner convolution is a 1x3x3 one followed by a 3x1x1 one, the outer ones are
    unchanged, sizes are kept, and the network has fewer parameters than the full one."""
    kwargs = {"channels": 4, "num_res_blocks": 2, "strides": strides, "upsample": upsample}
    net = ResnetGenerator(3, 3, 3, conv="2+1d", **kwargs)
    kernels = [m.kernel_size for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    assert kernels[0] == kernels[-1] == (7, 7, 7)
    inner = kernels[1:-1]
    assert inner[0::2] == [(1, 3, 3)] * (len(inner) // 2) and inner[1::2] == [(3, 1, 1)] * (len(inner) // 2)
    assert len(inner) == 2 * (2 + 2 * 2 + 2)  # two downsampling, two blocks of two, two upsampling layers
    x = torch.randn(1, 3, 7, 13, 10)
    with torch.no_grad():
        assert net(x).shape == x.shape
    assert count_parameters(net) < count_parameters(ResnetGenerator(3, 3, 3, **kwargs))


@pytest.mark.parametrize("strides, padding", [(1, 1), (1, 0), ((2, 2, 2), 1), ((1, 2, 2), 1)])
def test_factorised_convolution_sees_what_the_full_one_sees(strides, padding):
    """An impulse through a 2+1d layer reaches the same voxels (3x3x3 around it, or its strided image) as
    through a full 3-wide layer, and the output has the full layer's size."""
    outputs = {}
    for conv in ("full", "2+1d"):
        layer = inner_convolution(3, 1, 1, conv, strides=strides, padding=padding, norm=None, act=None)
        for module in layer.modules():
            if isinstance(module, torch.nn.Conv3d):
                torch.nn.init.ones_(module.weight)
                torch.nn.init.zeros_(module.bias)
        impulse = torch.zeros(1, 1, 9, 9, 9)
        impulse[..., 4, 4, 4] = 1
        with torch.no_grad():
            outputs[conv] = layer(impulse)
    assert outputs["full"].shape == outputs["2+1d"].shape
    assert torch.equal(outputs["full"] > 0, outputs["2+1d"] > 0)
    assert int((outputs["full"] > 0).sum()) >= 1
    if strides == 1:
        assert int((outputs["full"] > 0).sum()) == 27


def test_factorised_convolution_parameters():
    """(9 * in + 3 * out) / (27 * in) of the full layer's weights, plus one bias per part."""
    full, factorised = (inner_convolution(3, 8, 16, conv, norm=None) for conv in ("full", "2+1d"))
    assert count_parameters(full) == 27 * 8 * 16 + 16
    assert count_parameters(factorised) == (9 * 8 * 16 + 16) + (3 * 16 * 16 + 16)


def test_factorised_convolution_refuses_2d_networks_and_unknown_modes():
    with pytest.raises(ValueError, match="factorises 3D convolutions; a 2D network"):
        ResnetGenerator(2, 1, 1, channels=4, num_res_blocks=1, conv="2+1d")
    with pytest.raises(ValueError, match="conv must be one of"):
        ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, conv="separable")


def test_resize_convolution_has_no_checkerboard_along_time():
    """A constant input through the upsampling stages of an untrained generator: the transposed convolution's
    uneven kernel overlap makes alternate frames differ (a period-2 pattern in time), the resize-convolution not."""
    torch.manual_seed(0)
    spread = {}
    for upsample in ("transposed", "nearest", "conv_linear", "transposed_box"):
        net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=0, strides=2, upsample=upsample, norm=None)
        up = torch.nn.Sequential(*[m for m in net.model if not isinstance(m, torch.nn.ReflectionPad3d)][3:-2])
        with torch.no_grad():
            y = up(torch.ones(1, 16, 8, 8, 8))[..., 10:-10, 10:-10, 10:-10]  # away from the zero-padded borders
        spread[upsample] = float(y.std(dim=2).mean())  # variation along time of a constant signal
    assert max(spread["nearest"], spread["conv_linear"], spread["transposed_box"]) < 1e-5 < spread["transposed"]


@pytest.mark.parametrize("spatial_dims, strides", [(3, (2, 2, 2)), (3, (1, 2, 2)), (2, (2, 2))])
def test_transposed_box_computes_a_nearest_resize_convolution(spatial_dims, strides):
    """A stride-2 transposed convolution followed by the 2-wide box equals a nearest resize followed by a 3-wide
    convolution with the mirrored kernel (up to the box's 2**k mean), away from the borders."""
    torch.manual_seed(0)
    conv, conv_t = (F.conv2d, F.conv_transpose2d) if spatial_dims == 2 else (F.conv3d, F.conv_transpose3d)
    x = torch.randn(1, 4, *(6,) * spatial_dims, dtype=torch.float64)
    w = torch.randn(4, 3, *(3,) * spatial_dims, dtype=torch.float64)  # (in, out, *kernel) of the transposed conv
    axes = tuple(range(2, 2 + spatial_dims))
    resized = F.interpolate(x, scale_factor=strides, mode="nearest")
    expected = conv(resized, w.flip(axes).transpose(0, 1), padding=1)
    boxed = BoxFilter(spatial_dims, strides)(
        conv_t(x, w, stride=strides, padding=1, output_padding=tuple(s - 1 for s in strides))
    )
    assert boxed.shape == expected.shape
    inner = (slice(None), slice(None)) + (slice(3, -3),) * spatial_dims
    scale = 2 ** sum(s == 2 for s in strides)  # the box averages, the resize repeats
    assert torch.allclose(boxed[inner] * scale, expected[inner], atol=1e-10)


def test_transposed_box_upsampling_costs_about_a_transposed_convolution():
    """Its convolutions run at the low resolution, as the transposed convolution's; parameters are the same."""
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, upsample="transposed_box")
    assert count_parameters(net) == count_parameters(ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1))
    transposed = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert len(transposed) == 2 and not any(isinstance(m, torch.nn.Upsample) for m in net.modules())
    assert sum(isinstance(m, BoxFilter) for m in net.modules()) == 2
    x = torch.randn(1, 1, 7, 13, 10)
    with torch.no_grad():
        assert net(x).shape == x.shape
    with pytest.raises(ValueError, match="1 or 2 per axis"):
        BoxFilter(3, (3, 2, 2))


def test_conv_linear_upsampling_convolves_at_the_low_resolution():
    """``conv_linear`` runs its convolutions before the resize: the operations of a transposed convolution,
    not the 2**dims times more of a resize-convolution."""
    shapes = {}
    for upsample in ("nearest", "conv_linear"):
        net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1, strides=2, upsample=upsample)
        last_block = max(i for i, m in enumerate(net.model) if isinstance(m, ResnetBlock))
        seen: list[tuple[int, ...]] = []
        for m in net.model[last_block + 1 :]:
            if isinstance(m, Convolution):
                m.register_forward_hook(lambda mod, inp, out, seen=seen: seen.append(tuple(inp[0].shape[2:])))
        net(torch.randn(1, 1, 16, 16, 16))
        shapes[upsample] = seen
    assert shapes["conv_linear"][:2] == [(4, 4, 4), (8, 8, 8)]  # convolved at 1/4 and 1/2 of the size
    assert shapes["nearest"][:2] == [(8, 8, 8), (16, 16, 16)]  # resized first


def test_generator_rejects_unknown_upsampling():
    with pytest.raises(ValueError, match="upsample must be one of"):
        ResnetGenerator(3, 1, 1, upsample="pixelshuffle")


def test_discriminator_max_downsampling_keeps_the_time_axis():
    assert patch_layer_strides((16, 28, 28), 3, 3, (0, None, None)) == [(1, 2, 2)] * 3
    assert patch_layer_strides((16, 28, 28), 3, 3, (1, None, 2)) == [(2, 2, 2), (1, 2, 2), (1, 2, 1)]
    net = PatchGANDiscriminator(3, 3, channels=4, input_size=(16, 28, 28), max_downsampling=(0, None, None))
    assert net(torch.randn(1, 3, 16, 28, 28)).shape == (1, 1, 16, 1, 1)  # a logit per frame position
    with pytest.raises(ValueError, match="max_downsampling must hold 3 entries"):
        patch_layer_strides((16, 28, 28), 3, 3, (0, None))


def test_upsampling_benchmark_script_times_every_mode(capsys):
    """``scripts/bench_upsampling.py`` prints one row per mode with its ratio to ``transposed``."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_upsampling.py"
    main = runpy.run_path(str(script))["main"]
    main(["--shape", "8x12x12:1:2:1", "--steps", "1", "--warmup", "0", "--modes", "transposed", "transposed_box"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| transposed")]
    assert [row.split("|")[1].strip() for row in rows] == ["transposed", "transposed_box"]
    assert rows[0].split("|")[3].strip() == "1.00x" and rows[1].split("|")[3].strip().endswith("x")


def test_video_discriminator_views():
    """``clip`` is the paper's PatchGAN (old weights load); ``frames`` judges every frame with a 2D PatchGAN, as
    the frame-wise baselines' discriminators do; ``clip+frames`` gives both logits, which MONAI's loss averages."""
    clip = video_discriminator("clip", 3, 3, channels=4, input_size=(8, 28, 28))
    assert type(clip) is PatchGANDiscriminator and clip.spatial_dims == 3
    assert type(video_discriminator("clip+frames", 2, 3, channels=4, input_size=(28, 28))) is PatchGANDiscriminator

    torch.manual_seed(0)
    both = video_discriminator("clip+frames", 3, 3, channels=4, input_size=(8, 28, 28), max_downsampling=[0, 1, None])
    assert isinstance(both, ClipAndFrameDiscriminator) and both.clip.spatial_dims == 3 and both.frame.spatial_dims == 2
    assert both.frame.input_size == (28, 28)
    video = torch.randn(2, 3, 8, 28, 28)
    with torch.no_grad():
        clip_logits, frame_logits = both(video)
        assert clip_logits.shape[:3] == (2, 1, 8)  # time never strided (cap 0)
        assert frame_logits.shape[:2] == (16, 1)  # one map per frame
        assert torch.allclose(frame_logits[8:16], both.frame(video[1].movedim(1, 0)))  # frames of clip 1, in order
        loss = adversarial_loss("lsgan")
        expected = (loss(clip_logits, True, True) + loss(frame_logits, True, True)) / 2
        assert torch.allclose(loss([clip_logits, frame_logits], True, True), expected)

    frames_only = video_discriminator("frames", 3, 3, channels=4, input_size=(8, 28, 28))
    assert frames_only.clip is None and len(frames_only(video)) == 1


def test_video_discriminator_rejects_bad_views_and_inputs():
    with pytest.raises(ValueError, match="unknown discriminator view 'time'; choose one of clip, frames"):
        video_discriminator("time", 3, 1)
    with pytest.raises(ValueError, match="give a clip or a frame discriminator"):
        ClipAndFrameDiscriminator()
    with pytest.raises(ValueError, match=r"expected a batch of clips \(N, C, D, H, W\)"):
        video_discriminator("frames", 3, 1, channels=4)(torch.randn(2, 1, 28, 28))


@pytest.mark.parametrize("target", [1, 2, 5, 90, 91, 1000, 123_457])
def test_matched_width_is_the_closest_width_and_builds_nothing_much_wider(target):
    built: list[int] = []

    def build(width: int) -> torch.nn.Module:
        built.append(width)
        return torch.nn.Linear(width, width)  # width**2 + width parameters

    width = matched_width(build, target)
    gaps = {w: abs(w * w + w - target) for w in range(1, 1025)}
    assert gaps[width] == min(gaps.values()) and width == min(w for w, g in gaps.items() if g == gaps[width])
    assert max(built) <= 2 * width + 1


def test_matched_width_refuses_a_target_without_parameters():
    with pytest.raises(ValueError, match="target_parameters must be positive"):
        matched_width(lambda width: torch.nn.Linear(width, width), 0)
