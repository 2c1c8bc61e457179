"""The paper's four methods (Figure 4) in one registry: what each one's networks see and how its batch is formed.

Everything that differs between the 3D CycleGAN and the frame-wise baselines is here, read by the bundle
configs, the settings checks, the reproduction runner and the benchmarks::

    method = get_method("random")
    method.spatial_dims                 # 2: frame-wise networks
    method.batch_preparer(16)           # RandomFrames(16)
    method.translator(generator)        # FramewiseNetwork(generator): translates a video frame by frame
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from mr2ct.engine.batching import ClipBatch, RandomFrames, SequentialFrames
from mr2ct.networks.framewise import FramewiseNetwork

__all__ = ["METHODS", "Method", "get_method"]


@dataclass(frozen=True)
class Method:
    """One of the paper's methods.

    Args:
        name: the config value of ``method``.
        spatial_dims: 3 for networks over whole clips / volumes, 2 for frame-wise networks.
        batch: how a training batch is formed: ``"clip"`` (whole clips), ``"sequential"`` (the consecutive
            frames of each loaded clip, in order) or ``"random"`` (frames drawn at random from the loaded clips).
        lambda_const: default weight of the paper's temporal ``const`` loss (Eq. 2); > 0 only for ``seq_const``.
        clips_per_batch: clips loaded per iteration by default (``random`` draws its frames from several).
        description: one line for documentation and command-line help.
    """

    name: str
    spatial_dims: int
    batch: str
    lambda_const: float
    clips_per_batch: int
    description: str

    def frames_per_batch(self, depth: int) -> int | None:
        """Frames per training batch for ``random`` (as many as a sequential batch of one clip holds), else None."""
        return depth if self.batch == "random" else None

    def samples_per_batch(self, clips_per_batch: int, depth: int, frames_per_batch: int | None = None) -> int:
        """Samples (clips for 3D networks, frames for 2D ones) in a training batch formed from ``clips_per_batch``
        loaded clips of ``depth`` frames (after any ``crop_depth``): what each discriminator and its image pool see
        per iteration."""
        if self.batch == "clip":
            return clips_per_batch
        if self.batch == "sequential":
            return clips_per_batch * depth
        if frames_per_batch is None:
            raise ValueError(f"method {self.name!r} needs frames_per_batch.")
        return frames_per_batch

    def batch_preparer(
        self, frames_per_batch: int | None = None, crop_depth: int | None = None, flip: bool = False
    ) -> ClipBatch:
        """The batch preparer that turns loaded clips into this method's training batch (each clip first cut to
        a random window of ``crop_depth`` frames when given, and mirrored left-right at random with ``flip``)."""
        if self.batch == "clip":
            return ClipBatch(crop_depth=crop_depth, flip=flip)
        if self.batch == "sequential":
            return SequentialFrames(crop_depth=crop_depth, flip=flip)
        if frames_per_batch is None:
            raise ValueError(f"method {self.name!r} needs frames_per_batch.")
        return RandomFrames(frames_per_batch, crop_depth=crop_depth, flip=flip)

    def translator(self, network: nn.Module) -> nn.Module:
        """``network`` as a translator of whole clips / volumes (frame by frame for 2D networks)."""
        return network if self.spatial_dims == 3 else FramewiseNetwork(network)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("3d", 3, "clip", 0.0, 1, "3D CycleGAN: 3D generators and discriminators on whole clips / volumes"),
        Method("random", 2, "random", 0.0, 4, "2D CycleGAN on frames drawn at random from the loaded clips"),
        Method("sequential", 2, "sequential", 0.0, 1, "2D CycleGAN on the consecutive frames of one clip, in order"),
        Method("seq_const", 2, "sequential", 1.0, 1, "as sequential, plus the paper's temporal const loss"),
    )
}


def get_method(name: str) -> Method:
    """The method called ``name``; a clear error naming the known ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}.")
    return METHODS[name]
