"""A video (or volume) discriminator that judges whole clips, single frames, or both."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .framewise import volume_to_frames
from .patch_discriminator import PatchGANDiscriminator

__all__ = ["DISCRIMINATOR_VIEWS", "ClipAndFrameDiscriminator", "video_discriminator"]

DISCRIMINATOR_VIEWS = ("clip", "frames", "clip+frames")


class ClipAndFrameDiscriminator(nn.Module):
    """A 3D discriminator on the whole clip and/or a 2D discriminator on each of its frames.

    Video GANs judge motion and appearance apart (MoCoGAN's video and image discriminators, Tulyakov et al.,
    2018; DVD-GAN's temporal and spatial ones, Clark et al., 2019): a clip discriminator sees one sample per clip,
    a frame discriminator sees every frame of it as a sample, which is what the frame-wise baselines'
    discriminators get.

    Args:
        clip: network on ``(N, C, D, H, W)`` clips, or None.
        frame: 2D network on ``(N * D, C, H, W)`` frames, or None.

    Returns:
        ``forward`` returns a list of patch logits, the clip's first: MONAI's ``PatchAdversarialLoss`` averages
        its loss over the list (as for a multi-scale discriminator).
    """

    def __init__(self, clip: nn.Module | None = None, frame: nn.Module | None = None):
        super().__init__()
        if clip is None and frame is None:
            raise ValueError("give a clip or a frame discriminator, or both.")
        self.clip = clip
        self.frame = frame

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 5:
            raise ValueError(f"expected a batch of clips (N, C, D, H, W), got shape {tuple(x.shape)}.")
        logits = [self.clip(x)] if self.clip is not None else []
        if self.frame is not None:
            logits.append(self.frame(volume_to_frames(x)))
        return logits


def video_discriminator(
    view: str,
    spatial_dims: int,
    in_channels: int,
    channels: int = 64,
    num_layers: int = 3,
    input_size: Sequence[int] | None = None,
    max_downsampling: Sequence[int | None] | None = None,
) -> nn.Module:
    """The PatchGAN discriminator of a method, looking at its inputs in ``view``.

    Args:
        view: ``"clip"`` (the paper: one PatchGAN with ``spatial_dims`` convolutions), ``"frames"`` (a 2D PatchGAN
            on every frame of a 3D clip) or ``"clip+frames"`` (both, see :class:`ClipAndFrameDiscriminator`). For
            ``spatial_dims`` 2 the inputs are frames already and every view is the same 2D PatchGAN.
        spatial_dims, in_channels, channels, num_layers, input_size, max_downsampling: as for
            :class:`PatchGANDiscriminator`; the frame discriminator takes the last two axes' entries.

    Returns:
        a :class:`PatchGANDiscriminator` for ``"clip"`` and 2D methods (so weights of earlier runs still load),
        else a :class:`ClipAndFrameDiscriminator`.
    """
    if view not in DISCRIMINATOR_VIEWS:
        raise ValueError(f"unknown discriminator view {view!r}; choose one of {', '.join(DISCRIMINATOR_VIEWS)}.")

    def patchgan(dims: int, size: Sequence[int] | None, caps: Sequence[int | None] | None) -> PatchGANDiscriminator:
        return PatchGANDiscriminator(dims, in_channels, channels, num_layers, size, max_downsampling=caps)

    if spatial_dims == 2 or view == "clip":
        return patchgan(spatial_dims, input_size, max_downsampling)
    frame = patchgan(
        2,
        None if input_size is None else list(input_size)[-2:],
        None if max_downsampling is None else list(max_downsampling)[-2:],
    )
    clip = patchgan(3, input_size, max_downsampling) if view == "clip+frames" else None
    return ClipAndFrameDiscriminator(clip, frame)
