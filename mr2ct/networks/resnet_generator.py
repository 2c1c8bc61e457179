"""ResNet translation generator of Johnson et al. (2016), as used by CycleGAN and the 3D CycleGAN paper."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from monai.networks.blocks import ADN, Convolution
from monai.utils import ensure_tuple_rep

__all__ = ["BoxFilter", "ResnetBlock", "ResnetGenerator", "generator_min_size", "inner_convolution"]

# MONAI's Pad factory has no reflection padding; CycleGAN and the paper pad by reflection.
REFLECTION_PAD: dict[int, Callable[..., nn.Module]] = {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}
UPSAMPLE_MODES = ("transposed", "nearest", "linear", "conv_linear", "transposed_box")
CONV_MODES = ("full", "2+1d")


NUM_DOWNSAMPLING = 2  # stride-2 stages of ResnetGenerator, as in CycleGAN


def _internal_size(size: int, multiple: int) -> int:
    """The size that ResnetGenerator pads an axis to: a multiple of its total stride, and >= 2 bottleneck cells
    where it is strided (the residual blocks' reflection padding needs more than one voxel)."""
    return max(-(-size // multiple), 2 if multiple > 1 else 1) * multiple


def generator_min_size(strides: Sequence[int], outer_kernel_size: Sequence[int]) -> tuple[int, ...]:
    """Smallest input size per axis that :class:`ResnetGenerator` translates with these per-axis ``strides`` and
    stem/output ``outer_kernel_size``.

    Reflection padding must be smaller than the size it pads: half the outer kernel at the stem, 1 in the residual
    blocks. A strided axis is padded up internally (at least ``2 * stride**2`` voxels), so any size works there
    unless the kernel is wider than that; an unstrided axis is not, e.g. 8 frames left unstrided need an outer
    kernel of at most 15 along time, and 3 frames one of at most 5.
    """
    mins = []
    for stride, kernel in zip(strides, outer_kernel_size):
        multiple, pad = stride**NUM_DOWNSAMPLING, max(kernel // 2, 1)
        size = 1
        while _internal_size(size, multiple) <= pad:
            size += 1
        mins.append(size)
    return tuple(mins)


def _per_axis_kernel(
    name: str, value: Sequence[int] | int, strides: Sequence[int], wider_than_stride: bool = False
) -> tuple[int, ...]:
    """``value`` (one kernel size, or one per axis of ``strides``) as a per-axis tuple of odd positive sizes;
    ``ValueError`` naming ``name`` otherwise. ``wider_than_stride``: also >= 3 along each stride-2 axis (a 1-wide
    stride-2 convolution skips every other voxel)."""
    dims = len(strides)
    kernel = (value,) * dims if isinstance(value, int) else tuple(value)
    invalid = len(kernel) != dims or any(isinstance(k, bool) or k < 1 or k % 2 == 0 for k in kernel)
    if wider_than_stride:
        invalid = invalid or any(s == 2 and k < 3 for k, s in zip(kernel, strides))
    if invalid:
        rule = f", and >= 3 where the stride is 2 (strides {tuple(strides)})" if wider_than_stride else ""
        raise ValueError(f"{name} must be odd and positive for each of the {dims} axes{rule}, got {value}.")
    return kernel


def _check_conv(conv: str, spatial_dims: int) -> None:
    if conv not in CONV_MODES:
        raise ValueError(f"conv must be one of {CONV_MODES}, got {conv!r}.")
    if conv == "2+1d" and spatial_dims != 3:
        raise ValueError(f"conv '2+1d' factorises 3D convolutions; a {spatial_dims}D network has none.")


def inner_convolution(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    conv: str = "full",
    strides: Sequence[int] | int = 1,
    padding: int = 1,
    transposed: bool = False,
    kernel_size: Sequence[int] | int = 3,
    norm: str | tuple = "INSTANCE",
    act: str | None = "RELU",
    dropout: float = 0.0,
    conv_only: bool = False,
) -> nn.Module:
    """A 3-wide (transposed) convolution with norm and activation, as the generator's inner layers use.

    ``conv="2+1d"`` factorises a 3D one as in R(2+1)D (Tran et al., "A Closer Look at Spatiotemporal
    Convolutions for Action Recognition", CVPR 2018): a 1x3x3 convolution over each frame (slice), norm and ReLU,
    then a 3x1x1 convolution along the first axis (time, or depth) ending in ``norm`` and ``act``. Both have
    ``out_channels`` filters, so a factorised layer has ``(9 * in + 3 * out) / (27 * in)`` of the parameters of
    a full one (0.44 when ``in == out``), one more non-linearity, and the same receptive field and output size.
    ``strides`` and ``padding`` apply per axis as for the full convolution (the spatial part strides and pads
    the in-plane axes, the temporal part the first axis). ``kernel_size`` (per axis, odd) narrows the 3-wide
    kernel, e.g. ``(1, 3, 3)`` convolves each frame on its own; ``padding`` 1 then pads each axis by half its
    kernel.
    """
    _check_conv(conv, spatial_dims)
    strides = ensure_tuple_rep(strides, spatial_dims)
    kernel = ensure_tuple_rep(kernel_size, spatial_dims)
    pads = tuple(k // 2 * padding for k in kernel)

    def layer(
        c_in: int, kernel: Sequence[int] | int, stride: Sequence[int], pad: Sequence[int] | int, last: bool
    ) -> Convolution:
        return Convolution(
            spatial_dims,
            c_in,
            out_channels,
            strides=stride,
            kernel_size=kernel,
            padding=pad,
            is_transposed=transposed,
            output_padding=tuple(s - 1 for s in stride) if transposed else None,
            norm=norm,
            act=act if last else "RELU",
            dropout=dropout if last and dropout > 0 else None,
            conv_only=conv_only and last,
        )

    if conv == "full":
        return layer(in_channels, kernel, strides, pads, last=True)
    spatial = layer(in_channels, (1, *kernel[1:]), (1, *strides[1:]), (0, *pads[1:]), last=False)
    temporal = layer(out_channels, (kernel[0], 1, 1), (strides[0], 1, 1), (pads[0], 0, 0), last=True)
    return nn.Sequential(spatial, temporal)


class BoxFilter(nn.Module):
    """``y[n] = (x[n - 1] + x[n]) / 2`` along each axis whose ``strides`` entry is 2 (the first voxel repeated).

    After a stride-2 transposed convolution with a 3-wide kernel this gives exactly the family of maps of a
    nearest-neighbour resize followed by a 3-wide convolution: a nearest resize is zero insertion followed by
    this 2-wide box, and the two linear filters commute. The box's response is zero at the Nyquist frequency, so
    a constant input gives a constant output (no checkerboard), for the price of an average pooling instead of
    a convolution at the high resolution.

    Args:
        spatial_dims: 2 or 3.
        strides: the upsampling factor per spatial axis (1 or 2); axes of factor 1 are left alone.
    """

    def __init__(self, spatial_dims: int, strides: Sequence[int]):
        super().__init__()
        self.kernel = tuple(int(s) for s in ensure_tuple_rep(strides, spatial_dims))
        if any(k not in (1, 2) for k in self.kernel):
            raise ValueError(f"BoxFilter strides must be 1 or 2 per axis, got {self.kernel}.")
        self.pad = [p for k in reversed(self.kernel) for p in (k - 1, 0)]  # F.pad order: last axis first
        self.pool = F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.pad(x, self.pad, mode="replicate"), kernel_size=self.kernel, stride=1)


class ResnetBlock(nn.Module):
    """Residual block ``x + norm(conv(relu(norm(conv(pad(x))))))`` with reflection padding.

    Args:
        spatial_dims: 2 for images, 3 for volumes / videos.
        channels: number of input and output channels.
        norm: MONAI norm layer name or ``(name, args)`` tuple.
        dropout: dropout probability between the two convolutions (CycleGAN's ``use_dropout``).
        conv: ``"full"`` 3-wide convolutions, or ``"2+1d"`` factorised ones (:func:`inner_convolution`).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        norm: str | tuple = "INSTANCE",
        dropout: float = 0.0,
        conv: str = "full",
    ):
        super().__init__()
        reflect = REFLECTION_PAD[spatial_dims]
        self.block = nn.Sequential(
            reflect(1),
            inner_convolution(spatial_dims, channels, channels, conv, padding=0, norm=norm, dropout=dropout),
            reflect(1),
            inner_convolution(spatial_dims, channels, channels, conv, padding=0, norm=norm, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Image-to-image / volume-to-volume ResNet generator (Johnson et al., 2016; Zhu et al., 2017).

    The 3D CycleGAN paper ("Unsupervised Video-to-Video Translation", section 3) uses this network with 3D
    convolutions: a 7x7x7 stem, two stride-2 downsampling convolutions, ``num_res_blocks`` residual blocks,
    two stride-1/2 (transposed) upsampling convolutions and a 7x7x7 output convolution with ``tanh``.
    Reflection padding is used in place of zero padding, as in CycleGAN. ``upsample`` can replace the transposed
    convolutions by resize-convolutions (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016):
    a nearest or (bi/tri)linear upsampling followed by a 3-wide convolution, which has no uneven kernel overlap and
    so no checkerboard pattern (along time: no alternating-frame flicker). ``"conv_linear"`` swaps the order (the
    3-wide convolution at the low resolution, then linear upsampling, then norm and ReLU): no checkerboard either,
    at the cost of a transposed convolution, where a resize-convolution pays 2**dims times more for its last stages.
    ``"transposed_box"`` is the nearest resize-convolution at the transposed convolution's cost: the transposed
    convolution followed by a 2-wide box filter (:class:`BoxFilter`), the same family of maps.

    Any input size >= 4 is accepted: the input is padded (edge replication) to a multiple of the total stride
    along each axis and the output is cropped back, so ``output.shape[2:] == input.shape[2:]``.

    Args:
        spatial_dims: 2 for frame-wise (image) models, 3 for volume / video models.
        in_channels: input channels (1 for grey, 3 for RGB).
        out_channels: output channels.
        channels: filters of the first layer (``ngf``); doubled at each downsampling.
        num_res_blocks: residual blocks at the bottleneck (9 in the paper).
        strides: downsampling stride per spatial axis, e.g. ``(1, 2, 2)`` leaves the time/depth axis of a
            video unstrided. An int applies to every axis. Each axis is downsampled twice by this factor.
        norm: MONAI norm layer name (``"INSTANCE"`` as in CycleGAN) or ``(name, args)``.
        dropout: dropout inside residual blocks.
        upsample: ``"transposed"`` (stride-2 transposed convolutions, CycleGAN and the paper), or a resize-convolution:
            ``"nearest"`` or ``"linear"`` (bilinear in 2D, trilinear in 3D) upsampling, then a 3-wide convolution
            (the same number of parameters); or ``"conv_linear"``: the convolution first, at the low resolution,
            then linear upsampling, then norm and ReLU (same parameters, the cost of ``"transposed"``); or
            ``"transposed_box"``: the transposed convolution, then a 2-wide box filter along each upsampled axis,
            then norm and ReLU (the maps of ``"nearest"``, at about the cost of ``"transposed"``).
        outer_kernel_size: kernel of the stem and output convolutions, 7 in CycleGAN and the paper; per axis, e.g.
            ``(3, 7, 7)`` spans 3 instead of 7 frames of a video (each reflection-padded by half its width), so
            that the first and last layers of a 3D model do not average a moving object over 7 frames. Odd.
        checkpoint_blocks: activation checkpointing of the residual blocks in training
            (``torch.utils.checkpoint``, non-reentrant): each block keeps only its input for the backward pass and
            recomputes its inner activations, the main memory saver at 30x256x256, for about one more forward
            pass of the blocks. The same outputs and gradients; no parameters change, so weights load either way.
            An attribute: it can be switched on an existing network.
        conv: ``"full"`` (3-wide convolutions in the downsampling, residual and upsampling layers, the paper) or,
            for a 3D network, ``"2+1d"``: each of them factorised into a convolution over each frame and one along
            time (:func:`inner_convolution`, R(2+1)D). The stem and output convolutions follow
            ``outer_kernel_size``.
        sampling_kernel_size: kernel of the two downsampling and two upsampling convolutions, 3 in CycleGAN and
            the paper; per axis, e.g. ``(1, 3, 3)`` with ``strides`` ``(1, 2, 2)`` makes them frame-wise, so that
            only the residual blocks, at a quarter of the resolution where a moving object shifts by a fraction of
            a cell between frames, convolve along time. Odd; at least 3 along a strided axis (a 1-wide stride-2
            convolution would skip every other voxel).
    """

    num_downsampling = NUM_DOWNSAMPLING

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        num_res_blocks: int = 9,
        strides: Sequence[int] | int = 2,
        norm: str | tuple = "INSTANCE",
        dropout: float = 0.0,
        upsample: str = "transposed",
        outer_kernel_size: Sequence[int] | int = 7,
        checkpoint_blocks: bool = False,
        conv: str = "full",
        sampling_kernel_size: Sequence[int] | int = 3,
    ):
        super().__init__()
        self.checkpoint_blocks = checkpoint_blocks
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if min(in_channels, out_channels, channels) < 1 or num_res_blocks < 0:
            raise ValueError("in_channels, out_channels and channels must be positive, num_res_blocks >= 0.")
        self.spatial_dims = spatial_dims
        self.strides = ensure_tuple_rep(strides, spatial_dims)
        if any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"strides must be 1 or 2 per axis, got {self.strides}.")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}.")
        self.upsample = upsample
        _check_conv(conv, spatial_dims)
        self.conv = conv
        kernel = _per_axis_kernel("outer_kernel_size", outer_kernel_size, self.strides)
        self.outer_kernel_size = kernel
        self.sampling_kernel_size = _per_axis_kernel(
            "sampling_kernel_size", sampling_kernel_size, self.strides, wider_than_stride=True
        )
        self.min_input_size = generator_min_size(self.strides, kernel)  # per axis, checked in forward
        outer_pad = tuple(k // 2 for k in reversed(kernel) for _ in range(2))  # last axis first
        reflect = REFLECTION_PAD[spatial_dims]

        layers: list[nn.Module] = [
            reflect(outer_pad),
            Convolution(spatial_dims, in_channels, channels, kernel_size=kernel, padding=0, norm=norm, act="RELU"),
        ]
        ch = channels
        for _ in range(self.num_downsampling):
            layers.append(
                inner_convolution(
                    spatial_dims,
                    ch,
                    ch * 2,
                    conv,
                    strides=self.strides,
                    norm=norm,
                    kernel_size=self.sampling_kernel_size,
                )
            )
            ch *= 2
        layers += [ResnetBlock(spatial_dims, ch, norm=norm, dropout=dropout, conv=conv) for _ in range(num_res_blocks)]
        for _ in range(self.num_downsampling):
            layers += self._upsampling(ch, ch // 2, norm)
            ch //= 2
        layers += [
            reflect(outer_pad),
            Convolution(spatial_dims, ch, out_channels, kernel_size=kernel, padding=0, conv_only=True),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def _upsampling(self, ch_in: int, ch_out: int, norm: str | tuple) -> list[nn.Module]:
        """One upsampling stage by ``self.strides``: a transposed convolution, or a resize and a convolution."""
        if self.upsample in ("transposed", "transposed_box"):
            box = self.upsample == "transposed_box"
            transposed = inner_convolution(
                self.spatial_dims,
                ch_in,
                ch_out,
                self.conv,
                strides=self.strides,
                transposed=True,
                norm=norm,
                conv_only=box,  # the norm and ReLU come after the box filter
                kernel_size=self.sampling_kernel_size,
            )
            if not box:
                return [transposed]
            norm_act = ADN(ordering="NA", in_channels=ch_out, norm=norm, norm_dim=self.spatial_dims, act="RELU")
            return [transposed, BoxFilter(self.spatial_dims, self.strides), norm_act]
        mode = "nearest" if self.upsample == "nearest" else {2: "bilinear", 3: "trilinear"}[self.spatial_dims]
        resize = nn.Upsample(
            scale_factor=tuple(float(s) for s in self.strides),
            mode=mode,
            **({} if mode == "nearest" else {"align_corners": False}),
        )
        if self.upsample == "conv_linear":
            conv = inner_convolution(
                self.spatial_dims, ch_in, ch_out, self.conv, conv_only=True, kernel_size=self.sampling_kernel_size
            )
            norm_act = ADN(ordering="NA", in_channels=ch_out, norm=norm, norm_dim=self.spatial_dims, act="RELU")
            return [conv, resize, norm_act]
        return [
            resize,
            inner_convolution(
                self.spatial_dims, ch_in, ch_out, self.conv, norm=norm, kernel_size=self.sampling_kernel_size
            ),
        ]

    @property
    def size_multiple(self) -> tuple[int, ...]:
        """The multiple that each spatial size is padded to internally."""
        return tuple(s**self.num_downsampling for s in self.strides)

    def _run_model(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.checkpoint_blocks and self.training and torch.is_grad_enabled()):
            return self.model(x)
        for layer in self.model:
            if isinstance(layer, ResnetBlock):
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"expected a {self.spatial_dims + 2}D batch (N, C, {'D, ' if self.spatial_dims == 3 else ''}H, W),"
                f" got shape {tuple(x.shape)}."
            )
        size = x.shape[2:]
        if any(n < m for n, m in zip(size, self.min_input_size)):
            raise ValueError(
                f"input of spatial size {tuple(size)} is too small for strides {self.strides} and outer kernel "
                f"{self.outer_kernel_size}: each axis needs >= {self.min_input_size} voxels."
            )
        extra = [_internal_size(n, m) - n for n, m in zip(size, self.size_multiple)]
        if any(extra):
            pad: list[int] = []
            for e in reversed(extra):  # F.pad lists the last axis first
                pad += [e // 2, e - e // 2]
            x = F.pad(x, pad, mode="replicate")
        y = self._run_model(x)
        if any(extra):
            y = y[(slice(None), slice(None), *(slice(e // 2, e // 2 + n) for e, n in zip(extra, size)))]
        return y
