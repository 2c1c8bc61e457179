"""How a training batch is formed for each method of the paper (Figure 4).

The loader always yields clips ``{"A": (N, C, D, H, W), "B": (N, C, D, H, W)}``; a batch preparer turns them
into what the networks train on:

- ``3d``: the clips themselves (3D CycleGAN);
- ``sequential`` / ``seq_const``: the consecutive frames of each clip, in order, as a 2D batch
  (load one clip per batch for the paper's "frames of a single video");
- ``random``: frames drawn at random from all clips of the loaded batch (load many clips per batch).

Every preparer can first cut each loaded clip to a random window of ``crop_depth`` consecutive frames, so that a
3D batch of several short clips holds as many frames as one long clip but more videos (colours, digits, scenes),
and mirror each clip left-right at random (``flip``, CycleGAN's usual augmentation).

Which method uses which preparer is in :mod:`mr2ct.engine.methods`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from monai.engines.utils import PrepareBatch

from mr2ct.networks.framewise import volume_to_frames

__all__ = ["ClipBatch", "RandomFrames", "SequentialFrames", "random_flips", "random_windows"]


def random_windows(clips: torch.Tensor, length: int) -> torch.Tensor:
    """A random window of ``length`` consecutive frames of each clip of ``clips`` (N, C, D, H, W), drawn
    independently per clip with torch's global generator (so seeded training stays reproducible)."""
    depth = clips.shape[2]
    if length > depth:
        raise ValueError(f"crop_depth={length} is longer than the loaded clips ({depth} frames).")
    starts = torch.randint(depth - length + 1, (len(clips),)).tolist()
    return torch.stack([clip[:, s : s + length] for clip, s in zip(clips, starts)])


def random_flips(clips: torch.Tensor) -> torch.Tensor:
    """Each clip of ``clips`` (N, C, D, H, W), every frame alike, mirrored left-right (along W) with probability
    0.5, drawn independently per clip with torch's global generator (checkpointed, so a resumed run flips as the
    uninterrupted one would)."""
    mirrored = torch.rand(len(clips)) < 0.5
    return torch.where(mirrored[:, None, None, None, None], clips.flip(-1), clips)


class ClipBatch(PrepareBatch):
    """Whole clips / volumes as a 3D batch: returns ``(real_a, real_b)``.

    Args:
        keys: the batch keys of domains A and B.
        crop_depth: if given, each clip is cut to a random window of this many consecutive frames (domains A
            and B independently); None keeps whole clips.
        flip: mirror each clip left-right with probability 0.5 (:func:`random_flips`; domains independently).
    """

    def __init__(self, keys: tuple[str, str] = ("A", "B"), crop_depth: int | None = None, flip: bool = False):
        if crop_depth is not None and crop_depth < 1:
            raise ValueError(f"crop_depth must be positive or None, got {crop_depth}.")
        self.keys = keys
        self.crop_depth = crop_depth
        self.flip = flip

    def clips(self, batchdata: Mapping, device, non_blocking: bool, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = (torch.as_tensor(batchdata[k]) for k in self.keys)
        if a.ndim != 5 or b.ndim != 5:
            raise ValueError(f"expected clips of shape (N, C, D, H, W), got {tuple(a.shape)} and {tuple(b.shape)}.")
        if self.crop_depth is not None:  # before the transfer: only the windows are copied to the device
            a, b = random_windows(a, self.crop_depth), random_windows(b, self.crop_depth)
        if self.flip:
            a, b = random_flips(a), random_flips(b)
        transfer = {"device": device, "non_blocking": non_blocking, **kwargs}
        return a.to(**transfer), b.to(**transfer)

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

    def __init__(
        self, num_frames: int, keys: tuple[str, str] = ("A", "B"), crop_depth: int | None = None, flip: bool = False
    ):
        super().__init__(keys, crop_depth, flip)
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
