"""How a training batch is formed for each method of the paper (Figure 4).

The loader always yields clips ``{"A": (N, C, D, H, W), "B": (N, C, D, H, W)}``; a batch preparer turns them
into what the networks train on:

- ``3d``: the clips themselves (3D CycleGAN);
- ``sequential`` / ``seq_const``: the consecutive frames of each clip, in order, as a 2D batch
  (load one clip per batch for the paper's "frames of a single video");
- ``random``: frames drawn at random from all clips of the loaded batch (load many clips per batch).

Which method uses which preparer is in :mod:`mr2ct.engine.methods`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from monai.engines.utils import PrepareBatch

from mr2ct.networks.framewise import volume_to_frames

__all__ = ["ClipBatch", "RandomFrames", "SequentialFrames"]


class ClipBatch(PrepareBatch):
    """Whole clips / volumes as a 3D batch: returns ``(real_a, real_b)``."""

    def __init__(self, keys: tuple[str, str] = ("A", "B")):
        self.keys = keys

    def clips(self, batchdata: Mapping, device, non_blocking: bool, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = (torch.as_tensor(batchdata[k]).to(device=device, non_blocking=non_blocking, **kwargs) for k in self.keys)
        if a.ndim != 5 or b.ndim != 5:
            raise ValueError(f"expected clips of shape (N, C, D, H, W), got {tuple(a.shape)} and {tuple(b.shape)}.")
        return a, b

    def __call__(self, batchdata, device=None, non_blocking=False, **kwargs):
        return self.clips(batchdata, device, non_blocking, **kwargs)


class SequentialFrames(ClipBatch):
    """The consecutive frames of each clip, in temporal order, as a 2D batch of ``N * D`` frames."""

    def __call__(self, batchdata, device=None, non_blocking=False, **kwargs):
        a, b = self.clips(batchdata, device, non_blocking, **kwargs)
        return volume_to_frames(a), volume_to_frames(b)


class RandomFrames(ClipBatch):
    """``num_frames`` frames drawn at random (without replacement) from all frames of the loaded clips.

    Domains A and B are sampled independently, as in a standard shuffled 2D CycleGAN.
    """

    def __init__(self, num_frames: int, keys: tuple[str, str] = ("A", "B")):
        super().__init__(keys)
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}.")
        self.num_frames = num_frames

    def _sample(self, frames: torch.Tensor) -> torch.Tensor:
        if len(frames) < self.num_frames:
            raise ValueError(f"the loaded clips hold {len(frames)} frames, fewer than num_frames={self.num_frames}.")
        return frames[torch.randperm(len(frames))[: self.num_frames].to(frames.device)]

    def __call__(self, batchdata, device=None, non_blocking=False, **kwargs):
        a, b = self.clips(batchdata, device, non_blocking, **kwargs)
        return self._sample(volume_to_frames(a)), self._sample(volume_to_frames(b))
