"""PatchGAN discriminator (Isola et al., 2017) for images, volumes and short video clips."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

__all__ = ["PatchGANDiscriminator", "patch_layer_strides"]

# Downsample an axis at a layer only while the final patch grid along it keeps at least one cell:
# with kernel 4 / padding 1, k stride-2 layers and two stride-1 layers give size // 2**k - 2 >= 1.
_MIN_SIZE_AFTER_DOWNSAMPLING = 3


def patch_layer_strides(
    input_size: Sequence[int] | None,
    num_layers: int,
    spatial_dims: int,
    max_downsampling: Sequence[int | None] | None = None,
) -> list[tuple[int, ...]]:
    """Per-layer, per-axis strides of the ``num_layers`` downsampling layers of a PatchGAN.

    Without ``input_size`` every axis is downsampled at every layer (the standard, isotropic PatchGAN, which
    needs at least 24 voxels per axis for 3 layers). With it, an axis is downsampled only as long as
    ``size // 2**k >= 3``, so short clips (e.g. depth 8 or 16) keep their time axis and still give a valid
    patch grid. For depth 30 and sizes >= 24 this is the standard PatchGAN.

    ``max_downsampling`` caps the stride-2 layers per axis (``None`` entries: no cap), e.g. ``(0, None, None)``
    keeps a video's time axis at full resolution (every layer then convolves it with a 3-wide kernel).
    """
    if max_downsampling is not None:
        if len(max_downsampling) != spatial_dims or any(
            m is not None and (isinstance(m, bool) or m < 0) for m in max_downsampling
        ):
            raise ValueError(
                f"max_downsampling must hold {spatial_dims} entries, each None or an integer >= 0, "
                f"got {max_downsampling!r}."
            )
        capped = patch_layer_strides(input_size, num_layers, spatial_dims)
        caps = [num_layers if m is None else m for m in max_downsampling]
        counts = [0] * spatial_dims
        out = []
        for layer in capped:
            strides = []
            for a, stride in enumerate(layer):
                keep = stride == 2 and counts[a] < caps[a]
                counts[a] += keep
                strides.append(2 if keep else 1)
            out.append(tuple(strides))
        return out
    if input_size is None:
        return [(2,) * spatial_dims for _ in range(num_layers)]
    if len(input_size) != spatial_dims:
        raise ValueError(f"input_size {tuple(input_size)} must have {spatial_dims} entries.")
    if min(input_size) < 1:
        raise ValueError(f"input_size must be positive, got {tuple(input_size)}.")
    downsampled = [
        max((k for k in range(num_layers + 1) if n // 2**k >= _MIN_SIZE_AFTER_DOWNSAMPLING), default=0)
        for n in input_size
    ]
    return [tuple(2 if layer < k else 1 for k in downsampled) for layer in range(num_layers)]


class PatchGANDiscriminator(nn.Module):
    """N-layer PatchGAN discriminator as in CycleGAN / pix2pix, with 2D or 3D convolutions.

    The 3D CycleGAN paper uses the CycleGAN PatchGAN "with 3D convolutional filters" (section 3): 4-wide
    convolutions, ``num_layers`` stride-2 layers with ``channels * min(2**i, 8)`` filters, one stride-1 layer
    and a 1-channel stride-1 output layer of patch logits; LeakyReLU(0.2), no norm on the first layer.

    MONAI's ``PatchDiscriminator`` uses the same stride on every axis, which fails for clips shorter than 24
    frames (e.g. the paper's 8-frame GTA clips); this class picks strides per axis from ``input_size``
    (see :func:`patch_layer_strides`). Axes that are not downsampled use 3-wide kernels, which keep their size.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        channels: filters of the first layer (``ndf``).
        num_layers: number of downsampling layers (3 in CycleGAN, a 70x70 receptive field in 2D).
        input_size: spatial size of the training inputs, used to adapt strides for short axes.
        norm: MONAI norm layer name or ``(name, args)``.
        max_downsampling: per axis, at most this many stride-2 layers (``None``: no cap), see
            :func:`patch_layer_strides`; e.g. ``(0, None, None)`` for a discriminator that keeps every frame of a
            clip and sees motion at full temporal resolution. Default: no caps (the standard PatchGAN).

    Returns:
        ``forward`` returns the patch logits, shape ``(N, 1, *grid)``, in fp32: the output layer runs outside
        autocast.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int = 64,
        num_layers: int = 3,
        input_size: Sequence[int] | None = None,
        norm: str | tuple = "INSTANCE",
        max_downsampling: Sequence[int | None] | None = None,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or channels < 1 or num_layers < 1:
            raise ValueError("in_channels, channels and num_layers must be positive.")
        self.spatial_dims = spatial_dims
        self.input_size = tuple(input_size) if input_size is not None else None
        strides = patch_layer_strides(input_size, num_layers, spatial_dims, max_downsampling)
        # a stride-1 layer keeps the size of axes that were never downsampled (kernel 3) and shrinks the others by 1
        full = tuple(2 if any(s[a] == 2 for s in strides) else 1 for a in range(spatial_dims))
        act = ("LEAKYRELU", {"negative_slope": 0.2})

        def kernel(stride: Sequence[int]) -> tuple[int, ...]:
            return tuple(4 if s == 2 else 3 for s in stride)

        layers: list[nn.Module] = []
        ch_in, ch = in_channels, channels
        for i, stride in enumerate(strides):
            ch = channels * min(2**i, 8)
            layers.append(
                Convolution(
                    spatial_dims,
                    ch_in,
                    ch,
                    strides=stride,
                    kernel_size=kernel(stride),
                    padding=1,
                    act=act,
                    norm=None if i == 0 else norm,
                )
            )
            ch_in = ch
        ch = channels * min(2**num_layers, 8)
        layers.append(Convolution(spatial_dims, ch_in, ch, kernel_size=kernel(full), padding=1, act=act, norm=norm))
        layers.append(Convolution(spatial_dims, ch, 1, kernel_size=kernel(full), padding=1, conv_only=True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected a {self.spatial_dims + 2}D batch, got shape {tuple(x.shape)}.")
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"this discriminator was built for inputs of size {self.input_size}, got {tuple(x.shape[2:])}."
            )
        try:
            features = self.model[:-1](x)
            # the 1-channel output layer in fp32 even under autocast: in bf16 on the CPU (torch 2.13, oneDNN) its
            # weight gradient was now and then non-finite (22 of 300 quick training steps; 0 of 300 in fp32)
            with torch.autocast(features.device.type, enabled=False):
                return self.model[-1](features.float())
        except RuntimeError as e:
            raise ValueError(
                f"input of size {tuple(x.shape[2:])} is too small for this PatchGAN; pass input_size so that short"
                f" axes are not downsampled."
            ) from e
