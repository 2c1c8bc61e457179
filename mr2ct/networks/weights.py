"""Weight initialisation, parameter counting and parameter-matched network widths."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn
from monai.networks.utils import normal_init

__all__ = ["count_parameters", "init_weights", "matched_width"]


def init_weights(network: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise conv weights from N(0, ``std``) and biases to 0, as CycleGAN does; returns ``network``."""
    network.apply(lambda m: normal_init(m, std=std))
    return network


def count_parameters(network: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``network``."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad or not trainable_only)


def matched_width(build: Callable[[int], nn.Module], target_parameters: int, max_width: int = 1024) -> int:
    """The width (``channels``) at which ``build(width)`` has the parameter count closest to the target.

    Used to give the paper's 2D baselines as many parameters as the 3D model (section 5.2: "the same for all
    models"), e.g. ``matched_width(lambda c: ResnetGenerator(2, 1, 1, c), count_parameters(g3d))``.
    """
    if target_parameters < 1:
        raise ValueError(f"target_parameters must be positive, got {target_parameters}.")
    best, best_gap, width = 1, float("inf"), 1
    while width <= max_width:
        gap = count_parameters(build(width)) - target_parameters
        if abs(gap) < best_gap:
            best, best_gap = width, abs(gap)
        if gap > 0:  # parameter counts grow with width: no closer match beyond this point
            break
        width += 1
    return best
