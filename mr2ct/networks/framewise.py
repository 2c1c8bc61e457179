"""Apply a 2D (image) network to every frame of a video / slice of a volume."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["FramewiseNetwork", "frames_to_volume", "volume_to_frames"]


def volume_to_frames(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, D, H, W)`` -> ``(N * D, C, H, W)``, frames of one volume kept consecutive and in order."""
    n, c, d, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(n * d, c, h, w)


def frames_to_volume(x: torch.Tensor, depth: int) -> torch.Tensor:
    """Inverse of :func:`volume_to_frames`: ``(N * D, C, H, W)`` -> ``(N, C, D, H, W)``."""
    nd, c, h, w = x.shape
    if nd % depth:
        raise ValueError(f"{nd} frames cannot be split into volumes of depth {depth}.")
    return x.reshape(nd // depth, depth, c, h, w).permute(0, 2, 1, 3, 4)


class FramewiseNetwork(nn.Module):
    """Wrap a 2D network so that it translates a video ``(N, C, D, H, W)`` frame by frame.

    This is how the paper's frame-wise CycleGAN baselines translate whole videos at inference time; it lets
    a 2D model be used wherever a 3D model is (inferers, evaluators, exporters).

    Args:
        network: a 2D network mapping ``(B, C, H, W)`` to ``(B, C', H, W)``.
        frames_per_forward: at most this many frames go through the network at once (bounds memory).
    """

    def __init__(self, network: nn.Module, frames_per_forward: int = 32):
        super().__init__()
        if frames_per_forward < 1:
            raise ValueError("frames_per_forward must be positive.")
        self.network = network
        self.frames_per_forward = frames_per_forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # already frames
            return self.network(x)
        frames = volume_to_frames(x)
        out = torch.cat([self.network(f) for f in frames.split(self.frames_per_forward)])
        return frames_to_volume(out, x.shape[2])
