"""A per-voxel confidence map for a translation: how much it changes under test-time augmentations.

A generator that has learned the anatomy under a voxel translates it alike when the input is mirrored left-right
or moved by a voxel or two (its strided convolutions see other sampling phases then); where it guesses (a thin
bone, an edge between air and bone, an anatomy it never saw), the translations disagree. Their spread is the map:
in the output's unit (HU for a synthetic CT), larger = less to be trusted. Whether it ranks the true errors is
measured, not assumed: the MR -> CT evaluation reports the rank correlation between the map and the absolute
error, per voxel and per case.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AugmentationSpread", "shift_volume"]


def shift_volume(x: torch.Tensor, shift: Sequence[int]) -> torch.Tensor:
    """``x`` (``(N, C, *spatial)``) with its content moved by ``shift`` voxels per spatial axis, size kept: voxels
    moved out are dropped, the ones moved in repeat the edge."""
    if len(shift) != x.ndim - 2:
        raise ValueError(f"shift {tuple(shift)} needs one value per spatial axis of shape {tuple(x.shape)}.")
    pad = []
    for s in reversed(shift):  # F.pad lists the last axis first
        pad += [max(s, 0), max(-s, 0)]
    padded = F.pad(x, pad, mode="replicate")
    index = tuple(slice(max(-s, 0), max(-s, 0) + n) for s, n in zip(shift, x.shape[2:]))
    return padded[(slice(None), slice(None), *index)]


def _moved_back(ones: torch.Tensor, shift: Sequence[int]) -> torch.Tensor:
    """1 where a voxel moved by ``shift`` and back is the voxel itself, 0 where it is a copy of an edge."""
    mask = torch.zeros_like(ones)
    index = tuple(slice(max(-s, 0), n - max(s, 0)) for s, n in zip(shift, ones.shape[2:]))
    mask[(slice(None), slice(None), *index)] = 1
    return mask


class AugmentationSpread(nn.Module):
    """Wrap a translation network so that it returns its output and the output's spread over test-time augmentations.

    The augmentations are a mirror along each axis of ``flips`` and a move by each offset of ``shifts``; each
    augmented input is translated and the augmentation undone on the output. The spread is the standard deviation
    over all translations, the plain one included (near the borders, a moved translation counts only where its
    voxels were not edge copies). The first ``C`` output channels are the plain translation
    (unchanged by the wrapper), the next ``C`` the spread, per channel. Wrap the network before a sliding-window
    inferer: each window is augmented alike and the spreads are blended like the outputs.

    Args:
        network: maps ``(N, C_in, *spatial)`` to ``(N, C, *spatial)``.
        flips: spatial axes (0 = the first spatial axis) to mirror, one augmentation each; for the MR<->CT bundle's
            ``(slices, x, y)`` layout, ``1`` is the left-right mirror that a head is nearly symmetric under.
        shifts: voxel offsets, one per spatial axis, one augmentation each.
    """

    def __init__(
        self,
        network: nn.Module,
        flips: Sequence[int] = (1,),
        shifts: Sequence[Sequence[int]] = ((0, 1, 1), (0, 2, 2), (1, 0, 0)),
    ):
        super().__init__()
        if not flips and not shifts:
            raise ValueError("AugmentationSpread needs at least one flip or shift.")
        self.network = network
        self.flips = tuple(int(a) for a in flips)
        self.shifts = tuple(tuple(int(s) for s in shift) for shift in shifts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.ndim - 2
        if any(not 0 <= a < spatial for a in self.flips) or any(len(s) != spatial for s in self.shifts):
            raise ValueError(
                f"flips {self.flips} and shifts {self.shifts} do not fit {spatial} spatial axes "
                f"(input shape {tuple(x.shape)})."
            )
        plain = self.network(x)
        outputs, valid = [plain.float()], [torch.ones_like(x[:, :1], dtype=torch.float32)]
        for axis in self.flips:
            outputs.append(self.network(x.flip(2 + axis)).flip(2 + axis).float())
            valid.append(valid[0])
        for shift in self.shifts:
            back = [-s for s in shift]
            outputs.append(shift_volume(self.network(shift_volume(x, shift)), back).float())
            valid.append(_moved_back(valid[0], shift))  # voxels moved out and back in are edge copies: left out
        stacked, weights = torch.stack(outputs), torch.stack(valid)
        mean = (stacked * weights).sum(0) / weights.sum(0)
        spread = (((stacked - mean) ** 2 * weights).sum(0) / weights.sum(0)).sqrt()
        return torch.cat([plain, spread.to(plain.dtype)], dim=1)
